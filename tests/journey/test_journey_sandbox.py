"""The whole journey against the in-process sandbox, checked through the sandbox's own state:
leads from the Graph API to `welcomed`, every vendor object created once and linked."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from blocks.asaas import AsaasClient, AsaasPayment, NewPixCharge
from flows import intake, lead_to_cash
from ledger import JourneyState, Ledger
from tests.journey.world import World

pytestmark = pytest.mark.integration


async def test_leads_travel_from_the_form_to_welcomed_each_vendor_object_made_once(
    world: World,
) -> None:
    world.people(accept=1.0)
    world.submit_leads(5)

    counts = await world.reconcile_until_settled()

    assert counts == {JourneyState.WELCOMED: 5}, world.describe()
    created = world.counters()
    for vendor, kind in [
        ("pipedrive", "person"),
        ("pipedrive", "deal"),
        ("docusign", "envelope"),
        ("asaas", "customer"),
        ("asaas", "payment"),
        ("hostinger", "website"),
    ]:
        assert created[vendor][kind] == 5, (vendor, kind)


async def test_each_vendor_object_carries_the_references_that_link_it_to_the_journey(
    world: World,
) -> None:
    world.people(accept=1.0)
    world.submit_leads(2)
    await world.reconcile_until_settled()

    async with (
        world.blocks["pipedrive"].get_client() as pipedrive,
        world.blocks["docusign"].get_client() as docusign,
        world.blocks["asaas"].get_client() as asaas,
    ):
        for lead_id in world.lead_ids():
            ids = world.vendor_ids(lead_id)
            deal = await pipedrive.get_deal(int(ids["pipedrive.create_deal"]))
            assert str(lead_id) in [str(v) for v in deal.custom_fields.values()]
            envelope = await docusign.get_envelope(ids["docusign.create_envelope"])
            assert envelope.text_custom_fields["leadflow_lead_id"] == str(lead_id)
            assert envelope.text_custom_fields["pipedrive_deal_id"] == ids["pipedrive.create_deal"]
            payment = await asaas.get_payment(ids["asaas.create_pix_charge"])
            assert payment.external_reference == f"leadflow-lead-{lead_id}-pix"
            assert payment.customer == ids["asaas.create_customer"]
            notes = await pipedrive.list_notes(deal_id=deal.id)
            (note,) = [n.content for n in notes.items]
            for key, vendor_id in ids.items():
                if key != "pipedrive.add_note":
                    assert vendor_id in note, key


async def test_a_step_reads_what_earlier_steps_recorded_once_per_batch_never_per_lead(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step gets its batch's recorded effects from one query (`Recorded`): a ledger read
    per lead (the deal's id, the envelope's, the website) made the ledger's thread the bound."""
    reads: list[str] = []
    for name in ("get_effect", "effects_for_lead", "effects_for_leads"):
        original = getattr(Ledger, name)

        def counted(
            self: Ledger, *args: Any, _name: str = name, _read: Any = original, **kwargs: Any
        ) -> Any:
            reads.append(_name)
            return _read(self, *args, **kwargs)

        monkeypatch.setattr(Ledger, name, counted)
    world.people(accept=1.0)
    world.submit_leads(4)

    counts = await world.reconcile_until_settled()

    assert counts == {JourneyState.WELCOMED: 4}, world.describe()
    assert reads.count("get_effect") == reads.count("effects_for_lead") == 0, reads
    assert "effects_for_leads" in reads


async def test_a_welcome_resumed_after_its_message_was_sent_lists_the_message_once_in_the_note(
    world: World,
) -> None:
    """The note is written from what the step found recorded at its start plus the message it
    sent: when an earlier attempt sent the message (the note failed), it is listed once."""
    notes_fail = {"route": "POST /api/v1/notes", "faults": {"error_rate": 1.0}}
    world.admin.put("/faults/pipedrive/routes", json=notes_fail).raise_for_status()
    world.people(accept=1.0)
    world.submit_leads(1)
    await intake()
    (lead_id,) = world.lead_ids()
    for _ in range(8):
        await lead_to_cash()
        world.act()
        if "whatsapp.send_welcome" in world.vendor_ids(lead_id):
            break
    assert world.counts() == {JourneyState.ACTIVATED: 1}, world.describe()
    world.admin.delete("/faults/pipedrive").raise_for_status()

    counts = await world.reconcile_until_settled()

    assert counts == {JourneyState.WELCOMED: 1}, world.describe()
    ids = world.vendor_ids(lead_id)
    async with world.blocks["pipedrive"].get_client() as pipedrive:
        notes = await pipedrive.list_notes(deal_id=int(ids["pipedrive.create_deal"]))
    (note,) = [n.content for n in notes.items]
    assert note.count(ids["whatsapp.send_welcome"]) == 1, note
    assert world.created_twice() == []


def _reads_of_one(world: World, vendor: str, collection: str) -> int:
    """GETs of single objects in `collection` ("envelopes": GET .../envelopes/{envelope_id})
    the vendor has answered so far, from the sandbox's own request counts."""
    one = re.compile(rf"^GET .*/{collection}/\{{[^}}]+\}}$")
    routes = world.admin.get("/faults").json()["requests"].get(vendor, {})
    return sum(count for route, count in routes.items() if one.match(route))


async def test_a_round_does_not_read_back_the_envelopes_and_charges_it_has_just_made(
    world: World,
) -> None:
    """Nobody can have signed an envelope or paid a charge made moments ago in the same run:
    the reconciler reads what waits on a person before it makes the next thing."""
    world.people(accept=1.0)
    world.submit_leads(2)
    await intake()
    world.act()  # the salesperson wins both deals
    envelopes_read = _reads_of_one(world, "docusign", "envelopes")

    await lead_to_cash()

    assert world.counts() == {JourneyState.CONTRACT_SENT: 2}, world.describe()
    assert _reads_of_one(world, "docusign", "envelopes") == envelopes_read
    world.act()  # both sign
    payments_read = _reads_of_one(world, "asaas", "payments")

    await lead_to_cash()

    assert world.counts() == {JourneyState.CHARGE_OPEN: 2}, world.describe()
    assert _reads_of_one(world, "docusign", "envelopes") == envelopes_read + 2
    assert _reads_of_one(world, "asaas", "payments") == payments_read


async def test_a_client_who_pays_before_the_pix_code_is_read_goes_on_without_the_code(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asaas e-mails a charge as soon as it exists, and a paid charge has no QR code (400
    invalid_status): the journey goes on to paid, with no PIX message, instead of dead-lettering
    a client who has paid."""
    create_pix_charge = AsaasClient.create_pix_charge

    async def paid_at_once(self: AsaasClient, charge: NewPixCharge) -> AsaasPayment:
        made = await create_pix_charge(self, charge)
        paid = await asyncio.to_thread(world.admin.post, f"/people/payer/accept/{made.id}")
        paid.raise_for_status()
        return made

    monkeypatch.setattr(AsaasClient, "create_pix_charge", paid_at_once)
    world.people(accept=1.0)
    world.submit_leads(1)

    counts = await world.reconcile_until_settled()

    assert counts == {JourneyState.WELCOMED: 1}, world.describe()
    (lead_id,) = world.lead_ids()
    history = [t.reason or "" for t in world.ledger.journey_history(lead_id)]
    assert any("paid before the PIX code was sent" in reason for reason in history), history
    assert "whatsapp.send_pix_code" not in world.vendor_ids(lead_id)


async def test_a_lost_deal_and_a_declined_contract_close_their_journeys(world: World) -> None:
    world.people(accept=0.0, refuse=1.0)
    world.submit_leads(2)

    counts = await world.reconcile_until_settled()

    assert counts == {JourneyState.DEAL_LOST: 2}


async def test_a_journey_waiting_on_a_person_stays_waiting_with_its_reason(world: World) -> None:
    world.people(accept=0.0, refuse=0.0)
    world.submit_leads(1)

    counts = await world.reconcile_until_settled(rounds=3)

    assert counts == {JourneyState.DEAL_OPEN: 1}
    (lead_id,) = world.lead_ids()
    assert "waiting for a salesperson" in world.last_reason(lead_id)
