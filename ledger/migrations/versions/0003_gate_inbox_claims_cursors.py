"""Inbox claims and outcomes, effect orphan candidates and notes, poll cursors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

The webhook service and the reconciler claim inbox rows (`claimed_by`, `claimed_until`) so one
delivery is processed by one worker, and record how each ended (`outcome`: processed or
ignored, with a `reason`). An effect keeps the vendor ids a late worker reported after another
attempt completed it (`orphan_candidates`) and a `note` on its last decision. `cursors` holds
where each scheduled poll stopped (the Facebook cursor of each lead form).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    # rows processed before this revision ended the only way there was then
    op.execute("UPDATE inbox SET outcome = 'processed' WHERE processed_at IS NOT NULL")
    with op.batch_alter_table("effects") as batch:
        batch.add_column(sa.Column("orphan_candidates", _json(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cursors")
    with op.batch_alter_table("effects") as batch:
        batch.drop_column("note")
        batch.drop_column("orphan_candidates")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
        batch.drop_column("reason")
        batch.drop_column("outcome")
