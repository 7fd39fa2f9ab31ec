"""Clean-up after a failed `in` download (issue 8, #9): it removes trees a non-root user may
not write, and when it fails too the real failure is the one reported, with no retry on top of
what is left."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from regwatch.errors import NotFound
from regwatch.refs import parse_repository
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.specs import FetchSpec, TagDigest, WatchSpec
from tests import images
from tests import tarwriter as tw
from tests.faults import (
    FaultRegistry,
    blob_path,
    blob_reply,
    empty_reply,
    manifest_reply,
    truncated,
)
from tests.unprivileged import run_unprivileged, workspace

REPO = "team/cleanup"
GET_MODULE = importlib.import_module("regwatch.service.get")  # where the clean-up is patched
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
READ_ONLY = [
    tw.directory("ro", mode=0o555),
    tw.directory("ro/in", mode=0o500),
    tw.file("ro/in/file", "x\n"),
    tw.directory("ro/in/shut", mode=0o000),
]


def two_layers(fault: FaultRegistry, first: list[tw.Entry]) -> tuple[images.Image, str]:
    """An image of `first` and a second layer, served; the second layer's blob path."""
    blobs = (
        images.Blob(LAYER, tw.blob(first)),
        images.Blob(LAYER, tw.blob([tw.file("second", "2\n")])),
    )
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(b.data)).hexdigest() for b in blobs]
    config = images.Blob(
        "application/vnd.oci.image.config.v1+json",
        json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode(),
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in blobs],
    }
    item = images.Image(
        config, blobs, images.Blob(manifest["mediaType"], json.dumps(manifest).encode())
    )
    fault.route("GET", f"/v2/{REPO}/manifests/{item.digest}", manifest_reply(item.manifest.data))
    for blob in (config, *blobs):
        fault.route("GET", blob_path(REPO, blob.digest), blob_reply(blob.data))
    return item, blob_path(REPO, blobs[1].digest)


def get(fault: FaultRegistry, item: images.Image, destination: Path) -> None:
    spec = WatchSpec(parse_repository(f"{fault.host}/{REPO}"))
    with Service(retry=RetryPolicy.from_env(), sleep=lambda _: None) as service:
        service.get(spec, FetchSpec(TagDigest("v1", item.digest)), destination)


def refuse_rootfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean-up that cannot remove the rootfs (an immutable file, a busy mount...)."""
    real = GET_MODULE.remove_tree

    def remove_tree(path: str) -> None:
        if Path(path).name == "rootfs":
            raise PermissionError(1, "Operation not permitted", path)
        real(path)

    monkeypatch.setattr(GET_MODULE, "remove_tree", remove_tree)


def test_a_failed_clean_up_keeps_the_real_error(
    fault_registry: FaultRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    item, second = two_layers(fault_registry, [tw.file("first", "1\n")])
    fault_registry.route("GET", second, empty_reply(404))
    refuse_rootfs(monkeypatch)
    with caplog.at_level(logging.WARNING), pytest.raises(NotFound, match="download failed"):
        get(fault_registry, item, tmp_path)
    assert any("could not remove" in r.getMessage() for r in caplog.records)


def test_a_failed_clean_up_stops_the_retries(
    fault_registry: FaultRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry would unpack on top of what the failed attempt left."""
    item, second = two_layers(fault_registry, [tw.file("first", "1\n")])
    fault_registry.plan("GET", second, truncated(b"\x1f\x8b", 100))
    refuse_rootfs(monkeypatch)
    with pytest.raises(Exception, match="download failed") as raised:
        get(fault_registry, item, tmp_path)
    assert "Operation not permitted" not in str(raised.value)
    assert fault_registry.count("GET", second) == 1


def test_a_non_root_clean_up_removes_read_only_directories(fault_registry: FaultRegistry) -> None:
    """Before: shutil.rmtree's PermissionError replaced the real error."""
    item, second = two_layers(fault_registry, READ_ONLY)
    fault_registry.route("GET", second, empty_reply(404))
    with workspace() as destination:
        failure = run_unprivileged(lambda: get(fault_registry, item, destination))
        assert failure is not None
        assert failure.startswith("NotFound: download failed"), failure
        assert list(destination.iterdir()) == []
