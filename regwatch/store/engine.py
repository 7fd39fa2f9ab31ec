"""Engines for any SQLAlchemy URL, and the dialect tuning that makes the store safe on each.

SQLite: WAL (readers never block the writer), a busy timeout, foreign keys on, and writes that
take the database's write lock with `BEGIN IMMEDIATE` before their first read, so two writers
queue instead of failing when one tries to upgrade its read lock. pysqlite's own transaction
handling is switched off for that (SQLAlchemy's "serializable isolation" recipe): it would
otherwise start transactions late, and never for DDL. In-memory databases share one connection.

PostgreSQL: a write transaction takes a transaction-scoped advisory lock first, so positions
are handed out in commit order and a reader following `read_all(after)` never skips a position
committed late.

A URL can carry secrets in its userinfo and its query (`?password=`); `shown` is the only way
one reaches a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.pool import StaticPool

from regwatch.errors import StoreError

BUSY_TIMEOUT: Final = 30.0
"""Seconds a SQLite writer waits for another writer's lock before giving up."""

WRITE_OPTION: Final = "regwatch_write"
"""Connection execution option that marks a transaction as a writer."""

_APPEND_LOCK_KEY: Final = 0x7265_6777_6174_6368  # "regwatch"
"""The PostgreSQL advisory lock every writer holds until it commits."""


def create_engine(url: str, busy_timeout: float = BUSY_TIMEOUT) -> sa.Engine:
    """An engine for `url`, tuned for the event store; a bad URL or driver is a StoreError."""
    try:
        parsed = sa.make_url(url)
    except (exc.ArgumentError, ValueError) as err:
        # Not even part of the text is shown: it may be a libpq "password=…" string.
        raise StoreError(
            "event store URL is not a valid SQLAlchemy URL (dialect+driver://user@host/database)"
        ) from err
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, busy_timeout)
        return sa.create_engine(parsed)
    except ImportError as err:
        raise StoreError(f"cannot open event store at {shown(parsed)}: {_missing(err)}") from err
    except (exc.ArgumentError, exc.NoSuchModuleError) as err:
        raise StoreError(f"cannot open event store at {shown(parsed)}: {err}") from err


def shown(url: sa.URL) -> str:
    """`url` as a message may show it: no password, and every query value masked."""
    text = url.set(query={}).render_as_string(hide_password=True)
    if not url.query:
        return text
    return text + "?" + "&".join(f"{key}=***" for key in sorted(url.query))


def shown_text(url: str) -> str:
    """`shown` for a URL still in its text; one that does not parse is not shown at all."""
    try:
        return shown(sa.make_url(url))
    except (exc.ArgumentError, ValueError):
        return "(an invalid URL)"


def _missing(err: ImportError) -> str:
    """A driver that is not installed, and how to install the one regwatch supports."""
    module = err.name or "?"
    if module.partition(".")[0] == "psycopg":
        return "the PostgreSQL driver psycopg is not installed: pip install 'regwatch[postgres]'"
    return (
        f"its driver module {module} is not installed (for PostgreSQL, use postgresql:// with"
        " pip install 'regwatch[postgres]')"
    )


def is_memory(url: sa.URL) -> bool:
    """True for a SQLite database that lives only as long as its connection."""
    if url.get_backend_name() != "sqlite":
        return False
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


@contextmanager
def write_transaction(engine: sa.Engine, *, append_lock: bool = True) -> Iterator[sa.Connection]:
    """A transaction that holds the store's write lock from its start until it ends.

    Commits when the block ends normally, rolls back when it raises. Without `append_lock`,
    PostgreSQL's writers to other tables (the leases) do not queue behind the log's appends.
    """
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            if append_lock and connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_APPEND_LOCK_KEY)))
            yield connection


def _sqlite_engine(url: sa.URL, busy_timeout: float) -> sa.Engine:
    connect_args: dict[str, Any] = {"timeout": busy_timeout}
    if is_memory(url):
        # One connection for everyone, or every checkout would see its own empty database.
        # The store serialises nothing itself: a throw-away store is for one thread at a time.
        connect_args["check_same_thread"] = False
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = sa.create_engine(url, connect_args=connect_args)
    timeout_ms = round(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # No implicit BEGIN from pysqlite: the "begin" hook below emits our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: sa.Connection) -> None:
        writer = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine
