"""What every journey step shares: who is running it, against which vendors, and how a step's
per-lead outcome (a `Move`) becomes a journey transition in the ledger.

A stage flow claims a batch of journeys (the ledger's lease keeps other workers off them), hands
them to one task per business operation, and that task works through the batch with bounded
concurrency (DESIGN.md, principle 8) — one Prefect task run per operation per batch, never per
lead. Each lead's outcome is a `Move`:

- `advance(lead, to_state, reason)`: the step is done; the journey moves on;
- `wait(lead, reason, recheck_in)`: a person has to act (win the deal, sign, pay) or the vendor is
  still working (the site being built): the journey stays and is due again later;
- `retry(lead, reason)`: a transient failure; due again after a backoff;
- `dead_letter(lead, reason)`: a permanent vendor error or missing data; a person fixes the
  cause and `leadflow journeys retry ID` resumes the step;
- `busy(lead)`: another worker holds the write; due again soon.

Nothing here sleeps: every wait is a `due_at` in the ledger, which the reconciler honours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, cast
from uuid import uuid4

from blocks.http import calls_in_flight
from leadflow.business import BusinessConfig, get_business
from leadflow.privacy import mask_text
from leadflow.settings import get_settings
from ledger import (
    Cause,
    ClaimedJourney,
    ClaimLost,
    IllegalTransition,
    JourneyState,
    LeadView,
    Ledger,
    shared_ledger,
)
from tasks.effects import Effected, EffectResult, Recorded, VendorWrite, perform

__all__ = [
    "LEADS_PER_CALL",
    "VENDOR_CREDENTIALS",
    "Move",
    "MoveKind",
    "StepContext",
    "apply_moves",
    "claim_due",
    "each_journey",
    "each_lead",
    "for_each",
    "journey_task",
    "move_from_effect",
    "open_step_context",
]

T = TypeVar("T")

#: vendor → the credentials Block type's module attribute (loaded lazily: Prefect is slow to import)
VENDOR_CREDENTIALS: dict[str, str] = {
    "facebook": "FacebookLeadAdsCredentials",
    "pipedrive": "PipedriveCredentials",
    "docusign": "DocuSignCredentials",
    "asaas": "AsaasCredentials",
    "hostinger": "HostingerCredentials",
    "whatsapp": "WhatsAppCredentials",
}


class MoveKind(StrEnum):
    ADVANCE = "advance"
    WAIT = "wait"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    BUSY = "busy"


@dataclass(frozen=True)
class Move:
    """One lead's outcome of one step."""

    lead_id: int
    kind: MoveKind
    reason: str
    to_state: JourneyState | None = None
    recheck_in: float | None = None  # seconds; for WAIT, RETRY and BUSY
    path: tuple[JourneyState, ...] = ()  # intermediate states an ADVANCE passes through

    @classmethod
    def advance(
        cls,
        lead_id: int,
        to_state: JourneyState,
        reason: str,
        *via: JourneyState,
        recheck_in: float | None = None,
    ) -> Move:
        """Done: move to `to_state` (through `via` first), next step due in `recheck_in`."""
        return cls(lead_id, MoveKind.ADVANCE, reason, to_state, recheck_in, path=via)

    @classmethod
    def wait(cls, lead_id: int, reason: str, recheck_in: float) -> Move:
        return cls(lead_id, MoveKind.WAIT, reason, recheck_in=recheck_in)

    @classmethod
    def retry(cls, lead_id: int, reason: str, recheck_in: float) -> Move:
        return cls(lead_id, MoveKind.RETRY, reason, recheck_in=recheck_in)

    @classmethod
    def dead_letter(cls, lead_id: int, reason: str) -> Move:
        return cls(lead_id, MoveKind.DEAD_LETTER, reason, JourneyState.DEAD_LETTERED)

    @classmethod
    def busy(cls, lead_id: int, reason: str, recheck_in: float = 5.0) -> Move:
        return cls(lead_id, MoveKind.BUSY, reason, recheck_in=recheck_in)


@dataclass
class StepContext:
    """Everything a step needs, built once per flow run: the ledger, the business's choices,
    this worker's name for claims, the cause its transitions record, and vendor clients opened
    on first use and closed when the flow run ends."""

    ledger: Ledger
    business: BusinessConfig
    worker: str
    cause: Cause
    credentials: Mapping[str, Any] | None = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _client_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def client(self, vendor: str) -> Any:
        """The vendor's client, from the Block named in leadflow.toml (`blocks`), or from the
        credentials given to the flow (tests, the demo)."""
        async with self._client_lock:
            if vendor not in self._clients:
                block = await self._credentials(vendor)
                self._clients[vendor] = await self._stack.enter_async_context(block.get_client())
            return self._clients[vendor]

    async def _credentials(self, vendor: str) -> Any:
        if self.credentials is not None and vendor in self.credentials:
            return self.credentials[vendor]
        import blocks

        block_type = getattr(blocks, VENDOR_CREDENTIALS[vendor])
        return await block_type.load(self.business.blocks)

    async def perform(self, write: VendorWrite[Any]) -> Effected:
        """One vendor write through the effect protocol, with this business's lease."""
        return await perform(
            self.ledger, write, lease_seconds=self.business.timing.effect_lease_seconds
        )

    def backoff(self, attempt: int) -> float:
        timing = self.business.timing
        return float(
            min(timing.retry_cap_seconds, timing.retry_base_seconds * 2 ** max(attempt - 1, 0))
        )

    async def aclose(self) -> None:
        await self._stack.aclose()


def worker_name() -> str:
    """A name unique to this process and flow run, for the ledger's claims."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"


@asynccontextmanager
async def open_step_context(
    cause: Cause,
    *,
    credentials: Mapping[str, Any] | None = None,
    business: BusinessConfig | None = None,
    ledger: Ledger | None = None,
) -> AsyncIterator[StepContext]:
    context = StepContext(
        ledger=ledger or shared_ledger(get_settings().database_url),
        business=business or get_business(),
        worker=worker_name(),
        cause=cause,
        credentials=credentials,
    )
    try:
        yield context
    finally:
        await context.aclose()


#: leads a step works on at once per vendor call it keeps in flight (see `for_each`)
LEADS_PER_CALL = 2


async def for_each(
    items: Iterable[T],
    step: Callable[[T], Awaitable[Move]],
    concurrency: int,
    *,
    vendors: tuple[str, ...] = (),
    retry_in: float = 30.0,
) -> list[Move]:
    """Run `step` over the batch with at most `concurrency` vendor calls in flight, on up to
    `LEADS_PER_CALL` times as many items at once. A step that raises is turned into a retry for
    its lead alone (the rest of the batch goes on); the error is masked.

    Why more items than calls: each lead's step also writes to the ledger (begin and complete
    every effect), and a call slot held by a lead waiting on the ledger is a slot the vendor
    does not use. With one lead per slot, a 1,000-lead journey against a 20 ms sandbox took
    about a tenth longer (bench_journey); the vendors still see `concurrency` calls at most.

    While the batch runs it holds `concurrency` of each vendor's global slots (Prefect global
    concurrency limits made by `leadflow setup`), so all workers together stay under the vendor's
    published limit; without the limits (no setup, no server) nothing waits.
    """
    items = list(items)
    if not items:
        return []
    from deployments.limits import vendor_slot  # the Prefect side of scale-out (issue 13)

    async with contextlib.AsyncExitStack() as slots:
        for vendor in vendors:
            await slots.enter_async_context(vendor_slot(vendor, occupy=concurrency))
        return await _run_bounded(items, step, concurrency, retry_in)


async def _run_bounded(
    items: list[T], step: Callable[[T], Awaitable[Move]], concurrency: int, retry_in: float
) -> list[Move]:
    gate = asyncio.Semaphore(concurrency * LEADS_PER_CALL)

    async def one(item: T) -> Move:
        async with gate:
            try:
                return await step(item)
            except Exception as error:  # one lead's failure must not stop the batch
                lead_id = getattr(item, "lead_id", None)
                if lead_id is None:
                    raise
                return _move_for_error(lead_id, error, retry_in)

    with calls_in_flight(concurrency):  # the tasks gather makes inherit the cap
        return list(await asyncio.gather(*(one(item) for item in items)))


def _move_for_error(lead_id: int, error: Exception, retry_in: float) -> Move:
    """A read that failed: permanent vendor errors dead-letter, anything else retries (after
    the vendor's Retry-After, or the business's backoff)."""
    from blocks import PermanentError, VendorError

    reason = mask_text(str(error))[:1000]
    if isinstance(error, PermanentError):
        return Move.dead_letter(lead_id, reason)
    if isinstance(error, VendorError):
        delay = float(getattr(error, "retry_after", None) or retry_in)
        return Move.retry(lead_id, reason, delay)
    return Move.retry(lead_id, f"{type(error).__name__}: {reason}", retry_in)


def move_from_effect(
    context: StepContext, lead_id: int, effected: Effected, what: str, attempt: int = 1
) -> Move | None:
    """The move a failed vendor write makes; None when the write succeeded (the step goes on)."""
    if effected.ok:
        return None
    if effected.result is EffectResult.PERMANENT:
        return Move.dead_letter(lead_id, f"{what}: {effected.error}")
    if effected.result is EffectResult.IN_FLIGHT:
        return Move.busy(lead_id, f"{what}: another worker is calling the vendor")
    delay = context.backoff(attempt)
    if effected.retry_after is not None:
        delay = max(delay, float(effected.retry_after))
    return Move.retry(lead_id, f"{what}: {effected.error}", delay)


def _due(seconds: float | None) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds or 0.0)


def _advance(context: StepContext, journey: ClaimedJourney, move: Move, worker: str | None) -> None:
    """Move the journey along `move`'s path; the first transition checks `worker`'s claim (or,
    without a worker, that the journey still stands where it was claimed)."""
    assert move.to_state is not None
    expected: JourneyState | None = None if worker else journey.state
    for state in (*move.path, move.to_state):
        due = _due(move.recheck_in) if state is move.to_state and move.recheck_in else None
        context.ledger.transition(
            move.lead_id,
            state,
            context.cause,
            move.reason,
            due,
            worker=worker,
            expected_from=expected,
        )
        worker, expected = None, None


def _apply_one(context: StepContext, journey: ClaimedJourney, move: Move) -> bool:
    try:
        if move.kind in {MoveKind.ADVANCE, MoveKind.DEAD_LETTER}:
            try:
                _advance(context, journey, move, context.worker)
            except ClaimLost:
                # the step outlived the claim's lease: its work is recorded in the ledger's
                # effects, so the move still stands unless the journey moved meanwhile
                _advance(context, journey, move, None)
        else:
            context.ledger.release(
                move.lead_id, context.worker, _due(move.recheck_in), reason=move.reason[:2000]
            )
    except (ClaimLost, IllegalTransition):
        # another worker or a webhook moved the journey meanwhile: that move stands; a release
        # whose lease ran out leaves the journey due, and the next run takes it up again
        return False
    return True


async def apply_moves(
    context: StepContext, journeys: Iterable[ClaimedJourney], moves: Iterable[Move]
) -> list[Move]:
    """Record every move in the ledger (in a worker thread: the ledger is synchronous)."""
    by_lead = {journey.lead_id: journey for journey in journeys}
    moves = list(moves)

    def record_all() -> list[Move]:
        return [move for move in moves if _apply_one(context, by_lead[move.lead_id], move)]

    # one transaction for the batch's moves; should one of them raise (a claim lost, a journey
    # moved meanwhile) or the commit fail, each move is recorded alone
    recorded = await asyncio.to_thread(context.ledger.batched, record_all)
    dead = [move for move in recorded if move.kind is MoveKind.DEAD_LETTER]
    if dead:
        from deployments.alerts import alert_dead_lettered  # one alert per journey stopped

        for move in dead:
            await alert_dead_lettered(move.lead_id, str(by_lead[move.lead_id].state), move.reason)
    return moves


async def claim_due(
    context: StepContext, state: JourneyState, lead_ids: list[int] | None = None
) -> list[ClaimedJourney]:
    """Journeys in `state` for this worker: the named ones (due or not), or a batch of those
    whose next step is due. Journeys another worker holds are skipped, never waited for."""
    return await asyncio.to_thread(
        context.ledger.claim,
        state,
        context.business.batch_size,
        context.worker,
        context.business.timing.claim_lease_seconds,
        lead_ids=lead_ids,
    )


def unwalked(value: T) -> T:
    """`value` as a task's argument that Prefect hands over without walking it.

    Why: before a task runs, Prefect visits every element of its arguments to find upstream
    futures and states; over a batch of a thousand claimed journeys and the step's context
    that cost more CPU per lead than a ledger write. A journey step's arguments are plain
    data made by the flow itself, never futures, so there is nothing to find
    (`prefect.utilities.annotations.quote`, documented for large arguments).
    """
    from prefect.utilities.annotations import quote

    return cast(T, quote(value))


def journey_task(name: str, *vendors: str) -> Callable[[Any], Any]:
    """A journey step's Prefect task: tagged per vendor; no cache (its inputs are a live
    context and claimed journeys, and its writes are made exactly once by the ledger, not by
    Prefect's cache); retried as a whole only when infrastructure failed, never on top of the
    HTTP policy's own retries (tasks/retrying.py)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    from tasks.retrying import retry_infrastructure_only

    return task(
        name=name,
        tags=list(vendors),
        cache_policy=NO_CACHE,
        retries=2,
        retry_delay_seconds=5,
        retry_condition_fn=retry_infrastructure_only,
    )


async def each_lead(
    context: StepContext,
    journeys: list[ClaimedJourney],
    step: Callable[[LeadView, Recorded], Awaitable[Move]],
    *vendors: str,
) -> list[Move]:
    """`each_journey`, the step given each journey's lead (the batch's leads read in one
    query) instead of the journey."""
    if not journeys:
        return []
    leads = await asyncio.to_thread(context.ledger.get_leads, [j.lead_id for j in journeys])
    return await each_journey(
        context,
        journeys,
        lambda journey, recorded: step(leads[journey.lead_id], recorded),
        *vendors,
    )


async def each_journey(
    context: StepContext,
    journeys: list[ClaimedJourney],
    step: Callable[[ClaimedJourney, Recorded], Awaitable[Move]],
    *vendors: str,
) -> list[Move]:
    """Run `step` on each claimed journey and what earlier steps recorded for it (the batch's
    effects read in one query, not a ledger call per lead: see `Recorded`), holding the vendors'
    slots, and record every move."""
    if not journeys:
        return []
    effects = await asyncio.to_thread(
        context.ledger.effects_for_leads, [j.lead_id for j in journeys]
    )

    def run(journey: ClaimedJourney) -> Awaitable[Move]:
        return step(journey, Recorded(journey.lead_id, tuple(effects.get(journey.lead_id, ()))))

    moves = await for_each(
        journeys, run, context.business.concurrency, vendors=vendors, retry_in=context.backoff(1)
    )
    return await apply_moves(context, journeys, moves)
