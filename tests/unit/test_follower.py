"""A sink's follower over a real (in-memory) store: at least once, in order, checkpoints by
compare-and-set, an initial poll summarised, filters, and where a new sink starts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from regwatch.errors import DeliveryFailed
from regwatch.events import (
    SCHEMA_VERSION,
    Event,
    PollFailed,
    PollSucceeded,
    TagAppeared,
    TagMoved,
    run_stream,
    to_payload,
)
from regwatch.notify import follower as follower_module
from regwatch.notify.follower import Follower
from regwatch.notify.notices import Notice
from regwatch.notify.settings import SinkSettings, Webhook
from regwatch.store.eventstore import EventStore, NewEvent
from regwatch.store.scratch import open_scratch_store

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
APP = "registry.test/team/app"
OTHER = "registry.test/team/other"
A, B, C = ("sha256:" + c * 64 for c in "abc")


def new(event: Event) -> NewEvent:
    return NewEvent(event.kind, to_payload(event), T0, SCHEMA_VERSION[event.kind])


def poll(
    store: EventStore,
    stream: str,
    tags: Sequence[Event],
    *,
    watch: str = "app",
    initial: bool = False,
) -> None:
    version = store.stream_version(stream)
    versions = (version + 1, version + len(tags)) if tags else None
    run = PollSucceeded(
        requests=1,
        duration_seconds=0.1,
        source="watch",
        watch=watch,
        initial=initial,
        tag_versions=versions,
    )
    store.append(stream, version, [new(t) for t in tags], runs=(run_stream(stream), [new(run)]))


def failed(store: EventStore, stream: str, watch: str = "app") -> None:
    run = PollFailed(error="polling x failed: boom", requests=1, duration_seconds=0.1, watch=watch)
    store.append(run_stream(stream), None, [new(run)])


class Recorder:
    def __init__(self) -> None:
        self.got: list[Notice] = []
        self.refuse = False

    def deliver(self, notice: Notice) -> None:
        if self.refuse:
            raise DeliveryFailed("sink test: answered 503")
        self.got.append(notice)

    def seen(self) -> list[tuple[str, str]]:
        return [(n.kind, n.subject) for n in self.got]


def settings(**changes: object) -> SinkSettings:
    values: dict[str, object] = {
        "name": "test",
        "target": Webhook("http://127.0.0.1:9/"),
        "repositories": frozenset({APP}),
        "watches": frozenset({"app"}),
    }
    values.update(changes)
    return SinkSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def store() -> Iterator[EventStore]:
    with open_scratch_store() as opened:
        yield opened


def test_an_initial_poll_is_one_notice_and_later_changes_one_each(store: EventStore) -> None:
    sink = Recorder()
    follower = Follower(settings(), store, sink)
    follower.start_at(store.last_position())
    poll(
        store,
        APP,
        [TagAppeared(tag="1.0.0", digest=A), TagAppeared(tag="latest", digest=A)],
        initial=True,
    )

    assert follower.drain()
    poll(
        store,
        APP,
        [
            TagMoved(tag="latest", old_digest=A, new_digest=B),
            TagMoved(tag="1.0.0", old_digest=A, new_digest=C),
            TagMoved(tag="latest", old_digest=B, new_digest=A),
        ],
    )
    assert follower.drain()

    assert sink.seen() == [
        ("initial", "app"),
        ("moved", "latest"),
        ("repush", "1.0.0"),
        ("rollback", "latest"),
    ]
    assert sink.got[0].data == {"watch": "app", "repository": APP, "tags": 2}
    assert sink.got[3].words == {"moved", "rollback"}
    assert store.checkpoint("sink:test") == store.last_position()
    assert follower.pending() == 0


def test_no_checkpoint_is_saved_inside_an_initial_polls_range(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower_module, "PAGE", 2)
    saved: list[int] = []
    save = store.save_checkpoint

    def saving(name: str, expected: int, position: int) -> None:
        saved.append(position)
        save(name, expected, position)

    monkeypatch.setattr(store, "save_checkpoint", saving)
    follower = Follower(settings(), store, Recorder())
    follower.start_at(0)
    poll(store, APP, [TagAppeared(tag=f"1.{n}", digest=A) for n in range(5)], initial=True)
    marker, *summarised = [e.position for e in store.read_all()]

    assert follower.drain()

    assert saved == [summarised[-1]]
    assert marker not in saved


def test_a_failed_delivery_keeps_the_checkpoint_and_is_retried_in_order(
    store: EventStore,
) -> None:
    sink = Recorder()
    follower = Follower(settings(), store, sink)
    follower.start_at(0)
    poll(store, APP, [TagAppeared(tag="a", digest=A)])
    first = store.last_position()
    poll(store, APP, [TagAppeared(tag="b", digest=A)])

    sink.refuse = True
    assert not follower.drain()
    assert store.checkpoint("sink:test") == 0
    sink.refuse = False
    assert follower.drain()

    assert sink.seen() == [("appeared", "a"), ("appeared", "b")]
    assert store.checkpoint("sink:test") > first


def test_two_followers_never_both_advance_one_checkpoint(
    store: EventStore,
) -> None:
    stale, fresh = Recorder(), Recorder()
    behind = Follower(settings(), store, stale)
    behind.start_at(0)
    poll(store, APP, [TagAppeared(tag="a", digest=A)])
    behind.drain()
    ahead = Follower(settings(), store, fresh)
    poll(store, APP, [TagAppeared(tag="b", digest=A)])
    assert ahead.drain()
    end = store.checkpoint("sink:test")

    assert not behind.drain(), "its compare-and-set found the checkpoint moved"
    assert store.checkpoint("sink:test") == end
    assert behind.drain()
    assert stale.seen() == [("appeared", "a"), ("appeared", "b")]


def test_a_new_sink_starts_at_the_end_of_the_log(store: EventStore) -> None:
    poll(store, APP, [TagAppeared(tag="old", digest=A)])
    sink = Recorder()
    follower = Follower(settings(), store, sink)

    assert follower.start_at(store.last_position()) == store.last_position()
    poll(store, APP, [TagAppeared(tag="new", digest=A)])
    assert follower.drain()

    assert sink.seen() == [("appeared", "new")]
    assert follower.start_at(0) > 0, "decided once: a later start keeps the saved checkpoint"


def test_filters_by_repository_watch_and_kind(store: EventStore) -> None:
    sink = Recorder()
    follower = Follower(settings(kinds=frozenset({"repush", "failed"})), store, sink)
    follower.start_at(0)
    poll(store, APP, [TagAppeared(tag="1.0.0", digest=A), TagAppeared(tag="x", digest=A)])
    poll(store, OTHER, [TagAppeared(tag="1.0.0", digest=A)], watch="other")
    poll(store, OTHER, [TagMoved(tag="1.0.0", old_digest=A, new_digest=B)], watch="other")
    poll(
        store,
        APP,
        [
            TagMoved(tag="1.0.0", old_digest=A, new_digest=B),
            TagMoved(tag="x", old_digest=A, new_digest=B),
        ],
    )
    failed(store, OTHER, watch="other")
    failed(store, APP)
    failed(store, APP)

    assert follower.drain()

    assert sink.seen() == [("repush", "1.0.0"), ("failed", "app")]
    assert sink.got[0].repository == APP


def test_failed_is_announced_again_only_after_a_success(store: EventStore) -> None:
    sink = Recorder()
    follower = Follower(settings(), store, sink)
    follower.start_at(0)
    failed(store, APP)
    failed(store, APP)
    poll(store, APP, [])
    poll(store, APP, [TagAppeared(tag="a", digest=A)])
    failed(store, APP)

    assert follower.drain()

    assert sink.seen() == [("failed", "app"), ("appeared", "a"), ("failed", "app")]
    assert sink.got[0].data == {
        "watch": "app",
        "repository": APP,
        "error": "polling x failed: boom",
    }
