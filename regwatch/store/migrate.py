"""Alembic driven from code: upgrade to head, "is the schema current?".

The scripts are the top-level `migrations/` directory of the source tree; a wheel ships them
as `regwatch/migrations/`. Migrations run on the store's own connection, inside a write
transaction, which `migrations/env.py` picks up from `config.attributes["connection"]`: an
in-memory database is migrated in place, and two processes upgrading at once take turns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from regwatch.errors import SchemaNotCurrent, StoreError
from regwatch.store.engine import create_engine, shown, write_transaction
from regwatch.store.eventstore import EventStore, translated
from regwatch.store.scratch import open_scratch_store


def script_location() -> Path:
    """The Alembic script directory: inside the installed package, else the source tree."""
    installed = Path(str(resources.files("regwatch"))) / "migrations"
    source_tree = Path(__file__).resolve().parents[2] / "migrations"
    for candidate in (installed, source_tree):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreError(f"alembic scripts not found in {installed}; reinstall regwatch")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration built in code; `connection` is the one migrations run on."""
    config = Config()
    config.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(target: sa.Engine | str, revision: str = "head") -> None:
    """Migrate the database `target` up to `revision`; a no-op when it is there already."""
    with _engine(target) as engine:
        _run(engine, f"upgrade the schema to {revision}", command.upgrade, revision)


def downgrade(target: sa.Engine | str, revision: str) -> None:
    """Migrate the database `target` down to `revision` ("base" drops every table)."""
    with _engine(target) as engine:
        _run(engine, f"downgrade the schema to {revision}", command.downgrade, revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at; None when Alembic never touched it."""
    with translated(engine, "read the schema revision"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this regwatch knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no alembic revisions in {script_location()}; reinstall regwatch")
    return head


def is_current(engine: sa.Engine) -> bool:
    return current_revision(engine) == head_revision()


def require_current(engine: sa.Engine) -> None:
    """Refuse a database whose schema is not this regwatch's head, saying what to do."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = shown(engine.url)
    if current is not None and not _known(current):
        raise SchemaNotCurrent(
            f"database {where} at revision {current}, newer than this regwatch knows"
            f" (its newest is {head}); upgrade regwatch"
        )
    revision = current or "base (empty)"
    raise SchemaNotCurrent(
        f"database {where} at revision {revision}, needs {head}; run `regwatch migrate`"
    )


def open_store(url: str | None, clock: Callable[[], datetime] | None = None) -> EventStore:
    """A store at `url` with its schema upgraded to head; None is a throw-away in-memory store."""
    if not url:
        return open_scratch_store(clock)
    engine = create_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return EventStore(engine) if clock is None else EventStore(engine, clock)


@contextmanager
def _engine(target: sa.Engine | str) -> Iterator[sa.Engine]:
    """`target` itself, or an engine for the URL that lives as long as the block."""
    if isinstance(target, sa.Engine):
        yield target
        return
    engine = create_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def _run(
    engine: sa.Engine, action: str, step: Callable[[Config, str], None], revision: str
) -> None:
    with translated(engine, action), write_transaction(engine) as connection:
        try:
            step(alembic_config(connection), revision)
        except CommandError as err:
            where = shown(engine.url)
            message = " ".join(str(err).split())
            raise StoreError(f"{action} in {where}: {message}") from err


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
