"""Stored webhook deliveries move journeys: the one a trigger names, and — after the process
that stored it died before triggering — the one the reconciler finds on its own."""

from __future__ import annotations

import json

import pytest

from flows import handle_deliveries, intake, lead_to_cash
from ledger import InboxOutcome, JourneyState
from tests.journey.world import World

pytestmark = pytest.mark.integration


def _deal_won(deal_id: str, event_id: str) -> bytes:
    """A Pipedrive webhooks v2 delivery: the deal's status changed from open to won."""
    return json.dumps(
        {
            "meta": {"id": event_id, "entity": "deal", "action": "change", "entity_id": deal_id},
            "data": {"id": int(deal_id), "status": "won"},
            "previous": {"status": "open"},
        }
    ).encode()


async def _journey_at_deal_open(world: World) -> tuple[int, str]:
    world.people(accept=0.0)  # nobody acts: only the delivery can move the journey
    world.submit_leads(1)
    await intake()
    (lead_id,) = world.lead_ids()
    assert world.ledger.get_journey(lead_id).state == JourneyState.DEAL_OPEN
    return lead_id, world.vendor_ids(lead_id)["pipedrive.create_deal"]


async def test_a_delivery_stored_but_never_triggered_is_applied_by_the_reconciler(
    world: World,
) -> None:
    lead_id, deal_id = await _journey_at_deal_open(world)
    # the webhook service stored and acknowledged it, then its process died before triggering
    inbox_id = world.ledger.store_inbox(
        "pipedrive", "evt-won-1", _deal_won(deal_id, "evt-won-1"), {}
    )
    assert inbox_id is not None

    await lead_to_cash()

    history = [step.to_state for step in world.ledger.journey_history(lead_id)]
    assert JourneyState.DEAL_WON in history
    assert world.ledger.get_inbox(inbox_id).outcome == InboxOutcome.PROCESSED


async def test_a_delivery_for_an_object_leadflow_did_not_make_is_marked_ignored(
    world: World,
) -> None:
    await _journey_at_deal_open(world)
    inbox_id = world.ledger.store_inbox("pipedrive", "evt-x", _deal_won("999999", "evt-x"), {})
    assert inbox_id is not None

    await handle_deliveries(inbox_ids=[inbox_id])

    entry = world.ledger.get_inbox(inbox_id)
    assert entry.outcome == InboxOutcome.IGNORED
    assert "not made by leadflow" in (entry.reason or "")
