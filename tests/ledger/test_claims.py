"""Claiming due journeys with a lease, releasing them, and leases that expire."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger import ClaimLost, JourneyState, Ledger
from ledger.errors import UnknownState
from tests.ledger.conftest import Clock, lead_in_state, new_lead


def _due_in(ledger: Ledger, clock: Clock, seconds: float) -> int:
    """A qualified lead whose next step is due `seconds` from now."""
    lead_id = new_lead(ledger)
    ledger.transition(lead_id, "qualified", "gate", due_at=clock() + timedelta(seconds=seconds))
    return lead_id


def test_claim_takes_due_journeys_in_the_state_oldest_due_first(
    ledger: Ledger, clock: Clock
) -> None:
    later = _due_in(ledger, clock, -10)
    earliest = _due_in(ledger, clock, -30)
    middle = _due_in(ledger, clock, -20)
    new_lead(ledger)  # due, but in another state
    claimed = ledger.claim("qualified", 10, "worker-a")
    assert [journey.lead_id for journey in claimed] == [earliest, middle, later]
    assert {journey.state for journey in claimed} == {"qualified"}


def test_claim_takes_at_most_the_limit(ledger: Ledger, clock: Clock) -> None:
    leads = [_due_in(ledger, clock, -60 + i) for i in range(5)]
    claimed = ledger.claim("qualified", 2, "worker-a")
    assert [journey.lead_id for journey in claimed] == leads[:2]


def test_a_journey_not_yet_due_is_not_claimed_until_it_is(ledger: Ledger, clock: Clock) -> None:
    lead_id = _due_in(ledger, clock, 600)
    assert ledger.claim("qualified", 10, "worker-a") == []
    clock.advance(601)
    assert [journey.lead_id for journey in ledger.claim("qualified", 10, "worker-a")] == [lead_id]


def test_a_claim_records_the_worker_and_its_lease(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    before = clock()
    (claimed,) = ledger.claim("received", 1, "worker-a", lease_seconds=120)
    journey = ledger.get_journey(lead_id)
    assert (claimed.claimed_by, journey.claimed_by) == ("worker-a", "worker-a")
    assert journey.claimed_until == claimed.claimed_until
    assert (
        before + timedelta(seconds=120) <= claimed.claimed_until <= clock() + timedelta(seconds=120)
    )


def test_a_claimed_journey_is_not_claimed_again_while_its_lease_runs(ledger: Ledger) -> None:
    new_lead(ledger)
    assert len(ledger.claim("received", 10, "worker-a")) == 1
    assert ledger.claim("received", 10, "worker-b") == []


def test_a_crashed_workers_claim_expires_and_the_journey_is_claimable_again(
    ledger: Ledger, clock: Clock
) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "crashed-worker", lease_seconds=60)
    clock.advance(61)
    (reclaimed,) = ledger.claim("received", 10, "worker-b")
    assert (reclaimed.lead_id, reclaimed.claimed_by) == (lead_id, "worker-b")


def test_a_renewed_claim_outlives_its_first_lease(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a", lease_seconds=60)
    clock.advance(50)
    until = ledger.renew_claim(lead_id, "worker-a", lease_seconds=60)
    clock.advance(50)
    assert ledger.claim("received", 10, "worker-b") == []
    assert ledger.get_journey(lead_id).claimed_until == until


def test_a_lease_that_ran_out_cannot_be_renewed(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a", lease_seconds=60)
    clock.advance(61)
    with pytest.raises(ClaimLost, match="worker-a"):
        ledger.renew_claim(lead_id, "worker-a")


def test_a_released_journey_can_be_claimed_at_once(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a")
    ledger.release(lead_id, "worker-a")
    journey = ledger.get_journey(lead_id)
    assert (journey.claimed_by, journey.claimed_until) == (None, None)
    assert [j.lead_id for j in ledger.claim("received", 10, "worker-b")] == [lead_id]


def test_release_can_make_the_step_due_again_later(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a")
    ledger.release(lead_id, "worker-a", due_at=clock() + timedelta(minutes=10))
    assert ledger.claim("received", 10, "worker-a") == []
    clock.advance(601)
    assert [j.lead_id for j in ledger.claim("received", 10, "worker-a")] == [lead_id]


def test_only_the_holder_can_release_a_claim(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a")
    with pytest.raises(ClaimLost, match="held by 'worker-a'"):
        ledger.release(lead_id, "worker-b")
    assert ledger.get_journey(lead_id).claimed_by == "worker-a"


def test_releasing_a_journey_nobody_holds_is_a_lost_claim(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    with pytest.raises(ClaimLost, match="not claimed"):
        ledger.release(lead_id, "worker-a")


@pytest.mark.parametrize(
    "state", [JourneyState.QUARANTINED, JourneyState.DEAL_LOST, JourneyState.DEAD_LETTERED]
)
def test_journeys_awaiting_a_fix_or_closed_are_never_claimed(
    ledger: Ledger, clock: Clock, state: JourneyState
) -> None:
    lead_in_state(ledger, state, dead_lettered_from=JourneyState.QUALIFIED)
    clock.advance(365 * 24 * 3600)
    assert ledger.claim(state, 10, "worker-a") == []


def test_claiming_an_unknown_state_is_refused(ledger: Ledger) -> None:
    with pytest.raises(UnknownState):
        ledger.claim("shipped", 10, "worker-a")


@pytest.mark.parametrize(
    ("worker", "limit", "lease", "complaint"),
    [("worker-a", 0, 300, "at least 1"), ("worker-a", 10, 0, "positive"), ("", 10, 300, "name")],
)
def test_claim_needs_a_worker_a_positive_limit_and_a_positive_lease(
    ledger: Ledger, worker: str, limit: int, lease: float, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        ledger.claim("received", limit, worker, lease_seconds=lease)


def test_journey_counts_list_every_state_with_how_many_stand_there(ledger: Ledger) -> None:
    new_lead(ledger)
    new_lead(ledger)
    lead_in_state(ledger, JourneyState.DEAL_OPEN)
    counts = ledger.journey_counts()
    assert set(counts) == {state.value for state in JourneyState}
    assert (counts["received"], counts["deal_open"], counts["welcomed"]) == (2, 1, 0)
