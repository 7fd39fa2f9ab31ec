"""Blob bodies: no total deadline, but at least 1 KiB in every window (issue 8 #4)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from regwatch.connections import WATCHDOG
from regwatch.errors import ConnectionDropped
from regwatch.net import Transport
from regwatch.refs import Repository
from regwatch.registry.client import RegistryClient
from tests.faults import FaultRegistry, Reply, blob_path, empty_reply, tags_path, tags_reply

REPO = "team/app"


@pytest.fixture
def transport() -> Iterator[Transport]:
    made = Transport(request_timeout=1.0)
    yield made
    made.close()


def serve_blob(fault: FaultRegistry, data: bytes, every: float, piece: int) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers = {"Content-Type": "application/octet-stream"}
    fault.route(
        "GET",
        blob_path(REPO, digest),
        Reply(200, data, headers, trickle=every, trickle_bytes=piece),
    )
    return digest


@pytest.mark.parametrize(("every", "piece"), [(0.05, 1), (0.3, 100), (2.0, 4096)])
def test_a_blob_slower_than_1kib_per_window_fails(
    fault_registry: FaultRegistry, transport: Transport, every: float, piece: int
) -> None:
    data = bytes(range(256)) * 40
    digest = serve_blob(fault_registry, data, every, piece)
    client = RegistryClient(fault_registry.host, transport)
    started = time.monotonic()

    with (
        pytest.raises(ConnectionDropped) as caught,
        client.open_blob(Repository(fault_registry.host, REPO), digest, len(data)) as reader,
    ):
        reader.read()

    assert "less than 1024 bytes arrived in 1s" in str(caught.value)
    assert digest in str(caught.value)
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("phase", ["answer", "blob body"])
def test_a_silence_the_socket_notices_first_is_the_same_deadline(
    fault_registry: FaultRegistry,
    transport: Transport,
    monkeypatch: pytest.MonkeyPatch,
    phase: str,
) -> None:
    """The socket's read timeout equals the window, so it races the watchdog; with the
    watchdog out of the way it always wins, and must say what the watchdog would."""
    monkeypatch.setattr(WATCHDOG, "arm", lambda watch, expiry: None)
    data = bytes(range(256)) * 16
    if phase == "answer":
        slow = tags_reply(REPO, ["v1"])
        fault_registry.route(
            "GET",
            tags_path(REPO),
            Reply(200, slow.body, slow.headers, trickle=2.0, trickle_head=True),
        )
        url = f"http://{fault_registry.host}{tags_path(REPO)}"
        expected = "no complete answer within 1s"
    else:
        digest = serve_blob(fault_registry, data, 2.0, 1024)
        url = f"http://{fault_registry.host}{blob_path(REPO, digest)}"
        expected = "less than 1024 bytes arrived in 1s"

    with (
        pytest.raises(ConnectionDropped, match=expected),
        transport.request("GET", url, what="read", retry=False) as answer,
    ):
        answer.read(len(data))


def test_a_slow_blob_that_keeps_moving_has_no_total_deadline(
    fault_registry: FaultRegistry, transport: Transport
) -> None:
    data = bytes(range(256)) * 24  # 6 KiB in 1.5 KiB pieces 0.5 s apart: 2 s in all
    digest = serve_blob(fault_registry, data, 0.5, 1536)
    client = RegistryClient(fault_registry.host, transport)

    with client.open_blob(Repository(fault_registry.host, REPO), digest, len(data)) as reader:
        assert reader.read() == data


def test_the_deadline_hangs_up_only_its_own_request(
    fault_registry: FaultRegistry, transport: Transport
) -> None:
    """A kept-alive connection outlives the deadlines of the requests it served before."""
    fault_registry.route("GET", tags_path(REPO), tags_reply(REPO, ["v1"]))
    client = RegistryClient(fault_registry.host, transport)
    repository = Repository(fault_registry.host, REPO)
    for _ in range(3):
        assert client.list_tags(repository) == ["v1"]
        time.sleep(1.2)
    assert fault_registry.count("GET", tags_path(REPO)) == 3, "nothing was retried"


class SlowSource:
    """A blob source that produces 1 KiB every 0.25 s: sending takes longer than the deadline."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int = -1, /) -> bytes:
        time.sleep(0.25)
        piece, self._data = self._data[: min(size, 1024)], self._data[min(size, 1024) :]
        return piece


def test_the_deadline_is_for_the_answer_not_for_sending_the_body(
    fault_registry: FaultRegistry, transport: Transport
) -> None:
    data = bytes(range(256)) * 32  # 8 KiB: 2 s to send
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    uploads = f"/v2/{REPO}/blobs/uploads/"
    session = f"/v2/{REPO}/blobs/uploads/session-1"
    fault_registry.route("POST", uploads, empty_reply(202, Location=session))
    fault_registry.route("PATCH", session, empty_reply(202, Location=session))
    fault_registry.route("PUT", session, empty_reply(201))
    client = RegistryClient(fault_registry.host, transport)

    sent = client.upload_blob(
        Repository(fault_registry.host, REPO),
        SlowSource(data),
        digest,
        len(data),
        check_exists=False,
    )

    assert sent
    (patch,) = [r for r in fault_registry.seen if r.method == "PATCH"]
    assert patch.body == data
