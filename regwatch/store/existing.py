"""Opening a store that already exists, for reading only, without loading Alembic.

`history` and `status` read; they never create or change a store, and a user waits for their
answer: Alembic and its scripts cost ~0.2 s of start-up, where reading the revision a store is
at takes one query. Alembic is loaded only to word the refusal of a store at another revision.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from regwatch.store.engine import create_engine, is_memory
from regwatch.store.eventstore import EventStore, translated
from regwatch.store.records import REVISION

_VERSIONS = sa.table("alembic_version", sa.column("version_num", sa.String))


def open_existing(url: str) -> EventStore | None:
    """The store at `url` for reading only: None when it does not exist or holds no schema.

    Nothing is created or changed: a SQLite file that is not there is not made, an empty
    database is not migrated. A store at another revision is refused as for every command.
    """
    engine = create_engine(url)
    try:
        database = engine.url.database
        if engine.url.get_backend_name() == "sqlite" and not (
            is_memory(engine.url) or (database and os.path.exists(database))
        ):
            engine.dispose()
            return None
        current = stored_revision(engine)
        if current is None:
            engine.dispose()
            return None
        if current != REVISION:
            from regwatch.store.migrate import head_revision, not_current  # noqa: PLC0415

            raise not_current(engine, current, head_revision())
    except BaseException:
        engine.dispose()
        raise
    return EventStore(engine)


def stored_revision(engine: sa.Engine) -> str | None:
    """The revision Alembic recorded in the database; None when it never touched it."""
    with translated(engine, "read the schema revision"), engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.select(_VERSIONS.c.version_num)).scalar_one_or_none()
