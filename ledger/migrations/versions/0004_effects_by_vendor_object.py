"""Effects found by the vendor object they created.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

A webhook names the vendor's object (a WhatsApp message id, a DocuSign envelope), not the
lead: `lead_for_vendor_object` and `note_effect_by_vendor_object` look the effect up by
(vendor, vendor_object_id), an indexed look-up rather than a scan of every effect.
"""

from __future__ import annotations

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_effects_vendor_object", "effects", ["vendor", "vendor_object_id"])


def downgrade() -> None:
    op.drop_index("ix_effects_vendor_object", table_name="effects")
