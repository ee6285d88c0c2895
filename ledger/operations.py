"""The Ledger: the few operations the rest of leadflow performs on its source of truth.

Every stage of the journey goes through here: the webhook service stores deliveries in the
inbox, the gate records and quarantines leads, tasks wrap each vendor call in the effect
protocol (begin → call → complete | fail), and the reconciler claims the journeys whose next
step is due. Each method opens and commits its own short transaction and returns frozen views
(ledger.views), so callers never hold a session or a live ORM object.

Concurrency: on PostgreSQL, rows are locked (`SELECT ... FOR UPDATE`, and `SKIP LOCKED` for
claims), so any number of workers on any number of machines can share the ledger. On SQLite
every write transaction starts with `BEGIN IMMEDIATE` (ledger.engine), one writer at a time,
which is safe for the embedded single-machine setup. Inserts that may race (a lead, an inbox
delivery, an effect) use `INSERT ... ON CONFLICT DO NOTHING`, so a duplicate is never an error.
Two kinds of lease bound what a crashed worker can block: a journey claim (`claim`, for the
reconciler's batches) and an effect lease (`begin_effect`, for one vendor call), which is what
keeps two workers from calling a vendor for the same effect at the same time.
Times come from the Ledger's clock (UTC, injectable for tests), not from the database server.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from alembic.util import CommandError
from sqlalchemy import Engine, Select, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ledger import migrate
from ledger.engine import SQLITE_BEGIN_OPTION, create_ledger_engine, describe_url, parse_url
from ledger.errors import (
    ClaimLost,
    EffectInFlight,
    EffectLeaseLost,
    EffectStateError,
    IllegalTransition,
    LeadHasNoJourney,
    LedgerUnavailable,
    MigrationError,
    QuarantineClosed,
    UnknownEffect,
    UnknownInboxEntry,
    UnknownLead,
    UnknownQuarantine,
)
from ledger.models import (
    Effect,
    InboxEntry,
    Journey,
    JourneyTransition,
    Lead,
    QuarantineRecord,
)
from ledger.states import (
    AWAITING_FIX_STATES,
    INITIAL_STATE,
    TERMINAL_STATES,
    JourneyState,
    is_legal,
    parse_cause,
    parse_state,
)
from ledger.views import (
    ClaimedJourney,
    EffectView,
    InboxView,
    JourneyView,
    LeadView,
    QuarantineView,
    RecordedLead,
    TransitionView,
)

EFFECT_PENDING = "pending"
EFFECT_DONE = "done"
EFFECT_FAILED = "failed"
EFFECT_STATUSES = (EFFECT_PENDING, EFFECT_DONE, EFFECT_FAILED)

#: How long a begun effect is held by its worker unless completed or failed first: long enough
#: for a vendor call with all its retries (the HTTP policy's call budget), like a journey claim.
DEFAULT_EFFECT_LEASE_SECONDS = 300.0

#: Longest error text kept on an effect: enough for a vendor's message, not a whole HTML page.
MAX_ERROR_LENGTH = 4000

#: Where de-duplication finds each contact in a lead's normalised fields (first key present wins).
CONTACT_KEYS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "phone": ("phone", "phone_e164", "phone_number"),
    "document": ("document", "cpf_cnpj", "cpf", "cnpj"),
}


#: Header names (lower-case fragments) whose values are credentials: never stored in the inbox.
#: Signatures (X-Hub-Signature-256, X-DocuSign-Signature-1) are HMAC outputs, not secrets: kept.
SECRET_HEADER_MARKERS = (
    "authorization",
    "token",
    "secret",
    "password",
    "cookie",
    "api-key",
    "apikey",
)
REDACTED = "[redacted]"


def redact_secret_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """`headers` with every credential-bearing value replaced (Asaas sends its webhook token
    in `asaas-access-token`, Pipedrive basic auth in `Authorization`): the inbox keeps what
    processing needs, never what would let a reader impersonate the vendor."""
    return {
        name: REDACTED if any(marker in name.lower() for marker in SECRET_HEADER_MARKERS) else value
        for name, value in headers.items()
    }


def utc_now() -> datetime:
    """The current time, timezone-aware UTC: the ledger's default clock."""
    return datetime.now(UTC)


def canonical_email(value: str | None) -> str | None:
    """An e-mail as de-duplication compares it: trimmed, lower-case; None when empty."""
    if value is None:
        return None
    value = value.strip().lower()
    return value or None


def canonical_phone(value: str | None) -> str | None:
    """A phone as de-duplication compares it: '+' and digits only (E.164); None when empty."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", value)
    if not digits:
        return None
    return f"+{digits}" if value.strip().startswith("+") else digits


def canonical_document(value: str | None) -> str | None:
    """A CPF/CNPJ as de-duplication compares it: letters and digits only, upper-case (the new
    alphanumeric CNPJ keeps its letters); None when empty."""
    if value is None:
        return None
    cleaned = re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return cleaned or None


def _contact_columns(normalized: dict[str, Any] | None) -> dict[str, str | None]:
    """The indexed contact columns of a lead, taken from its normalised fields."""
    found: dict[str, str | None] = {"email": None, "phone": None, "document": None}
    if not normalized:
        return found
    for column, keys in CONTACT_KEYS.items():
        for key in keys:
            value = normalized.get(key)
            if isinstance(value, str) and value.strip():
                found[column] = value
                break
    return {
        "email": canonical_email(found["email"]),
        "phone": canonical_phone(found["phone"]),
        "document": canonical_document(found["document"]),
    }


class Ledger:
    """leadflow's source of truth on one database (SQLite file or PostgreSQL).

        ledger = Ledger("sqlite:///.leadflow/ledger.db")
        ledger.upgrade()
        lead = ledger.record_lead("facebook", "1234", raw_payload)
        ledger.transition(lead.lead_id, "qualified", cause="gate")

    `clock` returns the current aware UTC time; tests pass a controllable one to expire leases
    without sleeping.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self._url = parse_url(url)
        self.engine: Engine = create_ledger_engine(self._url)
        self._clock = clock or utc_now
        self._is_sqlite = self._url.get_backend_name() == "sqlite"
        writer = (
            self.engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            if self._is_sqlite
            else self.engine
        )
        self._write_sessions = sessionmaker(bind=writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Ledger({describe_url(self._url)!r})"

    @property
    def url(self) -> str:
        """The database URL with its password masked (safe to log)."""
        return describe_url(self._url)

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, or before dropping a test database)."""
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Create the schema or migrate it to `revision` (default: the newest)."""
        with self._unavailable_as_error():
            migrate.upgrade(self.engine, revision)

    def downgrade(self, revision: str) -> None:
        """Migrate the schema down to `revision`; `base` leaves no ledger table behind."""
        with self._unavailable_as_error():
            migrate.downgrade(self.engine, revision)

    def current_revision(self) -> str | None:
        """The schema revision of the database; None when the ledger was never created there."""
        with self._unavailable_as_error():
            return migrate.current_revision(self.engine)

    # -- sessions -----------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write Session that commits on success and rolls back on error."""
        with self._session(write=True) as session:
            yield session

    @contextmanager
    def _session(self, *, write: bool = True) -> Iterator[Session]:
        factory = self._write_sessions if write else self._read_sessions
        with factory() as session:
            with self._unavailable_as_error():
                session.connection()
            try:
                yield session
                session.commit()
            except BaseException as exc:
                session.rollback()
                if _is_missing_table(exc):
                    raise LedgerUnavailable(
                        f"the ledger database {describe_url(self._url)} has no ledger schema "
                        "yet: run `leadflow db upgrade`"
                    ) from None
                raise

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """Turn "cannot connect" into one clear LedgerUnavailable line, password masked."""
        try:
            yield
        except CommandError as exc:
            raise MigrationError(f"ledger migration failed: {exc}") from None
        except (OperationalError, InterfaceError) as exc:
            detail = str(exc.orig if exc.orig is not None else exc).strip()
            first_line = detail.splitlines()[0] if detail else type(exc).__name__
            raise LedgerUnavailable(
                f"cannot use the ledger database {describe_url(self._url)}: {first_line}"
            ) from None

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the ledger's clock must return aware datetimes")
        return now.astimezone(UTC)

    def _insert(self, session: Session, model: type) -> postgresql.Insert | sqlite.Insert:
        """INSERT for the session's dialect, which knows ON CONFLICT DO NOTHING."""
        if session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    # -- leads --------------------------------------------------------------------------------

    def record_lead(
        self,
        source: str,
        source_id: str,
        raw: dict[str, Any],
        normalized: dict[str, Any] | None = None,
    ) -> RecordedLead:
        """Store a lead once per (source, source id) and open its journey in `received`.

        Recording the same lead again (a redelivered webhook, a re-run poll) changes nothing
        and returns `created=False`. A lead attached as a duplicate answers with the journey of
        the lead it duplicates.
        """
        now = self._now()
        with self._session() as session:
            statement = (
                self._insert(session, Lead)
                .values(
                    source=source,
                    source_id=source_id,
                    raw=raw,
                    normalized=normalized,
                    received_at=now,
                    **_contact_columns(normalized),
                )
                .on_conflict_do_nothing(index_elements=["source", "source_id"])
                .returning(Lead.id)
            )
            lead_id = session.execute(statement).scalar_one_or_none()
            if lead_id is None:
                lead = session.execute(
                    select(Lead).where(Lead.source == source, Lead.source_id == source_id)
                ).scalar_one()
                if lead.duplicate_of_lead_id is not None:
                    journey_id = self._journey_id_of(session, lead.duplicate_of_lead_id)
                    return RecordedLead(lead.id, journey_id, False, lead.duplicate_of_lead_id)
                return RecordedLead(lead.id, self._journey_id_of(session, lead.id), False)
            journey = Journey(
                lead_id=lead_id,
                state=INITIAL_STATE.value,
                due_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(journey)
            session.flush()
            return RecordedLead(lead_id, journey.id, True)

    def get_lead(self, lead_id: int) -> LeadView:
        """The lead with its raw payload and normalised fields; UnknownLead if there is none."""
        with self._session(write=False) as session:
            return _lead_view(self._lead(session, lead_id))

    def update_normalized(self, lead_id: int, normalized: dict[str, Any]) -> None:
        """Store the gate's normalised fields (and the contact columns de-duplication reads)."""
        with self._session() as session:
            lead = self._lead(session, lead_id)
            lead.normalized = normalized
            for column, value in _contact_columns(normalized).items():
                setattr(lead, column, value)

    def find_lead_by_contact(
        self,
        email: str | None,
        phone: str | None,
        document: str | None,
        exclude_lead_id: int | None = None,
    ) -> int | None:
        """The earliest lead (not itself a duplicate) with the same e-mail, phone or CPF/CNPJ.

        Values are compared as normalised: e-mail lower-case, phone in E.164, CPF/CNPJ without
        punctuation. Only leads whose normalised fields were stored take part.

        With `exclude_lead_id` (the lead being checked), a match must be older than it, or
        already past the gate (neither `received` nor `quarantined`). So within one batch the
        oldest lead of a person goes on and the later ones attach to it, whatever order the
        gate checks them in; and a lead replayed from quarantine after a newer lead of the same
        person went ahead attaches to that newer lead.
        """
        conditions = []
        if (value := canonical_email(email)) is not None:
            conditions.append(Lead.email == value)
        if (value := canonical_phone(phone)) is not None:
            conditions.append(Lead.phone == value)
        if (value := canonical_document(document)) is not None:
            conditions.append(Lead.document == value)
        if not conditions:
            return None
        query = select(Lead.id).where(or_(*conditions), Lead.duplicate_of_lead_id.is_(None))
        if exclude_lead_id is not None:
            at_the_gate = [JourneyState.RECEIVED.value, JourneyState.QUARANTINED.value]
            query = query.join(Journey, Journey.lead_id == Lead.id).where(
                Lead.id != exclude_lead_id,
                or_(Lead.id < exclude_lead_id, Journey.state.not_in(at_the_gate)),
            )
        with self._session(write=False) as session:
            return session.execute(query.order_by(Lead.id).limit(1)).scalar_one_or_none()

    def attach_duplicate(self, lead_id: int, existing_lead_id: int, reason: str) -> None:
        """Mark `lead_id` as the same person as `existing_lead_id` and drop its own journey.

        The person keeps one journey (the earlier lead's); the duplicate's raw payload stays
        stored. Allowed only while the duplicate's journey is still `received` (nothing has
        been done for it yet); otherwise IllegalTransition. Attaching twice to the same lead is
        a no-op.
        """
        if lead_id == existing_lead_id:
            raise ValueError(f"lead {lead_id} cannot be a duplicate of itself")
        with self._session() as session:
            existing = self._lead(session, existing_lead_id)
            root_id = existing.duplicate_of_lead_id or existing.id
            if root_id == lead_id:
                raise ValueError(f"lead {existing_lead_id} is already a duplicate of {lead_id}")
            lead = self._lead(session, lead_id)
            journey = self._lock_journey_or_none(session, lead_id)
            if journey is None:
                if lead.duplicate_of_lead_id == root_id:
                    return
                raise LeadHasNoJourney(
                    f"lead {lead_id} is already a duplicate of lead {lead.duplicate_of_lead_id}"
                )
            if journey.state != INITIAL_STATE.value:
                raise IllegalTransition(
                    journey.state,
                    "duplicate",
                    lead_id,
                    f"only a lead still in {INITIAL_STATE.value!r} can be attached to lead "
                    f"{root_id}",
                )
            session.delete(journey)
            lead.duplicate_of_lead_id = root_id
            lead.duplicate_reason = reason

    # -- journeys -----------------------------------------------------------------------------

    def transition(
        self,
        lead_id: int,
        to_state: str,
        cause: str,
        reason: str | None = None,
        due_at: datetime | None = None,
        *,
        worker: str | None = None,
    ) -> None:
        """Move the lead's journey to `to_state`, recording when, from, to, cause and reason.

        Only edges of the state machine (ledger.states) are allowed; any other raises
        IllegalTransition naming both states. The journey row is locked for the move, and its
        claim is cleared (the claimed step is over). `due_at` is when the next step is due:
        now by default; never for terminal states and states awaiting a fix. With `worker`,
        the move is refused with ClaimLost unless that worker still holds the journey.
        """
        target = parse_state(to_state)
        recorded_cause = parse_cause(cause)
        with self._session() as session:
            now = self._now()
            journey = self._lock_journey(session, lead_id)
            if worker is not None:
                _check_claim(journey, worker, now)
            current = JourneyState(journey.state)
            origin = (
                JourneyState(journey.dead_lettered_from) if journey.dead_lettered_from else None
            )
            if not is_legal(current, target, origin):
                detail = None
                if current is JourneyState.DEAD_LETTERED and origin is not None:
                    detail = f"it was dead-lettered from {origin.value!r}"
                raise IllegalTransition(current.value, target.value, lead_id, detail)
            if target is JourneyState.DEAD_LETTERED:
                journey.dead_lettered_from = current.value
            elif current is JourneyState.DEAD_LETTERED:
                journey.dead_lettered_from = None
            journey.state = target.value
            journey.due_at = _next_due_at(target, due_at, now)
            journey.claimed_by = None
            journey.claimed_until = None
            journey.updated_at = now
            session.add(
                JourneyTransition(
                    journey_id=journey.id,
                    at=now,
                    from_state=current.value,
                    to_state=target.value,
                    cause=recorded_cause.value,
                    reason=reason,
                )
            )

    def journey_state(self, lead_id: int) -> str:
        """The state of the lead's journey."""
        return self.get_journey(lead_id).state

    def get_journey(self, lead_id: int) -> JourneyView:
        """The lead's journey: state, next due time, dead-letter origin, current claim."""
        with self._session(write=False) as session:
            return _journey_view(self._journey(session, lead_id))

    def journey_history(self, lead_id: int) -> list[TransitionView]:
        """Every transition of the lead's journey, oldest first."""
        with self._session(write=False) as session:
            journey = self._journey(session, lead_id)
            rows = session.execute(
                select(JourneyTransition)
                .where(JourneyTransition.journey_id == journey.id)
                .order_by(JourneyTransition.id)
            ).scalars()
            return [
                TransitionView(row.at, row.from_state, row.to_state, row.cause, row.reason)
                for row in rows
            ]

    def journey_counts(self) -> dict[str, int]:
        """How many journeys stand in each state (every state listed, zeros included): the
        picture a reconciler run or a dashboard starts from."""
        counts = dict.fromkeys((state.value for state in JourneyState), 0)
        with self._session(write=False) as session:
            rows = session.execute(
                select(Journey.state, func.count()).group_by(Journey.state)
            ).all()
        for state, count in rows:
            counts[state] = count
        return counts

    def claim(
        self, state: str, limit: int, worker: str, lease_seconds: float = 300
    ) -> list[ClaimedJourney]:
        """Take up to `limit` journeys in `state` whose next step is due, oldest due first.

        A claimed journey is held by `worker` until its lease ends (`claimed_until`), so a
        crashed worker's journeys become claimable again on their own. Claimed journeys are
        skipped, never waited for: on PostgreSQL `FOR UPDATE SKIP LOCKED` lets any number of
        workers claim side by side, each journey going to exactly one of them.
        """
        wanted = parse_state(state)
        if not worker:
            raise ValueError("a claim needs the worker's name")
        if limit < 1:
            raise ValueError("claim limit must be at least 1")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        with self._session() as session:
            now = self._now()
            until = now + timedelta(seconds=lease_seconds)
            journeys = (
                session.execute(
                    select(Journey)
                    .where(
                        Journey.state == wanted.value,
                        Journey.due_at <= now,
                        or_(Journey.claimed_until.is_(None), Journey.claimed_until <= now),
                    )
                    .order_by(Journey.due_at, Journey.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            for journey in journeys:
                journey.claimed_by = worker
                journey.claimed_until = until
            session.flush()
            return [
                ClaimedJourney(
                    journey_id=journey.id,
                    lead_id=journey.lead_id,
                    state=journey.state,
                    due_at=journey.due_at,
                    dead_lettered_from=journey.dead_lettered_from,
                    claimed_by=worker,
                    claimed_until=until,
                )
                for journey in journeys
            ]

    def renew_claim(self, lead_id: int, worker: str, lease_seconds: float = 300) -> datetime:
        """Extend a claim the worker still holds (a long batch step) and return its new end.

        ClaimLost if the lease already ran out or another worker holds the journey: by then
        someone else may be doing the step, so the worker must stop rather than carry on.
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        with self._session() as session:
            now = self._now()
            journey = self._lock_journey(session, lead_id)
            _check_claim(journey, worker, now)
            journey.claimed_until = now + timedelta(seconds=lease_seconds)
            return journey.claimed_until

    def release(self, lead_id: int, worker: str, due_at: datetime | None = None) -> None:
        """Give back a claimed journey without moving it, optionally due again at `due_at`.

        Raises ClaimLost if another worker holds it, or nobody does (the step was transitioned
        or the claim released before).
        """
        with self._session() as session:
            journey = self._lock_journey(session, lead_id)
            if journey.claimed_by != worker:
                raise ClaimLost(_claim_lost_message(journey, worker))
            journey.claimed_by = None
            journey.claimed_until = None
            if due_at is not None:
                journey.due_at = _aware(due_at, "due_at")
            journey.updated_at = self._now()

    # -- effects ------------------------------------------------------------------------------

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
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        with self._session() as session:
            if lead_id is not None:
                self._lead(session, lead_id)  # UnknownLead, rather than a foreign-key error
            now = self._now()
            until = now + timedelta(seconds=lease_seconds)
            statement = (
                self._insert(session, Effect)
                .values(
                    key=key,
                    vendor=vendor,
                    operation=operation,
                    lead_id=lead_id,
                    status=EFFECT_PENDING,
                    attempts=1,
                    permanent=False,
                    lease_token=_new_lease_token(),
                    leased_until=until,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(Effect.id)
            )
            created = session.execute(statement).scalar_one_or_none() is not None
            effect = self._lock_effect(session, key)
            if created:
                return _effect_view(effect)
            if (effect.vendor, effect.operation) != (vendor, operation):
                raise EffectStateError(
                    f"effect {key!r} belongs to {effect.vendor}.{effect.operation}, "
                    f"not {vendor}.{operation}"
                )
            if effect.status == EFFECT_DONE or (
                effect.status == EFFECT_FAILED and effect.permanent
            ):
                return _effect_view(effect)
            if (
                effect.status == EFFECT_PENDING
                and effect.leased_until is not None
                and effect.leased_until > now
            ):
                raise EffectInFlight(key, effect.leased_until)
            effect.status = EFFECT_PENDING
            effect.attempts += 1
            effect.lease_token = _new_lease_token()
            effect.leased_until = until
            effect.updated_at = now
            session.flush()
            return _effect_view(effect)

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
            if effect.status != EFFECT_PENDING or effect.lease_token != token:
                raise EffectLeaseLost(
                    f"effect {key!r}: this attempt no longer holds it "
                    f"(status {effect.status}, attempt {effect.attempts})"
                )
            now = self._now()
            effect.leased_until = now + timedelta(seconds=lease_seconds)
            effect.updated_at = now
            session.flush()
            return _effect_view(effect)

    def complete_effect(
        self, key: str, vendor_object_id: str, response: dict[str, Any] | None = None
    ) -> EffectView:
        """Record that the vendor object exists, with its id: later attempts will skip the call.

        Completing a done effect again with the same vendor id is a no-op; with another id it
        is EffectStateError (two vendor objects for one effect is the bug the ledger prevents).
        No lease is needed: a worker whose lease ran out but whose call did create the object
        must still record it, or the worker that took over could create a second one.
        """
        with self._session() as session:
            effect = self._lock_effect(session, key)
            if effect.status == EFFECT_DONE:
                if effect.vendor_object_id == vendor_object_id:
                    return _effect_view(effect)
                raise EffectStateError(
                    f"effect {key!r} is already done with vendor object "
                    f"{effect.vendor_object_id!r}, not {vendor_object_id!r}"
                )
            effect.status = EFFECT_DONE
            effect.vendor_object_id = vendor_object_id
            effect.response = response
            effect.permanent = False
            effect.lease_token = None
            effect.leased_until = None
            effect.updated_at = self._now()
            session.flush()
            return _effect_view(effect)

    def fail_effect(
        self, key: str, error: str, permanent: bool, *, token: str | None = None
    ) -> EffectView:
        """Record a failed attempt and end its lease. A transient failure is retried by the
        next begin_effect; a permanent one stays failed (the journey is dead-lettered with
        `error`).

        With `token` (the `lease_token` begin_effect returned), the failure is recorded only
        while that attempt still holds the effect; otherwise EffectLeaseLost and nothing
        changes, so a stalled worker cannot turn the attempt of the worker that took over into
        a failure (which would let a third one start alongside it). Without `token` the check
        is skipped (an operator failing a stuck effect by hand).
        """
        with self._session() as session:
            effect = self._lock_effect(session, key)
            if effect.status == EFFECT_DONE:
                raise EffectStateError(f"effect {key!r} is already done; it cannot fail")
            if token is not None and (
                effect.status != EFFECT_PENDING or effect.lease_token != token
            ):
                raise EffectLeaseLost(
                    f"effect {key!r}: this attempt no longer holds it "
                    f"(status {effect.status}, attempt {effect.attempts})"
                )
            effect.status = EFFECT_FAILED
            effect.last_error = error[:MAX_ERROR_LENGTH]
            effect.permanent = permanent
            effect.lease_token = None
            effect.leased_until = None
            effect.updated_at = self._now()
            session.flush()
            return _effect_view(effect)

    def get_effect(self, key: str) -> EffectView:
        """The effect with that idempotency key; UnknownEffect if there is none."""
        with self._session(write=False) as session:
            effect = session.execute(select(Effect).where(Effect.key == key)).scalar_one_or_none()
            if effect is None:
                raise UnknownEffect(f"no effect with key {key!r}")
            return _effect_view(effect)

    def effects_for_lead(self, lead_id: int) -> list[EffectView]:
        """Every effect recorded for a lead, oldest first (what was done for this client)."""
        with self._session(write=False) as session:
            rows = session.execute(
                select(Effect).where(Effect.lead_id == lead_id).order_by(Effect.id)
            ).scalars()
            return [_effect_view(row) for row in rows]

    # -- inbox --------------------------------------------------------------------------------

    def store_inbox(self, vendor: str, event_id: str, body: bytes, headers: dict[str, Any]) -> bool:
        """Store a webhook delivery before it is acknowledged; False if it was already stored.

        Unique on (vendor, event id) with ON CONFLICT DO NOTHING: a redelivery, even one racing
        the first delivery, is a quiet no-op, never an error. Credential headers are redacted
        (redact_secret_headers); verify the delivery before storing it.
        """
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
            return session.execute(statement).scalar_one_or_none() is not None

    def unprocessed_inbox(self, vendor: str | None = None, limit: int = 100) -> list[InboxView]:
        """Stored deliveries not yet processed, oldest first (the reconciler's catch-up list)."""
        query = select(InboxEntry).where(InboxEntry.processed_at.is_(None))
        if vendor is not None:
            query = query.where(InboxEntry.vendor == vendor)
        with self._session(write=False) as session:
            rows = session.execute(query.order_by(InboxEntry.id).limit(limit)).scalars()
            return [_inbox_view(row) for row in rows]

    def get_inbox(self, inbox_id: int) -> InboxView:
        """One stored delivery; UnknownInboxEntry if there is none."""
        with self._session(write=False) as session:
            return _inbox_view(self._inbox(session, inbox_id))

    def mark_inbox_processed(self, inbox_id: int) -> None:
        """Record that a delivery was processed; the first time stays recorded."""
        with self._session() as session:
            # Locked, so of two processors finishing together the first time is the one kept.
            entry = self._inbox(session, inbox_id, lock=True)
            if entry.processed_at is None:
                entry.processed_at = self._now()

    # -- quarantine ---------------------------------------------------------------------------

    def quarantine_lead(
        self, lead_id: int, reasons: list[dict[str, Any]], values: dict[str, Any]
    ) -> int:
        """Record that the gate stopped a lead: every rule it broke and the row as normalised.

        Returns the quarantine record's id. The journey's move to `quarantined` is the caller's
        `transition(lead_id, "quarantined", "gate")`, as for every other state.
        """
        if not reasons:
            raise ValueError("a quarantined lead needs at least one broken rule")
        with self._session() as session:
            self._lead(session, lead_id)
            record = QuarantineRecord(
                lead_id=lead_id,
                reasons=copy.deepcopy(reasons),
                values=copy.deepcopy(values),
                fixes=[],
                quarantined_at=self._now(),
            )
            session.add(record)
            session.flush()
            return record.id

    def list_quarantine(self, include_replayed: bool = False) -> list[QuarantineView]:
        """Quarantine records, oldest first; by default only those not yet replayed."""
        query = select(QuarantineRecord)
        if not include_replayed:
            query = query.where(QuarantineRecord.replayed_at.is_(None))
        with self._session(write=False) as session:
            rows = session.execute(query.order_by(QuarantineRecord.id)).scalars()
            return [_quarantine_view(row) for row in rows]

    def get_quarantine(self, quarantine_id: int) -> QuarantineView:
        """One quarantine record; UnknownQuarantine if there is none."""
        with self._session(write=False) as session:
            return _quarantine_view(self._quarantine(session, quarantine_id))

    def fix_quarantine(self, quarantine_id: int, field: str, value: Any) -> QuarantineView:
        """Correct one field of a quarantined row: the values to replay change and the fix is
        recorded with its time. A replayed record is closed (QuarantineClosed)."""
        with self._session() as session:
            record = self._quarantine(session, quarantine_id, lock=True)
            if record.replayed_at is not None:
                raise QuarantineClosed(f"quarantine record {quarantine_id} was already replayed")
            now = self._now()
            record.values = {**record.values, field: value}
            record.fixes = [
                *record.fixes,
                {"field": field, "value": value, "at": now.isoformat()},
            ]
            record.fixed_at = now
            session.flush()
            return _quarantine_view(record)

    def mark_replayed(self, quarantine_id: int) -> QuarantineView:
        """Close the record when its lead re-enters the gate. The journey's move back to
        `received` is the caller's `transition(lead_id, "received", "manual")`. Replaying twice
        raises QuarantineClosed, so one record never feeds the gate twice."""
        with self._session() as session:
            record = self._quarantine(session, quarantine_id, lock=True)
            if record.replayed_at is not None:
                raise QuarantineClosed(f"quarantine record {quarantine_id} was already replayed")
            record.replayed_at = self._now()
            session.flush()
            return _quarantine_view(record)

    # -- look-ups inside a session ------------------------------------------------------------

    def _lead(self, session: Session, lead_id: int) -> Lead:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise UnknownLead(f"no lead {lead_id}")
        return lead

    def _journey_query(self, lead_id: int) -> Select[Journey]:
        return select(Journey).where(Journey.lead_id == lead_id)

    def _journey(self, session: Session, lead_id: int) -> Journey:
        journey = session.execute(self._journey_query(lead_id)).scalar_one_or_none()
        if journey is None:
            self._raise_no_journey(session, lead_id)
        return journey

    def _lock_journey_or_none(self, session: Session, lead_id: int) -> Journey | None:
        return session.execute(self._journey_query(lead_id).with_for_update()).scalar_one_or_none()

    def _lock_journey(self, session: Session, lead_id: int) -> Journey:
        journey = self._lock_journey_or_none(session, lead_id)
        if journey is None:
            self._raise_no_journey(session, lead_id)
        return journey

    def _raise_no_journey(self, session: Session, lead_id: int) -> NoReturn:
        lead = self._lead(session, lead_id)
        raise LeadHasNoJourney(
            f"lead {lead_id} is a duplicate of lead {lead.duplicate_of_lead_id}: "
            f"use that lead's journey"
        )

    def _journey_id_of(self, session: Session, lead_id: int) -> int:
        return self._journey(session, lead_id).id

    def _lock_effect(self, session: Session, key: str) -> Effect:
        effect = session.execute(
            select(Effect).where(Effect.key == key).with_for_update()
        ).scalar_one_or_none()
        if effect is None:
            raise UnknownEffect(f"no effect with key {key!r}")
        return effect

    def _inbox(self, session: Session, inbox_id: int, *, lock: bool = False) -> InboxEntry:
        entry = session.get(InboxEntry, inbox_id, with_for_update=lock)
        if entry is None:
            raise UnknownInboxEntry(f"no inbox entry {inbox_id}")
        return entry

    def _quarantine(
        self, session: Session, quarantine_id: int, *, lock: bool = False
    ) -> QuarantineRecord:
        record = session.get(QuarantineRecord, quarantine_id, with_for_update=lock)
        if record is None:
            raise UnknownQuarantine(f"no quarantine record {quarantine_id}")
        return record


def _next_due_at(state: JourneyState, requested: datetime | None, now: datetime) -> datetime | None:
    """When the reconciler should next look at a journey that just entered `state`."""
    if state in TERMINAL_STATES or state in AWAITING_FIX_STATES:
        return None
    return _aware(requested, "due_at") if requested is not None else now


def _aware(value: datetime, name: str) -> datetime:
    """`value` in UTC; a naive datetime is refused, since its zone would be a guess."""
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got {value!r})")
    return value.astimezone(UTC)


def _new_lease_token() -> str:
    """An unguessable name for one attempt at an effect (what fail_effect's `token` checks)."""
    return uuid.uuid4().hex


def _check_claim(journey: Journey, worker: str, now: datetime) -> None:
    holds = journey.claimed_by == worker and (
        journey.claimed_until is not None and journey.claimed_until > now
    )
    if not holds:
        raise ClaimLost(_claim_lost_message(journey, worker))


def _claim_lost_message(journey: Journey, worker: str) -> str:
    holder = f"held by {journey.claimed_by!r}" if journey.claimed_by else "not claimed"
    return f"worker {worker!r} does not hold the journey of lead {journey.lead_id} ({holder})"


def _lead_view(lead: Lead) -> LeadView:
    return LeadView(
        lead_id=lead.id,
        source=lead.source,
        source_id=lead.source_id,
        raw=copy.deepcopy(lead.raw),
        normalized=copy.deepcopy(lead.normalized),
        received_at=lead.received_at,
        duplicate_of=lead.duplicate_of_lead_id,
        duplicate_reason=lead.duplicate_reason,
    )


def _journey_view(journey: Journey) -> JourneyView:
    return JourneyView(
        journey_id=journey.id,
        lead_id=journey.lead_id,
        state=journey.state,
        due_at=journey.due_at,
        dead_lettered_from=journey.dead_lettered_from,
        claimed_by=journey.claimed_by,
        claimed_until=journey.claimed_until,
        updated_at=journey.updated_at,
    )


def _effect_view(effect: Effect) -> EffectView:
    return EffectView(
        key=effect.key,
        vendor=effect.vendor,
        operation=effect.operation,
        lead_id=effect.lead_id,
        status=effect.status,
        vendor_object_id=effect.vendor_object_id,
        response=copy.deepcopy(effect.response),
        attempts=effect.attempts,
        last_error=effect.last_error,
        permanent=effect.permanent,
        lease_token=effect.lease_token,
        leased_until=effect.leased_until,
        created_at=effect.created_at,
        updated_at=effect.updated_at,
    )


def _inbox_view(entry: InboxEntry) -> InboxView:
    return InboxView(
        id=entry.id,
        vendor=entry.vendor,
        event_id=entry.event_id,
        body=bytes(entry.body),
        headers=copy.deepcopy(entry.headers),
        received_at=entry.received_at,
        processed_at=entry.processed_at,
    )


def _quarantine_view(record: QuarantineRecord) -> QuarantineView:
    return QuarantineView(
        id=record.id,
        lead_id=record.lead_id,
        reasons=copy.deepcopy(record.reasons),
        values=copy.deepcopy(record.values),
        fixes=copy.deepcopy(record.fixes),
        quarantined_at=record.quarantined_at,
        fixed_at=record.fixed_at,
        replayed_at=record.replayed_at,
    )


def _is_missing_table(exc: BaseException) -> bool:
    """True for "no such table" (SQLite) or undefined_table (PostgreSQL): a database that was
    never migrated, which deserves a hint rather than a driver traceback."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) == "42P01":
        return True
    return "no such table" in str(exc.orig)
