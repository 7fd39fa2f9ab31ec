"""`AppendListener`: an append committed by another process wakes a follower on PostgreSQL at
once; on SQLite there is no channel and the listener does nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from regwatch.events import run_stream
from regwatch.store.eventstore import NewEvent
from regwatch.store.migrate import open_store
from regwatch.store.wakeups import AppendListener

AT = datetime(2026, 3, 1, tzinfo=UTC)


def test_an_append_by_another_connection_wakes_the_listener_on_postgresql(
    postgres_url: str,
) -> None:
    woken = threading.Event()
    with open_store(postgres_url) as listening, open_store(postgres_url) as writing:
        listener = AppendListener(listening.engine, woken.set)
        listener.start()
        try:
            woken.wait(1.5)  # LISTEN is in place once the first wait is over
            woken.clear()
            writing.append(
                run_stream("registry.test/app"), None, [NewEvent("PollSucceeded", {}, AT)]
            )
            assert woken.wait(5), "the commit's NOTIFY woke the listener"
            woken.clear()
            writing.save_checkpoint("sink:hook", 0, 1)
            assert not woken.wait(2), "a checkpoint is no append"
        finally:
            listener.stop()


def test_on_sqlite_the_listener_starts_nothing(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'trail.db'}") as store:
        listener = AppendListener(store.engine, lambda: None)
        listener.start()
        names = {thread.name for thread in threading.enumerate()}
        listener.stop()
    assert "regwatch-listen" not in names
