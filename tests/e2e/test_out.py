"""`regwatch out SRC` as Concourse runs it, against the real registries, checked with skopeo."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from regwatch.image import mediatypes as mt
from regwatch.refs import Reference, Repository
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, source_for, step
from tests.registries import RegistryServer, require_tool

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def regwatch(name: str, request: Mapping[str, Any], directory: Path | None) -> Run:
    return step(name, request, directory)


def fresh(server: RegistryServer, prefix: str = "out") -> str:
    return f"{server.host}/{prefix}/{uuid.uuid4().hex[:10]}"


def docker_image(name: str) -> images.Image:
    """A Docker schema-2 image whose manifest has the exact bytes `out` rebuilds from a tarball."""
    base = images.image(name, docker=True)
    config = images.Blob(DOCKER_CONFIG, base.config.data)
    layer = images.Blob(DOCKER_GZIP, base.layers[0].data)
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        f'"config":{{"mediaType":"{DOCKER_CONFIG}","size":{len(config.data)},"digest":"{config.digest}"}},'
        f'"layers":[{{"mediaType":"{DOCKER_GZIP}","size":{len(layer.data)},"digest":"{layer.digest}"}}]}}'
    )
    return images.Image(config, (layer,), images.Blob(mt.DOCKER_MANIFEST_V2, manifest.encode()))


def pushed_tags(server: RegistryServer, repository: str) -> dict[str, str]:
    client = client_for(server)
    repo = Repository(server.host, repository.split("/", 1)[1])
    found = {}
    for tag in client.list_tags(repo):
        descriptor = client.resolve(Reference(repo, tag=tag))
        assert descriptor is not None
        found[tag] = descriptor.digest
    return found


@pytest.fixture(params=["plain", "tls", "token"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    registry: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return registry


def test_tarball_round_trip_keeps_the_digest_and_bumps_aliases(
    server: RegistryServer, tmp_path: Path
) -> None:
    item = docker_image("round-trip")
    origin = fresh(server)
    images.push(client_for(server), Repository(server.host, origin.split("/", 1)[1]), "src", item)
    got = regwatch(
        "in",
        {
            "source": source_for(server, origin),
            "params": {"format": "oci"},
            "version": {"tag": "src", "digest": item.digest},
        },
        tmp_path / "fetched",
    )
    assert got.code == 0, got.stderr
    (tmp_path / "extra").write_text("one\ntwo  three\n")
    target = fresh(server)

    put = regwatch(
        "out",
        {
            "source": source_for(server, target, tag="edge"),
            "params": {
                "image": "fetched/image.*",
                "version": "v1.2.3",
                "bump_aliases": True,
                "additional_tags": "extra",
                "tag_prefix": "x-",
            },
        },
        tmp_path,
    )

    assert put.code == 0, put.stderr
    assert put.answer == {
        "version": {"tag": "edge", "digest": item.digest},
        "metadata": [
            {"name": "repository", "value": target},
            {"name": "tags", "value": "edge 1.2.3 latest 1 1.2 x-one x-two x-three"},
        ],
    }
    assert pushed_tags(server, target) == dict.fromkeys(
        ["edge", "1.2.3", "latest", "1", "1.2", "x-one", "x-two", "x-three"], item.digest
    )


def test_aliases_respect_newer_versions(plain_registry: RegistryServer, tmp_path: Path) -> None:
    target = fresh(plain_registry)
    repo = Repository(plain_registry.host, target.split("/", 1)[1])
    newer = images.image("newer")
    images.push(client_for(plain_registry), repo, "1.3.0", newer)
    layout = images.write_oci_layout(tmp_path / "img", "v", images.image("older"))
    (layout / "single-image-digest").write_text(images.image("older").digest)

    put = regwatch(
        "out",
        {
            "source": {"repository": target},
            "params": {"image": "img", "version": "1.2.3", "bump_aliases": True},
        },
        tmp_path,
    )

    assert put.code == 0, put.stderr
    assert set(pushed_tags(plain_registry, target)) == {"1.3.0", "1.2.3", "1.2"}
    assert "latest stays: 1.3.0 is newer" in put.stderr


def test_index_round_trip_through_oci_layout(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    multi = images.index([images.image("ix-amd"), images.image("ix-arm", architecture="arm64")])
    origin = fresh(plain_registry)
    images.push(
        client_for(plain_registry),
        Repository(plain_registry.host, origin.split("/", 1)[1]),
        "m",
        multi,
    )
    got = regwatch(
        "in",
        {
            "source": {"repository": origin},
            "params": {"format": "oci-layout"},
            "version": {"tag": "m", "digest": multi.digest},
        },
        tmp_path / "fetched",
    )
    assert got.code == 0, got.stderr
    target = fresh(plain_registry)

    put = regwatch(
        "out",
        {"source": {"repository": target, "tag": "multi"}, "params": {"image": "fetched/oci"}},
        tmp_path,
    )

    assert put.code == 0, put.stderr
    assert put.answer["version"] == {"tag": "multi", "digest": multi.digest}
    raw = subprocess.run(
        [
            require_tool("skopeo"),
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{target}:multi",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    assert raw == multi.manifest.data
    for child in multi.images:
        skopeo_child = subprocess.run(
            [
                require_tool("skopeo"),
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"docker://{target}@{child.digest}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        assert skopeo_child == child.manifest.data


def test_single_image_layout_pushes_the_image_itself(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    item = images.image("single")
    origin = fresh(plain_registry)
    images.push(
        client_for(plain_registry),
        Repository(plain_registry.host, origin.split("/", 1)[1]),
        "s",
        item,
    )
    assert (
        regwatch(
            "in",
            {
                "source": {"repository": origin},
                "params": {"format": "oci-layout"},
                "version": {"tag": "s", "digest": item.digest},
            },
            tmp_path / "fetched",
        ).code
        == 0
    )
    target = fresh(plain_registry)
    put = regwatch(
        "out",
        {"source": {"repository": target, "tag": "copy"}, "params": {"image": "fetched/oci"}},
        tmp_path,
    )
    assert put.answer["version"]["digest"] == item.digest, put.stderr


def test_repush_is_idempotent_and_recorded(plain_registry: RegistryServer, tmp_path: Path) -> None:
    item = images.image("again")
    images.write_oci_layout(tmp_path / "img", "v", item)
    (tmp_path / "img" / "single-image-digest").write_text(item.digest)
    database = tmp_path / "trail.db"
    request = {
        "source": {
            "repository": fresh(plain_registry),
            "tag": "stable",
            "store": f"sqlite:///{database}",
        },
        "params": {"image": "img"},
    }
    first = regwatch("out", request, tmp_path)
    second = regwatch("out", request, tmp_path)
    assert first.code == second.code == 0, first.stderr + second.stderr
    assert first.answer == second.answer
    with sqlite3.connect(database) as db:
        kinds = [row[0] for row in db.execute("SELECT kind FROM events ORDER BY position")]
    assert kinds == ["TagAppeared", "ImagePushed", "ImagePushed"]


@pytest.mark.parametrize(
    ("params", "files", "fragment"),
    [
        ({"image": "nothing/*", "version": "1.0.0"}, [], "no files match glob 'nothing/*'"),
        (
            {"image": "many/*", "version": "1.0.0"},
            ["many/a", "many/b"],
            "too many files/directories match glob 'many/*'",
        ),
        ({"image": "img/[", "version": "1.0.0"}, [], "failed to glob path"),
        (
            {"image": "img"},
            [],
            "no tag specified - need either 'version:' in params or 'tag:' in source",
        ),
        (
            {"image": "img", "version": "hoogily-boogily"},
            [],
            'invalid semantic version: "hoogily-boogily"',
        ),
        ({"image": "img", "version": "1.0.0-rc.01"}, [], "failed to parse version"),
        (
            {"image": "img", "version": "1.0.0", "tag_prefix": "x"},
            [],
            "tag_prefix can only be used when additional_tags are specified",
        ),
        (
            {"image": "img", "version": "1.0.0", "additional_tags": "missing"},
            [],
            "could not parse additional tags: failed to read file at",
        ),
        (
            {"image": "broken", "version": "1.0.0"},
            ["broken"],
            "could not load image from path 'broken'",
        ),
    ],
)
def test_errors(
    plain_registry: RegistryServer,
    tmp_path: Path,
    params: dict[str, Any],
    files: list[str],
    fragment: str,
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("not an image")
    run = regwatch(
        "out", {"source": {"repository": fresh(plain_registry)}, "params": params}, tmp_path
    )
    assert_fails(run, fragment)


def test_no_sources_directory() -> None:
    assert_fails(
        regwatch("out", {"source": {"repository": "x"}, "params": {}}, None),
        "destination path not specified",
    )


def test_blobs_the_log_places_elsewhere_are_mounted(server: RegistryServer, tmp_path: Path) -> None:
    item = docker_image("mounted")
    origin = fresh(server)
    images.push(client_for(server), Repository(server.host, origin.split("/", 1)[1]), "src", item)
    store = f"sqlite:///{tmp_path / 'trail.db'}"
    got = regwatch(
        "in",
        {
            "source": source_for(server, origin, store=store),
            "params": {"format": "oci"},
            "version": {"tag": "src", "digest": item.digest},
        },
        tmp_path / "fetched",
    )
    assert got.code == 0, got.stderr
    target = fresh(server)

    put = regwatch(
        "out",
        {
            "source": source_for(server, target, tag="copy", store=store),
            "params": {"image": "fetched/image.tar"},
        },
        tmp_path,
    )

    assert put.code == 0, put.stderr
    assert put.answer["version"]["digest"] == item.digest
    mounted = [line for line in put.stderr.splitlines() if "mounted" in line]
    assert len(mounted) == 2, put.stderr
    assert all(origin.split("/", 1)[1] in line for line in mounted)
    assert pushed_tags(server, target) == {"copy": item.digest}


def skopeo_raw(reference: str) -> bytes:
    return subprocess.run(
        [require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


def test_skopeo_docker_archive_is_pushed_with_its_config(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    item = images.image("archive", files={"etc/archived": b"yes"})
    origin = fresh(plain_registry)
    images.push(
        client_for(plain_registry),
        Repository(plain_registry.host, origin.split("/", 1)[1]),
        "a",
        item,
    )
    subprocess.run(
        [
            require_tool("skopeo"),
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{origin}:a",
            f"docker-archive:{tmp_path / 'image.tar'}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    target = fresh(plain_registry)

    put = regwatch(
        "out",
        {"source": {"repository": target, "tag": "b"}, "params": {"image": "image.tar"}},
        tmp_path,
    )

    assert put.code == 0, put.stderr
    manifest = json.loads(skopeo_raw(f"{target}:b"))
    assert manifest["mediaType"] == mt.DOCKER_MANIFEST_V2
    assert manifest["config"]["digest"] == item.config.digest
    assert put.answer["version"]["digest"] == images.sha256(skopeo_raw(f"{target}:b"))


def test_buildx_style_nested_layout(plain_registry: RegistryServer, tmp_path: Path) -> None:
    """index.json → one index entry → the real multi-platform index, as buildx writes it."""
    children = [images.image("nx-amd"), images.image("nx-arm", architecture="arm64")]
    inner = images.index(children)
    layout = tmp_path / "buildx"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (inner.manifest, *(b for c in children for b in (c.manifest, c.config, *c.layers))):
        (blobs / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    outer = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            inner.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": "x"})
        ],
    }
    (layout / "index.json").write_text(json.dumps(outer))
    target = fresh(plain_registry)

    put = regwatch(
        "out",
        {"source": {"repository": target, "tag": "multi"}, "params": {"image": "buildx"}},
        tmp_path,
    )

    assert put.code == 0, put.stderr
    assert put.answer["version"]["digest"] == inner.digest
    assert skopeo_raw(f"{target}:multi") == inner.manifest.data
    assert skopeo_raw(f"{target}@{children[1].digest}") == children[1].manifest.data


def test_a_corrupt_layout_blob_is_refused_before_any_tag_moves(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    item = images.image("corrupt")
    layout = images.write_oci_layout(tmp_path / "img", "v", item)
    (layout / "single-image-digest").write_text(item.digest)
    layer = layout / "blobs/sha256" / item.layers[0].digest.removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[-1] ^= 0xFF
    layer.write_bytes(bytes(data))
    target = fresh(plain_registry)

    run = regwatch(
        "out", {"source": {"repository": target, "tag": "t"}, "params": {"image": "img"}}, tmp_path
    )

    assert_fails(run, "pushing image failed", "DIGEST_INVALID")
    client = client_for(plain_registry)
    assert (
        client.resolve(Reference(Repository(plain_registry.host, target.split("/", 1)[1]), tag="t"))
        is None
    )
