"""Recording observations in the log: load a stream's state, decide, append; lost races retried."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from regwatch.decide import (
    SNAPSHOT_VERSION,
    RepoState,
    decide,
    fold,
    from_snapshot,
    snapshot_of,
)
from regwatch.errors import Conflict, StoreError
from regwatch.events import (
    SCHEMA_VERSION,
    Event,
    PollSucceeded,
    from_payload,
    run_stream,
    to_payload,
)
from regwatch.observe import Observation

if TYPE_CHECKING:
    from regwatch.store.eventstore import EventStore, NewEvent

log = logging.getLogger(__name__)


def load_state(store: EventStore, stream: str) -> tuple[RepoState, int]:
    """The stream's folded state and the version it was folded at (0 for a new stream).

    The stream's snapshot, when there is one this regwatch can read, plus the events after it:
    what a load costs does not grow with the stream, and job runs live in another stream.
    """
    snapshot = store.snapshot(stream)
    state, version = None, 0
    if snapshot is not None and snapshot.schema_version == SNAPSHOT_VERSION:
        state, version = from_snapshot(snapshot.state), snapshot.version
    stored = store.load(stream, after_version=version)
    events = (from_payload(e.kind, e.schema_version, e.payload) for e in stored)
    return fold(events, state), (stored[-1].version if stored else version)


RECORD_ATTEMPTS: Final = 12
"""Appends one `record` tries before it gives up on a stream that other writers keep winning."""

_RECORD_BACKOFF: Final = (0.01, 0.25)
"""Seconds before a retry: the first delay, and the cap it doubles towards (then jittered)."""


def record(
    store: EventStore,
    stream: str,
    state: RepoState,
    version: int,
    observation: Observation,
    extra: Sequence[Event] = (),
    *,
    runs: Sequence[Event] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[RepoState, list[Event]]:
    """Append what the observation changes in `state` (plus `extra`): the state after it, and
    the events appended (what a daemon counts).

    `runs` (`PollSucceeded`, `PollFailed`) go to the repository's run stream in the same
    transaction, each `PollSucceeded` saying which versions of the stream this append wrote
    (`tag_versions`), and the new state's snapshot replaces the stream's old one.

    Parallel steps share a store, so another writer may append between our read and our
    append. The loser re-reads the stream and decides again on what is there now, so a fact
    another step recorded is not recorded twice; after `RECORD_ATTEMPTS` lost races it raises
    `Conflict`.
    """
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        from regwatch.store.eventstore import Snapshot  # noqa: PLC0415  # SQLAlchemy: for steps with a store

        events = [*decide(state, observation), *extra]
        after = fold(events, state)
        new = [new_event(e, observation.taken_at) for e in events]
        snapshot = Snapshot(version + len(new), SNAPSHOT_VERSION, snapshot_of(after))
        appended = (version + 1, version + len(new)) if new else None
        run_events = [new_event(_with_versions(e, appended), observation.taken_at) for e in runs]
        try:
            store.append(
                stream, version, new, snapshot=snapshot, runs=(run_stream(stream), run_events)
            )
        except Conflict:
            if attempt == RECORD_ATTEMPTS:
                break
            first, cap = _RECORD_BACKOFF
            sleep(min(cap, first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))  # noqa: S311
            state, version = load_state(store, stream)
            continue
        return after, events
    raise Conflict(
        f"record to stream {stream}: other writers appended first {RECORD_ATTEMPTS} times"
        " in a row; gave up"
    )


def _with_versions(run: Event, appended: tuple[int, int] | None) -> Event:
    if isinstance(run, PollSucceeded):
        return run.model_copy(update={"tag_versions": appended})
    return run


def record_run(store: EventStore, stream: str, run: Event, observed_at: datetime) -> None:
    """Append a job run alone (a failed poll decides nothing); a store that fails is a warning,
    so the poll's own error stays the one the user reads.
    """
    try:
        store.append(run_stream(stream), None, [new_event(run, observed_at)])
    except StoreError as exc:
        log.warning("recording the run of %s in the store failed: %s", stream, exc)


def first_success(store: EventStore, stream: str, watch: str | None) -> bool:
    """Whether a successful poll of `watch` now would be its first per the log (a Concourse
    step, with no watch, never announces one)."""
    if watch is None:
        return False
    return store.latest(run_stream(stream), "PollSucceeded", watch=watch) is None


def last_success(store: EventStore, stream: str) -> datetime | None:
    """When the repository's newest successful poll observed it (from its run stream)."""
    found = store.latest(run_stream(stream), "PollSucceeded")
    return found.observed_at if found else None


def new_event(event: Event, observed_at: datetime) -> NewEvent:
    from regwatch.store.eventstore import NewEvent  # noqa: PLC0415  # SQLAlchemy: for steps with a store

    return NewEvent(
        kind=event.kind,
        payload=to_payload(event),
        observed_at=observed_at,
        schema_version=SCHEMA_VERSION[event.kind],
    )
