"""DocuSign: the won deal becomes a contract sent for signature; the signature moves the journey.

`send_contract` (deal_won → contract_sent): an envelope from the business's template, the signer's
name and e-mail prefilled, the CPF tab prefilled when the lead gave one (otherwise the signer fills
it, and billing reads it back from the signed envelope), custom fields `leadflow_lead_id` and
`pipedrive_deal_id` so the envelope can be found again, and a `transactionId` so DocuSign itself
refuses a second envelope for the same lead for seven days. `check_contracts` (contract_sent →
contract_signed | contract_declined): the reconciler's read of each envelope.
"""

from __future__ import annotations

from typing import Any

from blocks.docusign import (
    Envelope,
    EnvelopeFromTemplate,
    EnvelopeSummary,
    TemplateRole,
    TextCustomField,
)
from ledger import ClaimedJourney, JourneyState, LeadView
from tasks.deals import deal_id_of
from tasks.effects import Recorded, VendorWrite
from tasks.journey import (
    Move,
    StepContext,
    each_journey,
    each_lead,
    journey_task,
    move_from_effect,
)

__all__ = ["LEAD_ID_FIELD", "check_contracts", "envelope_id_of", "send_contract"]

ENVELOPE = "docusign.envelope"
LEAD_ID_FIELD = "leadflow_lead_id"
DEAL_ID_FIELD = "pipedrive_deal_id"
SIGNED = {"completed"}
REFUSED = {"declined", "voided"}


def transaction_id(lead_id: int) -> str:
    return f"leadflow-lead-{lead_id}-contract"


def _envelope(
    context: StepContext, lead: LeadView, deal_id: int, template_id: str
) -> EnvelopeFromTemplate:
    choices = context.business.docusign
    normalized = lead.normalized
    assert normalized is not None
    assert normalized.email is not None
    # the CPF tab prefilled when the lead gave one; otherwise the signer types it in
    tabs = {choices.cpf_tab_label: normalized.document} if normalized.document else {}
    return EnvelopeFromTemplate(
        template_id=template_id,
        template_roles=[
            TemplateRole(
                role_name=choices.signer_role,
                name=normalized.full_name,
                email=normalized.email,
                text_tabs=tabs,
            )
        ],
        custom_fields=[
            TextCustomField(name=LEAD_ID_FIELD, value=str(lead.lead_id)),
            TextCustomField(name=DEAL_ID_FIELD, value=str(deal_id)),
        ],
        transaction_id=transaction_id(lead.lead_id),
        email_subject=choices.email_subject,
    )


async def _find_envelope(docusign: Any, lead: LeadView) -> Envelope | None:
    found = await docusign.find_envelope_by_transaction_id(transaction_id(lead.lead_id))
    if found is None:  # a transactionId lives 7 days; the custom field for ever
        found = await docusign.find_by_reference(str(lead.lead_id), since=lead.received_at)
    return found


async def _send_one(
    context: StepContext, docusign: Any, lead: LeadView, recorded: Recorded
) -> Move:
    template_id = context.business.docusign.template_id
    if not template_id:
        return Move.dead_letter(
            lead.lead_id, "leadflow.toml: docusign.template_id is not set (the contract template)"
        )
    if lead.normalized is None or not lead.normalized.email:
        return Move.dead_letter(lead.lead_id, "the lead has no e-mail to send the contract to")
    deal_id = deal_id_of(recorded)
    if deal_id is None:
        return Move.dead_letter(lead.lead_id, "deal_won without a recorded Pipedrive deal")
    body = _envelope(context, lead, deal_id, template_id)
    sent = await context.perform(
        VendorWrite[EnvelopeSummary | Envelope].for_lead(
            lead,
            ENVELOPE,
            "create_envelope",
            create=lambda: docusign.create_envelope_from_template(body),
            object_id=lambda envelope: envelope.envelope_id,
            find=lambda: _find_envelope(docusign, lead),
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, sent, "DocuSign envelope")) is not None:
        return failed
    return Move.advance(
        lead.lead_id, JourneyState.CONTRACT_SENT, f"DocuSign envelope {sent.vendor_object_id} sent"
    )


@journey_task("send-contract", "docusign")
async def send_contract(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """deal_won → contract_sent, for a batch: one envelope per won deal."""
    docusign = await context.client("docusign")
    return await each_lead(
        context,
        journeys,
        lambda lead, recorded: _send_one(context, docusign, lead, recorded),
        "docusign",
    )


def envelope_id_of(recorded: Recorded) -> str | None:
    """The lead's DocuSign envelope id, as the ledger recorded it."""
    return recorded.vendor_id(ENVELOPE)


def contract_move(lead_id: int, envelope_id: str, status: str, recheck: float) -> Move:
    """Where an envelope's status takes the journey."""
    if status in SIGNED:
        return Move.advance(lead_id, JourneyState.CONTRACT_SIGNED, f"envelope {envelope_id} signed")
    if status in REFUSED:
        return Move.advance(
            lead_id, JourneyState.CONTRACT_DECLINED, f"envelope {envelope_id} {status}"
        )
    return Move.wait(
        lead_id, f"waiting for the client to sign envelope {envelope_id} ({status})", recheck
    )


async def _check_one(
    context: StepContext, docusign: Any, journey: ClaimedJourney, recorded: Recorded
) -> Move:
    envelope_id = envelope_id_of(recorded)
    if envelope_id is None:
        return Move.dead_letter(journey.lead_id, "contract_sent without a recorded envelope")
    envelope = await docusign.get_envelope(envelope_id)
    recheck = context.business.timing.waiting_recheck_seconds
    return contract_move(journey.lead_id, envelope_id, envelope.status, recheck)


@journey_task("check-contracts", "docusign")
async def check_contracts(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """contract_sent → contract_signed | contract_declined, reading each envelope at DocuSign."""
    docusign = await context.client("docusign")
    return await each_journey(
        context,
        journeys,
        lambda journey, recorded: _check_one(context, docusign, journey, recorded),
        "docusign",
    )
