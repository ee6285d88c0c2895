"""The journey's stages, each a flow that reads like the business process.

Each stage takes the journeys due in its states (claimed from the ledger, a bounded batch) or
the lead ids it is given, runs one task per business operation over them, and publishes a
markdown artifact of what moved, what waits and why. Run them from Python
(`from flows import intake; intake(leads=[...])`), from a deployment's schedule, or from the
webhook service; all end in the same tasks (DESIGN.md, principle 6).

A stage's steps are also plain coroutines (`STEPS`), so the reconciler runs every stage inside
one flow run: a flow run costs far more than a claim that finds nothing (DESIGN.md, principle 8),
and a task is started only for a batch that is not empty.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prefect import Flow, flow

from ledger import Cause, JourneyState
from tasks.activation import activate_service, check_activation
from tasks.billing import charge_by_pix, check_payments
from tasks.contracts import check_contracts, send_contract
from tasks.deals import check_deals, upsert_person_and_deal
from tasks.intake import extract_leads, record_adhoc_leads
from tasks.journey import Move, StepContext, claim_due, open_step_context, unwalked
from tasks.quality import qualify
from tasks.report import StageReport, publish_report
from tasks.welcome import welcome as welcome_clients

__all__ = [
    "STAGES",
    "activation",
    "billing",
    "contracts",
    "deals",
    "intake",
    "run_stage",
    "welcome",
]

S = JourneyState
Step = Callable[[StepContext, list[Any]], Awaitable[list[Move]]]

#: stage → its steps, each (the state it takes journeys from, the task that moves them). Where
#: a step waits on a person (an open deal, a sent contract, an open charge), that read runs first:
#: what the stage makes next cannot have been answered yet, so reading it back in the same run
#: would only cost a vendor call per journey. Activation polls after activating: a machine, not
#: a person, builds the site, and it may be live at once.
STAGES: dict[str, tuple[tuple[JourneyState, Step], ...]] = {
    "deals": ((S.DEAL_OPEN, check_deals), (S.QUALIFIED, upsert_person_and_deal)),
    "contracts": ((S.CONTRACT_SENT, check_contracts), (S.DEAL_WON, send_contract)),
    "billing": ((S.CHARGE_OPEN, check_payments), (S.CONTRACT_SIGNED, charge_by_pix)),
    "activation": ((S.PAID, activate_service), (S.ACTIVATING, check_activation)),
    "welcome": ((S.ACTIVATED, welcome_clients),),
}


async def run_stage(
    context: StepContext, stage: str, lead_ids: list[int] | None = None
) -> StageReport:
    """One stage's steps over the journeys due (or named); a task only for a non-empty batch."""
    report = StageReport(stage)
    for state, step in STAGES[stage]:
        journeys = await claim_due(context, state, lead_ids)
        if journeys:
            report.moves += await step(unwalked(context), unwalked(journeys))
    return report


def _cause(lead_ids: list[int] | None) -> Cause:
    """Leads named by a caller were asked for (a person or a webhook); otherwise the run is
    the scheduled reconciler's."""
    return Cause.MANUAL if lead_ids else Cause.RECONCILE


@flow(name="intake")
async def intake(
    leads: list[dict[str, Any]] | None = None,
    lead_ids: list[int] | None = None,
    poll: bool | None = None,
) -> StageReport:
    """New leads: recorded, gated (bad ones quarantined), then a Pipedrive person and deal.

    With `leads`, those leads (form answers as dicts) are recorded and carried through; with
    `lead_ids`, those recorded leads; with neither, every configured Facebook form is polled.
    """
    cause = Cause.MANUAL if leads or lead_ids else Cause.POLL
    async with open_step_context(cause) as context:
        return await publish_report(await run_intake(context, leads, lead_ids, poll))


async def run_intake(
    context: StepContext,
    leads: list[dict[str, Any]] | None = None,
    lead_ids: list[int] | None = None,
    poll: bool | None = None,
) -> StageReport:
    report = StageReport("intake")
    ids = list(lead_ids or [])
    if leads:
        ids += await record_adhoc_leads(unwalked(context), unwalked(leads))
    if poll if poll is not None else not ids:
        ids += await extract_leads(unwalked(context))
    if received := await claim_due(context, S.RECEIVED, ids or None):
        report.moves += await qualify(unwalked(context), unwalked(received))
    if qualified := await claim_due(context, S.QUALIFIED, ids or None):
        report.moves += await upsert_person_and_deal(unwalked(context), unwalked(qualified))
    return report


def _stage_flow(stage: str, description: str) -> Flow[..., Awaitable[StageReport]]:
    """The flow of one of STAGES: its steps over the journeys due, or over the leads named (then
    asked for by a person or a webhook), and the report published as the run's artifact."""

    async def run(lead_ids: list[int] | None = None) -> StageReport:
        async with open_step_context(_cause(lead_ids)) as context:
            return await publish_report(await run_stage(context, stage, lead_ids))

    run.__name__ = run.__qualname__ = stage
    run.__doc__ = description
    return flow(name=stage)(run)


deals = _stage_flow(
    "deals", "Qualified leads into Pipedrive; open deals read for their outcome (won or lost)."
)
contracts = _stage_flow(
    "contracts", "Won deals get a DocuSign contract; sent contracts are read for a signature."
)
billing = _stage_flow(
    "billing",
    "Signed contracts get an Asaas PIX charge, its code sent by WhatsApp; open charges are "
    "read for a payment.",
)
activation = _stage_flow(
    "activation",
    "Paid clients get their Hostinger website; sites being built are polled until live.",
)
welcome = _stage_flow(
    "welcome",
    "Live clients are welcomed on WhatsApp, and their deal gets a note with every vendor id.",
)
