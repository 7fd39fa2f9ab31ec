"""Blob locations: which streams hold which blobs, kept as events are appended.

Revision ID: 0003_blob_locations
Revises: 0002_stream_snapshots
Create Date: 2026-12-07

Filled here from the events already in the log (`ImageInspected` and `ImagePushed` list their
blobs), so a store migrated from 0001 mounts what it could mount before. Like every revision,
it spells its table out instead of importing `regwatch.store.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_blob_locations"
down_revision: str | None = "0002_stream_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    locations = op.create_table(
        "blob_locations",
        sa.Column("digest", sa.String(160), nullable=False),
        sa.Column("stream", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("digest", "stream", name="pk_blob_locations"),
    )
    events = sa.table(
        "events",
        sa.column("position", sa.BigInteger()),
        sa.column("stream", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("payload", sa.JSON()),
    )
    connection = op.get_bind()
    seen: set[tuple[str, str]] = set()
    after = 0
    while True:
        page = connection.execute(
            sa.select(events.c.position, events.c.stream, events.c.payload)
            .where(
                events.c.kind.in_(["ImageInspected", "ImagePushed"]), events.c.position > after
            )
            .order_by(events.c.position)
            .limit(_BATCH)
        ).all()
        if not page:
            break
        after = page[-1].position
        new = []
        for row in page:
            for digest in row.payload.get("blobs") or ():
                if isinstance(digest, str) and (digest, row.stream) not in seen:
                    seen.add((digest, row.stream))
                    new.append({"digest": digest, "stream": row.stream})
        if new:
            connection.execute(locations.insert(), new)


def downgrade() -> None:
    op.drop_table("blob_locations")
