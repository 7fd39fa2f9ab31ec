"""Leases: which daemon of a fleet holds a watch's turn or a sink's follower, and until when.

Revision ID: 0004_leases
Revises: 0003_blob_locations
Create Date: 2026-12-07

A coordination table, not part of the log: any row may be deleted while no daemon runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_leases"
down_revision: str | None = "0003_blob_locations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("turn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
