"""Leases on every persistent backend: a watch's turn is taken by one daemon per period, a
held turn by nobody else, an abandoned one by the next to ask; a sink's lease by one daemon.

On PostgreSQL the database's clock decides, so these tests move time by waiting, in steps of a
few hundred milliseconds; on SQLite the same steps hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from regwatch.events import run_stream
from regwatch.store.eventstore import EventStore, NewEvent
from regwatch.store.leases import Leases
from regwatch.store.migrate import open_store
from tests.store.conftest import RECORDED_AT

PERIOD = timedelta(seconds=1)
SLACK = timedelta(milliseconds=100)
HOLD = timedelta(milliseconds=400)


@pytest.fixture
def store(shared_url: str) -> Iterator[EventStore]:
    with open_store(shared_url) as opened:
        yield opened


def take(leases: Leases, name: str = "watch:app", hold: timedelta = HOLD) -> bool:
    return leases.take_turn(name, period=PERIOD, slack=SLACK, hold=hold).taken


def test_one_turn_per_period_whoever_asks(store: EventStore) -> None:
    one, two = Leases(store, "one:1"), Leases(store, "two:2")

    assert take(one)
    one.end_turn("watch:app")
    assert not take(two), "the period since the last turn has not passed"
    assert not take(one)
    time.sleep((PERIOD - SLACK).total_seconds() + 0.05)
    assert take(two), "one period (less the slack) later, the next turn is anyone's"


def test_a_held_turn_is_nobody_elses_and_says_until_when(store: EventStore) -> None:
    one, two = Leases(store, "one:1"), Leases(store, "two:2")
    assert take(one, hold=timedelta(seconds=5))
    time.sleep((PERIOD - SLACK).total_seconds() + 0.05)

    refused = two.take_turn("watch:app", period=PERIOD, slack=SLACK, hold=HOLD)

    assert not refused.taken
    assert refused.held_until is not None
    assert refused.held_until.tzinfo is not None


def test_a_turn_whose_holder_died_is_taken_when_its_hold_lapses(store: EventStore) -> None:
    dead, alive = Leases(store, "dead:1"), Leases(store, "alive:2")
    assert take(dead)  # and never ends it, nor renews it
    assert not take(alive)

    time.sleep(HOLD.total_seconds() + 0.1)

    assert take(alive), "an abandoned turn does not wait for the period"


def test_renewing_keeps_a_long_poll_s_turn(store: EventStore) -> None:
    polling, other = Leases(store, "polling:1"), Leases(store, "other:2")
    assert take(polling)
    for _ in range(4):
        time.sleep(HOLD.total_seconds() / 2)
        polling.renew(["watch:app"], HOLD)
        assert not take(other)


def test_ending_someone_else_s_turn_changes_nothing(store: EventStore) -> None:
    dead, alive = Leases(store, "dead:1"), Leases(store, "alive:2")
    assert take(dead)
    time.sleep(HOLD.total_seconds() + 0.1)
    assert take(alive, hold=timedelta(seconds=5))

    dead.end_turn("watch:app")  # the old holder wakes up and ends "its" turn
    dead.renew(["watch:app"], HOLD)

    refused = Leases(store, "third:3").take_turn(
        "watch:app", period=timedelta(0), slack=timedelta(0), hold=HOLD
    )
    assert not refused.taken, "alive's hold stands"


def test_racing_daemons_take_one_turn(store: EventStore) -> None:
    daemons = [Leases(store, f"d{i}:{i}") for i in range(6)]
    start = threading.Barrier(len(daemons))

    def ask(leases: Leases) -> bool:
        start.wait()
        return take(leases, hold=timedelta(seconds=5))

    with ThreadPoolExecutor(len(daemons)) as pool:
        won = list(pool.map(ask, daemons))

    assert won.count(True) == 1


def test_one_daemon_leads_a_sink_until_it_resigns_or_lapses(store: EventStore) -> None:
    one, two = Leases(store, "one:1"), Leases(store, "two:2")

    assert one.lead("sink:hook", HOLD)
    assert not two.lead("sink:hook", HOLD)
    assert one.lead("sink:hook", HOLD), "renewing is leading again"
    one.resign(["sink:hook"])
    assert two.lead("sink:hook", HOLD), "a resigned lease is free at once"
    time.sleep(HOLD.total_seconds() + 0.1)
    assert one.lead("sink:hook", HOLD), "a lapsed lease is anyone's"


def test_a_follower_never_skips_an_event_committed_out_of_position_order(
    store: EventStore,
) -> None:
    """Writers on many threads append while a follower reads after its last position: on
    PostgreSQL a sequence hands out positions before commit, and only the append lock keeps a
    position from becoming visible after a higher one."""
    writers, appends = 4, 40
    done = threading.Event()
    seen: list[int] = []

    def write(number: int) -> None:
        for version in range(appends):
            store.append(
                run_stream(f"registry.test/w{number}"),
                None,
                [NewEvent("PollSucceeded", {"n": version}, RECORDED_AT)],
            )

    def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            for event in store.read_all(after, 50):
                seen.append(event.position)
                after = event.position
            if finished:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    done.set()
    follower.join(60)

    everything = [event.position for event in store.read_all(0, writers * appends + 10)]
    assert len(everything) == writers * appends
    assert seen == everything, "the follower saw every position, once, in order"
