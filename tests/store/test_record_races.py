"""Recording observations while other writers append to the same stream, on every backend.

`service.recording.record` is where a lost race is handled: it re-reads, decides again on what
won, and appends again, a bounded number of times.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regwatch.errors import Conflict
from regwatch.events import PollSucceeded, run_stream
from regwatch.observe import Observation
from regwatch.service import Service
from regwatch.service.recording import RECORD_ATTEMPTS, load_state, new_event, record
from regwatch.store.engine import create_engine
from regwatch.store.eventstore import EventStore, StoredEvent
from regwatch.store.migrate import open_store, upgrade
from tests.store.test_eventstore import run_in_threads

NOW = datetime(2024, 5, 6, tzinfo=UTC)
A, B, C = ("sha256:" + c * 64 for c in "abc")
STREAM = "registry.test/team/app"


def observed(**tags: str) -> Observation:
    return Observation(stream=STREAM, taken_at=NOW, listed=tuple(tags), resolved=tags)


def facts(store: EventStore) -> Counter[tuple[str, str]]:
    return Counter((stored.kind, str(stored.payload.get("tag"))) for stored in store.load(STREAM))


def test_a_lost_race_is_decided_again_on_what_won(shared_url: str) -> None:
    with open_store(shared_url) as store:
        state, version = load_state(store, STREAM)
        with open_store(shared_url) as other:  # another step wins with part of our news
            other_state, other_version = load_state(other, STREAM)
            record(other, STREAM, other_state, other_version, observed(a=A))
        sleeps: list[float] = []

        after, _ = record(store, STREAM, state, version, observed(a=A, b=B), sleep=sleeps.append)

        assert dict(after.tags) == {"a": A, "b": B}
        assert facts(store) == {("TagAppeared", "a"): 1, ("TagAppeared", "b"): 1}
        assert len(sleeps) == 1


@pytest.mark.parametrize("writers", [2, 8, 16])
def test_writers_that_read_together_all_record_and_no_fact_twice(
    shared_url: str, writers: int
) -> None:
    with open_store(shared_url):
        pass  # migrated once, before the race
    everyone_has_read = threading.Barrier(writers)
    news = observed(a=A, b=B, c=C)

    def step(_: int) -> object:
        with open_store(shared_url) as store:
            state, version = load_state(store, STREAM)
            everyone_has_read.wait()
            poll = PollSucceeded(requests=1, duration_seconds=0.1)
            after, _appended = record(store, STREAM, state, version, news, runs=[poll])
            return after

    results = run_in_threads(writers, step)

    assert not [r for r in results if isinstance(r, BaseException)], results
    with open_store(shared_url) as store:
        assert facts(store) == {
            ("TagAppeared", "a"): 1,
            ("TagAppeared", "b"): 1,
            ("TagAppeared", "c"): 1,
        }
        runs = store.load(run_stream(STREAM))
        assert [e.kind for e in runs] == ["PollSucceeded"] * writers


class _Crowded(EventStore):
    """A store where another writer appends right after every read of ours."""

    def load(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        loaded = super().load(stream, after_version)
        version = self.stream_version(stream)
        self.append(
            stream, version, [new_event(PollSucceeded(requests=0, duration_seconds=0), NOW)]
        )
        return loaded


def test_a_stream_other_writers_keep_winning_gives_up_in_one_line(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'crowded.db'}")
    upgrade(engine)
    sleeps: list[float] = []
    with _Crowded(engine) as store:
        state, version = load_state(store, STREAM)

        with pytest.raises(Conflict) as caught:
            record(store, STREAM, state, version, observed(a=A), sleep=sleeps.append)

        assert str(caught.value) == (
            f"record to stream {STREAM}: other writers appended first {RECORD_ATTEMPTS} times"
            " in a row; gave up"
        )
        assert ("TagAppeared", "a") not in facts(store)
    assert len(sleeps) == RECORD_ATTEMPTS - 1
    assert all(0 < delay <= 0.375 for delay in sleeps)
    assert sum(sleeps) < 5


def test_recording_aside_on_a_broken_store_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "broken.db"
    database.write_bytes(b"not a database" * 100)

    with caplog.at_level(logging.WARNING), Service(store=f"sqlite:///{database}") as service:
        service.record_aside(STREAM, observed(a=A))

    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "file is not a database" in warning.getMessage()
    assert "\n" not in warning.getMessage()
