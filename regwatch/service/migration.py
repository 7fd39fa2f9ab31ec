"""`regwatch migrate`: bring a persistent store's schema up to this regwatch's, on request only."""

from __future__ import annotations

from regwatch.errors import ConfigError


def migrate_store(url: str) -> str:
    """Upgrade the store at `url`; one line saying what changed (nothing, on an up-to-date one)."""
    if not url:
        raise ConfigError("--store: give the store's SQLAlchemy URL")
    # Imported here, as everywhere: SQLAlchemy and Alembic are for the commands that need them.
    from regwatch.store.migrate import migrate  # noqa: PLC0415

    done = migrate(url)
    if not done.changed:
        return f"store {done.store} is at schema revision {done.after} already; nothing to do"
    return f"store {done.store} migrated from {done.before or 'base (empty)'} to {done.after}"
