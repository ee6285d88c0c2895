"""The welcome: the client hears that the service is live, and the salesperson sees it all.

`welcome` (activated → welcomed), per client:
- a WhatsApp welcome: free text when the client wrote to the business in the last 24 hours
  (the customer-service window, contracts README §6.4), an approved template otherwise; at most
  once, like every WhatsApp send (see tasks/billing.py for why);
- a note on the Pipedrive deal listing every vendor id of the journey (person, deal, envelope,
  customer, charge, website, messages), marked with the lead id so a rerun finds it instead of
  adding a second one;
- the deal moved to the configured stage (a PATCH: doing it twice changes nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from blocks.pipedrive_models import DealUpdate, Note, NoteCreate
from blocks.whatsapp import SendResult, TemplateComponent, TemplateParameter
from ledger import ClaimedJourney, JourneyState, LeadView
from tasks.activation import WEBSITE
from tasks.deals import deal_id_of
from tasks.effects import Effected, Recorded, UnknownOutcome, VendorWrite, in_ledger
from tasks.journey import (
    Move,
    StepContext,
    each_lead,
    journey_task,
    move_from_effect,
)

__all__ = ["last_inbound_cursor", "note_marker", "welcome"]

WINDOW = timedelta(hours=24)
WELCOME_MESSAGE = "whatsapp.welcome"
SEND_WELCOME = "send_welcome"


def note_marker(lead_id: int) -> str:
    return f"[leadflow lead {lead_id}]"


def last_inbound_cursor(phone: str) -> str:
    """The ledger cursor holding when this number last wrote to the business (set from
    WhatsApp's inbound-message webhooks)."""
    return "whatsapp:last-inbound:" + "".join(ch for ch in phone if ch.isdigit())


async def _window_open(context: StepContext, phone: str) -> bool:
    last = await in_ledger(context.ledger.get_cursor, last_inbound_cursor(phone))
    if not last:
        return False
    return datetime.now(UTC) - datetime.fromisoformat(last) < WINDOW


def _note_text(
    lead: LeadView, domain: str | None, recorded: Recorded, welcome_message: Effected | None
) -> str:
    """Every vendor id of the journey: what earlier steps made, then the welcome message this
    step sent, unless an earlier attempt of the step recorded it already."""
    lines = [
        f"{effect.vendor}.{effect.operation}: {effect.vendor_object_id}"
        for effect in recorded.done()
    ]
    if welcome_message is not None and recorded.vendor_id(WELCOME_MESSAGE) is None:
        lines.append(f"whatsapp.{SEND_WELCOME}: {welcome_message.vendor_object_id}")
    return "\n".join(
        [
            f"Cliente ativo: {domain or 'serviço'} no ar, boas-vindas enviadas.",
            "leadflow registrou:",
            *lines,
            note_marker(lead.lead_id),
        ]
    )


async def _find_note(pipedrive: Any, deal_id: int, marker: str) -> Note | None:
    start: int | None = 0
    while start is not None:
        page = await pipedrive.list_notes(deal_id=deal_id, start=start)
        for note in page.items:
            if marker in note.content:
                return note
        start = page.next_start
    return None


async def _welcome_one(
    context: StepContext, pipedrive: Any, lead: LeadView, recorded: Recorded
) -> Move:
    normalized = lead.normalized
    if normalized is None:
        return Move.dead_letter(lead.lead_id, "the lead has no normalised data")
    domain = recorded.vendor_id(WEBSITE)
    said = "no mobile: no WhatsApp welcome"
    welcome_message: Effected | None = None
    if normalized.reachable_on_whatsapp:
        assert normalized.phone is not None
        whatsapp = await context.client("whatsapp")
        choices = context.business.whatsapp
        if await _window_open(context, normalized.phone):
            text = choices.welcome_text.format(first_name=normalized.first_name, domain=domain)

            def send() -> Any:
                return whatsapp.send_text(normalized.phone, text)
        else:

            def send() -> Any:
                return whatsapp.send_template(
                    normalized.phone,
                    choices.welcome_template,
                    language=choices.language,
                    components=[
                        TemplateComponent(
                            type="body",
                            parameters=[TemplateParameter.of_text(normalized.first_name)],
                        )
                    ],
                )

        sent = await context.perform(
            VendorWrite[SendResult].for_lead(
                lead,
                WELCOME_MESSAGE,
                SEND_WELCOME,
                create=send,
                object_id=lambda result: result.wamid,
                unknown_outcome=UnknownOutcome.HOLD,
            ),
        )
        if (
            failed := move_from_effect(context, lead.lead_id, sent, "WhatsApp welcome")
        ) is not None:
            return failed
        said = f"WhatsApp welcome {sent.result}"
        welcome_message = sent
    deal_id = deal_id_of(recorded)
    if deal_id is None:
        return Move.dead_letter(lead.lead_id, "activated without a recorded Pipedrive deal")
    content = _note_text(lead, domain, recorded, welcome_message)
    marker = note_marker(lead.lead_id)
    noted = await context.perform(
        VendorWrite[Note].for_lead(
            lead,
            "pipedrive.welcome_note",
            "add_note",
            create=lambda: pipedrive.create_note(NoteCreate(content=content, deal_id=deal_id)),
            object_id=lambda note: str(note.id),
            find=lambda: _find_note(pipedrive, deal_id, marker),
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, noted, "Pipedrive note")) is not None:
        return failed
    stage_id = context.business.pipedrive.welcome_stage_id
    if stage_id is not None:
        await pipedrive.update_deal(deal_id, DealUpdate(stage_id=stage_id))
    return Move.advance(
        lead.lead_id,
        JourneyState.WELCOMED,
        f"{said}; note {noted.vendor_object_id} on deal {deal_id}",
    )


@journey_task("welcome", "whatsapp", "pipedrive")
async def welcome(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """activated → welcomed, for a batch: WhatsApp welcome, deal note, deal stage."""
    pipedrive = await context.client("pipedrive")
    return await each_lead(
        context,
        journeys,
        lambda lead, recorded: _welcome_one(context, pipedrive, lead, recorded),
        "whatsapp",
        "pipedrive",
    )
