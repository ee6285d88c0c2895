"""Stored webhook deliveries applied to journeys: what a vendor said becomes a transition.

The webhook service verified, stored and acknowledged each delivery (DESIGN.md, principle 2);
this task claims stored deliveries (the ones a trigger names, or every one never processed —
the reconciler's catch-up after a crash), parses them with webhooks/events.py and applies each
event:

| event | journey |
|---|---|
| Facebook `leadgen` | the lead is fetched from Graph and recorded (`received`) |
| Pipedrive deal won / lost | deal_open → deal_won / deal_lost |
| DocuSign envelope completed / declined, voided | contract_sent → contract_signed / _declined |
| Asaas PAYMENT_RECEIVED / PAYMENT_CONFIRMED | charge_open → paid |
| WhatsApp message failed | recorded on the send's effect, shown by `journeys show` |
| WhatsApp inbound message | the client's 24-hour window opens (the welcome may be free text) |

An event whose journey has not reached the state it moves from yet (a webhook faster than the
step that made the object) is left for later; one whose journey is already past it (the
reconciler read the vendor first) is marked ignored, as is an event for an object leadflow did
not make. A delivery is finished only once every event in it is applied or ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from blocks import PermanentError, VendorError
from leadflow.privacy import mask_text
from ledger import (
    ClaimLost,
    IllegalTransition,
    InboxOutcome,
    InboxView,
    JourneyState,
    LeadHasNoJourney,
    UnknownLead,
)
from tasks.billing import lead_of_payment_reference
from tasks.effects import vendor_message
from tasks.intake import record_graph_leads
from tasks.journey import StepContext, journey_task
from tasks.welcome import last_inbound_cursor
from webhooks.events import EventKind, MalformedDelivery, VendorEvent, parse_delivery

__all__ = ["AppliedDeliveries", "apply_deliveries", "claim_deliveries"]

S = JourneyState

#: the business order of the states an event can move a journey from
ORDER: tuple[JourneyState, ...] = (
    S.RECEIVED,
    S.QUALIFIED,
    S.DEAL_OPEN,
    S.DEAL_WON,
    S.CONTRACT_SENT,
    S.CONTRACT_SIGNED,
    S.CHARGE_OPEN,
    S.PAID,
    S.ACTIVATING,
    S.ACTIVATED,
    S.WELCOMED,
)

#: event kind → (the vendor write that made the object, the state it moves from, to)
MOVES: dict[EventKind, tuple[str, JourneyState, JourneyState]] = {
    EventKind.DEAL_WON: ("pipedrive", S.DEAL_OPEN, S.DEAL_WON),
    EventKind.DEAL_LOST: ("pipedrive", S.DEAL_OPEN, S.DEAL_LOST),
    EventKind.ENVELOPE_COMPLETED: ("docusign", S.CONTRACT_SENT, S.CONTRACT_SIGNED),
    EventKind.ENVELOPE_DECLINED: ("docusign", S.CONTRACT_SENT, S.CONTRACT_DECLINED),
    EventKind.ENVELOPE_VOIDED: ("docusign", S.CONTRACT_SENT, S.CONTRACT_DECLINED),
    EventKind.PAYMENT_RECEIVED: ("asaas", S.CHARGE_OPEN, S.PAID),
}

#: how many stored deliveries one run takes
BATCH = 500


@dataclass
class AppliedDeliveries:
    """What a run of `apply_deliveries` did: new leads, and journeys moved (by new state)."""

    new_leads: list[int] = field(default_factory=list)
    moved: dict[JourneyState, list[int]] = field(default_factory=dict)
    processed: int = 0
    ignored: int = 0
    deferred: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "ignored": self.ignored,
            "deferred": self.deferred,
            "new_leads": len(self.new_leads),
        }


class _Later(Exception):  # noqa: N818 - control flow: the event's journey is not there yet
    """The event's journey has not reached the state the event moves it from."""


def _lead_of(context: StepContext, vendor: str, event: VendorEvent) -> int | None:
    if event.kind is EventKind.PAYMENT_RECEIVED:
        from_reference = lead_of_payment_reference(event.reference)
        if from_reference is not None:
            return from_reference
    elif event.reference and event.reference.isdigit():
        return int(event.reference)
    if event.object_id is None:
        return None
    return context.ledger.lead_for_vendor_object(vendor, event.object_id)


def _apply_move(context: StepContext, event: VendorEvent, result: AppliedDeliveries) -> str:
    vendor, origin, target = MOVES[event.kind]
    lead_id = _lead_of(context, vendor, event)
    if lead_id is None:
        return f"ignored: {vendor} object {event.object_id} was not made by leadflow"
    try:
        state = context.ledger.get_journey(lead_id).state
    except (UnknownLead, LeadHasNoJourney):
        return f"ignored: lead {lead_id} has no journey"
    if state == origin:
        try:
            context.ledger.transition(
                lead_id,
                target,
                context.cause,
                f"{vendor} webhook: {event.kind}",
                expected_from=origin,
            )
        except IllegalTransition:  # moved by the reconciler meanwhile
            return f"ignored: lead {lead_id} moved on meanwhile"
        result.moved.setdefault(target, []).append(lead_id)
        return f"applied: lead {lead_id} {origin} → {target}"
    if state in ORDER and ORDER.index(state) < ORDER.index(origin):
        raise _Later(f"lead {lead_id} is still {state}")
    return f"ignored: lead {lead_id} is already {state}"


def _apply_event(context: StepContext, event: VendorEvent, result: AppliedDeliveries) -> str:
    if event.kind in MOVES:
        return _apply_move(context, event, result)
    if event.kind is EventKind.LEAD_CREATED:
        return "lead"  # fetched from Graph by the caller (async)
    if event.kind is EventKind.MESSAGE_FAILED and event.object_id:
        errors = ", ".join(
            f"{e.get('code')} {e.get('title')}" for e in event.details.get("errors") or []
        )
        noted = context.ledger.note_effect_by_vendor_object(
            "whatsapp", event.object_id, f"WhatsApp says the message failed: {mask_text(errors)}"
        )
        return "applied: failure recorded" if noted else "ignored: not a message leadflow sent"
    if event.details.get("inbound") and event.details.get("from"):
        moment = event.details.get("timestamp")
        when = (
            datetime.fromtimestamp(int(str(moment)), UTC)
            if str(moment or "").isdigit()
            else datetime.now(UTC)
        )
        context.ledger.set_cursor(last_inbound_cursor(str(event.details["from"])), when.isoformat())
        return "applied: the client's 24-hour window is open"
    return f"ignored: {event.kind} needs nothing"


async def claim_deliveries(
    context: StepContext, inbox_ids: Sequence[int] | None = None
) -> list[InboxView]:
    """The named stored deliveries, or up to a batch of those never processed, for this worker
    alone (another worker's claim is skipped)."""
    return await asyncio.to_thread(
        context.ledger.claim_inbox,
        BATCH,
        context.worker,
        ids=inbox_ids,
        lease_seconds=context.business.timing.claim_lease_seconds,
    )


def _finish(context: StepContext, entry: InboxView, outcome: InboxOutcome, reason: str) -> None:
    """Record how the delivery ended. If this worker's claim ran out meanwhile (a long batch)
    and nobody processed it since, it is recorded all the same: its events were applied, and a
    transition refuses a second application anyway."""
    try:
        context.ledger.finish_inbox(entry.id, context.worker, outcome, reason[:1000])
    except ClaimLost:
        if context.ledger.get_inbox(entry.id).processed_at is None:
            context.ledger.mark_inbox_processed(entry.id)


async def _apply_delivery(
    context: StepContext, entry: InboxView, result: AppliedDeliveries
) -> None:
    try:
        events = parse_delivery(entry.vendor, entry.body)
    except MalformedDelivery as error:
        await asyncio.to_thread(_finish, context, entry, InboxOutcome.IGNORED, str(error))
        result.ignored += 1
        return
    notes: list[str] = []
    try:
        for event in events:
            if event.kind is EventKind.LEAD_CREATED and event.object_id:
                facebook = await context.client("facebook")
                try:
                    lead = await facebook.get_lead(event.object_id)
                except PermanentError as refused:  # deleted at Facebook, say: nothing to take
                    notes.append(f"ignored: lead {event.object_id}: {vendor_message(refused)}")
                    continue
                except VendorError as error:  # Graph unreachable for now: this delivery waits
                    raise _Later(str(error)) from error
                new = await asyncio.to_thread(record_graph_leads, context, [lead])
                result.new_leads += new
                notes.append(
                    f"applied: lead {event.object_id} recorded"
                    if new
                    else "ignored: lead already recorded"
                )
            else:
                notes.append(await asyncio.to_thread(_apply_event, context, event, result))
    except _Later:  # left unprocessed: the next run (or the reconciler) applies it
        with contextlib.suppress(ClaimLost):  # a claim that ran out is free again anyway
            await asyncio.to_thread(context.ledger.release_inbox, entry.id, context.worker)
        result.deferred += 1
        return
    applied = any(note.startswith("applied") for note in notes)
    outcome = InboxOutcome.PROCESSED if applied else InboxOutcome.IGNORED
    await asyncio.to_thread(_finish, context, entry, outcome, "; ".join(notes))
    if applied:
        result.processed += 1
    else:
        result.ignored += 1


@journey_task("apply-deliveries")
async def apply_deliveries(context: StepContext, entries: list[InboxView]) -> AppliedDeliveries:
    """Apply claimed stored deliveries to their journeys, in arrival order."""
    result = AppliedDeliveries()
    for entry in entries:  # in arrival order: a vendor's events for one object stay in order
        await _apply_delivery(context, entry, result)
    return result
