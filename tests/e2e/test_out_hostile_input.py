"""`regwatch out` given an image path that is no image: one line at once, nothing sent.

The registry is the fault registry, so the test can assert that not a single request reached
it: everything here must fail while loading, before any network traffic.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.steps import assert_fails, step
from tests.faults import FaultRegistry


@pytest.fixture
def registry() -> Iterator[FaultRegistry]:
    with FaultRegistry() as fake:
        yield fake
    assert fake.server_errors == [], "the fault registry crashed while answering"


def make_socket(path: Path) -> None:
    short = Path(tempfile.mkdtemp(dir="/tmp")) / "s"  # socket paths must be short
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(short))
    short.rename(path)
    short.parent.rmdir()


def tarball(path: Path, manifest_json: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest_json)
        tar.addfile(info, io.BytesIO(manifest_json))


def layout(path: Path, index_json: bytes) -> None:
    path.mkdir()
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_bytes(index_json)


def fifo_index(path: Path) -> None:
    path.mkdir()
    os.mkfifo(path / "index.json")


CASES = {
    "fifo": (os.mkfifo, "a named pipe, not a tarball or an OCI layout directory"),
    "socket": (make_socket, "a socket, not a tarball or an OCI layout directory"),
    "device": (
        lambda path: path.symlink_to("/dev/zero"),
        "a character device, not a tarball or an OCI layout directory",
    ),
    "layout-index-is-a-fifo": (fifo_index, "a named pipe, not a regular file"),
    "layout-index-deeply-nested": (
        lambda path: layout(path, b"[" * 100_000),
        "invalid index.json: not JSON: recursion limit exceeded",
    ),
    "layout-index-huge-number": (
        lambda path: layout(path, b'{"schemaVersion": ' + b"9" * 5000 + b"}"),
        "invalid index.json: not JSON: number out of range",
    ),
    "layout-index-platform-as-text": (
        lambda path: layout(
            path,
            json.dumps(
                {"manifests": [{"digest": "sha256:" + "0" * 64, "size": 1, "platform": "x/y"}]}
            ).encode(),
        ),
        "invalid index.json: manifests[0].platform: input should be an object",
    ),
    "tarball-manifest-deeply-nested": (
        lambda path: tarball(path, b"[" * 100_000),
        "manifest.json is not JSON: recursion limit exceeded",
    ),
    "tarball-manifest-not-utf8": (
        lambda path: tarball(path, b'[{"Config": "\xff"}]'),
        "manifest.json is not JSON",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_out_refuses_what_is_no_image_before_any_request(
    registry: FaultRegistry, tmp_path: Path, name: str
) -> None:
    make, message = CASES[name]
    make(tmp_path / "image")
    request = {
        "source": {"repository": f"{registry.host}/team/app", "tag": "v1"},
        "params": {"image": "image"},
    }

    run = step("out", request, tmp_path)

    assert_fails(run, "could not load image from path 'image'", message)
    assert registry.requests_seen == []
