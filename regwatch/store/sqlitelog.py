"""A SQLite store's streams read with the stdlib driver alone, for commands that only read.

`regwatch history` answers in a fraction of a second, and importing SQLAlchemy alone takes
longer than that on a small machine. A plain `sqlite:///PATH` store is therefore read here,
through `sqlite3`, opened read-only so that nothing can be created or changed; every other URL
(PostgreSQL, driver options, memory) goes through `EventStore`. What this module knows of the
store is the `events` table's columns and how SQLAlchemy writes a `DateTime` in SQLite (UTC,
no offset); `tests/store/test_sqlitelog.py` proves it reads exactly what `EventStore.load`
reads. `sqlite3` errors become `StoreError`s here, once.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from regwatch.errors import StoreError
from regwatch.store.records import REVISION, StoredEvent

_PLAIN = ("sqlite:///", "sqlite+pysqlite:///")
_BUSY_SECONDS = 30.0
_COLUMNS = "position, stream, version, kind, schema_version, payload, observed_at, recorded_at"


def sqlite_file(url: str) -> str | None:
    """The file a plain SQLite URL names; None for any URL this module leaves to SQLAlchemy
    (another backend, a query string, an escaped character, an in-memory database)."""
    for prefix in _PLAIN:
        if url.startswith(prefix):
            path = url[len(prefix) :]
            plain = path and path != ":memory:" and not any(c in path for c in "?%#")
            return path if plain else None
    return None


class SQLiteLog:
    """One SQLite store opened read-only; `open` decides whether it can be read this way."""

    def __init__(self, connection: sqlite3.Connection, shown: str) -> None:
        self._connection = connection
        self._shown = shown

    @classmethod
    def open(cls, path: str) -> SQLiteLog | None:
        """The store in the file at `path`; None when there is no such file, the file holds no
        regwatch schema, or its schema is at another revision (then `EventStore` says how to
        go on)."""
        shown = f"sqlite:///{path}"
        if not os.path.isfile(path):
            return None
        try:
            connection = sqlite3.connect(
                f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=_BUSY_SECONDS
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {shown}: {err}") from err
        log = cls(connection, shown)
        try:
            if log._revision() == REVISION:
                return log
        except BaseException:
            log.close()
            raise
        log.close()
        return None

    def load(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        """The events of `stream` with a version above `after_version`, oldest first."""
        query = f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version > ? ORDER BY version"  # noqa: S608  # constant columns
        rows = self._query(f"load stream {stream}", query, (stream, after_version))
        return [
            StoredEvent(
                position=position,
                stream=name,
                version=version,
                kind=kind,
                schema_version=schema_version,
                payload=json.loads(payload),
                observed_at=_utc(observed),
                recorded_at=_utc(recorded),
            )
            for position, name, version, kind, schema_version, payload, observed, recorded in rows
        ]

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> SQLiteLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _revision(self) -> str | None:
        found = self._query(
            "read the schema revision",
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'",
        )
        if not found:
            return None
        versions = self._query(
            "read the schema revision", "SELECT version_num FROM alembic_version"
        )
        return str(versions[0][0]) if len(versions) == 1 else None

    def _query(self, action: str, query: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        try:
            return list(self._connection.execute(query, parameters).fetchall())
        except sqlite3.Error as err:
            message = " ".join(str(err).split())
            raise StoreError(f"{action} in {self._shown}: {message}") from err


def _utc(value: object) -> datetime:
    """A `DateTime` column as SQLAlchemy's SQLite dialect wrote it, in UTC."""
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)
