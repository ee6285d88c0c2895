"""The reconciler and the webhook path: how every journey keeps moving.

`handle_deliveries` is what the webhook service triggers for stored deliveries: it applies the
vendors' news to journeys (tasks/deliveries.py) and runs, for those journeys only, the stage
that comes next — a signed contract is billed seconds after DocuSign says so.

`lead_to_cash` is the scheduled reconciler (DESIGN.md, principle 6): it applies every stored
delivery never processed (a crash between acknowledging and triggering loses nothing), then runs
every stage once over the journeys due, and the intake of received leads last. Stages that wait
on a person read the vendor for journeys whose webhook never came, so a lost webhook only delays
a journey. It is one flow run whose stages are steps, not sub-flows: idle, it costs a few claims
that find nothing.

`replay_quarantine` sends corrected quarantine records back through the gate, and the leads
that now pass on into Pipedrive.
"""

from __future__ import annotations

import asyncio

from prefect import flow

from flows.stages import STAGES, run_intake, run_stage
from ledger import Cause, JourneyState
from tasks.deliveries import AppliedDeliveries, apply_deliveries, claim_deliveries
from tasks.journey import StepContext, open_step_context, unwalked
from tasks.quality_gate import replay_quarantined
from tasks.report import StageReport, publish_report

__all__ = ["handle_deliveries", "lead_to_cash", "replay_quarantine"]

S = JourneyState

#: the stage that takes a journey on from the state a webhook moved it to
NEXT_STAGE = {S.DEAL_WON: "contracts", S.CONTRACT_SIGNED: "billing", S.PAID: "activation"}


async def _apply(context: StepContext, inbox_ids: list[int] | None) -> AppliedDeliveries:
    entries = await claim_deliveries(context, inbox_ids)
    if not entries:
        return AppliedDeliveries()
    return await apply_deliveries(unwalked(context), unwalked(entries))


async def _next_stages(context: StepContext, applied: AppliedDeliveries) -> list[StageReport]:
    reports = []
    if applied.new_leads:
        reports.append(await run_intake(context, lead_ids=applied.new_leads))
    for state, stage in NEXT_STAGE.items():
        if applied.moved.get(state):
            reports.append(await run_stage(context, stage, applied.moved[state]))
    return reports


@flow(name="handle-deliveries")
async def handle_deliveries(inbox_ids: list[int] | None = None) -> dict[str, int]:
    """Apply stored webhook deliveries (the named ones, or every one never processed) and run
    the next stage for the journeys they moved."""
    async with open_step_context(Cause.WEBHOOK) as context:
        applied = await _apply(context, inbox_ids)
        for report in await _next_stages(context, applied):
            await publish_report(report)
    return applied.summary()


@flow(name="lead-to-cash")
async def lead_to_cash() -> dict[str, int]:
    """Advance every journey whose next step is due, once; the journeys per state after it."""
    async with open_step_context(Cause.WEBHOOK) as context:
        for report in await _next_stages(context, await _apply(context, None)):
            await publish_report(report)
        context.cause = Cause.RECONCILE
        for stage in STAGES:
            await publish_report(await run_stage(context, stage))
        # received leads are gated (the forms are polled by the intake deployment's schedule)
        # after the stages, so the deals stage does not read back deals opened in this run
        await publish_report(await run_intake(context, poll=False))
        counts = await asyncio.to_thread(context.ledger.journey_counts)
    return {str(state): count for state, count in counts.items() if count}


@flow(name="replay-quarantine")
async def replay_quarantine(quarantine_ids: list[int] | None = None) -> dict[str, int]:
    """Corrected quarantine records (all open ones when none are named) through the gate again;
    the leads that pass go on into Pipedrive."""
    async with open_step_context(Cause.MANUAL) as context:
        outcome = await asyncio.to_thread(replay_quarantined, context.ledger, quarantine_ids)
        if outcome.qualified:
            await publish_report(await run_stage(context, "deals", outcome.qualified))
    return {
        "qualified": len(outcome.qualified),
        "quarantined": len(outcome.quarantined),
        "duplicates": len(outcome.duplicates),
    }
