"""Alembic driven from code: upgrade to head, "is the schema current?", the store policy.

The scripts are the top-level `migrations/` directory of the source tree; a wheel ships them
as `regwatch/migrations/`. Migrations run on the store's own connection, inside a write
transaction, which `migrations/env.py` picks up from `config.attributes["connection"]`: an
in-memory database is migrated in place, and two processes upgrading at once take turns.

Policy (docs/decisions "Stores"): a persistent store is created at head when it holds no
regwatch schema yet, and otherwise used only at head; `migrate` is the one way to upgrade it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from regwatch.store.engine import create_engine, is_memory, shown, write_transaction
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


@dataclass(frozen=True)
class Migration:
    """What `migrate` did: the revision the store was at (None: empty) and is at now."""

    store: str
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def migrate(url: str) -> Migration:
    """`regwatch migrate`: bring the store at `url` up to head; nothing to do is no change.

    Idempotent, and safe while nothing writes: each revision runs inside the store's write
    transaction, so two `migrate` runs take turns. A store newer than this regwatch is refused.
    """
    with _engine(url) as engine:
        before, head = current_revision(engine), head_revision()
        if before is not None and not _known(before):
            raise not_current(engine, before, head)
        if before != head:
            upgrade(engine)
        return Migration(shown(engine.url), before, current_revision(engine) or head)


def open_store(url: str | None, clock: Callable[[], datetime] | None = None) -> EventStore:
    """The store at `url`: a throw-away in-memory one for None, else a persistent one.

    Throw-away stores (no URL, or an in-memory SQLite URL) are created from the metadata,
    without Alembic; persistent ones follow `prepare_persistent`.
    """
    if not url:
        return open_scratch_store(clock)
    engine = create_engine(url)
    if is_memory(engine.url):
        engine.dispose()
        return open_scratch_store(clock)
    try:
        prepare_persistent(engine)
    except BaseException:
        engine.dispose()
        raise
    return EventStore(engine) if clock is None else EventStore(engine, clock)


def prepare_persistent(engine: sa.Engine) -> None:
    """Use a persistent store only at this regwatch's revision, and never change it silently.

    A database with no regwatch schema yet is created at head: nothing else can be using it.
    One at an older revision may be in use by other regwatch processes (daemons sharing it), so
    it is refused with the command that migrates it; one at a newer revision, too.
    """
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is not None:
        raise not_current(engine, current, head)
    upgrade(engine)


def not_current(engine: sa.Engine, current: str | None, head: str) -> SchemaNotCurrent:
    """The refusal of a store at `current` by a regwatch whose newest revision is `head`."""
    where = shown(engine.url)
    if current is not None and not _known(current):
        return SchemaNotCurrent(
            f"store {where} is at schema revision {current}, newer than this regwatch knows"
            f" (its newest is {head}); upgrade regwatch"
        )
    return SchemaNotCurrent(
        f"store {where} is at schema revision {current or 'base (empty)'}, older than this"
        f" regwatch's {head}; run `regwatch migrate --store {where}` once nothing writes to it"
    )


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
