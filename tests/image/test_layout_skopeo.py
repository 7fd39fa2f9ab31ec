"""skopeo as the independent witness that `image.tar` and the OCI layout load as tools expect.

Images come from `tests.images`; blobs reach the writers from memory, so no registry runs here.
skopeo 1.9 cannot pick an entry of a layout's `index.json` by digest, nor one without a
`org.opencontainers.image.ref.name`, and cannot copy a nested index: index layouts are read
through a *view*, a directory whose `index.json` names each manifest of the layout under test
and whose blobs are symlinks to the layout's own.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from regwatch.image import mediatypes as mt
from regwatch.image.mediatypes import OCI_LAYER_TAR, OCI_LAYER_ZSTD
from tests import images
from tests.images import Blob, MemoryBlobs
from tests.registries import require_tool

REPO_TAG = "index.docker.io/library/witness:latest"
REF_NAME = "org.opencontainers.image.ref.name"


def skopeo(*args: str) -> bytes:
    result = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout


def view(layout_dir: Path, directory: Path, named: Mapping[str, Blob]) -> Path:
    """A layout naming each manifest in `named`, sharing `layout_dir`'s blobs through symlinks.

    The top index lives only in `index.json`, so `named` manifests missing from the blobs
    (that one) are added to the view's own blobs.
    """
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (directory / "oci-layout").write_bytes((layout_dir / "oci-layout").read_bytes())
    for blob in (layout_dir / "blobs" / "sha256").iterdir():
        (blobs / blob.name).symlink_to(blob)
    for manifest in named.values():
        target = blobs / manifest.digest.removeprefix("sha256:")
        if not target.exists():
            target.write_bytes(manifest.data)
    descriptors = [m.descriptor(annotations={REF_NAME: name}) for name, m in named.items()]
    (directory / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": descriptors})
    )
    return directory


def reconstructed_manifest(config: Blob, uncompressed_layers: Sequence[bytes]) -> bytes:
    """The Docker schema-2 manifest a loader rebuilds from a `docker save` tarball.

    It depends only on the config bytes and the layers' uncompressed contents, which is why
    storing the config verbatim keeps digest parity with the Go original (quirk Q15).
    """
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_V2,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config.data),
            "digest": config.digest,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(raw),
                "digest": images.sha256(raw),
            }
            for raw in uncompressed_layers
        ],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


# -- image.tar ----------------------------------------------------------------------------------


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_image_tarball_loads_with_the_registry_config_digest(tmp_path: Path, docker: bool) -> None:
    image = images.image("tarball", docker=docker)
    archive = MemoryBlobs.holding([image]).write_tarball(tmp_path / "image.tar", image, REPO_TAG)

    raw = skopeo("inspect", "--raw", f"docker-archive:{archive}")
    assert json.loads(raw)["config"]["digest"] == image.config.digest
    config = json.loads(image.config.data)
    assert [layer["digest"] for layer in json.loads(raw)["layers"]] == config["rootfs"]["diff_ids"]
    assert raw == reconstructed_manifest(
        image.config, [gzip.decompress(b.data) for b in image.layers]
    )
    assert skopeo("inspect", "--config", "--raw", f"docker-archive:{archive}") == image.config.data
    # manifest.json's RepoTags select the image by name.
    assert skopeo("inspect", "--raw", f"docker-archive:{archive}:{REPO_TAG}") == raw
    skopeo("copy", "--quiet", f"docker-archive:{archive}", f"dir:{tmp_path / 'copied'}")
    assert (tmp_path / "copied" / image.config.digest.removeprefix("sha256:")).read_bytes() == (
        image.config.data
    )


def test_image_tarball_with_zstd_plain_and_repeated_layers(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    gzipped = images.layer({"a": b"gzip"})
    raw_gzipped = gzip.decompress(gzipped.data)
    raw_zstd = gzip.decompress(images.layer({"b": b"zstd"}).data)
    raw_plain = gzip.decompress(images.layer({"c": b"plain"}).data)
    zstd = Blob(OCI_LAYER_ZSTD, zstandard.ZstdCompressor().compress(raw_zstd))
    plain = Blob(OCI_LAYER_TAR, raw_plain)
    layers = (gzipped, zstd, plain, gzipped)
    uncompressed = [raw_gzipped, raw_zstd, raw_plain, raw_gzipped]
    config = Blob(
        "application/vnd.oci.image.config.v1+json",
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [images.sha256(r) for r in uncompressed]},
            }
        ).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    image = images.Image(config, layers, Blob(mt.OCI_MANIFEST, json.dumps(manifest).encode()))
    archive = MemoryBlobs.holding([image]).write_tarball(tmp_path / "image.tar", image, REPO_TAG)

    assert skopeo("inspect", "--raw", f"docker-archive:{archive}") == reconstructed_manifest(
        config, uncompressed
    )
    # A copy decompresses every layer and checks it against its diff ID.
    skopeo("copy", "--quiet", f"docker-archive:{archive}", f"dir:{tmp_path / 'copied'}")


# -- OCI image layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_layout_of_an_image_reads_back_with_the_same_digest(tmp_path: Path, docker: bool) -> None:
    image = images.image("layout", docker=docker)
    oci = MemoryBlobs.holding([image]).write_layout(tmp_path / "oci", image.manifest)

    raw = skopeo("inspect", "--raw", f"oci:{oci}")
    assert images.sha256(raw) == image.digest
    assert skopeo("inspect", "--config", "--raw", f"oci:{oci}") == image.config.data
    assert (oci / "single-image-digest").read_text() == image.digest
    skopeo("copy", "--quiet", f"oci:{oci}", f"dir:{tmp_path / 'copied'}")
    assert (tmp_path / "copied" / "manifest.json").read_bytes() == image.manifest.data


def test_layout_of_an_index_keeps_the_index_digest(tmp_path: Path) -> None:
    amd64 = images.image("index-amd64")
    arm64 = images.image("index-arm64", architecture="arm64")
    index = images.index([amd64, arm64])
    oci = MemoryBlobs.holding([index]).write_layout(tmp_path / "oci", index.manifest)
    assert not (oci / "single-image-digest").exists()

    named = view(
        oci,
        tmp_path / "view",
        {"top": index.manifest, "amd64": amd64.manifest, "arm64": arm64.manifest},
    )
    raw = skopeo("inspect", "--raw", f"oci:{named}:top")
    assert raw == (oci / "index.json").read_bytes() == index.manifest.data
    assert images.sha256(raw) == index.digest
    # --all copies every platform: the layout holds all of them, blobs included.
    skopeo("copy", "--quiet", "--all", f"oci:{named}:top", f"dir:{tmp_path / 'copied'}")
    for name, image in (("amd64", amd64), ("arm64", arm64)):
        assert images.sha256(skopeo("inspect", "--raw", f"oci:{named}:{name}")) == image.digest


def test_layout_of_a_nested_index(tmp_path: Path) -> None:
    """OCI types only: skopeo 1.9 ignores Docker-typed entries of a layout's index.json."""
    one = images.image("nested-one")
    two = images.image("nested-two", architecture="arm64")
    three = images.image("nested-three", architecture="s390x")
    inner = images.index([two, three])
    top_body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            one.manifest.descriptor(platform=dict(one.platform)),
            inner.manifest.descriptor(),
        ],
    }
    top = Blob(mt.OCI_INDEX, json.dumps(top_body).encode())
    oci = MemoryBlobs.holding([one, inner]).write_layout(tmp_path / "oci", top)

    members = {"one": one, "two": two, "three": three}
    named = view(
        oci,
        tmp_path / "view",
        {"top": top, "inner": inner.manifest, **{n: i.manifest for n, i in members.items()}},
    )
    assert skopeo("inspect", "--raw", f"oci:{named}:top") == top.data
    assert skopeo("inspect", "--raw", f"oci:{named}:inner") == inner.manifest.data
    # skopeo 1.9 cannot copy a nested index; copying each image proves its blobs are there.
    (tmp_path / "copied").mkdir()  # skopeo wants a destination's parent to exist
    for name, image in members.items():
        skopeo("copy", "--quiet", f"oci:{named}:{name}", f"dir:{tmp_path / 'copied' / name}")
        copied = (tmp_path / "copied" / name / "manifest.json").read_bytes()
        assert images.sha256(copied) == image.digest
