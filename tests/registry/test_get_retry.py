"""The `in` download's whole-attempt retry (spec §7) and clean-up between attempts (quirk Q12)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from regwatch.errors import NotFound
from regwatch.refs import parse_repository
from regwatch.retrying import RetryPolicy
from regwatch.service import Service
from regwatch.specs import FetchSpec, TagDigest, WatchSpec
from tests import images
from tests.faults import (
    FaultRegistry,
    blob_path,
    blob_reply,
    empty_reply,
    manifest_reply,
    truncated,
)

REPO = "team/app"


def serve(fault: FaultRegistry, item: images.Image) -> None:
    fault.route("GET", f"/v2/{REPO}/manifests/{item.digest}", manifest_reply(item.manifest.data))
    for blob in (item.config, *item.layers):
        fault.route("GET", blob_path(REPO, blob.digest), blob_reply(blob.data))


def get(fault: FaultRegistry, item: images.Image, destination: Path, sleeps: list[float]) -> None:
    spec = WatchSpec(parse_repository(f"{fault.host}/{REPO}"))
    with Service(retry=RetryPolicy.from_env(), sleep=sleeps.append) as service:
        service.get(spec, FetchSpec(TagDigest("v1", item.digest)), destination)


def test_a_dropped_layer_download_retries_the_whole_attempt(
    fault_registry: FaultRegistry, tmp_path: Path
) -> None:
    content = random.Random(7).randbytes(100_000)  # incompressible: the layer stays large
    item = images.image("retry", files={"a": content})
    serve(fault_registry, item)
    layer = item.layers[0]
    path = blob_path(REPO, layer.digest)
    fault_registry.plan("GET", path, truncated(layer.data[:1000], len(layer.data)))
    sleeps: list[float] = []

    get(fault_registry, item, tmp_path, sleeps)

    assert (tmp_path / "rootfs/a").read_bytes() == content
    assert fault_registry.count("GET", path) == 2
    assert len(sleeps) == 1
    assert fault_registry.count("GET", "/v2/") >= 2, "every attempt pings afresh"
    assert not list(tmp_path.glob(".regwatch-*"))


def test_a_permanent_failure_leaves_no_partial_output(
    fault_registry: FaultRegistry, tmp_path: Path
) -> None:
    first = images.layer({"first": b"1"})
    item = images.image("gone")
    manifest_body = item.manifest.data.replace(
        b'"layers": [', b'"layers": [' + _descriptor(first) + b", "
    )
    broken = images.Image(
        item.config, (first, *item.layers), images.Blob(item.manifest.media_type, manifest_body)
    )
    serve(fault_registry, broken)
    fault_registry.route("GET", blob_path(REPO, item.layers[0].digest), empty_reply(404))

    with pytest.raises(NotFound, match="download failed"):
        get(fault_registry, broken, tmp_path, [])

    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _descriptor(blob: images.Blob) -> bytes:
    return json.dumps(blob.descriptor()).encode()
