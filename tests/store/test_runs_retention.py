"""The daemon's reads and retention: the newest event of a stream, and old job runs dropped.

Retention touches run streams only, keeps each one's newest run, and never a tag event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from regwatch.events import run_stream
from regwatch.store.eventstore import EventStore, NewEvent

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STREAM = "registry.test/team/app"
RUNS = run_stream(STREAM)


def run(kind: str, days: int) -> NewEvent:
    payload = {"requests": 1, "duration_seconds": 0.1, "source": "watch", "daemon": None}
    if kind == "PollFailed":
        payload["error"] = "polling x failed: boom"
    return NewEvent(kind, payload, T0 + timedelta(days=days))


def test_latest_is_the_newest_event_and_of_a_kind_when_asked(store: EventStore) -> None:
    assert store.latest(RUNS) is None
    store.append(RUNS, None, [run("PollSucceeded", 0), run("PollSucceeded", 1)])
    store.append(RUNS, None, [run("PollFailed", 2)])

    newest = store.latest(RUNS)
    success = store.latest(RUNS, "PollSucceeded")

    assert newest is not None
    assert newest.kind == "PollFailed"
    assert success is not None
    assert success.observed_at == T0 + timedelta(days=1)
    assert store.latest(RUNS, "TagAppeared") is None


def test_retention_drops_old_runs_but_never_tags_nor_a_streams_newest_run(
    store: EventStore,
) -> None:
    tag = NewEvent("TagAppeared", {"tag": "1.0", "digest": "sha256:" + "a" * 64}, T0)
    store.append(STREAM, 0, [tag])
    store.append(RUNS, None, [run("PollSucceeded", day) for day in range(10)])
    quiet = run_stream("registry.test/team/quiet")
    store.append(quiet, None, [run("PollFailed", 0)])

    dropped = store.drop_runs(T0 + timedelta(days=5))

    assert dropped == 5
    kept = [event.observed_at for event in store.load(RUNS)]
    assert kept == [T0 + timedelta(days=day) for day in range(5, 10)]
    assert [e.kind for e in store.load(STREAM)] == ["TagAppeared"]
    assert len(store.load(quiet)) == 1, "a stream's newest run stays, however old"
    store.append(RUNS, None, [run("PollSucceeded", 11)])
    assert store.stream_version(RUNS) == 11, "versions keep counting up"
