"""The ledger's first schema: leads, journeys and transitions, effects, inbox, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Types are spelled out here rather than imported from ledger.models, so this revision keeps
building the same schema when the models move on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _key() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", _key(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("raw", _json(), nullable=False),
        sa.Column("normalized", _json(), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("document", sa.String(32), nullable=True),
        sa.Column("received_at", _timestamp(), nullable=False),
        sa.Column(
            "duplicate_of_lead_id",
            _key(),
            sa.ForeignKey("leads.id", name="fk_leads_duplicate_of"),
            nullable=True,
        ),
        sa.Column("duplicate_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("source", "source_id", name="uq_leads_source_source_id"),
    )
    op.create_index("ix_leads_email", "leads", ["email"])
    op.create_index("ix_leads_phone", "leads", ["phone"])
    op.create_index("ix_leads_document", "leads", ["document"])

    op.create_table(
        "journeys",
        sa.Column("id", _key(), primary_key=True, autoincrement=True),
        sa.Column(
            "lead_id",
            _key(),
            sa.ForeignKey("leads.id", name="fk_journeys_lead", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("due_at", _timestamp(), nullable=True),
        sa.Column("dead_lettered_from", sa.String(32), nullable=True),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_until", _timestamp(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_journeys_state_due_at", "journeys", ["state", "due_at"])

    op.create_table(
        "journey_transitions",
        sa.Column("id", _key(), primary_key=True, autoincrement=True),
        sa.Column(
            "journey_id",
            _key(),
            sa.ForeignKey("journeys.id", name="fk_journey_transitions_journey", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=False),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_journey_transitions_journey_id", "journey_transitions", ["journey_id"])

    op.create_table(
        "effects",
        sa.Column("id", _key(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("vendor", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(128), nullable=False),
        sa.Column(
            "lead_id",
            _key(),
            sa.ForeignKey("leads.id", name="fk_effects_lead"),
            nullable=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("vendor_object_id", sa.String(255), nullable=True),
        sa.Column("response", _json(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_effects_lead_id", "effects", ["lead_id"])

    op.create_table(
        "inbox",
        sa.Column("id", _key(), primary_key=True, autoincrement=True),
        sa.Column("vendor", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("received_at", _timestamp(), nullable=False),
        sa.Column("processed_at", _timestamp(), nullable=True),
        sa.UniqueConstraint("vendor", "event_id", name="uq_inbox_vendor_event_id"),
    )
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at", "id"])

    op.create_table(
        "quarantine",
        sa.Column("id", _key(), primary_key=True, autoincrement=True),
        sa.Column(
            "lead_id",
            _key(),
            sa.ForeignKey("leads.id", name="fk_quarantine_lead"),
            nullable=False,
        ),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("values", _json(), nullable=False),
        sa.Column("fixes", _json(), nullable=False),
        sa.Column("quarantined_at", _timestamp(), nullable=False),
        sa.Column("fixed_at", _timestamp(), nullable=True),
        sa.Column("replayed_at", _timestamp(), nullable=True),
    )
    op.create_index("ix_quarantine_lead_id", "quarantine", ["lead_id"])


def downgrade() -> None:
    op.drop_table("quarantine")
    op.drop_table("inbox")
    op.drop_table("effects")
    op.drop_table("journey_transitions")
    op.drop_table("journeys")
    op.drop_table("leads")
