"""Journey transitions: every edge of the state machine, legal or not, on every backend."""

from __future__ import annotations

import itertools
from datetime import timedelta, timezone

import pytest

from ledger import IllegalTransition, JourneyState, Ledger, UnknownLead, legal_edges
from ledger.errors import ClaimLost, UnknownCause, UnknownState
from ledger.states import is_dead_letterable
from tests.ledger.conftest import Clock, lead_in_state, new_lead

S = JourneyState
ORDINARY_STATES = [state for state in JourneyState if state is not S.DEAD_LETTERED]
DEAD_LETTER_ORIGINS = [state for state in JourneyState if is_dead_letterable(state)]
LEGAL = legal_edges()

LEGAL_ORDINARY = [
    (src, dst)
    for src, dst in itertools.product(ORDINARY_STATES, JourneyState)
    if (src, dst) in LEGAL
]
ILLEGAL_ORDINARY = [
    (src, dst)
    for src, dst in itertools.product(ORDINARY_STATES, JourneyState)
    if (src, dst) not in LEGAL
]
ILLEGAL_RESUMES = [
    (origin, dst)
    for origin, dst in itertools.product(DEAD_LETTER_ORIGINS, JourneyState)
    if dst is not origin
]


def _edge_id(value: object) -> str:
    return str(value)


@pytest.mark.parametrize(("from_state", "to_state"), LEGAL_ORDINARY, ids=_edge_id)
def test_a_legal_transition_moves_the_journey_and_records_it(
    ledger: Ledger, from_state: JourneyState, to_state: JourneyState
) -> None:
    lead_id = lead_in_state(ledger, from_state)
    ledger.transition(lead_id, to_state, "webhook", "vendor said so")
    assert ledger.journey_state(lead_id) == to_state
    last = ledger.journey_history(lead_id)[-1]
    assert (last.from_state, last.to_state, last.cause, last.reason) == (
        from_state,
        to_state,
        "webhook",
        "vendor said so",
    )


@pytest.mark.parametrize(("from_state", "to_state"), ILLEGAL_ORDINARY, ids=_edge_id)
def test_an_illegal_transition_raises_naming_both_states_and_changes_nothing(
    ledger: Ledger, from_state: JourneyState, to_state: JourneyState
) -> None:
    lead_id = lead_in_state(ledger, from_state)
    history_before = ledger.journey_history(lead_id)
    with pytest.raises(IllegalTransition) as raised:
        ledger.transition(lead_id, to_state, "manual")
    assert f"'{from_state}'" in str(raised.value)
    assert f"'{to_state}'" in str(raised.value)
    assert (raised.value.from_state, raised.value.to_state) == (from_state, to_state)
    assert ledger.journey_state(lead_id) == from_state
    assert ledger.journey_history(lead_id) == history_before


@pytest.mark.parametrize("origin", DEAD_LETTER_ORIGINS, ids=_edge_id)
def test_a_dead_lettered_journey_resumes_the_step_it_failed_in(
    ledger: Ledger, origin: JourneyState
) -> None:
    lead_id = lead_in_state(ledger, S.DEAD_LETTERED, dead_lettered_from=origin)
    assert ledger.get_journey(lead_id).dead_lettered_from == origin
    ledger.transition(lead_id, origin, "manual", "fixed the CPF; retrying")
    journey = ledger.get_journey(lead_id)
    assert (journey.state, journey.dead_lettered_from) == (origin, None)


@pytest.mark.parametrize(("origin", "to_state"), ILLEGAL_RESUMES, ids=_edge_id)
def test_a_dead_lettered_journey_cannot_go_anywhere_but_its_origin(
    ledger: Ledger, origin: JourneyState, to_state: JourneyState
) -> None:
    lead_id = lead_in_state(ledger, S.DEAD_LETTERED, dead_lettered_from=origin)
    with pytest.raises(IllegalTransition, match=f"'dead_lettered' to '{to_state}'") as raised:
        ledger.transition(lead_id, to_state, "manual")
    assert f"dead-lettered from '{origin}'" in str(raised.value)
    assert ledger.journey_state(lead_id) == S.DEAD_LETTERED


def test_history_records_every_transition_in_order_with_time_and_cause(
    ledger: Ledger, clock: Clock
) -> None:
    lead_id = new_lead(ledger)
    ledger.transition(lead_id, "quarantined", "gate", "email_valid")
    clock.advance(60)
    ledger.transition(lead_id, "received", "manual", "e-mail fixed")
    ledger.transition(lead_id, "qualified", "gate")
    history = ledger.journey_history(lead_id)
    assert [(t.from_state, t.to_state, t.cause, t.reason) for t in history] == [
        ("received", "quarantined", "gate", "email_valid"),
        ("quarantined", "received", "manual", "e-mail fixed"),
        ("received", "qualified", "gate", None),
    ]
    assert history[0].at.tzinfo is not None
    assert history[1].at - history[0].at >= timedelta(seconds=60)


def test_a_transition_makes_the_next_step_due_now_by_default(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    before = clock()
    ledger.transition(lead_id, "qualified", "gate")
    due_at = ledger.get_journey(lead_id).due_at
    assert due_at is not None
    assert before <= due_at <= clock()


def test_a_transition_can_schedule_the_next_step(ledger: Ledger, clock: Clock) -> None:
    lead_id = lead_in_state(ledger, S.QUALIFIED)
    later = clock() + timedelta(hours=1)
    ledger.transition(lead_id, "deal_open", "reconcile", due_at=later)
    assert ledger.get_journey(lead_id).due_at == later


@pytest.mark.parametrize(
    ("from_state", "to_state"),
    [(S.DEAL_OPEN, S.DEAL_LOST), (S.RECEIVED, S.QUARANTINED), (S.PAID, S.DEAD_LETTERED)],
    ids=_edge_id,
)
def test_nothing_is_due_in_a_terminal_state_or_one_awaiting_a_fix(
    ledger: Ledger, clock: Clock, from_state: JourneyState, to_state: JourneyState
) -> None:
    lead_id = lead_in_state(ledger, from_state)
    ledger.transition(lead_id, to_state, "manual", due_at=clock())
    assert ledger.get_journey(lead_id).due_at is None


def test_a_transition_ends_the_claim_on_the_journey(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a")
    ledger.transition(lead_id, "qualified", "gate", worker="worker-a")
    journey = ledger.get_journey(lead_id)
    assert (journey.claimed_by, journey.claimed_until) == (None, None)


def test_a_worker_whose_lease_expired_cannot_transition(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a", lease_seconds=30)
    clock.advance(31)
    with pytest.raises(ClaimLost, match="worker-a"):
        ledger.transition(lead_id, "qualified", "gate", worker="worker-a")
    assert ledger.journey_state(lead_id) == "received"


def test_a_worker_that_never_claimed_the_journey_cannot_transition_as_its_holder(
    ledger: Ledger,
) -> None:
    lead_id = new_lead(ledger)
    ledger.claim("received", 10, "worker-a")
    with pytest.raises(ClaimLost, match="held by 'worker-a'"):
        ledger.transition(lead_id, "qualified", "gate", worker="worker-b")


def test_an_unknown_target_state_is_an_unknown_state_not_an_illegal_move(
    ledger: Ledger,
) -> None:
    lead_id = new_lead(ledger)
    with pytest.raises(UnknownState):
        ledger.transition(lead_id, "shipped", "manual")


def test_an_unknown_cause_is_refused(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    with pytest.raises(UnknownCause):
        ledger.transition(lead_id, "qualified", "cron")
    assert ledger.journey_state(lead_id) == "received"


def test_transitioning_an_unknown_lead_raises_unknown_lead(ledger: Ledger) -> None:
    with pytest.raises(UnknownLead, match="no lead 424242"):
        ledger.transition(424242, "qualified", "gate")


def test_a_due_time_in_another_zone_is_kept_as_the_same_instant_in_utc(
    ledger: Ledger, clock: Clock
) -> None:
    lead_id = new_lead(ledger)
    brasilia = timezone(timedelta(hours=-3))
    due = (clock() + timedelta(hours=2)).astimezone(brasilia)
    ledger.transition(lead_id, "qualified", "gate", due_at=due)
    stored = ledger.get_journey(lead_id).due_at
    assert stored == due
    assert stored is not None
    assert stored.utcoffset() == timedelta(0)


def test_a_naive_due_time_is_refused(ledger: Ledger, clock: Clock) -> None:
    lead_id = new_lead(ledger)
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.transition(lead_id, "qualified", "gate", due_at=clock().replace(tzinfo=None))
    assert ledger.journey_state(lead_id) == "received"
