"""Throw-away stores: an in-memory database created from the metadata, without Alembic.

Nothing outlives such a store, so it never needs migrating: `metadata.create_all` builds the
schema the migrations would (tests/store/test_scratch.py holds the two equal), and the step
that asked for it does not pay for importing Alembic and running its scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from regwatch.store.engine import create_engine, write_transaction
from regwatch.store.eventstore import EventStore, translated
from regwatch.store.schema import metadata

MEMORY_URL: Final = "sqlite://"
"""A database that lives as long as its store."""


def open_scratch_store(clock: Callable[[], datetime] | None = None) -> EventStore:
    """A new, empty in-memory store; closing it drops everything."""
    engine = create_engine(MEMORY_URL)
    try:
        with translated(engine, "create a throw-away store"), write_transaction(engine) as tx:
            metadata.create_all(tx)
    except BaseException:
        engine.dispose()
        raise
    return EventStore(engine) if clock is None else EventStore(engine, clock)
