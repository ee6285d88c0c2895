"""The gate's decisions and the quarantine: each decision about a lead is one transaction.

`pass_gate` (qualified, or attached to an earlier lead of the same person), `quarantine_at_gate`
and `attach_duplicate` each store what the gate found and move the journey together; with
`replay_of`, closing that quarantine record and moving the lead back out of quarantine happen in
the same transaction. So a crash, a refused value or a broken rule in the middle leaves the lead
exactly where it was (issue 8, point 1): never a closed record with a lead stuck in `received`.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from data_quality.lead import NormalizedLead
from ledger._core import check_text, quarantine_view, row_by_id
from ledger.errors import IllegalTransition, QuarantineClosed, UnknownQuarantine
from ledger.journeys import JourneyOperations
from ledger.leads import LeadOperations
from ledger.models import QuarantineRecord
from ledger.states import Cause, JourneyState
from ledger.views import GateDecision, QuarantineView

#: First key of the advisory locks taken per contact value ("lf" in ASCII): apart from the
#: migration lock, which uses the one-key form.
CONTACT_LOCK_SPACE = 0x6C66


class QuarantineOperations(LeadOperations, JourneyOperations):
    """The gate's three decisions, and the quarantine records a person fixes and replays."""

    def pass_gate(
        self, lead_id: int, lead: NormalizedLead, *, replay_of: int | None = None
    ) -> GateDecision:
        """Store the normalised lead and either qualify it (cause gate) or, when an earlier
        lead has the same e-mail, phone or CPF/CNPJ (compared exactly as given), attach it to
        that lead as a duplicate. One transaction, replay included (see the module)."""
        with self._session() as session:
            now = self._now()
            if replay_of is not None:
                self._replay(session, replay_of, lead_id, now)
                session.flush()  # the Core statements below read what the replay moved
            # Core statements, prepared once: every lead that passes the gate takes this way
            journey = self._lock_journey_row(session, lead_id)
            if journey.state != JourneyState.RECEIVED.value:
                raise IllegalTransition(
                    journey.state, JourneyState.QUALIFIED.value, lead_id, "only a received lead"
                )
            self._store_normalized_row(session, lead_id, lead)
            self._lock_contacts(session, lead)
            earlier = self._earlier_lead(session, lead.email, lead.phone, lead.document, lead_id)
            if earlier is not None:
                root = self._attach(
                    session, lead_id, earlier, f"same e-mail, phone or CPF/CNPJ as lead {earlier}"
                )
                return GateDecision(lead_id, qualified=False, duplicate_of=root)
            self._move_row(
                session, journey, JourneyState.QUALIFIED, Cause.GATE, "passed the quality gate", now
            )
            return GateDecision(lead_id, qualified=True, duplicate_of=None)

    def quarantine_at_gate(
        self,
        lead_id: int,
        reasons: list[dict[str, str]],
        values: dict[str, Any],
        *,
        replay_of: int | None = None,
    ) -> int:
        """Stop a lead at the gate: record every rule it broke and the row to fix and replay,
        and move its journey to `quarantined` (cause gate). Returns the new record's id.

        With `replay_of` (a replay that still fails), that record is closed and the journey
        goes quarantined → received → quarantined, all in one transaction.
        """
        if not reasons:
            raise ValueError("a quarantined lead needs at least one broken rule")
        with self._session() as session:
            now = self._now()
            if replay_of is not None:
                self._replay(session, replay_of, lead_id, now)
            journey = self._lock_journey(session, lead_id)
            record = QuarantineRecord(
                lead_id=lead_id,
                reasons=copy.deepcopy(reasons),
                values=copy.deepcopy(values),
                fixes=[],
                quarantined_at=now,
            )
            session.add(record)
            self._move(
                session, journey, JourneyState.QUARANTINED, Cause.GATE, _summary(reasons), now
            )
            session.flush()
            return record.id

    def attach_duplicate(
        self, lead_id: int, existing_lead_id: int, reason: str, *, replay_of: int | None = None
    ) -> None:
        """Mark `lead_id` as the same person as `existing_lead_id` and drop its own journey.

        The person keeps one journey (the earlier lead's, or the one that lead duplicates); the
        duplicate's raw payload stays stored. Allowed only while the duplicate's journey is
        still `received` (nothing has been done for it yet); otherwise IllegalTransition.
        Attaching twice to the same lead is a no-op. With `replay_of`, that quarantine record
        is closed and the lead leaves quarantine in the same transaction.
        """
        with self._session() as session:
            if replay_of is not None:
                self._replay(session, replay_of, lead_id, self._now())
            self._attach(session, lead_id, existing_lead_id, reason)

    def list_quarantine(self, include_replayed: bool = False) -> list[QuarantineView]:
        """Quarantine records, oldest first; by default only those not yet replayed."""
        query = select(QuarantineRecord)
        if not include_replayed:
            query = query.where(QuarantineRecord.replayed_at.is_(None))
        with self._session(write=False) as session:
            rows = session.execute(query.order_by(QuarantineRecord.id)).scalars()
            return [quarantine_view(row) for row in rows]

    def get_quarantine(self, quarantine_id: int) -> QuarantineView:
        """One quarantine record; UnknownQuarantine if there is none."""
        with self._session(write=False) as session:
            return quarantine_view(self._quarantine(session, quarantine_id))

    def fix_quarantine(self, quarantine_id: int, field: str, value: str | None) -> QuarantineView:
        """Correct one field of a quarantined row: the values to replay change and the fix is
        recorded with its time. `value` is text a person typed (None clears the field); a
        value that is not (a byte that is not UTF-8, NUL or another control character) is
        InvalidValue naming the field, and nothing is stored. A replayed record is closed
        (QuarantineClosed)."""
        check_text("field", field)
        if value is not None:
            check_text(field, value)
        with self._session() as session:
            record = self._quarantine(session, quarantine_id, lock=True)
            if record.replayed_at is not None:
                raise QuarantineClosed(f"quarantine record {quarantine_id} was already replayed")
            now = self._now()
            record.values = {**record.values, field: value}
            record.fixes = [*record.fixes, {"field": field, "value": value, "at": now.isoformat()}]
            record.fixed_at = now
            session.flush()
            return quarantine_view(record)

    # -- inside a session ---------------------------------------------------------------------

    def _lock_contacts(self, session: Session, lead: NormalizedLead) -> None:
        """Serialise gate decisions about the same person: on PostgreSQL, a transaction-scoped
        advisory lock per contact value (in a fixed order, so two never deadlock), so two
        workers gating two leads of one person at once cannot both qualify them. SQLite needs
        none: its write transactions already run one at a time."""
        if session.get_bind().dialect.name != "postgresql":
            return
        contacts = sorted(
            {f"{kind}:{value}" for kind, value in _contacts(lead).items() if value is not None}
        )
        for contact in contacts:
            session.execute(
                text("SELECT pg_advisory_xact_lock(:space, hashtext(:contact))"),
                {"space": CONTACT_LOCK_SPACE, "contact": contact},
            )

    def _replay(self, session: Session, quarantine_id: int, lead_id: int, now: datetime) -> None:
        """Close the lead's open quarantine record and move its journey back to `received`."""
        record = self._quarantine(session, quarantine_id, lock=True)
        if record.lead_id != lead_id:
            raise UnknownQuarantine(
                f"quarantine record {quarantine_id} belongs to lead {record.lead_id}, "
                f"not lead {lead_id}"
            )
        if record.replayed_at is not None:
            raise QuarantineClosed(f"quarantine record {quarantine_id} was already replayed")
        record.replayed_at = now
        journey = self._lock_journey(session, lead_id)
        self._move(
            session,
            journey,
            JourneyState.RECEIVED,
            Cause.MANUAL,
            f"replay of quarantine {quarantine_id}",
            now,
        )

    def _quarantine(
        self, session: Session, quarantine_id: int, *, lock: bool = False
    ) -> QuarantineRecord:
        record = row_by_id(session, QuarantineRecord, quarantine_id, lock=lock)
        if record is None:
            raise UnknownQuarantine(f"no quarantine record {quarantine_id}")
        return record


def _contacts(lead: NormalizedLead) -> dict[str, str | None]:
    return {"email": lead.email, "phone": lead.phone, "document": lead.document}


def _summary(reasons: list[dict[str, str]]) -> str:
    """The broken rules as the transition's reason: their names, comma-separated."""
    names = [str(reason.get("rule") or reason.get("description") or reason) for reason in reasons]
    return ", ".join(names)
