"""The tables of the event store, as SQLAlchemy Core metadata; Alembic revisions mirror it.

`tests/store/test_migrations.py` compares this metadata with a database migrated to head, so a
change here without a revision (or the other way round) fails the suite.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only treats a column spelled INTEGER PRIMARY KEY as the rowid; BIGINT would not
# autoincrement there.
_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    # The global order readers follow. AUTOINCREMENT on SQLite: a position is never handed out
    # twice, even after the newest rows are deleted (job-run events may be compacted).
    sa.Column("position", _POSITION, primary_key=True, autoincrement=True),
    sa.Column("stream", sa.String(512), nullable=False),
    # 1-based, per stream; the unique constraint below *is* optimistic concurrency control.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(128), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    # Its index also serves "load a stream in version order"; no second index is needed.
    sa.UniqueConstraint("stream", "version"),
    sa.Index(None, "kind"),
    sqlite_autoincrement=True,
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    # A stream's folded state at `version`, written in the transaction that appended that
    # version: loading reads it and the events after it, never the whole stream. A cache of
    # the log, so any row may be deleted (or ignored, when its `schema_version` is unknown).
    sa.Column("stream", sa.String(512), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
)

blob_locations = sa.Table(
    "blob_locations",
    metadata,
    # A projection kept in the append transaction: the blobs (config and layers) an event's
    # payload lists under `blobs`, and the stream (registry/repository) that holds them, so
    # `out` can mount a blob from another repository without reading the log.
    sa.Column("digest", sa.String(160), primary_key=True),
    sa.Column("stream", sa.String(512), primary_key=True),
)

leases = sa.Table(
    "leases",
    metadata,
    # Fleet coordination beside the log (`store/leases.py`): `watch:<name>` rows hold a watch's
    # last turn and the daemon polling it; `sink:<name>` rows the daemon following that sink.
    # Not facts: any row may be deleted while no daemon runs.
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("owner", sa.String(256)),
    sa.Column("held_until", sa.DateTime(timezone=True)),
    sa.Column("turn_at", sa.DateTime(timezone=True)),
)
