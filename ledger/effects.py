"""Effects: one row per external side effect, keyed by a deterministic idempotency key, written
before the vendor call and completed or failed after it (DESIGN.md, principle 1).

The protocol, as `tests/ledger/test_effect_protocol_example.py` runs it against the sandbox's
Asaas: `begin_effect` (an exclusive lease on the attempt) → look up if `needs_lookup` → call →
`complete_effect` | `fail_effect(..., permanent=...)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, bindparam, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger._core import (
    MAX_ERROR_LENGTH,
    LedgerCore,
    check_id,
    check_identifier,
    dialect_insert,
    effect_view,
    id_in_range,
    ids_in_range,
)
from ledger.errors import (
    EffectInFlight,
    EffectLeaseLost,
    EffectStateError,
    UnknownEffect,
    UnknownLead,
)
from ledger.models import Effect
from ledger.prepared import Prepared
from ledger.states import EffectStatus
from ledger.views import EffectView

#: How long a begun effect is held by its worker unless completed or failed first: long enough
#: for a vendor call with all its retries (the HTTP policy's call budget), like a journey claim.
DEFAULT_EFFECT_LEASE_SECONDS = 300.0

PENDING, DONE, FAILED = (status.value for status in EffectStatus)
EFFECTS: Table = Effect.__table__  # type: ignore[assignment]


class EffectOperations(LedgerCore):
    """Begin, renew, complete and fail effects; read them."""

    def begin_effect(
        self,
        key: str,
        vendor: str,
        operation: str,
        lead_id: int | None,
        *,
        lease_seconds: float = DEFAULT_EFFECT_LEASE_SECONDS,
    ) -> EffectView:
        """Write the effect `pending` before the vendor call (DESIGN.md, principle 1) and hand
        the caller an exclusive lease on the attempt.

        A new key creates the row (attempts 1). An existing row is returned as it is when it
        is `done` (skip the call: reuse `vendor_object_id`) or failed for good (dead-letter).
        Otherwise the row becomes (again) pending with attempts + 1 and a new lease, and
        `needs_lookup` tells the caller to look the object up at the vendor by its external
        reference before creating it.

        Only one attempt is in flight at a time: while another worker's lease runs, this
        raises EffectInFlight and changes nothing, because that worker may be calling the
        vendor right now. A lease that ran out is the mark of a crashed (or stalled) worker:
        its attempt is handed over, with a look-up first. `lease_seconds` must outlast the
        vendor call with its retries. Pass `token=effect.lease_token` to `fail_effect`.
        """
        check_identifier("effect key", key, 255)
        check_identifier("vendor", vendor, 64)
        check_identifier("operation", operation, 128)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if lead_id is not None:
            check_id("lead", lead_id)
            if not id_in_range(lead_id):
                raise UnknownLead(f"no lead {lead_id}")
        with self._session() as session:
            now = self._now()
            until = now + timedelta(seconds=lease_seconds)
            # the common case, a new key, is one statement: the row comes back from the INSERT
            # (on the driver's cursor, ledger/prepared.py: this is the journey's hottest write)
            try:
                inserted = _BEGIN_NEW_EFFECT.first(
                    session.connection(),
                    {
                        "key": key,
                        "vendor": vendor,
                        "operation": operation,
                        "lead_id": lead_id,
                        "status": PENDING,
                        "attempts": 1,
                        "permanent": False,
                        "lease_token": _new_lease_token(),
                        "leased_until": until,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            except IntegrityError:
                # the only constraint left to break is the lead's foreign key
                raise UnknownLead(f"no lead {lead_id}") from None
            if inserted is not None:
                return effect_view(inserted)
            effect = self._lock_effect(session, key)
            if (effect.vendor, effect.operation) != (vendor, operation):
                raise EffectStateError(
                    f"effect {key!r} belongs to {effect.vendor}.{effect.operation}, "
                    f"not {vendor}.{operation}"
                )
            if effect.status == DONE or (effect.status == FAILED and effect.permanent):
                return effect_view(effect)
            in_flight = effect.status == PENDING and effect.leased_until is not None
            if in_flight and effect.leased_until is not None and effect.leased_until > now:
                raise EffectInFlight(key, effect.leased_until)
            effect.status = PENDING
            effect.attempts += 1
            effect.lease_token = _new_lease_token()
            effect.leased_until = until
            effect.updated_at = now
            session.flush()
            return effect_view(effect)

    def renew_effect(
        self, key: str, token: str, lease_seconds: float = DEFAULT_EFFECT_LEASE_SECONDS
    ) -> EffectView:
        """Extend the lease of an attempt that is still running (a slow vendor call, long
        retries) so no other worker takes the effect over meanwhile.

        EffectLeaseLost if the lease already ran out and was taken over, or the attempt was
        completed or failed: the caller must then stop rather than call the vendor again.
        A lease that ran out but that nobody took over is still renewed (no one else began).
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        with self._session() as session:
            effect = self._lock_effect(session, key)
            if effect.status != PENDING or effect.lease_token != token:
                raise EffectLeaseLost(
                    f"effect {key!r}: this attempt no longer holds it "
                    f"(status {effect.status}, attempt {effect.attempts})"
                )
            now = self._now()
            effect.leased_until = now + timedelta(seconds=lease_seconds)
            effect.updated_at = now
            session.flush()
            return effect_view(effect)

    def complete_effect(
        self,
        key: str,
        vendor_object_id: str,
        response: dict[str, Any] | None = None,
        *,
        note: str | None = None,
    ) -> EffectView:
        """Record that the vendor object exists, with its id: later attempts will skip the call.

        Completing a done effect again with the same vendor id is a no-op. With another id it
        is EffectStateError (two vendor objects for one effect is the bug the ledger prevents),
        and that id is kept on the effect as an orphan candidate (`orphan_candidates`): the
        late worker's object may exist at the vendor, and a person or the reconciler must be
        able to find it. No lease is needed: a worker whose lease ran out but whose call did
        create the object must still record it, or the worker that took over could create a
        second one. `note` records what the worker decided ("sent; outcome unknown").
        """
        check_identifier("vendor object id", vendor_object_id, 255)
        with self._session() as session:
            # the common case, an effect not yet done, is one statement (ledger/prepared.py)
            completed = _COMPLETE_PENDING_EFFECT.first(
                session.connection(),
                {
                    "wanted_key": key,
                    "vendor_object_id": vendor_object_id,
                    "response": response,
                    "note": note,
                    "updated_at": self._now(),
                },
            )
            if completed is not None:
                return effect_view(completed)
            effect = self._lock_effect(session, key)
            if effect.status == DONE:
                if effect.vendor_object_id == vendor_object_id:
                    return effect_view(effect)
                known = list(effect.orphan_candidates or [])
                if vendor_object_id not in known:
                    effect.orphan_candidates = [*known, vendor_object_id]
                    effect.updated_at = self._now()
                refusal = EffectStateError(
                    f"effect {key!r} is already done with vendor object "
                    f"{effect.vendor_object_id!r}, not {vendor_object_id!r}; "
                    f"{vendor_object_id!r} was recorded as an orphan candidate"
                )
            else:
                effect.vendor_object_id = vendor_object_id
                effect.response = response
                return self._end_attempt(session, effect, DONE, permanent=False, note=note)
        raise refusal  # after the commit: the orphan candidate stays recorded

    def fail_effect(
        self,
        key: str,
        error: str,
        *,
        permanent: bool,
        token: str | None = None,
        note: str | None = None,
    ) -> EffectView:
        """Record a failed attempt and end its lease. A transient failure is retried by the
        next begin_effect; a permanent one stays failed (the journey is dead-lettered with
        `error`, until `retry_dead_lettered`).

        With `token` (the `lease_token` begin_effect returned), the failure is recorded only
        while that attempt still holds the effect; otherwise EffectLeaseLost and nothing
        changes, so a stalled worker cannot turn the attempt of the worker that took over into
        a failure (which would let a third one start alongside it). Without `token` the check
        is skipped (an operator failing a stuck effect by hand).
        """
        with self._session() as session:
            effect = self._lock_effect(session, key)
            if effect.status == DONE:
                raise EffectStateError(f"effect {key!r} is already done; it cannot fail")
            if token is not None and (effect.status != PENDING or effect.lease_token != token):
                raise EffectLeaseLost(
                    f"effect {key!r}: this attempt no longer holds it "
                    f"(status {effect.status}, attempt {effect.attempts})"
                )
            effect.last_error = error[:MAX_ERROR_LENGTH]
            return self._end_attempt(session, effect, FAILED, permanent=permanent, note=note)

    def get_effect(self, key: str) -> EffectView:
        """The effect with that idempotency key; UnknownEffect if there is none."""
        with self._session(write=False) as session:
            # every step reads the effects of the steps before it (ledger/prepared.py)
            effect = _EFFECT_BY_KEY.first(session.connection(), {"wanted_key": key})
            if effect is None:
                raise UnknownEffect(f"no effect with key {key!r}")
            return effect_view(effect)

    def effects_for_lead(self, lead_id: int, *, responses: bool = True) -> list[EffectView]:
        """Every effect recorded for a lead, oldest first (what was done for this client).
        `responses=False` leaves each vendor answer out (None): a step that wants only the
        vendor ids skips decoding a dozen JSON documents per lead."""
        if not id_in_range(lead_id):
            return []
        statement = _EFFECTS_OF_LEAD if responses else _EFFECT_IDS_OF_LEAD
        with self._session(write=False) as session:
            rows = statement.all(session.connection(), {"wanted_lead": lead_id})
            return [effect_view(row) for row in rows]

    def effects_for_leads(self, lead_ids: Iterable[int]) -> dict[int, list[EffectView]]:
        """Every effect recorded for each of these leads, oldest first, without the vendors'
        answers (as `effects_for_lead(..., responses=False)`), in one query: a journey step reads
        its whole batch's effects at its start, not one lead's at a time (tasks/journey.py).
        Leads with no effect, and ids naming no lead, map to an empty list."""
        wanted = ids_in_range(lead_ids)
        found: dict[int, list[EffectView]] = {lead_id: [] for lead_id in wanted}
        if not wanted:
            return found
        with self._session(write=False) as session:
            rows = session.connection().execute(_EFFECT_IDS_OF_LEADS, {"wanted": wanted})
            for row in rows:
                found[row.lead_id].append(effect_view(row))
        return found

    def lead_for_vendor_object(self, vendor: str, vendor_object_id: str) -> int | None:
        """The lead whose effect created this vendor object (a webhook names the object, not
        the lead), or None for an object leadflow did not make."""
        with self._session(write=False) as session:
            return session.execute(
                select(Effect.lead_id)
                .where(Effect.vendor == vendor, Effect.vendor_object_id == vendor_object_id)
                .order_by(Effect.id)
                .limit(1)
            ).scalar_one_or_none()

    def note_effect_by_vendor_object(self, vendor: str, vendor_object_id: str, note: str) -> bool:
        """Record `note` on the effect that created this vendor object (WhatsApp reports a
        message failed after it was accepted); False when leadflow made no such object."""
        with self._session() as session:
            effects = (
                session.execute(
                    select(Effect)
                    .where(Effect.vendor == vendor, Effect.vendor_object_id == vendor_object_id)
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            now = self._now()
            for effect in effects:
                effect.note = note
                effect.updated_at = now
            return bool(effects)

    def _end_attempt(
        self, session: Session, effect: Effect, status: str, *, permanent: bool, note: str | None
    ) -> EffectView:
        """Leave the effect in `status` (done, or failed for good or for now) with its lease
        given up, so the next begin_effect need not wait for it to run out."""
        effect.status = status
        effect.permanent = permanent
        effect.lease_token = None
        effect.leased_until = None
        effect.note = note
        effect.updated_at = self._now()
        session.flush()
        return effect_view(effect)

    def _lock_effect(self, session: Session, key: str) -> Effect:
        effect = session.execute(
            select(Effect).where(Effect.key == key).with_for_update()
        ).scalar_one_or_none()
        if effect is None:
            raise UnknownEffect(f"no effect with key {key!r}")
        return effect


_EFFECT_BY_KEY = Prepared(lambda _: select(EFFECTS).where(EFFECTS.c.key == bindparam("wanted_key")))
_EFFECTS_OF_LEAD = Prepared(
    lambda _: (
        select(EFFECTS).where(EFFECTS.c.lead_id == bindparam("wanted_lead")).order_by(EFFECTS.c.id)
    )
)
_EFFECT_IDS_OF_LEAD = Prepared(
    lambda _: (
        select(
            *(column for column in EFFECTS.c if column.name != "response"),
            null().label("response"),
        )
        .where(EFFECTS.c.lead_id == bindparam("wanted_lead"))
        .order_by(EFFECTS.c.id)
    )
)
#: the same for a batch of leads (an expanding IN, which `Prepared` does not take)
_EFFECT_IDS_OF_LEADS = (
    select(
        *(column for column in EFFECTS.c if column.name != "response"),
        null().label("response"),
    )
    .where(EFFECTS.c.lead_id.in_(bindparam("wanted", expanding=True)))
    .order_by(EFFECTS.c.id)
)

#: complete_effect's one statement: an effect not yet done becomes done, its lease given up
_COMPLETE_PENDING_EFFECT = Prepared(
    lambda _: (
        update(EFFECTS)
        .where(EFFECTS.c.key == bindparam("wanted_key"), EFFECTS.c.status != DONE)
        .values(
            status=DONE,
            vendor_object_id=bindparam("vendor_object_id"),
            response=bindparam("response"),
            permanent=False,
            lease_token=None,
            leased_until=None,
            note=bindparam("note"),
            updated_at=bindparam("updated_at"),
        )
        .returning(*EFFECTS.c)
    )
)

_NEW_EFFECT_COLUMNS = (
    "key",
    "vendor",
    "operation",
    "lead_id",
    "status",
    "attempts",
    "permanent",
    "lease_token",
    "leased_until",
    "created_at",
    "updated_at",
)

#: begin_effect's one statement for a new key (ON CONFLICT is spelt by the dialect's insert)
_BEGIN_NEW_EFFECT = Prepared(
    lambda dialect: (
        dialect_insert(dialect, EFFECTS)
        .values({name: bindparam(name) for name in _NEW_EFFECT_COLUMNS})
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(*EFFECTS.c)
    )
)


def _new_lease_token() -> str:
    """An unguessable name for one attempt at an effect (what fail_effect's `token` checks)."""
    return uuid.uuid4().hex
