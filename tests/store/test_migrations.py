"""Alembic owns the schema: upgrades and downgrades work, and models == migrations."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from regwatch.errors import SchemaNotCurrent, StoreError
from regwatch.store import migrate
from regwatch.store.engine import create_engine
from regwatch.store.records import REVISION
from regwatch.store.schema import metadata

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """An engine on an empty database, on every backend."""
    engine = create_engine(store_url)
    try:
        yield engine
    finally:
        engine.dispose()


def tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names()) - {"sqlite_sequence"}


HEAD = "0004_leases"
TABLES = {"alembic_version", "events", "checkpoints", "snapshots", "blob_locations", "leases"}


def test_head_is_the_newest_revision() -> None:
    assert migrate.head_revision() == HEAD


def test_the_tables_know_their_revision_without_alembic() -> None:
    """Read-only commands check a store against `records.REVISION`, not the scripts."""
    assert migrate.head_revision() == REVISION


def test_upgrade_an_empty_database_to_head(engine: sa.Engine) -> None:
    assert migrate.current_revision(engine) is None
    assert not migrate.is_current(engine)

    migrate.upgrade(engine)

    assert migrate.current_revision(engine) == HEAD
    assert migrate.is_current(engine)
    assert tables(engine) == TABLES
    migrate.prepare_persistent(engine)  # at head: nothing to refuse, nothing to change


def test_upgrade_is_idempotent(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.is_current(engine)


def test_a_store_at_an_older_revision_is_refused(engine: sa.Engine) -> None:
    migrate.upgrade(engine, "0002_stream_snapshots")
    with pytest.raises(SchemaNotCurrent) as caught:
        migrate.prepare_persistent(engine)

    message = str(caught.value)
    assert f"at schema revision 0002_stream_snapshots, older than this regwatch's {HEAD}" in message
    assert "run `regwatch migrate --store " in message
    assert "\n" not in message


def test_a_revision_this_regwatch_does_not_know_is_refused(
    engine: sa.Engine,
) -> None:
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    assert not migrate.is_current(engine)
    with pytest.raises(
        SchemaNotCurrent, match=r"at schema revision 9999, newer than .*upgrade regwatch$"
    ):
        migrate.prepare_persistent(engine)


def test_downgrade_to_base_and_upgrade_again(engine: sa.Engine) -> None:
    migrate.upgrade(engine)

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert tables(engine) == {"alembic_version"}
    assert not migrate.is_current(engine)

    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    assert tables(engine) == TABLES


def test_unknown_target_revision_is_a_store_error(engine: sa.Engine) -> None:
    with pytest.raises(StoreError, match=r"upgrade the schema to 4242 in .*4242"):
        migrate.upgrade(engine, "4242")


def test_models_match_migrations(engine: sa.Engine) -> None:
    migrate.upgrade(engine)

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_open_store_on_a_file_migrates_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with migrate.open_store(url) as store:
        assert migrate.is_current(store.engine)
    with migrate.open_store(url) as store:
        assert migrate.is_current(store.engine)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_url_is_a_scratch_store(url: str) -> None:
    """Built from the metadata, not migrated; every connection sees the one database."""
    with migrate.open_store(url) as store:
        assert migrate.current_revision(store.engine) is None
        store.save_checkpoint("seed", 0, 7)
        assert store.checkpoint("seed") == 7
        assert store.engine.url.get_backend_name() == "sqlite"


def test_migrating_from_code_leaves_logging_alone(tmp_path: Path) -> None:
    existing = logging.getLogger("regwatch.test.existing")
    handlers = list(logging.getLogger().handlers)

    migrate.upgrade(f"sqlite:///{tmp_path / 'store.db'}")

    assert not existing.disabled
    assert logging.getLogger().handlers == handlers


def test_alembic_ini_upgrades_from_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("REGWATCH_DATABASE_URL", url)

    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")

    engine = create_engine(url)
    try:
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_alembic_command_line_upgrades_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    environment = {**os.environ, "REGWATCH_DATABASE_URL": url}
    alembic = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]

    for step in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        done = subprocess.run(
            [*alembic, *step],
            check=False,
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    assert "Running upgrade  -> 0001" in done.stderr  # alembic.ini's logging, on the CLI only

    engine = create_engine(url)
    try:
        assert migrate.is_current(engine)
    finally:
        engine.dispose()
