"""`regwatch in` with deep trees (issue 8, #9): removed by a later layer, or cleaned up after a
failure, whatever their depth, and the failure reported is the real one."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from regwatch.image import mediatypes as mt
from regwatch.image.removal import remove_tree
from regwatch.refs import Repository
from tests import images
from tests import tarwriter as tw
from tests.e2e.steps import Run, assert_fails, client_for, step
from tests.registries import RegistryServer

DEPTH = 1_200
TREE = "/".join(["d"] * DEPTH)
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def layered(*layers: Sequence[tw.Entry]) -> images.Image:
    """An OCI image whose layers are written by the suite's tar writer."""
    blobs = tuple(images.Blob(LAYER, tw.blob(entries)) for entries in layers)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": [
                "sha256:" + hashlib.sha256(gzip.decompress(blob.data)).hexdigest() for blob in blobs
            ],
        },
    }
    config_blob = images.Blob(OCI_CONFIG, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [blob.descriptor() for blob in blobs],
    }
    return images.Image(
        config_blob, blobs, images.Blob(mt.OCI_MANIFEST, json.dumps(manifest).encode())
    )


def fetch(server: RegistryServer, item: images.Image, destination: Path) -> Run:
    repo = Repository(server.host, f"in-deep/{uuid.uuid4().hex[:10]}")
    images.push(client_for(server), repo, "v1", item)
    request = {
        "source": {"repository": str(repo)},
        "version": {"tag": "v1", "digest": item.digest},
    }
    return step("in", request, destination)


@pytest.fixture
def destination(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "dest"
    remove_tree(str(tmp_path / "dest"))  # pytest's own clean-up recurses: a deep tree breaks it


@pytest.mark.parametrize(
    "removal",
    [[tw.whiteout("d")], [tw.file("d", "a file now\n")]],
    ids=["whiteout", "replaced by a file"],
)
def test_a_deep_tree_removed_by_a_later_layer(
    plain_registry: RegistryServer, destination: Path, removal: list[tw.Entry]
) -> None:
    item = layered(
        [tw.file(f"{TREE}/leaf", "bottom\n"), tw.directory("kept")],
        [*removal, tw.file("after", "after\n")],
    )
    run = fetch(plain_registry, item, destination)
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    rootfs = destination / "rootfs"
    assert (rootfs / "after").read_text() == "after\n"
    assert not (rootfs / TREE).exists()


@pytest.mark.parametrize(
    ("failing", "fragment"),
    [
        ([tw.file("../../escaped", "evil")], "entry '../../escaped' climbs out"),
        ([tw.odd("odd", b"V")], "odd: unsupported entry type (V)"),
    ],
    ids=["hostile entry", "unsupported entry"],
)
def test_a_failure_after_a_deep_tree_reports_the_real_error_and_cleans_up(
    plain_registry: RegistryServer, destination: Path, failing: list[tw.Entry], fragment: str
) -> None:
    item = layered([tw.file(f"{TREE}/leaf", "bottom\n")], failing)
    run = fetch(plain_registry, item, destination)
    assert_fails(run, "download failed", "layer 2", fragment)
    assert not (destination / "rootfs").exists()
    assert not (destination.parent / "escaped").exists()
