"""Why a journey stays where it is, and since when: what `leadflow journeys show` answers for a
client waiting on a person or on a vendor."""

from __future__ import annotations

from ledger import JourneyState, Ledger
from tests.ledger.conftest import Clock, new_lead


def test_a_released_journey_keeps_the_reason_it_stays(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 1, "worker-a")

    ledger.release(lead_id, "worker-a", reason="waiting for the client to sign envelope 7")

    assert ledger.get_journey(lead_id).waiting_reason == "waiting for the client to sign envelope 7"


def test_a_transition_clears_the_waiting_reason(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 1, "worker-a")
    ledger.release(lead_id, "worker-a", reason="Pipedrive 503, retrying")

    ledger.transition(lead_id, JourneyState.QUALIFIED, "gate")

    assert ledger.get_journey(lead_id).waiting_reason is None


def test_since_is_when_the_journey_entered_its_state_not_its_last_release(
    ledger: Ledger, clock: Clock
) -> None:
    lead_id = new_lead(ledger)
    ledger.transition(lead_id, JourneyState.QUALIFIED, "gate")
    entered = ledger.get_journey(lead_id).state_since
    clock.advance(3600)
    ledger.claim("qualified", 1, "worker-a")
    ledger.release(lead_id, "worker-a", reason="waiting")

    journey = ledger.get_journey(lead_id)
    assert journey.state_since == entered
    assert journey.updated_at > entered
