"""Asaas + WhatsApp: the signed contract becomes a PIX charge the client receives on WhatsApp,
and the payment moves the journey.

`charge_by_pix` (contract_signed → charge_open):
1. the CPF/CNPJ: the lead's, or the one the client typed into the contract (the signed envelope's
   form data); none valid → the journey dead-letters here with that reason (DESIGN.md,
   principle 3: what a later step needs is checked before that step);
2. the Asaas customer, found by `externalReference`, then by `cpfCnpj`, before one is created
   (Asaas allows duplicate customers, so leadflow must not make them);
3. the PIX charge with its own `externalReference`, found before it is created again;
4. its copy-and-paste code sent by an approved WhatsApp template (the client has not written to
   the business in 24 hours, so free text would be refused). A charge paid before its code is
   read (Asaas e-mails it as soon as it exists; a paid charge has no QR code) goes on to
   charge_open without the message.

WhatsApp has no idempotency key and no look-up. leadflow's decision, for every WhatsApp send: a
send whose answer was lost is recorded `unconfirmed` and NOT resent (at most once). A second PIX
message is worse than a missing one here: Asaas also e-mails the charge to the client, and
`leadflow journeys show` names every unconfirmed send, so a person can follow up.

`check_payments` (charge_open → paid): the reconciler's read of each charge.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from blocks import PermanentError
from blocks.asaas import AsaasCustomer, AsaasPayment, NewCustomer, NewPixCharge
from blocks.whatsapp import SendResult, TemplateComponent, TemplateParameter
from data_quality import normalize_cnpj, normalize_cpf
from leadflow.privacy import mask_document
from ledger import ClaimedJourney, JourneyState, LeadView
from tasks.contracts import envelope_id_of
from tasks.deals import form_of
from tasks.effects import EffectResult, Recorded, UnknownOutcome, VendorWrite
from tasks.journey import (
    Move,
    StepContext,
    each_journey,
    each_lead,
    journey_task,
    move_from_effect,
)

__all__ = ["charge_by_pix", "check_payments", "customer_reference", "payment_reference"]

CUSTOMER = "asaas.customer"
CHARGE = "asaas.pix_charge"
PIX_MESSAGE = "whatsapp.pix_code"


def customer_reference(lead_id: int) -> str:
    return f"leadflow-lead-{lead_id}"


def payment_reference(lead_id: int) -> str:
    return f"leadflow-lead-{lead_id}-pix"


def lead_of_payment_reference(reference: str | None) -> int | None:
    """The lead id inside a payment's externalReference (a webhook names only the payment)."""
    prefix, suffix = "leadflow-lead-", "-pix"
    if reference and reference.startswith(prefix) and reference.endswith(suffix):
        middle = reference[len(prefix) : -len(suffix)]
        return int(middle) if middle.isdigit() else None
    return None


def valid_document(text: str | None) -> str | None:
    """A CPF or CNPJ as Asaas takes it (digits), or None if `text` is neither."""
    if not text:
        return None
    for normalise in (normalize_cpf, normalize_cnpj):
        found = normalise(text)
        if found.ok:
            return found.value
    return None


async def _document_from_contract(
    context: StepContext, recorded: Recorded
) -> tuple[str | None, str]:
    """The CPF/CNPJ the client typed into the signed contract, and what was found."""
    envelope_id = envelope_id_of(recorded)
    if envelope_id is None:
        return None, "no signed envelope is recorded"
    docusign = await context.client("docusign")
    label = context.business.docusign.cpf_tab_label
    typed = (await docusign.get_envelope_form_data(envelope_id)).values().get(label)
    if not typed:
        return None, f"the contract's {label!r} field is empty"
    document = valid_document(typed)
    if document is None:
        return (
            None,
            f"the contract's {label!r} field holds no valid CPF/CNPJ ({mask_document(typed)})",
        )
    return document, "from the signed contract"


async def _find_customer(asaas: Any, lead_id: int, document: str) -> AsaasCustomer | None:
    return await asaas.find_customer(
        external_reference=customer_reference(lead_id), cpf_cnpj=document
    )


def _pix_components(first_name: str, code: str) -> list[TemplateComponent]:
    """The PIX template's body: {{1}} the client's first name, {{2}} the copy-and-paste code."""
    return [
        TemplateComponent(
            type="body",
            parameters=[TemplateParameter.of_text(first_name), TemplateParameter.of_text(code)],
        )
    ]


async def _paid_move(asaas: Any, lead_id: int, payment_id: str, reason: str) -> Move | None:
    """charge_open with `reason` when the charge is paid already (nothing left to send the
    client), else None."""
    if not (await asaas.get_payment(payment_id)).is_paid:
        return None
    return Move.advance(lead_id, JourneyState.CHARGE_OPEN, reason)


async def _charge_one(context: StepContext, asaas: Any, lead: LeadView, recorded: Recorded) -> Move:
    normalized = lead.normalized
    if normalized is None:
        return Move.dead_letter(lead.lead_id, "the lead has no normalised data")
    form = context.business.form(form_of(lead))
    if form.value is None:
        return Move.dead_letter(
            lead.lead_id, f"leadflow.toml: form {form.id!r} has no value to charge"
        )
    document = valid_document(normalized.document)
    origin = "from the lead form"
    if document is None:
        document, origin = await _document_from_contract(context, recorded)
    if document is None:
        return Move.dead_letter(lead.lead_id, f"billing needs a valid CPF/CNPJ: {origin}")

    customer = await context.perform(
        VendorWrite[AsaasCustomer].for_lead(
            lead,
            CUSTOMER,
            "create_customer",
            create=lambda: asaas.create_customer(
                NewCustomer(
                    name=normalized.full_name,
                    cpf_cnpj=document,
                    email=normalized.email,
                    mobile_phone=normalized.phone if normalized.reachable_on_whatsapp else None,
                    external_reference=customer_reference(lead.lead_id),
                )
            ),
            object_id=lambda c: c.id,
            find=lambda: _find_customer(asaas, lead.lead_id, document),
            upsert=True,
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, customer, "Asaas customer")) is not None:
        return failed
    assert customer.vendor_object_id is not None
    due = (datetime.now(UTC) + timedelta(days=context.business.asaas.due_days)).date()
    title = form.deal_title.format(full_name=normalized.full_name, form=form.name)
    charge_body = NewPixCharge(
        customer=customer.vendor_object_id,
        value=form.value,
        due_date=due,
        description=context.business.asaas.description.format(deal_title=title)[:500],
        external_reference=payment_reference(lead.lead_id),
    )
    charge = await context.perform(
        VendorWrite[AsaasPayment].for_lead(
            lead,
            CHARGE,
            "create_pix_charge",
            create=lambda: asaas.create_pix_charge(charge_body),
            object_id=lambda p: p.id,
            find=lambda: asaas.find_by_reference(payment_reference(lead.lead_id), of=AsaasPayment),
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, charge, "Asaas PIX charge")) is not None:
        return failed
    assert charge.vendor_object_id is not None
    reason = f"Asaas customer {customer.vendor_object_id}, PIX charge {charge.vendor_object_id}"
    if charge.result is not EffectResult.CREATED:
        # made by an earlier attempt: the client may have paid meanwhile (no QR code then)
        paid = await _paid_move(
            asaas, lead.lead_id, charge.vendor_object_id, f"{reason}; already paid"
        )
        if paid is not None:
            return paid
    if not normalized.reachable_on_whatsapp:
        return Move.advance(
            lead.lead_id,
            JourneyState.CHARGE_OPEN,
            f"{reason}; no mobile: PIX code sent by Asaas only",
        )
    try:
        qr = await asaas.get_pix_qr_code(charge.vendor_object_id)
    except PermanentError:
        # a paid charge has no QR code: the client paid before it was read (Asaas e-mails the
        # charge as soon as it exists), and a paid client must not be dead-lettered for that
        early = f"{reason}; paid before the PIX code was sent"
        paid = await _paid_move(asaas, lead.lead_id, charge.vendor_object_id, early)
        if paid is None:
            raise
        return paid
    whatsapp = await context.client("whatsapp")
    choices = context.business.whatsapp
    message = await context.perform(
        VendorWrite[SendResult].for_lead(
            lead,
            PIX_MESSAGE,
            "send_pix_code",
            create=lambda: whatsapp.send_template(
                normalized.phone,
                choices.pix_template,
                language=choices.language,
                components=_pix_components(normalized.first_name, qr.payload),
            ),
            object_id=lambda sent: sent.wamid,
            unknown_outcome=UnknownOutcome.HOLD,
        ),
    )
    if (
        failed := move_from_effect(context, lead.lead_id, message, "WhatsApp PIX code")
    ) is not None:
        return failed
    return Move.advance(
        lead.lead_id, JourneyState.CHARGE_OPEN, f"{reason}; PIX code on WhatsApp ({message.result})"
    )


@journey_task("charge-by-pix", "asaas", "whatsapp")
async def charge_by_pix(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """contract_signed → charge_open, for a batch: customer, PIX charge, code on WhatsApp."""
    asaas = await context.client("asaas")
    return await each_lead(
        context,
        journeys,
        lambda lead, recorded: _charge_one(context, asaas, lead, recorded),
        "asaas",
        "whatsapp",
    )


def payment_id_of(recorded: Recorded) -> str | None:
    """The lead's Asaas charge id, as the ledger recorded it."""
    return recorded.vendor_id(CHARGE)


def payment_move(lead_id: int, payment: AsaasPayment, recheck: float) -> Move:
    if payment.is_paid:
        return Move.advance(lead_id, JourneyState.PAID, f"PIX charge {payment.id} {payment.status}")
    if payment.deleted or payment.status in {
        "REFUNDED",
        "REFUND_REQUESTED",
        "CHARGEBACK_REQUESTED",
    }:
        return Move.dead_letter(lead_id, f"PIX charge {payment.id} is {payment.status}")
    return Move.wait(
        lead_id, f"waiting for the client to pay {payment.id} ({payment.status})", recheck
    )


async def _check_one(
    context: StepContext, asaas: Any, journey: ClaimedJourney, recorded: Recorded
) -> Move:
    payment_id = payment_id_of(recorded)
    if payment_id is None:
        return Move.dead_letter(journey.lead_id, "charge_open without a recorded PIX charge")
    payment = await asaas.get_payment(payment_id)
    return payment_move(journey.lead_id, payment, context.business.timing.waiting_recheck_seconds)


@journey_task("check-payments", "asaas")
async def check_payments(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """charge_open → paid, reading each charge at Asaas (CONFIRMED or RECEIVED is paid)."""
    asaas = await context.client("asaas")
    return await each_journey(
        context,
        journeys,
        lambda journey, recorded: _check_one(context, asaas, journey, recorded),
        "asaas",
    )
