"""The store policy: create what is empty, refuse what is older or newer, migrate on request.

docs/decisions.md "Stores": a persistent store is never upgraded silently on open, because
other regwatch processes (daemons sharing one PostgreSQL) may be using it at its revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from regwatch.errors import SchemaNotCurrent
from regwatch.store import migrate
from regwatch.store.engine import create_engine, shown
from regwatch.store.schema import events, metadata
from tests.postgres import empty_database
from tests.store.test_eventstore import run_in_threads

HEAD = "0004_leases"
A, B, C = ("sha256:" + c * 64 for c in "abc")
THEN = datetime(2024, 5, 6, tzinfo=UTC)


@pytest.fixture
def engine(shared_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(shared_url)
    try:
        yield engine
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def at_first_revision(url: str) -> None:
    """A store as regwatch 0001 left it: events that place blobs, no blob_locations yet."""
    engine = create_engine(url)
    try:
        migrate.upgrade(engine, "0001")
        rows: list[dict[str, Any]] = [
            row("reg/one", 1, "ImageInspected", {"digest": C, "blobs": [A, B]}),
            row("reg/one", 2, "TagAppeared", {"tag": "1", "digest": C}),
            row("reg/two", 1, "ImagePushed", {"digest": C, "tags": ["1"], "blobs": [B]}),
            row("reg/two", 2, "ImagePushed", {"digest": C, "tags": ["2"], "blobs": [B]}),
        ]
        with engine.begin() as connection:
            connection.execute(events.insert(), rows)
    finally:
        engine.dispose()


def row(stream: str, version: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "stream": stream,
        "version": version,
        "kind": kind,
        "schema_version": 1,
        "payload": payload,
        "observed_at": THEN,
        "recorded_at": THEN,
    }


def schema_of(engine: sa.Engine) -> dict[str, Any]:
    """Everything inspection sees of regwatch's tables, in a comparable form."""
    found: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
            if table == "sqlite_sequence":
                continue
            found[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("autoincrement"))
                    for c in inspector.get_columns(table)
                ],
                "primary key": inspector.get_pk_constraint(table),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(str(c) for c in i["column_names"]), i["unique"])
                    for i in inspector.get_indexes(table)
                ),
                "foreign keys": inspector.get_foreign_keys(table),
            }
    return found


def test_the_metadata_and_the_migrations_build_the_same_schema(shared_url: str) -> None:
    engine = create_engine(shared_url)
    try:
        migrate.upgrade(engine)
        migrated = schema_of(engine)
        empty_database(shared_url)
        metadata.create_all(engine)
        created = schema_of(engine)
    finally:
        engine.dispose()

    assert set(migrated) == set(metadata.tables)
    assert created == migrated


def test_a_persistent_store_with_no_schema_is_created_at_head(shared_url: str) -> None:
    with migrate.open_store(shared_url) as store:
        store.append("s", 0, [])
        assert migrate.current_revision(store.engine) == HEAD


def test_a_persistent_store_at_an_older_revision_is_refused_untouched(shared_url: str) -> None:
    at_first_revision(shared_url)

    with pytest.raises(SchemaNotCurrent) as caught:
        migrate.open_store(shared_url)

    where = shown(sa.make_url(shared_url))
    assert str(caught.value) == (
        f"store {where} is at schema revision 0001, older than this regwatch's {HEAD};"
        f" run `regwatch migrate --store {where}` once nothing writes to it"
    )
    assert revision(shared_url) == "0001"


def test_a_persistent_store_at_a_newer_revision_is_refused(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))

    with pytest.raises(SchemaNotCurrent) as caught:
        migrate.open_store(engine.url.render_as_string(hide_password=False))

    assert str(caught.value).endswith(
        f"is at schema revision 0099_future, newer than this regwatch knows (its newest is"
        f" {HEAD}); upgrade regwatch"
    )
    with pytest.raises(SchemaNotCurrent, match="newer than this regwatch knows"):
        migrate.migrate(engine.url.render_as_string(hide_password=False))
    assert migrate.current_revision(engine) == "0099_future"


def test_migrate_brings_an_older_store_to_head_and_keeps_its_blob_locations(
    shared_url: str,
) -> None:
    at_first_revision(shared_url)

    done = migrate.migrate(shared_url)

    assert (done.before, done.after, done.changed) == ("0001", HEAD, True)
    with migrate.open_store(shared_url) as store:
        assert store.blob_locations([A, B, C]) == {A: ["reg/one"], B: ["reg/one", "reg/two"]}
        assert len(store.load("reg/two")) == 2


def test_migrate_on_an_up_to_date_store_does_nothing(shared_url: str) -> None:
    first = migrate.migrate(shared_url)
    again = migrate.migrate(shared_url)

    assert (first.before, first.after) == (None, HEAD)
    assert (again.before, again.after, again.changed) == (HEAD, HEAD, False)


def test_two_migrations_at_once_both_succeed(shared_url: str) -> None:
    at_first_revision(shared_url)

    results = run_in_threads(2, lambda _: migrate.migrate(shared_url).after)

    assert results == [HEAD, HEAD]
    assert revision(shared_url) == HEAD
