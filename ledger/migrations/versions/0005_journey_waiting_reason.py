"""Why a journey stays where it is, and since when.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

`leadflow journeys show` answers "what is this client waiting for, and since when?": a step that
leaves a journey in place (a deal still open, a charge unpaid, a vendor's 503) records its reason
on release, and every transition stamps when the journey entered its state. Existing journeys
take their last update as their `state_since`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.add_column(sa.Column("state_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("waiting_reason", sa.Text(), nullable=True))
    op.execute("UPDATE journeys SET state_since = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.drop_column("waiting_reason")
        batch.drop_column("state_since")
