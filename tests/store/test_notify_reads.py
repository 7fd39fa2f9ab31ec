"""What notification followers need of the store: a poll's runs before its tag events, the
previous run of one watch, and retention that leaves alone what a sink has yet to read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from regwatch.events import run_stream
from regwatch.store.eventstore import EventStore, NewEvent

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STREAM = "registry.test/team/app"
RUNS = run_stream(STREAM)
A, B = ("sha256:" + c * 64 for c in "ab")


def run(kind: str, days: int, watch: str | None = "app", **extra: Any) -> NewEvent:
    payload: dict[str, Any] = {"requests": 1, "duration_seconds": 0.1, "source": "watch"}
    payload.update(daemon=None, watch=watch, **extra)
    if kind == "PollFailed":
        payload["error"] = "polling x failed: boom"
    return NewEvent(kind, payload, T0 + timedelta(days=days), schema_version=3)


def test_a_polls_runs_come_before_its_tag_events_and_blobs_are_placed(store: EventStore) -> None:
    tags = [
        NewEvent("TagAppeared", {"tag": "1.0", "digest": A}, T0),
        NewEvent("ImagePushed", {"digest": A, "tags": ["1.0"], "blobs": [B]}, T0),
    ]

    stored = store.append(STREAM, 0, tags, runs=(RUNS, [run("PollSucceeded", 0)]))

    assert [(e.stream, e.version, e.kind) for e in stored] == [
        (RUNS, 1, "PollSucceeded"),
        (STREAM, 1, "TagAppeared"),
        (STREAM, 2, "ImagePushed"),
    ]
    assert [e.position for e in stored] == sorted(e.position for e in stored)
    assert [e.position for e in store.read_all()] == [e.position for e in stored]
    assert store.blob_locations([B]) == {B: [STREAM]}
    assert run_stream(STREAM) not in str(store.blob_locations([B]))


def test_the_previous_run_of_one_watch(store: EventStore) -> None:
    store.append(
        RUNS,
        None,
        [
            run("PollSucceeded", 0, watch="app"),
            run("PollFailed", 1, watch="other"),
            run("PollSucceeded", 2, watch=None),
            run("PollFailed", 3, watch="app"),
        ],
    )

    previous = store.latest(RUNS, watch="app", before_version=4)
    other = store.latest(RUNS, watch="other", before_version=2)
    success = store.latest(RUNS, "PollSucceeded", watch="app")

    assert previous is not None
    assert (previous.version, previous.kind) == (1, "PollSucceeded")
    assert other is None
    assert success is not None
    assert success.version == 1
    assert store.latest(RUNS, "PollSucceeded", watch="nobody") is None


def test_retention_keeps_what_a_sink_has_not_read_and_each_watchs_newest_success(
    store: EventStore,
) -> None:
    store.append(RUNS, None, [run("PollSucceeded", 0, watch="quiet")])
    store.append(RUNS, None, [run("PollFailed", day) for day in range(1, 10)])
    positions = [e.position for e in store.load(RUNS)]
    passed = positions[4]  # a sink read up to the fifth run

    dropped = store.drop_runs(T0 + timedelta(days=30), passed=passed)

    kept = store.load(RUNS)
    assert dropped == 4, "runs 2-5 went; the quiet watch's only success stayed"
    assert [e.position for e in kept] == [positions[0], *positions[5:]]
    assert store.drop_runs(T0 + timedelta(days=30)) == 4
    assert [e.version for e in store.load(RUNS)] == [1, 10]
