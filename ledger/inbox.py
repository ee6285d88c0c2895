"""The inbox: raw webhook deliveries stored before they are acknowledged (DESIGN.md, principle
2), then claimed by one worker each and finished as processed or ignored.

`store_inbox` is on the webhook service's hot path: one INSERT ... ON CONFLICT DO NOTHING
RETURNING, nothing else. A redelivery (same vendor event id) is a quiet no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from leadflow.privacy import redact_secret_headers
from ledger._core import (
    LedgerCore,
    check_claim,
    check_identifier,
    claim_rows,
    ids_in_range,
    inbox_view,
    row_by_id,
)
from ledger.errors import ClaimLost, UnknownInboxEntry
from ledger.models import InboxEntry
from ledger.states import InboxOutcome, parse_outcome
from ledger.views import InboxView


class InboxOperations(LedgerCore):
    """Store, claim, finish and read webhook deliveries."""

    def store_inbox(
        self, vendor: str, event_id: str, body: bytes, headers: dict[str, Any]
    ) -> int | None:
        """Store a webhook delivery before it is acknowledged; the new row's id, or None when
        it was already stored (a redelivery).

        Unique on (vendor, event id) with ON CONFLICT DO NOTHING: a redelivery, even one racing
        the first delivery, is a quiet no-op, never an error. Credential headers are redacted
        (leadflow.privacy.redact_secret_headers); verify the delivery before storing it.
        """
        check_identifier("vendor", vendor, 64)
        check_identifier("event_id", event_id, 255)
        with self._session() as session:
            statement = (
                self._insert(session, InboxEntry)
                .values(
                    vendor=vendor,
                    event_id=event_id,
                    body=body,
                    headers=redact_secret_headers(headers),
                    received_at=self._now(),
                )
                .on_conflict_do_nothing(index_elements=["vendor", "event_id"])
                .returning(InboxEntry.id)
            )
            return session.execute(statement).scalar_one_or_none()

    def store_inbox_many(
        self, rows: Sequence[tuple[str, str, bytes, dict[str, Any]]]
    ) -> list[int | None]:
        """Store several deliveries (vendor, event id, body, headers) in one transaction and
        one INSERT (the webhook service's group commit); for each row its new id, or None when
        that (vendor, event id) was stored before or came earlier in the same batch."""
        now = self._now()
        first: dict[tuple[str, str], int] = {}
        values = []
        for index, (vendor, event_id, body, headers) in enumerate(rows):
            check_identifier("vendor", vendor, 64)
            check_identifier("event_id", event_id, 255)
            if (vendor, event_id) in first:
                continue
            first[(vendor, event_id)] = index
            values.append(
                {
                    "vendor": vendor,
                    "event_id": event_id,
                    "body": body,
                    "headers": redact_secret_headers(headers),
                    "received_at": now,
                }
            )
        ids: list[int | None] = [None] * len(rows)
        if not values:
            return ids
        with self._session() as session:
            statement = (
                self._insert(session, InboxEntry)
                .values(values)
                .on_conflict_do_nothing(index_elements=["vendor", "event_id"])
                .returning(InboxEntry.id, InboxEntry.vendor, InboxEntry.event_id)
            )
            inserted = {
                (vendor, event_id): inbox_id
                for inbox_id, vendor, event_id in session.execute(statement)
            }
        for key, index in first.items():
            ids[index] = inserted.get(key)
        return ids

    def claim_inbox(
        self,
        limit: int,
        worker: str,
        *,
        vendor: str | None = None,
        ids: Sequence[int] | None = None,
        lease_seconds: float = 300,
    ) -> list[InboxView]:
        """Take up to `limit` unfinished deliveries, oldest first, for `worker` to process.

        A claimed delivery is held until `claimed_until`; a claim that ran out (the worker
        crashed) is claimable again, a finished delivery never. `ids` restricts the claim to
        those rows (the webhook service processing what it just stored), `vendor` to one
        vendor's. On PostgreSQL rows held by a concurrent claim are skipped (SKIP LOCKED), so
        any number of workers share the inbox, each delivery going to one of them.
        """
        check_claim(worker, limit, lease_seconds)
        with self._session() as session:
            now = self._now()
            query = select(InboxEntry).where(
                InboxEntry.processed_at.is_(None),
                or_(InboxEntry.claimed_until.is_(None), InboxEntry.claimed_until <= now),
            )
            if vendor is not None:
                query = query.where(InboxEntry.vendor == vendor)
            if ids is not None:
                wanted = ids_in_range(ids)
                if not wanted:
                    return []
                query = query.where(InboxEntry.id.in_(wanted))
            until = now + timedelta(seconds=lease_seconds)
            rows = claim_rows(session, query.order_by(InboxEntry.id), limit, worker, until)
            return [inbox_view(row) for row in rows]

    def finish_inbox(
        self,
        inbox_id: int,
        worker: str,
        outcome: InboxOutcome | str,
        reason: str | None = None,
    ) -> InboxView:
        """Record how a claimed delivery ended (processed, or ignored with a reason) and
        release it. ClaimLost unless `worker` still holds it: once its claim ran out another
        worker may be processing it, and the first to finish is the one recorded."""
        ending = parse_outcome(outcome)
        with self._session() as session:
            now = self._now()
            entry = self._inbox(session, inbox_id, lock=True)
            holds = (
                entry.processed_at is None
                and entry.claimed_by == worker
                and entry.claimed_until is not None
                and entry.claimed_until > now
            )
            if not holds:
                holder = (
                    f"finished as {entry.outcome}"
                    if entry.processed_at is not None
                    else f"held by {entry.claimed_by!r}"
                    if entry.claimed_by
                    else "not claimed"
                )
                raise ClaimLost(
                    f"worker {worker!r} does not hold inbox entry {inbox_id} ({holder})"
                )
            entry.processed_at = now
            entry.outcome = ending.value
            entry.reason = reason
            entry.claimed_until = None
            session.flush()
            return inbox_view(entry)

    def release_inbox(self, inbox_id: int, worker: str) -> None:
        """Give back a claimed delivery unfinished (its journey is not there yet): the next
        claim takes it again. ClaimLost if another worker holds it or it was finished."""
        with self._session() as session:
            entry = self._inbox(session, inbox_id, lock=True)
            if entry.processed_at is not None or entry.claimed_by != worker:
                raise ClaimLost(
                    f"worker {worker!r} does not hold inbox entry {inbox_id} "
                    f"({'finished' if entry.processed_at else f'held by {entry.claimed_by!r}'})"
                )
            entry.claimed_by = None
            entry.claimed_until = None

    def unprocessed_inbox(self, vendor: str | None = None, limit: int = 100) -> list[InboxView]:
        """Stored deliveries not yet finished, oldest first (what the reconciler catches up)."""
        query = select(InboxEntry).where(InboxEntry.processed_at.is_(None))
        if vendor is not None:
            query = query.where(InboxEntry.vendor == vendor)
        with self._session(write=False) as session:
            rows = session.execute(query.order_by(InboxEntry.id).limit(limit)).scalars()
            return [inbox_view(row) for row in rows]

    def get_inbox(self, inbox_id: int) -> InboxView:
        """One stored delivery; UnknownInboxEntry if there is none."""
        with self._session(write=False) as session:
            return inbox_view(self._inbox(session, inbox_id))

    def mark_inbox_processed(self, inbox_id: int) -> None:
        """Record that a delivery was processed, claim or not (an operator, a test); the first
        time stays recorded."""
        with self._session() as session:
            # Locked, so of two processors finishing together the first time is the one kept.
            entry = self._inbox(session, inbox_id, lock=True)
            if entry.processed_at is None:
                entry.processed_at = self._now()
                entry.outcome = InboxOutcome.PROCESSED.value
                entry.claimed_until = None

    def _inbox(self, session: Session, inbox_id: int, *, lock: bool = False) -> InboxEntry:
        entry = row_by_id(session, InboxEntry, inbox_id, lock=lock)
        if entry is None:
            raise UnknownInboxEntry(f"no inbox entry {inbox_id}")
        return entry
