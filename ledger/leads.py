"""Leads: what came in (once per source and source id), as received and as the gate normalised
it, and which earlier lead of the same person a new one duplicates.

The ledger does not normalise: the gate hands it a `NormalizedLead` (data_quality.lead) and
de-duplication compares its e-mail, phone and CPF/CNPJ exactly as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from data_quality.lead import NormalizedLead
from ledger._core import LedgerCore, check_identifier, dialect_insert, ids_in_range, lead_view
from ledger.errors import IllegalTransition, LeadHasNoJourney
from ledger.journeys import JOURNEYS
from ledger.models import Journey, Lead
from ledger.prepared import Prepared
from ledger.states import INITIAL_STATE, JourneyState
from ledger.views import LeadView, RecordedLead

#: Column lengths of the lead's indexed contact columns (ledger.models.Lead).
CONTACT_LENGTHS = {"email": 320, "phone": 32, "document": 32}


class LeadOperations(LedgerCore):
    """Record leads, read them, and find or attach duplicates."""

    def record_lead(self, source: str, source_id: str, raw: dict[str, Any]) -> RecordedLead:
        """Store a lead once per (source, source id) and open its journey in `received`.

        Recording the same lead again (a redelivered webhook, a re-run poll) changes nothing
        and returns `created=False`. A lead attached as a duplicate answers with the journey of
        the lead it duplicates. The raw payload is kept losslessly, NUL and undecodable bytes
        included; an over-long or non-text source id is InvalidValue, on both databases.
        """
        check_identifier("source", source, 64)
        check_identifier("source_id", source_id, 255)
        now = self._now()
        with self._session() as session:
            # the common case, a new lead, is two statements on the driver's cursor
            # (ledger/prepared.py: every polled or delivered lead comes through here)
            connection = session.connection()
            inserted = _RECORD_NEW_LEAD.first(
                connection,
                {"source": source, "source_id": source_id, "raw": raw, "received_at": now},
            )
            if inserted is None:
                lead = session.execute(
                    select(Lead).where(Lead.source == source, Lead.source_id == source_id)
                ).scalar_one()
                if lead.duplicate_of_lead_id is not None:
                    journey_id = self._journey(session, lead.duplicate_of_lead_id).id
                    return RecordedLead(lead.id, journey_id, False, lead.duplicate_of_lead_id)
                return RecordedLead(lead.id, self._journey(session, lead.id).id, False)
            journey = _OPEN_JOURNEY.first(
                connection,
                {
                    "lead_id": inserted.id,
                    "state": INITIAL_STATE.value,
                    "due_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "state_since": now,
                },
            )
            return RecordedLead(inserted.id, journey.id, True)

    def get_lead(self, lead_id: int) -> LeadView:
        """The lead with its raw payload and normalised lead; UnknownLead if there is none."""
        with self._session(write=False) as session:
            return lead_view(self._lead(session, lead_id))

    def get_leads(self, lead_ids: Iterable[int]) -> dict[int, LeadView]:
        """The leads with these ids, in one query, by id; ids naming no lead are left out."""
        wanted = ids_in_range(lead_ids)
        if not wanted:
            return {}
        with self._session(write=False) as session:
            # Core rows (every stage reads its batch's leads here): no ORM objects to build
            rows = session.connection().execute(_READ_LEADS, {"wanted": wanted})
            return {row.id: lead_view(row) for row in rows}

    def find_lead_by_contact(
        self,
        email: str | None,
        phone: str | None,
        document: str | None,
        exclude_lead_id: int | None = None,
    ) -> int | None:
        """The earliest lead (not itself a duplicate) with the same e-mail, phone or CPF/CNPJ.

        Values are compared exactly as given: pass a NormalizedLead's `email`, `phone` and
        `document`. Only leads that passed the gate (their normalised lead stored) take part.

        With `exclude_lead_id` (the lead being checked), a match must be older than it, or
        already past the gate (neither `received` nor `quarantined`). So within one batch the
        oldest lead of a person goes on and the later ones attach to it, whatever order the
        gate checks them in; and a lead replayed from quarantine after a newer lead of the same
        person went ahead attaches to that newer lead.
        """
        with self._session(write=False) as session:
            return self._earlier_lead(session, email, phone, document, exclude_lead_id)

    # -- inside a session ---------------------------------------------------------------------

    def _store_normalized_row(
        self, session: Session, lead_id: int, normalized: NormalizedLead
    ) -> None:
        """Store the normalised lead and its contact columns (what later leads are compared
        with) by one prepared Core UPDATE: every lead that passes the gate is stored so."""
        contacts = {
            "email": normalized.email,
            "phone": normalized.phone,
            "document": normalized.document,
        }
        for column, value in contacts.items():
            if value is not None:
                check_identifier(column, value, CONTACT_LENGTHS[column])
        session.connection().execute(
            _STORE_NORMALIZED,
            {"lead": lead_id, "normalized": normalized.model_dump(mode="json"), **contacts},
        )

    def _earlier_lead(
        self,
        session: Session,
        email: str | None,
        phone: str | None,
        document: str | None,
        exclude_lead_id: int | None,
    ) -> int | None:
        conditions = []
        if email:
            conditions.append(Lead.email == email)
        if phone:
            conditions.append(Lead.phone == phone)
        if document:
            conditions.append(Lead.document == document)
        if not conditions:
            return None
        query = select(Lead.id).where(or_(*conditions), Lead.duplicate_of_lead_id.is_(None))
        if exclude_lead_id is not None:
            at_the_gate = [JourneyState.RECEIVED.value, JourneyState.QUARANTINED.value]
            query = query.join(Journey, Journey.lead_id == Lead.id).where(
                Lead.id != exclude_lead_id,
                or_(Lead.id < exclude_lead_id, Journey.state.not_in(at_the_gate)),
            )
        return session.execute(query.order_by(Lead.id).limit(1)).scalar_one_or_none()

    def _attach(self, session: Session, lead_id: int, existing_lead_id: int, reason: str) -> int:
        """Attach the lead to the root of `existing_lead_id`; returns that root's id."""
        if lead_id == existing_lead_id:
            raise ValueError(f"lead {lead_id} cannot be a duplicate of itself")
        existing = self._lead(session, existing_lead_id)
        root_id = existing.duplicate_of_lead_id or existing.id
        if root_id == lead_id:
            raise ValueError(f"lead {existing_lead_id} is already a duplicate of {lead_id}")
        lead = self._lead(session, lead_id)
        journey = self._lock_journey_or_none(session, lead_id)
        if journey is None:
            if lead.duplicate_of_lead_id == root_id:
                return root_id
            raise LeadHasNoJourney(
                f"lead {lead_id} is already a duplicate of lead {lead.duplicate_of_lead_id}"
            )
        if journey.state != INITIAL_STATE.value:
            raise IllegalTransition(
                journey.state,
                "duplicate",
                lead_id,
                f"only a lead still in {INITIAL_STATE.value!r} can be attached to lead {root_id}",
            )
        session.delete(journey)
        lead.duplicate_of_lead_id = root_id
        lead.duplicate_reason = reason
        return root_id


_LEADS: Table = Lead.__table__  # type: ignore[assignment]

#: record_lead's statements for a new lead: the lead (ON CONFLICT spelt by the dialect's
#: insert), then its journey
_RECORD_NEW_LEAD = Prepared(
    lambda dialect: (
        dialect_insert(dialect, _LEADS)
        .values({name: bindparam(name) for name in ("source", "source_id", "raw", "received_at")})
        .on_conflict_do_nothing(index_elements=["source", "source_id"])
        .returning(_LEADS.c.id)
    )
)
_OPEN_JOURNEY = Prepared(
    lambda _: (
        insert(JOURNEYS)
        .values(
            {
                name: bindparam(name)
                for name in (
                    "lead_id",
                    "state",
                    "due_at",
                    "created_at",
                    "updated_at",
                    "state_since",
                )
            }
        )
        .returning(JOURNEYS.c.id)
    )
)
_STORE_NORMALIZED = (
    update(_LEADS)
    .where(_LEADS.c.id == bindparam("lead"))
    .values(
        normalized=bindparam("normalized"),
        email=bindparam("email"),
        phone=bindparam("phone"),
        document=bindparam("document"),
    )
)

#: what a LeadView shows of each lead, for a batch of ids (`get_leads`)
_READ_LEADS = select(
    _LEADS.c.id,
    _LEADS.c.source,
    _LEADS.c.source_id,
    _LEADS.c.raw,
    _LEADS.c.normalized,
    _LEADS.c.received_at,
    _LEADS.c.duplicate_of_lead_id,
    _LEADS.c.duplicate_reason,
).where(_LEADS.c.id.in_(bindparam("wanted", expanding=True)))
