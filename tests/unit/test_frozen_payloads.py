"""Payloads exactly as regwatch writes them today, frozen: every later regwatch must read them.

The JSON files in `frozen_events/` are never edited. A change to an event model that breaks one
needs a new schema version and an upcaster (see `regwatch/events.py`), not a new fixture.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regwatch import events
from regwatch.errors import StoreError
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
)

FROZEN = Path(__file__).parent / "frozen_events"
A, B, C = ("sha256:" + c * 64 for c in "abc")
INDEX = "application/vnd.oci.image.index.v1+json"

DECODED: dict[str, Event] = {
    "TagAppeared-1": TagAppeared(tag="1.0", digest=A),
    "TagMoved-1": TagMoved(tag="latest", old_digest=A, new_digest=B),
    "TagDisappeared-1": TagDisappeared(tag="old", digest=A),
    "TagAppeared-2": TagAppeared(tag="1.0", digest=A, platform="linux/arm64/v8"),
    "TagMoved-2": TagMoved(
        tag="latest", old_digest=A, new_digest=B, platform="linux/amd64", platform_changed=False
    ),
    "TagDisappeared-2": TagDisappeared(tag="old", digest=A),
    "ImageInspected-1-index": ImageInspected(
        digest=A,
        media_type=INDEX,
        size=321,
        created=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        platforms=(PlatformImage(os="linux", architecture="arm64", variant="v8", digest=B),),
    ),
    "ImageInspected-1-image": ImageInspected(
        digest=B,
        media_type="application/vnd.docker.distribution.manifest.v2+json",
        size=527,
        blobs=(C, A),
    ),
    "ImageInspected-1-without-blobs": ImageInspected(
        digest=B,
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=527,
        created=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    ),
    "ImagePushed-1": ImagePushed(digest=B, tags=("1.2.3", "1.2", "latest"), blobs=(C,)),
    "ImagePushed-1-without-blobs": ImagePushed(digest=B, tags=("1.2.3",)),
    "PollSucceeded-1": PollSucceeded(requests=7, duration_seconds=0.25),
    "PollFailed-1": PollFailed(
        error="ping x: connection refused", requests=1, duration_seconds=0.01
    ),
    "PollSucceeded-2": PollSucceeded(
        requests=3, duration_seconds=0.5, source="watch", daemon="host-a:4242"
    ),
    "PollFailed-2": PollFailed(
        error="polling x failed: ping x: connection refused",
        requests=1,
        duration_seconds=0.01,
        source="watch",
        daemon="host-a:4242",
    ),
    "PollSucceeded-3": PollSucceeded(
        requests=4,
        duration_seconds=0.75,
        source="watch",
        daemon="host-a:4242",
        watch="app",
        initial=True,
        tag_versions=(1, 5),
    ),
    "PollSucceeded-4": PollSucceeded(
        requests=5,
        duration_seconds=0.5,
        listed=("1.0.0", "1.1.0", "latest"),
        resolved=("1.1.0", "latest"),
        missing=("1.0.0",),
        digests_present=(A,),
        digests_absent=(B,),
    ),
    "PollFailed-3": PollFailed(
        error="polling x failed: ping x: connection refused",
        requests=1,
        duration_seconds=0.01,
        source="watch",
        daemon="host-a:4242",
        watch="app",
    ),
}


def test_every_frozen_file_has_its_decoding_and_every_kind_is_frozen() -> None:
    assert {path.stem for path in FROZEN.glob("*.json")} == set(DECODED)
    assert {event.kind for event in DECODED.values()} == set(events.SCHEMA_VERSION)


@pytest.mark.parametrize("name", sorted(DECODED))
def test_a_frozen_payload_decodes(name: str) -> None:
    frozen = json.loads((FROZEN / f"{name}.json").read_text())

    decoded = from_payload(frozen["kind"], frozen["schema_version"], frozen["payload"])

    assert decoded == DECODED[name]


@pytest.mark.parametrize("kind", sorted(events.SCHEMA_VERSION))
def test_a_payload_from_a_newer_schema_is_one_clear_line(kind: str) -> None:
    newer = events.SCHEMA_VERSION[kind] + 1

    with pytest.raises(StoreError) as caught:
        from_payload(kind, newer, {"something": "new"})

    assert str(caught.value) == (
        f"the store holds an event of {kind} at schema version {newer}, newer than this"
        f" regwatch knows (its newest is {newer - 1}); upgrade regwatch"
    )


def test_an_event_kind_from_a_newer_regwatch_is_one_clear_line() -> None:
    with pytest.raises(StoreError, match=r"^the store holds an event of kind 'TagRenamed', newer"):
        from_payload("TagRenamed", 1, {"tag": "x"})


@pytest.mark.parametrize("kind", ["TagAppeared", "TagMoved", "TagDisappeared"])
def test_a_version_1_tag_event_knows_no_platform(kind: str) -> None:
    frozen = json.loads((FROZEN / f"{kind}-1.json").read_text())

    decoded = from_payload(kind, 1, frozen["payload"])

    assert isinstance(decoded, TagAppeared | TagMoved | TagDisappeared)
    assert decoded.platform is None
    assert getattr(decoded, "platform_changed", None) is None


def test_a_version_3_run_covers_nothing() -> None:
    """Runs written before issue 16 did not say what they asked: no check is answered by one."""
    frozen = json.loads((FROZEN / "PollSucceeded-3.json").read_text())

    decoded = from_payload("PollSucceeded", 3, frozen["payload"])

    assert isinstance(decoded, PollSucceeded)
    assert decoded.listed is None
    assert decoded.resolved == decoded.missing == ()
    assert decoded.digests_present == decoded.digests_absent == ()
