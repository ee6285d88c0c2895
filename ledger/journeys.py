"""Journeys and claims: where each lead stands, every move it made, which worker holds it, and
where each scheduled poll stopped (cursors).

Only `transition` (and `retry_dead_lettered`, and the gate's decisions in ledger.quarantine)
moves a journey; `claim` hands a reconciler batch to one worker under a lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from ledger._core import (
    MOVED_COLUMNS,
    JourneyRow,
    LedgerCore,
    _known_id,
    aware,
    check_claim,
    check_identifier,
    effect_view,
    ids_in_range,
    journey_move,
    journey_view,
)
from ledger.errors import ClaimLost, IllegalTransition
from ledger.models import Cursor, Effect, Journey, JourneyTransition
from ledger.prepared import Prepared
from ledger.states import Cause, EffectStatus, JourneyState, parse_cause, parse_state
from ledger.views import ClaimedJourney, EffectView, JourneyView, TransitionView


class JourneyOperations(LedgerCore):
    """Move, read, list and claim journeys; keep poll cursors."""

    def transition(
        self,
        lead_id: int,
        to_state: JourneyState | str,
        cause: Cause | str,
        reason: str | None = None,
        due_at: datetime | None = None,
        *,
        worker: str | None = None,
        expected_from: JourneyState | str | None = None,
    ) -> None:
        """Move the lead's journey to `to_state`, recording when, from, to, cause and reason.

        Only edges of the state machine (ledger.states) are allowed; any other raises
        IllegalTransition naming both states. The journey row is locked for the move, and its
        claim is cleared (the claimed step is over). `due_at` is when the next step is due:
        now by default; never for terminal states and states awaiting a fix. With `worker`,
        the move is refused with ClaimLost unless that worker still holds the journey. With
        `expected_from`, it is refused with IllegalTransition unless the journey still stands
        there (a webhook and the reconciler racing to make the same move: one of them wins).
        """
        target = parse_state(to_state)
        recorded_cause = parse_cause(cause)
        expected = parse_state(expected_from) if expected_from is not None else None
        with self._session() as session:
            now = self._now()
            # Core, prepared once: every step of every journey ends in this move
            journey = self._lock_journey_row(session, lead_id)
            if worker is not None:
                _check_claim(journey, worker, now)
            if expected is not None and journey.state != expected.value:
                raise IllegalTransition(
                    journey.state,
                    target.value,
                    lead_id,
                    f"expected the journey in {expected.value!r}; it moved meanwhile",
                )
            self._move_row(session, journey, target, recorded_cause, reason, now, due_at)

    def retry_dead_lettered(self, lead_id: int, reason: str) -> list[EffectView]:
        """Resume a dead-lettered journey at the step it failed in (cause manual), once a
        person fixed what the vendor refused.

        In the same transaction every permanently failed effect of the lead becomes a
        transient failure, so the step's next `begin_effect` starts a new attempt, with a
        look-up first (`needs_lookup`). Returns those effects as they are now. A journey that
        is not dead-lettered is IllegalTransition.
        """
        with self._session() as session:
            now = self._now()
            journey = self._lock_journey(session, lead_id)
            if journey.state != JourneyState.DEAD_LETTERED.value:
                raise IllegalTransition(
                    journey.state, "retry", lead_id, "only a dead-lettered journey is retried"
                )
            origin = JourneyState(journey.dead_lettered_from or JourneyState.RECEIVED.value)
            self._move(session, journey, origin, Cause.MANUAL, reason, now)
            failed = (
                session.execute(
                    select(Effect)
                    .where(
                        Effect.lead_id == lead_id,
                        Effect.status == EffectStatus.FAILED.value,
                        Effect.permanent.is_(True),
                    )
                    .order_by(Effect.id)
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            for effect in failed:
                effect.permanent = False
                effect.note = f"retry after dead letter: {reason}"
                effect.updated_at = now
            session.flush()
            return [effect_view(effect) for effect in failed]

    def journey_state(self, lead_id: int) -> JourneyState:
        """The state of the lead's journey."""
        return self.get_journey(lead_id).state

    def get_journey(self, lead_id: int) -> JourneyView:
        """The lead's journey: state, next due time, dead-letter origin, current claim."""
        with self._session(write=False) as session:
            return journey_view(self._journey(session, lead_id))

    def get_journeys(self, lead_ids: Iterable[int]) -> dict[int, JourneyView]:
        """The journeys of these leads, in one query, by lead id; a lead without a journey
        (unknown, or attached as a duplicate) is left out."""
        wanted = ids_in_range(lead_ids)
        if not wanted:
            return {}
        with self._session(write=False) as session:
            rows = session.execute(select(Journey).where(Journey.lead_id.in_(wanted))).scalars()
            return {row.lead_id: journey_view(row) for row in rows}

    def list_journeys(
        self,
        state: JourneyState | str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[JourneyView]:
        """Journeys, most recently moved first: all, or those in `state`, or those moved at or
        after `since` (what `leadflow journeys list` shows)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(Journey)
        if state is not None:
            query = query.where(Journey.state == parse_state(state).value)
        if since is not None:
            query = query.where(Journey.updated_at >= aware(since, "since"))
        query = query.order_by(Journey.updated_at.desc(), Journey.id.desc()).limit(limit)
        with self._session(write=False) as session:
            return [journey_view(row) for row in session.execute(query).scalars()]

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
                TransitionView(
                    row.at,
                    JourneyState(row.from_state),
                    JourneyState(row.to_state),
                    Cause(row.cause),
                    row.reason,
                )
                for row in rows
            ]

    def journey_counts(self) -> dict[JourneyState, int]:
        """How many journeys stand in each state (every state listed, zeros included): the
        picture a reconciler run or a dashboard starts from."""
        counts = dict.fromkeys(JourneyState, 0)
        with self._session(write=False) as session:
            rows = session.execute(
                select(Journey.state, func.count()).group_by(Journey.state)
            ).all()
        for state, count in rows:
            counts[JourneyState(state)] = count
        return counts

    # -- claims -------------------------------------------------------------------------------

    def claim(
        self,
        state: JourneyState | str,
        limit: int,
        worker: str,
        lease_seconds: float = 300,
        *,
        lead_ids: Sequence[int] | None = None,
    ) -> list[ClaimedJourney]:
        """Take up to `limit` journeys in `state` whose next step is due, oldest due first.

        With `lead_ids`, take exactly those leads' journeys that stand in `state`, due or not
        (a webhook or an ad-hoc call names the leads it acts on); ones another worker holds
        are still skipped. A claimed journey is held by `worker` until its lease ends
        (`claimed_until`), so a crashed worker's journeys become claimable again on their own.
        Claimed journeys are skipped, never waited for: on PostgreSQL `FOR UPDATE SKIP LOCKED`
        lets any number of workers claim side by side, each journey going to exactly one.
        """
        wanted = parse_state(state)
        check_claim(worker, limit, lease_seconds)
        with self._session() as session:
            now = self._now()
            query = select(*_CLAIMED_COLUMNS).where(
                JOURNEYS.c.state == wanted.value,
                or_(JOURNEYS.c.claimed_until.is_(None), JOURNEYS.c.claimed_until <= now),
            )
            if lead_ids is not None:
                ids = ids_in_range(lead_ids)
                if not ids:
                    return []
                query = query.where(JOURNEYS.c.lead_id.in_(ids)).order_by(JOURNEYS.c.id)
            else:
                query = query.where(JOURNEYS.c.due_at <= now).order_by(
                    JOURNEYS.c.due_at, JOURNEYS.c.id
                )
            until = now + timedelta(seconds=lease_seconds)
            # Core rows, one UPDATE for the batch: every stage of every journey starts here,
            # and loading ORM objects to flush one UPDATE each cost more than the claim itself
            connection = session.connection()
            journeys = connection.execute(
                query.limit(limit).with_for_update(skip_locked=True)
            ).all()
            if journeys:
                connection.execute(
                    _CLAIM_JOURNEYS,
                    {"ids": [journey.id for journey in journeys], "worker": worker, "until": until},
                )
            return [
                ClaimedJourney(
                    journey_id=journey.id,
                    lead_id=journey.lead_id,
                    state=JourneyState(journey.state),
                    due_at=journey.due_at,
                    dead_lettered_from=(
                        JourneyState(journey.dead_lettered_from)
                        if journey.dead_lettered_from
                        else None
                    ),
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
            until = now + timedelta(seconds=lease_seconds)
            journey.claimed_until = until
            return until

    def release(
        self,
        lead_id: int,
        worker: str,
        due_at: datetime | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        """Give back a claimed journey without moving it, optionally due again at `due_at`,
        recording why it stays (`reason`: "waiting for the client to sign", a vendor's 503).

        Raises ClaimLost if another worker holds it, or nobody does (the step was transitioned
        or the claim released before).
        """
        with self._session() as session:
            journey = self._lock_journey_row(session, lead_id)
            if journey.claimed_by != worker:
                raise ClaimLost(_claim_lost_message(journey, worker))
            _RELEASE_JOURNEY.all(
                session.connection(),
                {
                    "journey_id": journey.id,
                    "due_at": aware(due_at, "due_at") if due_at is not None else journey.due_at,
                    "waiting_reason": reason if reason is not None else journey.waiting_reason,
                    "updated_at": self._now(),
                },
            )

    def _move_row(
        self,
        session: Session,
        journey: JourneyRow,
        target: JourneyState,
        cause: Cause,
        reason: str | None,
        now: datetime,
        due_at: datetime | None = None,
    ) -> None:
        """`_move` for a journey read by `_lock_journey_row`: two statements on the driver's
        cursor (ledger/prepared.py)."""
        move = journey_move(journey, target, now, due_at)
        connection = session.connection()
        _MOVE_JOURNEY.all(connection, {"journey_id": journey.id, **move.columns})
        _RECORD_TRANSITION.all(connection, move.transition(journey.id, cause, reason))

    def _lock_journey_row(self, session: Session, lead_id: int) -> JourneyRow:
        """The lead's journey row, locked, read on the driver's cursor (ledger/prepared.py)."""
        journey = _LOCK_JOURNEY.first(
            session.connection(), {"wanted_lead": _known_id("lead", lead_id)}
        )
        if journey is None:
            self._raise_no_journey(session, lead_id)
        return journey

    # -- cursors ------------------------------------------------------------------------------

    def get_cursor(self, name: str) -> str | None:
        """Where the poll called `name` stopped (the Facebook cursor of one form); None before
        its first run."""
        check_identifier("cursor name", name, 255)
        with self._session(write=False) as session:
            # the welcome reads one per lead (when the client last wrote in): ledger/prepared.py
            cursor = _READ_CURSOR.first(session.connection(), {"wanted": name})
            return cursor.value if cursor is not None else None

    def set_cursor(self, name: str, value: str) -> None:
        """Record where the poll called `name` stopped; the next run starts from there."""
        check_identifier("cursor name", name, 255)
        if not isinstance(value, str):
            raise TypeError("a cursor's value is text")
        with self._session() as session:
            now = self._now()
            statement = self._insert(session, Cursor).values(name=name, value=value, updated_at=now)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"value": statement.excluded.value, "updated_at": now},
                )
            )


JOURNEYS: Table = Journey.__table__  # type: ignore[assignment]
TRANSITIONS: Table = JourneyTransition.__table__  # type: ignore[assignment]

_CURSORS: Table = Cursor.__table__  # type: ignore[assignment]
_READ_CURSOR = Prepared(
    lambda _: select(_CURSORS.c.value).where(_CURSORS.c.name == bindparam("wanted"))
)
#: what `claim` reads of each journey it takes
_CLAIMED_COLUMNS = (
    JOURNEYS.c.id,
    JOURNEYS.c.lead_id,
    JOURNEYS.c.state,
    JOURNEYS.c.due_at,
    JOURNEYS.c.dead_lettered_from,
)
_CLAIM_JOURNEYS = (
    update(JOURNEYS)
    .where(JOURNEYS.c.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_by=bindparam("worker"), claimed_until=bindparam("until"))
)
#: the journey row a move or a release reads, locked (FOR UPDATE; SQLite's write lock is the
#: transaction's own)
_LOCK_JOURNEY = Prepared(
    lambda _: (
        select(
            JOURNEYS.c.id,
            JOURNEYS.c.lead_id,
            JOURNEYS.c.state,
            JOURNEYS.c.dead_lettered_from,
            JOURNEYS.c.claimed_by,
            JOURNEYS.c.claimed_until,
            JOURNEYS.c.due_at,
            JOURNEYS.c.waiting_reason,
        )
        .where(JOURNEYS.c.lead_id == bindparam("wanted_lead"))
        .with_for_update()
    )
)
_MOVE_JOURNEY = Prepared(
    lambda _: (
        update(JOURNEYS)
        .where(JOURNEYS.c.id == bindparam("journey_id"))
        .values({name: bindparam(name) for name in MOVED_COLUMNS})
    )
)
_RECORD_TRANSITION = Prepared(
    lambda _: insert(TRANSITIONS).values(
        {
            name: bindparam(name)
            for name in ("journey_id", "at", "from_state", "to_state", "cause", "reason")
        }
    )
)
_RELEASE_JOURNEY = Prepared(
    lambda _: (
        update(JOURNEYS)
        .where(JOURNEYS.c.id == bindparam("journey_id"))
        .values(
            claimed_by=None,
            claimed_until=None,
            due_at=bindparam("due_at"),
            waiting_reason=bindparam("waiting_reason"),
            updated_at=bindparam("updated_at"),
        )
    )
)


def _check_claim(journey: JourneyRow, worker: str, now: datetime) -> None:
    holds = journey.claimed_by == worker and (
        journey.claimed_until is not None and journey.claimed_until > now
    )
    if not holds:
        raise ClaimLost(_claim_lost_message(journey, worker))


def _claim_lost_message(journey: JourneyRow, worker: str) -> str:
    holder = f"held by {journey.claimed_by!r}" if journey.claimed_by else "not claimed"
    return f"worker {worker!r} does not hold the journey of lead {journey.lead_id} ({holder})"
