"""Effect leases: at most one vendor call per effect in flight.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

`begin_effect` now hands out an exclusive, time-bounded claim on a pending effect
(`lease_token`, `leased_until`), so two workers that begin the same effect at the same moment
cannot both call the vendor. Rows written by 0001 carry no lease: a pending one is treated as
the leftover of a crashed attempt and handed over, with a look-up first, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table where it cannot alter it in place.
    with op.batch_alter_table("effects") as batch:
        batch.add_column(sa.Column("lease_token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("effects") as batch:
        batch.drop_column("leased_until")
        batch.drop_column("lease_token")
