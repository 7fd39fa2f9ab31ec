from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from regwatch import events
from regwatch.events import (
    Event,
    ImageInspected,
    ImagePushed,
    PlatformImage,
    PollFailed,
    PollSucceeded,
    TagAppeared,
    TagDisappeared,
    TagMoved,
    from_payload,
    to_payload,
)

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64

EVENTS: list[Event] = [
    TagAppeared(tag="1.0", digest=A),
    TagMoved(tag="latest", old_digest=A, new_digest=B),
    TagDisappeared(tag="old", digest=A),
    ImageInspected(
        digest=A,
        media_type="application/vnd.oci.image.index.v1+json",
        size=321,
        created=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        platforms=(PlatformImage(os="linux", architecture="arm64", variant="v8", digest=B),),
    ),
    ImagePushed(digest=B, tags=("1.2.3", "1.2", "latest")),
    PollSucceeded(requests=7, duration_seconds=0.25),
    PollFailed(error="ping x: connection refused", requests=1, duration_seconds=0.01),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_every_event_survives_storage(event: Event) -> None:
    payload = to_payload(event)
    assert "kind" not in payload
    assert from_payload(event.kind, events.SCHEMA_VERSION[event.kind], payload) == event


def test_old_payloads_are_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind at schema 2 reads a stored schema-1 payload through its upcaster."""

    def rename(payload: dict[str, Any]) -> dict[str, Any]:
        return {"tag": payload["name"], "digest": payload["digest"]}

    monkeypatch.setattr(events, "SCHEMA_VERSION", {**events.SCHEMA_VERSION, "TagAppeared": 2})
    monkeypatch.setattr(events, "UPCASTERS", {("TagAppeared", 1): rename})
    assert from_payload("TagAppeared", 1, {"name": "v1", "digest": A}) == TagAppeared(
        tag="v1", digest=A
    )
    assert from_payload("TagAppeared", 2, {"tag": "v2", "digest": A}) == TagAppeared(
        tag="v2", digest=A
    )


def test_unknown_fields_in_a_payload_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        from_payload("TagAppeared", 1, {"tag": "x", "digest": A, "surprise": 1})
