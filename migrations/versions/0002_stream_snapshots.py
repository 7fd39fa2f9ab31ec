"""Stream snapshots: a stream's folded state at a version, so loading skips the fold.

Revision ID: 0002_stream_snapshots
Revises: 0001
Create Date: 2026-12-07

A revision is a snapshot: it spells the table out instead of importing
`regwatch.store.schema`, which keeps moving after this revision ships.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_stream_snapshots"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("stream", sa.String(512), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_snapshots"),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
