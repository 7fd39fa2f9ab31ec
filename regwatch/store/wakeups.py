"""Wake-ups on append: PostgreSQL's `LISTEN` on the channel every append transaction `NOTIFY`s.

A notification sink's follower sleeps until something is appended. In one daemon its own polls
wake it; in a fleet the sink's follower runs in one daemon while the others poll, so it listens
to the database instead of waiting for its idle timer. A missed notification costs only
latency (the follower still looks on its timer), so the listener reconnects with a pause after
any failure and never stops the daemon. SQLite has no such channel: `start` does nothing there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa

from regwatch.store.eventstore import APPENDED_CHANNEL

log = logging.getLogger("regwatch.notify")

POLL_SECONDS: Final = 1.0
"""How often the listener looks at its stop flag while no notification arrives."""
RECONNECT_SECONDS: Final = 5.0


class AppendListener:
    """Calls `on_append` (from its own thread) soon after another process appends."""

    def __init__(self, engine: sa.Engine, on_append: Callable[[], None]) -> None:
        self._engine = engine
        self._on_append = on_append
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._engine.dialect.name != "postgresql":
            return
        self._thread = threading.Thread(target=self._run, name="regwatch-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL_SECONDS * 3)

    def _run(self) -> None:
        # The driver's own errors (psycopg's, from `notifies`) by PEP 249's base class.
        driver_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        while not self._stop.is_set():
            try:
                self._listen()
            except (sa.exc.SQLAlchemyError, OSError, driver_error) as exc:
                log.debug(
                    "listening for appends failed; again in %.0f s: %s", RECONNECT_SECONDS, exc
                )
            self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        try:
            connection: Any = raw.driver_connection
            connection.autocommit = True
            connection.execute(f"LISTEN {APPENDED_CHANNEL}")
            while not self._stop.is_set():
                # The first notification is enough: the followers then read all that is new.
                if any(connection.notifies(timeout=POLL_SECONDS)):
                    self._on_append()
        finally:
            raw.invalidate()  # a LISTENing session must not return to the pool
