"""The history projection: one row per tag event, with what the move means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regwatch.errors import StoreError
from regwatch.events import (
    SCHEMA_VERSION,
    Event,
    ImageInspected,
    PlatformImage,
    PollSucceeded,
    TagAppeared,
    TagDisappeared,
    TagMoved,
    from_payload,
    to_payload,
)
from regwatch.projections.history import (
    READS,
    Movement,
    Pointing,
    absence,
    movements,
    pointing_at,
)
from regwatch.store.eventstore import StoredEvent

A, B, C, D = ("sha256:" + c * 64 for c in "abcd")
REPO = "127.0.0.1:5000/app"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INDEX = "application/vnd.oci.image.index.v1+json"


def stored(*events: Event, first_position: int = 1) -> list[StoredEvent]:
    """The events as a stream holds them, an hour apart, positions counting up."""
    return [
        StoredEvent(
            position=first_position + number,
            stream=REPO,
            version=number + 1,
            kind=event.kind,
            schema_version=SCHEMA_VERSION[event.kind],
            payload=to_payload(event),
            observed_at=START + timedelta(hours=number),
            recorded_at=START + timedelta(hours=number),
        )
        for number, event in enumerate(events)
    ]


def index(digest: str, *platforms: str) -> ImageInspected:
    children = []
    for number, text in enumerate(platforms):
        os, architecture, *variant = text.split("/")
        child = "sha256:" + f"{number:x}" * 64
        children.append(
            PlatformImage(
                os=os,
                architecture=architecture,
                variant=variant[0] if variant else None,
                digest=child,
            )
        )
    return ImageInspected(digest=digest, media_type=INDEX, size=100, platforms=tuple(children))


def kinds(rows: list[Movement]) -> list[tuple[str, str, bool, bool]]:
    return [(m.kind, m.tag, m.repush, m.rollback) for m in rows]


def test_a_row_has_the_issue_fields_in_order() -> None:
    rows = movements(REPO, stored(TagAppeared(tag="latest", digest=A)))

    assert [m.row() for m in rows] == [
        {
            "time": "2026-03-01T12:00:00Z",
            "kind": "appeared",
            "repository": REPO,
            "tag": "latest",
            "digest": A,
            "previous_digest": None,
            "repush": False,
            "rollback": False,
            "platforms_added": [],
            "platforms_removed": [],
            "platform_changed": None,
        }
    ]
    assert list(rows[0].row()) == [
        "time",
        "kind",
        "repository",
        "tag",
        "digest",
        "previous_digest",
        "repush",
        "rollback",
        "platforms_added",
        "platforms_removed",
        "platform_changed",
    ]
    assert (rows[0].position, rows[0].version, rows[0].time) == (1, 1, START)


def test_fractions_of_a_second_are_kept() -> None:
    event = stored(TagAppeared(tag="latest", digest=A))[0]
    late = StoredEvent(**{**event.__dict__, "observed_at": START.replace(microsecond=250000)})

    assert movements(REPO, [late])[0].row()["time"] == "2026-03-01T12:00:00.250000Z"


def test_moves_rollbacks_repushes_and_disappearances() -> None:
    rows = movements(
        REPO,
        stored(
            TagAppeared(tag="latest", digest=A),
            TagAppeared(tag="1.21.5", digest=A),
            PollSucceeded(requests=1, duration_seconds=0.1),
            TagMoved(tag="latest", old_digest=A, new_digest=B),
            TagMoved(tag="1.21.5", old_digest=A, new_digest=C),
            TagMoved(tag="latest", old_digest=B, new_digest=A),
            TagDisappeared(tag="1.21.5", digest=C),
            TagAppeared(tag="1.21.5", digest=A),
            TagMoved(tag="1.21.5", old_digest=A, new_digest=C),
        ),
    )

    assert kinds(rows) == [
        ("appeared", "latest", False, False),
        ("appeared", "1.21.5", False, False),
        ("moved", "latest", False, False),
        ("moved", "1.21.5", True, False),
        ("moved", "latest", False, True),
        ("disappeared", "1.21.5", False, False),
        ("appeared", "1.21.5", False, False),
        ("moved", "1.21.5", True, True),
    ]
    assert [(m.digest, m.previous_digest) for m in rows[2:6]] == [(B, A), (C, A), (A, B), (C, None)]
    assert [m.version for m in rows] == [1, 2, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    ("tag", "repush"),
    [
        ("1.21.5", True),
        ("v1.21.5", True),
        ("1.21.5-alpine", True),
        ("1.21.5+b", True),
        ("1.21", False),
        ("3", False),
        ("latest", False),
        ("3-alpine", False),
    ],
)
def test_a_repush_is_a_full_version_that_moved(tag: str, repush: bool) -> None:
    rows = movements(
        REPO, stored(TagAppeared(tag=tag, digest=A), TagMoved(tag=tag, old_digest=A, new_digest=B))
    )

    assert [m.repush for m in rows] == [False, repush]


def test_platforms_of_a_move_between_indexes() -> None:
    rows = movements(
        REPO,
        stored(
            TagAppeared(tag="latest", digest=A),
            TagMoved(tag="latest", old_digest=A, new_digest=B),
            index(A, "linux/amd64", "linux/arm/v7", "linux/s390x"),
            index(B, "linux/amd64", "linux/arm64/v8", "linux/386"),
            TagMoved(tag="latest", old_digest=B, new_digest=C),
        ),
    )

    assert [(m.platforms_added, m.platforms_removed) for m in rows] == [
        ((), ()),
        (("linux/386", "linux/arm64/v8"), ("linux/arm/v7", "linux/s390x")),
        ((), ()),  # C was never inspected (gone before it could be): nothing is known
    ]


def test_platform_changed_follows_the_watch_platform() -> None:
    rows = movements(
        REPO,
        stored(
            TagAppeared(tag="plain", digest=A),
            TagAppeared(tag="latest", digest=A, platform="linux/arm64"),
            TagMoved(
                tag="latest",
                old_digest=A,
                new_digest=B,
                platform="linux/arm64",
                platform_changed=False,
            ),
            TagMoved(
                tag="latest",
                old_digest=B,
                new_digest=C,
                platform="linux/arm64",
                platform_changed=True,
            ),
            TagMoved(tag="plain", old_digest=A, new_digest=D),
            TagDisappeared(tag="latest", digest=C, platform="linux/arm64"),
        ),
    )

    assert [m.platform_changed for m in rows] == [None, False, False, True, None, False]


def test_an_empty_stream_has_no_history() -> None:
    assert movements(REPO, []) == []


def hours(number: int) -> datetime:
    return START + timedelta(hours=number)


TIMELINE = movements(
    REPO,
    stored(
        TagAppeared(tag="latest", digest=A),  # 0h
        TagAppeared(tag="1.0", digest=A),  # 1h
        TagMoved(tag="latest", old_digest=A, new_digest=B),  # 2h
        TagDisappeared(tag="1.0", digest=A),  # 3h
        TagAppeared(tag="2.0", digest=B),  # 4h
        TagMoved(tag="latest", old_digest=B, new_digest=C),  # 5h
    ),
)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (hours(0) - timedelta(seconds=1), {}),
        (hours(0), {"latest": Pointing("latest", A, hours(0), hours(2))}),
        (
            hours(1) + timedelta(minutes=30),
            {
                "1.0": Pointing("1.0", A, hours(1), hours(3)),
                "latest": Pointing("latest", A, hours(0), hours(2)),
            },
        ),
        (hours(3), {"latest": Pointing("latest", B, hours(2), hours(5))}),
        (
            hours(9),
            {
                "2.0": Pointing("2.0", B, hours(4), None),
                "latest": Pointing("latest", C, hours(5), None),
            },
        ),
    ],
)
def test_what_each_tag_pointed_to_at_a_moment(
    moment: datetime, expected: dict[str, Pointing]
) -> None:
    assert pointing_at(TIMELINE, moment) == expected


def test_an_interval_as_json() -> None:
    assert pointing_at(TIMELINE, hours(3))["latest"].row() == {
        "tag": "latest",
        "digest": B,
        "since": "2026-03-01T14:00:00Z",
        "until": "2026-03-01T17:00:00Z",
    }
    assert pointing_at(TIMELINE, hours(9))["latest"].row()["until"] is None


@pytest.mark.parametrize(
    ("tag", "moment", "reason"),
    [
        ("1.0", hours(3), "it disappeared at 2026-03-01T15:00:00Z"),
        ("2.0", hours(3), "it first appeared at 2026-03-01T16:00:00Z"),
        ("3.0", hours(3), "the store never saw it"),
    ],
)
def test_why_a_tag_had_no_digest(tag: str, moment: datetime, reason: str) -> None:
    assert tag not in pointing_at(TIMELINE, moment)
    assert absence(TIMELINE, tag, moment) == reason


FROZEN = Path(__file__).parent / "frozen_events"


def test_the_history_reads_the_current_schema_of_its_kinds() -> None:
    assert {kind: SCHEMA_VERSION[kind] for kind in READS} == READS


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in FROZEN.glob("Tag*.json")), ids=lambda name: name
)
def test_reading_a_frozen_payload_as_json_agrees_with_its_model(name: str) -> None:
    frozen = json.loads((FROZEN / f"{name}.json").read_text())
    event = from_payload(frozen["kind"], frozen["schema_version"], frozen["payload"])
    assert isinstance(event, TagAppeared | TagMoved | TagDisappeared)
    as_stored = StoredEvent(
        position=7,
        stream=REPO,
        version=1,
        kind=frozen["kind"],
        schema_version=frozen["schema_version"],
        payload=frozen["payload"],
        observed_at=START,
        recorded_at=START,
    )

    (read,) = movements(REPO, [as_stored])
    (modelled,) = movements(REPO, stored(event, first_position=7))

    assert read == modelled


def test_a_payload_newer_than_the_history_reads_is_refused_in_one_line() -> None:
    newer = StoredEvent(
        position=1,
        stream=REPO,
        version=1,
        kind="TagMoved",
        schema_version=READS["TagMoved"] + 1,
        payload={"tag": "x"},
        observed_at=START,
        recorded_at=START,
    )

    with pytest.raises(StoreError, match=r"^the store holds an event of TagMoved at schema"):
        movements(REPO, [newer])
