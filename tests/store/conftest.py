"""Backends for the store's contract tests: a SQLite file, SQLite in memory, and PostgreSQL.

PostgreSQL is the session's throw-away cluster (``tests.postgres``), emptied for each test;
REGWATCH_TEST_POSTGRES_URL names an external server instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regwatch.store.eventstore import EventStore
from regwatch.store.migrate import open_store

RECORDED_AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

PERSISTENT = ["sqlite-file", "postgresql"]
ALL = [*PERSISTENT, "sqlite-memory"]


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on the backend ``request.param`` names."""
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if request.param == "sqlite-memory":
        return "sqlite://"
    # Asked for only here, so a run without PostgreSQL tests never starts the cluster.
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=ALL)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database on every backend."""
    return backend_url(request, tmp_path)


@pytest.fixture(params=PERSISTENT)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database that several connections and threads can share."""
    return backend_url(request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    """A migrated store whose clock always says RECORDED_AT."""
    with open_store(store_url, clock=lambda: RECORDED_AT) as opened:
        yield opened
