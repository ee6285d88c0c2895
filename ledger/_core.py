"""What every part of the Ledger shares: the engine, short transactions, the clock, value
checks, database-error wrapping, in-session look-ups and the journey move itself.

The concerns (leads, journeys and claims, effects, inbox, quarantine and the gate) live in their
own modules as mixins over `LedgerCore`; `ledger.operations.Ledger` joins them into the one
façade callers use. Nothing here is public: callers never see a Session or an ORM object.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, TypeVar

from alembic.util import CommandError
from sqlalchemy import Engine, Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from data_quality.lead import NormalizedLead
from leadflow.privacy import mask_text
from ledger import migrate
from ledger.engine import SQLITE_BEGIN_OPTION, create_ledger_engine, describe_url, parse_url
from ledger.errors import (
    BatchSpoiled,
    DatabaseRefused,
    IllegalTransition,
    InvalidValue,
    LeadHasNoJourney,
    LedgerError,
    LedgerUnavailable,
    MigrationError,
    UnknownLead,
)
from ledger.models import (
    Base,
    Effect,
    InboxEntry,
    Journey,
    JourneyTransition,
    Lead,
    QuarantineRecord,
)
from ledger.states import (
    AWAITING_FIX_STATES,
    TERMINAL_STATES,
    Cause,
    EffectStatus,
    InboxOutcome,
    JourneyState,
    is_legal,
)
from ledger.views import EffectView, InboxView, JourneyView, LeadView, QuarantineView

#: Longest error text kept on an effect: enough for a vendor's message, not a whole HTML page.
MAX_ERROR_LENGTH = 4000

#: Largest id a ledger key can hold (BIGINT): a larger one names no row, on either database.
MAX_ID = 2**63 - 1

RowT = TypeVar("RowT", bound=Base)
#: the rows workers lease: a journey's next step, a webhook delivery
Claimable = TypeVar("Claimable", Journey, InboxEntry)
Result = TypeVar("Result")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC: the ledger's default clock."""
    return datetime.now(UTC)


def check_identifier(field: str, value: object, max_length: int) -> str:
    """`value` if it can be stored alike on SQLite and PostgreSQL as the column `field`:
    text, at most `max_length` characters, no NUL (PostgreSQL refuses it) and no lone
    surrogate (neither driver can encode it). Otherwise InvalidValue naming the field."""
    if not isinstance(value, str):
        raise InvalidValue(field, f"must be text, not {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidValue(field, f"is {len(value)} characters long; at most {max_length}")
    if "\x00" in value:
        raise InvalidValue(field, "contains a NUL character")
    if not _encodable(value):
        raise InvalidValue(field, "contains a lone surrogate (bytes that were not UTF-8)")
    return value


def check_text(field: str, value: object) -> str:
    """`value` if it is text a person typed: no lone surrogate (a 0xff byte on the command
    line), no NUL or other control character. Otherwise InvalidValue naming the field."""
    if not isinstance(value, str):
        raise InvalidValue(field, f"must be text, not {type(value).__name__}")
    if not _encodable(value):
        raise InvalidValue(field, "is not valid UTF-8 text (a byte that is not UTF-8)")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise InvalidValue(field, "contains a control character (NUL, newline, escape, ...)")
    return value


def check_id(kind: str, value: object) -> int:
    """An id as a ledger key: an int within BIGINT; InvalidValue otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{kind} id", f"must be an integer, not {type(value).__name__}")
    return value


def id_in_range(value: int) -> bool:
    """Whether `value` can name a row at all (beyond 64 bits it names none)."""
    return 0 < value <= MAX_ID


def ids_in_range(ids: Iterable[int]) -> list[int]:
    """The distinct ids among `ids` that can name a row, ascending (what a claim restricted to
    them may take; the rest name nothing)."""
    return sorted({row_id for row_id in ids if id_in_range(row_id)})


def row_by_id(session: Session, model: type[RowT], row_id: int, *, lock: bool) -> RowT | None:
    """The `model` row with id `row_id` (locked FOR UPDATE with `lock`), or None where there
    is none or `row_id` cannot name one (not an int, or beyond 64 bits)."""
    if not (isinstance(row_id, int) and id_in_range(row_id)):
        return None
    return session.get(model, row_id, with_for_update=lock)


def check_claim(worker: str, limit: int, lease_seconds: float) -> None:
    """Refuse a claim that could not be held: no worker's name, nothing to take, no lease."""
    check_identifier("worker", worker, 255)
    if not worker:
        raise ValueError("a claim needs the worker's name")
    if limit < 1:
        raise ValueError("claim limit must be at least 1")
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")


def claim_rows(
    session: Session, query: Select[Claimable], limit: int, worker: str, until: datetime
) -> Sequence[Claimable]:
    """Lease the first `limit` rows of the ordered `query` to `worker` until `until`.

    Rows a concurrent claim holds are skipped, never waited for (FOR UPDATE SKIP LOCKED on
    PostgreSQL), so any number of workers claim side by side, each row going to one of them.
    """
    rows = session.execute(query.limit(limit).with_for_update(skip_locked=True)).scalars().all()
    for row in rows:
        row.claimed_by = worker
        row.claimed_until = until
    session.flush()
    return rows


def _known_id(kind: str, value: object) -> int:
    """`value` as an id that may name a row; UnknownLead for one beyond 64 bits."""
    if not id_in_range(check_id(kind, value)):
        raise UnknownLead(f"no {kind} {value}")
    return value  # type: ignore[return-value]


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def aware(value: datetime, name: str) -> datetime:
    """`value` in UTC; a naive datetime is refused, since its zone would be a guess."""
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got {value!r})")
    return value.astimezone(UTC)


def next_due_at(state: JourneyState, requested: datetime | None, now: datetime) -> datetime | None:
    """When the reconciler should next look at a journey that just entered `state`."""
    if state in TERMINAL_STATES or state in AWAITING_FIX_STATES:
        return None
    return aware(requested, "due_at") if requested is not None else now


class LedgerCore:
    """The engine, sessions and shared in-session steps under every concern's operations."""

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
        # the transaction `batch()` opened on this thread, shared by the calls inside it
        self._batch = threading.local()

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
        with self._database_errors():
            migrate.upgrade(self.engine, revision)

    def downgrade(self, revision: str) -> None:
        """Migrate the schema down to `revision`; `base` leaves no ledger table behind."""
        with self._database_errors():
            migrate.downgrade(self.engine, revision)

    def current_revision(self) -> str | None:
        """The schema revision of the database; None when the ledger was never created there."""
        with self._database_errors():
            return migrate.current_revision(self.engine)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every ledger call this thread makes inside the block shares one transaction.

        Why: a journey step makes two or three ledger writes per vendor call; one transaction
        each cost more CPU than the vendor calls, and on SQLite they queued on the one write
        lock. A savepoint per call cost about as much again, so there is none: a call that
        raises (a claim lost, an effect in flight, a database error) spoils the batch instead.
        A spoiled batch stores nothing and raises BatchSpoiled at its end, after the block ran
        to its end, and its caller makes each call again alone (`GroupCommit`, `apply_moves`),
        so the failing call still undoes only itself. Nothing is committed, and so nothing may
        be acknowledged, before the block ends. Nested blocks join the outer one.
        """
        if getattr(self._batch, "session", None) is not None:
            yield
            return
        with self._database_errors(), self._write_sessions() as session:
            session.connection()
            self._batch.session = session
            self._batch.spoiled_by = None
            try:
                yield
                spoiled_by: BaseException | None = self._batch.spoiled_by
                if spoiled_by is not None:
                    raise BatchSpoiled(
                        f"a call of the batch raised {type(spoiled_by).__name__}: "
                        "nothing of the batch was stored; make its calls again alone"
                    )
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                self._batch.session = None
                self._batch.spoiled_by = None

    def batched(self, calls: Callable[[], Result]) -> Result:
        """`calls()` (a run of ledger calls) inside one `batch()`; should the batch be spoiled
        (one call raised) or its commit fail, nothing of it was stored, and `calls()` runs
        again with each ledger call in a transaction of its own, raising what a call raises
        then. For a loop of writes whose outcome does not depend on sharing a transaction."""
        try:
            with self.batch():
                return calls()
        except LedgerError:
            return calls()

    @contextmanager
    def _session(self, *, write: bool = True) -> Iterator[Session]:
        """One short transaction: committed on success, rolled back on any error, and every
        database error turned into a ledger error that carries no SQL parameters. Inside
        `batch()`, the batch's transaction, which the call spoils if it raises."""
        shared: Session | None = getattr(self._batch, "session", None)
        if shared is not None:
            # objects another call of the batch loaded may be stale: Core statements (the
            # effects' fast paths) change rows behind the identity map
            shared.expire_all()
            try:
                with self._database_errors():
                    yield shared
                    # written now: the next call's expire_all() would drop unflushed changes
                    shared.flush()
            except BaseException as error:
                # no savepoint undoes what this call wrote: the whole batch must not be stored
                if self._batch.spoiled_by is None:
                    self._batch.spoiled_by = error
                raise
            return
        factory = self._write_sessions if write else self._read_sessions
        with self._database_errors(), factory() as session:
            session.connection()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """Database and migration errors as one-line ledger errors, password masked, with no
        statement parameters and no chained driver error (its text holds the parameters)."""
        try:
            yield
        except LedgerError:
            raise
        except CommandError as exc:
            raise MigrationError(f"ledger migration failed: {mask_text(str(exc))}") from None
        except DBAPIError as exc:
            raise self._as_ledger_error(exc) from None
        except StatementError as exc:  # a value the driver could not send: no parameters shown
            cause = type(exc.orig).__name__ if exc.orig is not None else "StatementError"
            raise DatabaseRefused(
                f"the ledger database {describe_url(self._url)} could not take a value: {cause}"
            ) from None

    def _as_ledger_error(self, exc: DBAPIError) -> LedgerError:
        where = describe_url(self._url)
        if _is_missing_table(exc):
            return LedgerUnavailable(
                f"the ledger database {where} has no ledger schema yet: run `leadflow db upgrade`"
            )
        if isinstance(exc.orig, sqlite3.DatabaseError) and "not a database" in str(exc.orig):
            return LedgerUnavailable(
                f"cannot use the ledger database {where}: the file is not a SQLite database "
                "(is the path right?)"
            )
        if isinstance(exc, OperationalError | InterfaceError):
            detail = str(exc.orig if exc.orig is not None else exc).strip()
            first_line = detail.splitlines()[0] if detail else type(exc).__name__
            return LedgerUnavailable(
                f"cannot use the ledger database {where}: {mask_text(first_line)}"
            )
        return DatabaseRefused(f"the ledger database {where} refused: {_describe_refusal(exc)}")

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the ledger's clock must return aware datetimes")
        return now.astimezone(UTC)

    def _insert(self, session: Session, model: Any) -> postgresql.Insert | sqlite.Insert:
        """INSERT for the session's dialect, which knows ON CONFLICT."""
        return dialect_insert(session.get_bind().dialect.name, model)

    # -- look-ups inside a session ------------------------------------------------------------

    def _lead(self, session: Session, lead_id: int) -> Lead:
        check_id("lead", lead_id)
        lead = session.get(Lead, lead_id) if id_in_range(lead_id) else None
        if lead is None:
            raise UnknownLead(f"no lead {lead_id}")
        return lead

    def _journey_query(self, lead_id: int) -> Select[Journey]:
        return select(Journey).where(Journey.lead_id == lead_id)

    def _journey(self, session: Session, lead_id: int) -> Journey:
        _known_id("lead", lead_id)
        journey = session.execute(self._journey_query(lead_id)).scalar_one_or_none()
        if journey is None:
            self._raise_no_journey(session, lead_id)
        return journey

    def _lock_journey_or_none(self, session: Session, lead_id: int) -> Journey | None:
        _known_id("lead", lead_id)
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

    def _move(
        self,
        session: Session,
        journey: Journey,
        target: JourneyState,
        cause: Cause,
        reason: str | None,
        now: datetime,
        due_at: datetime | None = None,
    ) -> None:
        """Move a locked journey along one edge of the state machine and record the move;
        IllegalTransition (naming both states) if the machine has no such edge."""
        move = journey_move(journey, target, now, due_at)
        for name, value in move.columns.items():
            setattr(journey, name, value)
        session.add(JourneyTransition(**move.transition(journey.id, cause, reason)))


class LeadRow(Protocol):
    """What a LeadView is made of: an ORM Lead or a Core row of its columns (`get_leads`)."""

    @property
    def id(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def source_id(self) -> str: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    @property
    def normalized(self) -> dict[str, Any] | None: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def duplicate_of_lead_id(self) -> int | None: ...
    @property
    def duplicate_reason(self) -> str | None: ...


class JourneyRow(Protocol):
    """What a move or a release reads of a locked journey: an ORM Journey or a Core row."""

    @property
    def id(self) -> int: ...
    @property
    def lead_id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def dead_lettered_from(self) -> str | None: ...
    @property
    def claimed_by(self) -> str | None: ...
    @property
    def claimed_until(self) -> datetime | None: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def waiting_reason(self) -> str | None: ...


@dataclass(frozen=True)
class JourneyMove:
    """One move along an edge of the state machine: the state left, and every column a move
    sets (all of them on every move, so one prepared UPDATE serves every move)."""

    from_state: str
    state: str
    dead_lettered_from: str | None
    state_since: datetime
    due_at: datetime | None
    updated_at: datetime
    waiting_reason: None = None
    claimed_by: None = None
    claimed_until: None = None

    @property
    def columns(self) -> dict[str, Any]:
        """The journey's columns after the move, by name."""
        return {name: getattr(self, name) for name in MOVED_COLUMNS}

    def transition(self, journey_id: int, cause: Cause, reason: str | None) -> dict[str, Any]:
        """The move's row in the journey's history, by column (the ORM's and Core's alike)."""
        return {
            "journey_id": journey_id,
            "at": self.state_since,
            "from_state": self.from_state,
            "to_state": self.state,
            "cause": cause.value,
            "reason": reason,
        }


#: the journey columns a move sets: JourneyMove's fields but the state it left
MOVED_COLUMNS = tuple(field.name for field in fields(JourneyMove) if field.name != "from_state")


def journey_move(
    journey: JourneyRow, target: JourneyState, now: datetime, due_at: datetime | None
) -> JourneyMove:
    """The move of `journey` to `target`; IllegalTransition, naming both states, if the state
    machine has no such edge."""
    current = JourneyState(journey.state)
    origin = JourneyState(journey.dead_lettered_from) if journey.dead_lettered_from else None
    if not is_legal(current, target, origin):
        detail = None
        if current is JourneyState.DEAD_LETTERED and origin is not None:
            detail = f"it was dead-lettered from {origin.value!r}"
        raise IllegalTransition(current.value, target.value, journey.lead_id, detail)
    dead_lettered_from = journey.dead_lettered_from
    if target is JourneyState.DEAD_LETTERED:
        dead_lettered_from = current.value
    elif current is JourneyState.DEAD_LETTERED:
        dead_lettered_from = None
    return JourneyMove(
        from_state=current.value,
        state=target.value,
        dead_lettered_from=dead_lettered_from,
        state_since=now,
        due_at=next_due_at(target, due_at, now),
        updated_at=now,
    )


def dialect_insert(dialect: str, model: Any) -> postgresql.Insert | sqlite.Insert:
    """INSERT for the dialect named `dialect`, which knows ON CONFLICT."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def _is_missing_table(exc: DBAPIError) -> bool:
    """True for "no such table" (SQLite) or undefined_table (PostgreSQL): a database that was
    never migrated, which deserves a hint rather than a driver traceback."""
    if getattr(exc.orig, "sqlstate", None) == "42P01":
        return True
    return "no such table" in str(exc.orig)


def _describe_refusal(exc: DBAPIError) -> str:
    """What kind of refusal it was and where, from the driver's structured fields only:
    never its message's values nor the statement's parameters (a CPF, an e-mail)."""
    orig = exc.orig
    parts = [type(orig).__name__ if orig is not None else type(exc).__name__]
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        parts.append(f"SQLSTATE {sqlstate}")
    diag = getattr(orig, "diag", None)
    for label, attribute in (
        ("table", "table_name"),
        ("column", "column_name"),
        ("constraint", "constraint_name"),
    ):
        value = getattr(diag, attribute, None)
        if value:
            parts.append(f"{label} {value}")
    if isinstance(orig, sqlite3.Error):
        # SQLite's messages name tables and columns, not values; masked all the same
        parts.append(mask_text(str(orig).splitlines()[0] if str(orig) else ""))
    return ", ".join(part for part in parts if part)


# -- views ------------------------------------------------------------------------------------


def lead_view(lead: LeadRow) -> LeadView:
    """A lead as callers see it, from its ORM object or a row of its columns. An ORM object's
    raw payload is copied (the session's object must not change under the caller); a row's was
    decoded for this call alone, and every stage reads its batch's leads as rows."""
    normalized = (
        NormalizedLead.model_validate(lead.normalized) if lead.normalized is not None else None
    )
    return LeadView(
        lead_id=lead.id,
        source=lead.source,
        source_id=lead.source_id,
        raw=copy.deepcopy(lead.raw) if isinstance(lead, Lead) else lead.raw,
        normalized=normalized,
        received_at=lead.received_at,
        duplicate_of=lead.duplicate_of_lead_id,
        duplicate_reason=lead.duplicate_reason,
    )


def journey_view(journey: Journey) -> JourneyView:
    return JourneyView(
        journey_id=journey.id,
        lead_id=journey.lead_id,
        state=JourneyState(journey.state),
        due_at=journey.due_at,
        dead_lettered_from=(
            JourneyState(journey.dead_lettered_from) if journey.dead_lettered_from else None
        ),
        claimed_by=journey.claimed_by,
        claimed_until=journey.claimed_until,
        updated_at=journey.updated_at,
        state_since=journey.state_since or journey.created_at,
        waiting_reason=journey.waiting_reason,
    )


def effect_view(effect: Effect | Any) -> EffectView:
    """An effect as callers see it, from its ORM object or a row of its columns a statement
    returned. An ORM object's response is copied (the session's object must not change under
    the caller); a row's was decoded for this call alone."""
    response = copy.deepcopy(effect.response) if isinstance(effect, Effect) else effect.response
    return EffectView(
        key=effect.key,
        vendor=effect.vendor,
        operation=effect.operation,
        lead_id=effect.lead_id,
        status=EffectStatus(effect.status),
        vendor_object_id=effect.vendor_object_id,
        response=response,
        attempts=effect.attempts,
        last_error=effect.last_error,
        permanent=effect.permanent,
        lease_token=effect.lease_token,
        leased_until=effect.leased_until,
        created_at=effect.created_at,
        updated_at=effect.updated_at,
        orphan_candidates=tuple(effect.orphan_candidates or ()),
        note=effect.note,
    )


def inbox_view(entry: InboxEntry) -> InboxView:
    return InboxView(
        id=entry.id,
        vendor=entry.vendor,
        event_id=entry.event_id,
        body=bytes(entry.body),
        headers=copy.deepcopy(entry.headers),
        received_at=entry.received_at,
        processed_at=entry.processed_at,
        outcome=InboxOutcome(entry.outcome) if entry.outcome else None,
        reason=entry.reason,
        claimed_by=entry.claimed_by,
        claimed_until=entry.claimed_until,
    )


def quarantine_view(record: QuarantineRecord) -> QuarantineView:
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
