"""What a reader of the store needs to know of it without its machinery: no SQLAlchemy here.

`StoredEvent` is what every read returns, through `EventStore` or the stdlib's SQLite driver
(`sqlitelog`); `REVISION` is the Alembic revision this regwatch's tables are at, which a
read-only command checks a store against without loading Alembic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

REVISION: Final = "0004_leases"
"""The newest Alembic revision (`tests/store/test_migrations.py` keeps it the scripts' head)."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store holds it; datetimes come back timezone-aware, in UTC."""

    position: int
    stream: str
    version: int
    kind: str
    schema_version: int
    payload: dict[str, Any]
    observed_at: datetime
    recorded_at: datetime
