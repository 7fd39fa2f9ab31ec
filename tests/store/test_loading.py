"""Loading a repository's state: a snapshot and the events after it, never its job runs.

What a load reads must not grow with the number of polls or of events (issue 9, finding 1).
"""

from __future__ import annotations

from datetime import UTC, datetime

from regwatch.decide import SNAPSHOT_VERSION, RepoState
from regwatch.events import Event, PollSucceeded, TagAppeared, TagMoved, run_stream
from regwatch.observe import ImageFacts, Observation
from regwatch.service.recording import load_state, new_event, record
from regwatch.store.eventstore import EventStore, Snapshot, StoredEvent

NOW = datetime(2024, 5, 6, tzinfo=UTC)
A, B, C = ("sha256:" + c * 64 for c in "abc")
STREAM = "registry.test/team/app"
POLL = PollSucceeded(requests=3, duration_seconds=0.1)


class _Counting(EventStore):
    """A store that remembers how many events each load returned."""

    loaded: list[int]

    def load(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        found = super().load(stream, after_version)
        self.loaded = [*getattr(self, "loaded", []), len(found)]
        return found


def poll(store: EventStore, **tags: str) -> RepoState:
    state, version = load_state(store, STREAM)
    observation = Observation(stream=STREAM, taken_at=NOW, listed=tuple(tags), resolved=tags)
    after, _ = record(store, STREAM, state, version, observation, runs=[POLL])
    return after


def test_polls_go_to_the_run_stream_and_loading_reads_none_of_them(store: EventStore) -> None:
    for _ in range(20):
        poll(store, a=A, b=B)
    poll(store, a=C, b=B)
    counting = _Counting(store.engine)

    state, version = load_state(counting, STREAM)

    assert dict(state.tags) == {"a": C, "b": B}
    assert version == 3
    assert counting.loaded == [0]  # the snapshot at version 3 holds everything
    assert [e.kind for e in store.load(STREAM)] == ["TagAppeared", "TagAppeared", "TagMoved"]
    runs = store.load(run_stream(STREAM))
    assert [e.kind for e in runs] == ["PollSucceeded"] * 21
    assert [e.version for e in runs] == list(range(1, 22))


def test_events_appended_after_the_snapshot_are_folded_on_top_of_it(store: EventStore) -> None:
    poll(store, a=A)
    moved = new_event(TagMoved(tag="a", old_digest=A, new_digest=B), NOW)
    store.append(STREAM, 1, [moved, new_event(TagAppeared(tag="c", digest=C), NOW)])
    counting = _Counting(store.engine)

    state, version = load_state(counting, STREAM)

    assert (dict(state.tags), version) == ({"a": B, "c": C}, 3)
    assert counting.loaded == [2]


def test_a_snapshot_this_regwatch_cannot_read_is_ignored(store: EventStore) -> None:
    poll(store, a=A)
    unknown = Snapshot(1, SNAPSHOT_VERSION + 1, {"shape": "from a newer regwatch"})
    store.append(STREAM, 1, [new_event(TagAppeared(tag="b", digest=B), NOW)], snapshot=unknown)

    state, version = load_state(store, STREAM)

    assert (dict(state.tags), version) == ({"a": A, "b": B}, 2)


def test_a_stream_without_a_snapshot_is_folded_from_its_start(store: EventStore) -> None:
    """Streams written before snapshots existed load as they always did."""
    events: list[Event] = [
        TagAppeared(tag="a", digest=A),
        TagMoved(tag="a", old_digest=A, new_digest=B),
    ]
    store.append(STREAM, 0, [new_event(e, NOW) for e in events])

    state, version = load_state(store, STREAM)

    assert (dict(state.tags), version) == ({"a": B}, 2)
    assert store.snapshot(STREAM) is None
    poll(store, a=B, c=C)
    snapshot = store.snapshot(STREAM)
    assert snapshot is not None
    assert (snapshot.version, snapshot.state["tags"]) == (3, {"a": B, "c": C})


def test_images_survive_the_snapshot(store: EventStore) -> None:
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    facts = ImageFacts(
        digest=A,
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=123,
        created=created,
        platforms=(("linux", "arm64", "v8", B),),
        blobs=(B, C),
    )
    state, version = load_state(store, STREAM)
    observation = Observation(stream=STREAM, taken_at=NOW, resolved={"a": A}, inspected=(facts,))
    recorded, _ = record(store, STREAM, state, version, observation)

    loaded, _ = load_state(store, STREAM)

    assert loaded == recorded
    assert loaded.images[A].created == created
    assert loaded.images[A].platforms[0].variant == "v8"
