"""The HTTP seam answers with our own types: a streamed answer is a `Streamed` (issue 9)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regwatch.errors import RegistryError
from regwatch.net import Headers, Streamed, Transport
from regwatch.retrying import RetryPolicy
from tests.faults import FaultRegistry, Reply, unavailable


@pytest.fixture
def transport() -> Iterator[Transport]:
    sleeps: list[float] = []
    made = Transport(retry=RetryPolicy(base=0.01), sleep=sleeps.append)
    yield made
    made.close()


def test_a_streamed_answer_is_ours_with_headers_in_any_case(
    fault_registry: FaultRegistry, transport: Transport
) -> None:
    fault_registry.route("GET", "/blob", Reply(200, b"x" * 5000, {"X-Thing": "yes"}))

    with transport.request("GET", f"{fault_registry.url}/blob", what="get blob") as answer:
        assert isinstance(answer, Streamed)
        assert (answer.status, answer.reason) == (200, "OK")
        assert answer.url == f"{fault_registry.url}/blob"
        assert answer.headers["x-thing"] == answer.headers["X-THING"] == "yes"
        assert isinstance(answer.headers, Headers)
        assert b"".join(answer.chunks()) == b"x" * 5000


def test_a_streamed_body_read_whole_is_capped(
    fault_registry: FaultRegistry, transport: Transport
) -> None:
    fault_registry.route("GET", "/big", Reply(200, b"y" * 4096))

    with (
        transport.request("GET", f"{fault_registry.url}/big", what="get big", retry=False) as a,
        pytest.raises(RegistryError, match="get big: answer larger than 1000 bytes"),
    ):
        a.read(1000)


def test_a_transient_streamed_answer_is_closed_and_asked_again(
    fault_registry: FaultRegistry, transport: Transport
) -> None:
    fault_registry.plan("GET", "/flaky", unavailable(503), Reply(200, b"fine"))

    with transport.request("GET", f"{fault_registry.url}/flaky", what="get flaky") as answer:
        assert answer.status == 200
        assert answer.read(100) == b"fine"
    assert fault_registry.count("GET", "/flaky") == 2
