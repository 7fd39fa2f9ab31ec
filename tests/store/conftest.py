"""Backends for the store's contract tests: SQLite file and memory always, PostgreSQL on request.

Set REGWATCH_TEST_POSTGRES_URL (e.g. postgresql+psycopg://u:p@127.0.0.1/regwatch_test) to run
every contract test on PostgreSQL as well. That database is emptied before each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from regwatch.store.engine import create_engine
from regwatch.store.eventstore import EventStore
from regwatch.store.migrate import open_store

POSTGRES_ENV = "REGWATCH_TEST_POSTGRES_URL"
RECORDED_AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

_postgres = pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"{POSTGRES_ENV} is not set"
)
PERSISTENT = [pytest.param("sqlite-file"), pytest.param("postgresql", marks=_postgres)]
ALL = [*PERSISTENT, pytest.param("sqlite-memory")]


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite-file":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if backend == "sqlite-memory":
        return "sqlite://"
    url = os.environ[POSTGRES_ENV]
    empty_database(url)
    return url


def empty_database(url: str) -> None:
    """Drop every table, so each test starts from an empty schema."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            existing = sa.MetaData()
            existing.reflect(connection)
            existing.drop_all(connection)
    finally:
        engine.dispose()


@pytest.fixture(params=ALL)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database on every backend."""
    return backend_url(request.param, tmp_path)


@pytest.fixture(params=PERSISTENT)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database that several connections and threads can share."""
    return backend_url(request.param, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    """A migrated store whose clock always says RECORDED_AT."""
    with open_store(store_url, clock=lambda: RECORDED_AT) as opened:
        yield opened
