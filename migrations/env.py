"""Alembic environment for the event store.

From code (`regwatch.store.migrate`), the caller passes its connection, already inside a write
transaction, in `config.attributes["connection"]`; migrations run on it and the caller commits.
From the `alembic` command line, the URL comes from REGWATCH_DATABASE_URL (else alembic.ini)
and the engine is built the way the store builds it. Logging is configured from alembic.ini
only on the command line: regwatch's front ends own logging.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from regwatch.store.engine import create_engine, write_transaction
from regwatch.store.schema import metadata

config = context.config


def command_line_url() -> str:
    return os.environ.get("REGWATCH_DATABASE_URL") or config.get_main_option("sqlalchemy.url") or ""


def run_on(connection: sa.Connection) -> None:
    # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_on(given)
        return
    engine = create_engine(command_line_url())
    try:
        with write_transaction(engine) as connection:
            run_on(connection)
    finally:
        engine.dispose()


def run_offline() -> None:
    context.configure(
        url=command_line_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()
