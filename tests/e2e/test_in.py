"""`regwatch in DEST` as Concourse runs it, against the real local registries."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import tarfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from regwatch.image import mediatypes as mt
from regwatch.refs import Repository
from tests import images
from tests.e2e.steps import Run, assert_fails, client_for, source_for, step
from tests.registries import RegistryServer, require_tool


def get(request: Mapping[str, Any] | str, *args: str) -> Run:
    return step("in", request, *args)


def push(server: RegistryServer, tag: str, item: images.Image | images.Index) -> str:
    repo = Repository(server.host, f"in/{uuid.uuid4().hex[:10]}")
    images.push(client_for(server), repo, tag, item)
    return str(repo)


def rich_image(name: str) -> images.Image:
    """An image with a config worth reading back: cmd, entrypoint, env, user, labels."""
    item = images.image(name, files={"etc/hello": b"hello\n", "bin/tool": b"#!/bin/sh\n"})
    config = json.loads(item.config.data)
    config["config"].update(
        Cmd=["-c", "echo <hi> & bye"],
        Entrypoint=["/bin/sh"],
        User="someuser",
        Labels={"org.b": "2", "org.a": "1", "other": "x"},
    )
    blob = images.Blob(item.config.media_type, json.dumps(config).encode())
    manifest = json.loads(item.manifest.data)
    manifest["config"] = blob.descriptor()
    manifest["annotations"] = {"org.opencontainers.image.source": "https://example.com", "z": "no"}
    return images.Image(
        blob, item.layers, images.Blob(item.manifest.media_type, json.dumps(manifest).encode())
    )


@pytest.fixture(params=["plain", "tls", "token"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    registry: RegistryServer = request.getfixturevalue(f"{request.param}_registry")
    return registry


def test_rootfs(server: RegistryServer, tmp_path: Path) -> None:
    item = rich_image("rootfs")
    repo = push(server, "v1", item)
    version = {"tag": "tagged", "digest": item.digest}

    run = get({"source": source_for(server, repo), "version": version}, str(tmp_path))

    assert run.code == 0, run.stderr
    assert run.answer == {
        "version": version,
        "metadata": [{"name": "repository", "value": repo}, {"name": "tag", "value": "tagged"}],
    }
    assert (tmp_path / "rootfs/etc/hello").read_bytes() == b"hello\n"
    assert (tmp_path / "tag").read_text() == "tagged"
    assert (tmp_path / "digest").read_text() == item.digest
    assert (tmp_path / "repository").read_text() == repo
    assert (tmp_path / "metadata.json").read_text() == (
        '{"cmd":["-c","echo \\u003chi\\u003e \\u0026 bye"],"entrypoint":["/bin/sh"],'
        '"env":["PATH=/usr/bin"],"user":"someuser"}\n'
    )
    assert (tmp_path / "labels.json").read_text() == '{"org.a":"1","org.b":"2","other":"x"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "digest",
        "labels.json",
        "metadata.json",
        "repository",
        "rootfs",
        "tag",
    ]


def test_skip_download(plain_registry: RegistryServer, tmp_path: Path) -> None:
    item = images.image("skip")
    repo = push(plain_registry, "v1", item)
    run = get(
        {
            "source": {"repository": repo},
            "params": {"skip_download": True},
            "version": {"tag": "v1", "digest": item.digest},
        },
        str(tmp_path),
    )
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digest", "repository", "tag"]


def test_oci_tarball_is_readable_by_skopeo(plain_registry: RegistryServer, tmp_path: Path) -> None:
    item = rich_image("tarball")
    repo = push(plain_registry, "v1", item)
    run = get(
        {
            "source": {"repository": repo},
            "params": {"format": "oci"},
            "version": {"tag": "v1", "digest": item.digest},
        },
        str(tmp_path),
    )
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "digest",
        "image.tar",
        "labels.json",
        "repository",
        "tag",
    ]
    with tarfile.open(tmp_path / "image.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [f"{repo}:v1"]
    raw = subprocess.run(
        [require_tool("skopeo"), "inspect", "--raw", f"docker-archive:{tmp_path / 'image.tar'}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    assert json.loads(raw)["config"]["digest"] == item.config.digest


def test_oci_layout_of_an_index_keeps_the_index_bytes(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    multi = images.index([images.image("lay-amd"), images.image("lay-arm", architecture="arm64")])
    repo = push(plain_registry, "multi", multi)
    run = get(
        {
            "source": {"repository": repo},
            "params": {"format": "oci-layout"},
            "version": {"tag": "multi", "digest": multi.digest},
        },
        str(tmp_path),
    )
    assert run.code == 0, run.stderr
    index = (tmp_path / "oci/index.json").read_bytes()
    assert "sha256:" + hashlib.sha256(index).hexdigest() == multi.digest
    assert not (tmp_path / "oci/single-image-digest").exists()
    for child in multi.images:
        assert (tmp_path / "oci/blobs/sha256" / child.digest.removeprefix("sha256:")).exists()


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ({"architecture": "arm64"}, "arm64"),
        ({"architecture": "arm/v7"}, "armv7"),
        ({"architecture": "amd64", "os": "linux"}, "amd64"),
    ],
)
def test_platform_selection_from_an_index(
    plain_registry: RegistryServer, tmp_path: Path, platform: dict[str, str], expected: str
) -> None:
    children = [
        images.image("p-amd", files={"arch": b"amd64"}),
        images.image("p-arm64", files={"arch": b"arm64"}, architecture="arm64"),
        images.image("p-armv6", files={"arch": b"armv6"}, architecture="arm"),
        images.image("p-armv7", files={"arch": b"armv7"}, architecture="arm"),
    ]
    variants = [None, "v8", "v6", "v7"]
    children = [
        images.Image(
            c.config, c.layers, c.manifest, {**c.platform, **({"variant": v} if v else {})}
        )
        for c, v in zip(children, variants, strict=True)
    ]
    multi = images.index(children)
    repo = push(plain_registry, "multi", multi)
    run = get(
        {
            "source": {"repository": repo},
            "params": {"platform": platform},
            "version": {"tag": "multi", "digest": multi.digest},
        },
        str(tmp_path),
    )
    assert run.code == 0, run.stderr
    assert (tmp_path / "rootfs/arch").read_text() == expected
    assert (tmp_path / "digest").read_text() == multi.digest


def test_label_and_annotation_metadata(plain_registry: RegistryServer, tmp_path: Path) -> None:
    item = rich_image("meta")
    repo = push(plain_registry, "v1", item)
    run = get(
        {
            "source": {"repository": repo, "label_regex": "^org", "annotation_regex": "source"},
            "params": {"skip_download": True},
            "version": {"tag": "v1", "digest": item.digest},
        },
        str(tmp_path),
    )
    assert run.code == 0, run.stderr
    assert run.answer["metadata"] == [
        {"name": "repository", "value": repo},
        {"name": "tag", "value": "v1"},
        {"name": "org.a", "value": "1"},
        {"name": "org.b", "value": "2"},
        {"name": "org.opencontainers.image.source", "value": "https://example.com"},
    ]


def test_errors(plain_registry: RegistryServer, tmp_path: Path) -> None:
    item = images.image("errors")
    repo = push(plain_registry, "v1", item)
    version = {"tag": "v1", "digest": item.digest}
    assert_fails(
        get({"source": {"repository": repo}, "version": version}), "destination path not specified"
    )
    assert_fails(
        get(
            {"source": {"repository": repo}, "params": {"format": "zip"}, "version": version},
            str(tmp_path),
        ),
        "unknown format provided",
    )
    missing = {"tag": "v1", "digest": "sha256:" + "0" * 64}
    assert_fails(
        get({"source": {"repository": repo}, "version": missing}, str(tmp_path / "m")),
        "download failed: fetch descriptor",
    )
    assert_fails(
        get(
            {
                "source": {"repository": repo, "label_regex": "("},
                "params": {"skip_download": True},
                "version": version,
            },
            str(tmp_path / "r"),
        ),
        "enriching metadata failed: invalid label_regex",
    )


def test_hostile_layer_is_refused_and_nothing_escapes(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        evil = tarfile.TarInfo("../../escaped")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    layer = images.Blob("application/vnd.oci.image.layer.v1.tar", raw.getvalue())
    good = images.image("hostile")
    config = json.loads(good.config.data)
    config["rootfs"]["diff_ids"] = [layer.digest]
    config_blob = images.Blob(good.config.media_type, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor()],
    }
    item = images.Image(
        config_blob, (layer,), images.Blob(mt.OCI_MANIFEST, json.dumps(manifest).encode())
    )
    repo = push(plain_registry, "v1", item)
    dest = tmp_path / "deep" / "dest"
    dest.mkdir(parents=True)

    run = get(
        {"source": {"repository": repo}, "version": {"tag": "v1", "digest": item.digest}}, str(dest)
    )

    assert_fails(run, "../../escaped")
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "deep" / "escaped").exists()


def test_zstd_layers_and_progress_lines(plain_registry: RegistryServer, tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zstd-file")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"zstd\n"))
    # Labelled gzip on purpose: compression is sniffed from the bytes, not the media type.
    layer = images.Blob(
        "application/vnd.oci.image.layer.v1.tar+gzip", zstandard.compress(raw.getvalue())
    )
    base = images.image("zstd")
    manifest = json.loads(base.manifest.data)
    manifest["layers"] = [layer.descriptor()]
    item = images.Image(
        base.config, (layer,), images.Blob(base.manifest.media_type, json.dumps(manifest).encode())
    )
    repo = push(plain_registry, "zstd", item)

    run = get(
        {"source": {"repository": repo}, "version": {"tag": "zstd", "digest": item.digest}},
        str(tmp_path),
    )

    assert run.code == 0, run.stderr
    assert (tmp_path / "rootfs/zstd-file").read_bytes() == b"zstd\n"
    label = layer.digest.removeprefix("sha256:")[:12]
    assert f"{label} {len(layer.data)}B/{len(layer.data)}B" in run.stderr.splitlines()


def test_persistent_store_records_the_image(plain_registry: RegistryServer, tmp_path: Path) -> None:
    multi = images.index([images.image("st-amd"), images.image("st-arm", architecture="arm64")])
    repo = push(plain_registry, "v1", multi)
    database = tmp_path / "trail.db"
    request = {
        "source": {"repository": repo, "store": f"sqlite:///{database}"},
        "version": {"tag": "v1", "digest": multi.digest},
    }
    assert get(request, str(tmp_path / "a")).code == 0
    assert get(request, str(tmp_path / "b")).code == 0, "a second get records nothing new"

    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT stream, kind, payload FROM events").fetchall()
    assert [(stream, kind) for stream, kind, _ in rows] == [(repo, "ImageInspected")]
    payload = json.loads(rows[0][2])
    assert payload["digest"] == multi.digest
    assert payload["created"] == "2024-01-01T00:00:00Z"
    assert [p["architecture"] for p in payload["platforms"]] == ["amd64", "arm64"]


def test_debug_logs_entries_instead_of_progress(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    item = images.image("debug", files={"etc/debugged": b"x"})
    repo = push(plain_registry, "v1", item)
    run = get(
        {
            "source": {"repository": repo, "debug": True},
            "version": {"tag": "v1", "digest": item.digest},
        },
        str(tmp_path),
    )
    assert run.code == 0, run.stderr
    assert "extracting layer 1 of 1" in run.stderr
    assert "unpacking etc/debugged" in run.stderr
    label = item.layers[0].digest.removeprefix("sha256:")[:12]
    bars = [line for line in run.stderr.splitlines() if label in line and "/blobs/" not in line]
    assert bars == [], "no progress bar (request lines name the blob's URL)"
