"""Throw-away stores: created from the metadata, equal to the migrations' schema, no Alembic."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import sqlalchemy as sa

from regwatch.store import migrate, schema
from regwatch.store.engine import create_engine
from regwatch.store.eventstore import NewEvent
from regwatch.store.scratch import open_scratch_store

OBSERVED_AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def schema_of(engine: sa.Engine) -> list[tuple[str, str, str, str | None]]:
    """Every table and index SQLite holds, with the DDL it was created by; Alembic's own
    bookkeeping left out."""
    query = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name != ?"
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(query, ("alembic_version",)).all()
    return sorted((row[0], row[1], row[2], row[3]) for row in rows)


def test_a_scratch_store_has_exactly_the_schema_the_migrations_build() -> None:
    migrated = create_engine("sqlite://")
    try:
        migrate.upgrade(migrated)
        with open_scratch_store() as scratch:
            created = schema_of(scratch.engine)
        assert created == schema_of(migrated)
    finally:
        migrated.dispose()
    names = {name for kind, name, _, _ in created if kind == "table"}
    assert names == {*schema.metadata.tables, "sqlite_sequence"}


def test_a_scratch_store_appends_and_loads() -> None:
    event = NewEvent(kind="TagAppeared", payload={"tag": "1"}, observed_at=OBSERVED_AT)
    with open_scratch_store() as store:
        store.append("library/app", 0, [event, event])
        assert [e.version for e in store.load("library/app")] == [1, 2]
    with open_scratch_store() as store:
        assert store.load("library/app") == []


def test_open_store_without_a_url_is_a_scratch_store() -> None:
    """Not migrated (no Alembic), and every connection sees the one database it created."""
    with migrate.open_store(None) as store:
        assert migrate.current_revision(store.engine) is None
        store.save_checkpoint("seed", 0, 7)
        assert store.checkpoint("seed") == 7
        assert store.load("library/app") == []


def test_opening_a_scratch_store_does_not_import_alembic() -> None:
    probe = (
        "import sys\n"
        "from regwatch.store.scratch import open_scratch_store\n"
        "open_scratch_store().close()\n"
        "assert 'alembic' not in sys.modules, 'alembic imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
