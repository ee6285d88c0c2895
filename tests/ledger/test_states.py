"""The journey state machine as data (ledger.states), checked against DESIGN.md's diagram."""

from __future__ import annotations

import itertools

import pytest

from ledger import TERMINAL_STATES, TRANSITIONS, Cause, JourneyState, is_legal, legal_edges
from ledger.errors import UnknownCause, UnknownState
from ledger.states import parse_cause, parse_state

S = JourneyState

HAPPY_PATH = [
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
]


#: DESIGN.md's diagram, written out by hand (not derived from ledger.states), so an edge added
#: to or dropped from the table by mistake fails here: every test that walks `legal_edges()`
#: would otherwise agree with the mistake.
BUSINESS_EDGES_FROM_DESIGN = {
    ("received", "quarantined"),
    ("received", "qualified"),
    ("quarantined", "received"),
    ("qualified", "deal_open"),
    ("deal_open", "deal_lost"),
    ("deal_open", "deal_won"),
    ("deal_won", "contract_sent"),
    ("contract_sent", "contract_declined"),
    ("contract_sent", "contract_signed"),
    ("contract_signed", "charge_open"),
    ("charge_open", "paid"),
    ("paid", "activating"),
    ("activating", "activated"),
    ("activated", "welcomed"),
}
NON_TERMINAL_FROM_DESIGN = {
    "received",
    "quarantined",
    "qualified",
    "deal_open",
    "deal_won",
    "contract_sent",
    "contract_signed",
    "charge_open",
    "paid",
    "activating",
    "activated",
}


def test_the_legal_edges_are_exactly_those_of_the_design() -> None:
    dead_letter_round_trips = {
        edge
        for state in NON_TERMINAL_FROM_DESIGN
        for edge in ((state, "dead_lettered"), ("dead_lettered", state))
    }
    actual = {(str(src), str(dst)) for src, dst in legal_edges()}
    assert actual == BUSINESS_EDGES_FROM_DESIGN | dead_letter_round_trips


def test_every_state_has_an_entry_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(JourneyState)


def test_the_happy_path_runs_from_received_to_welcomed() -> None:
    for src, dst in itertools.pairwise(HAPPY_PATH):
        assert is_legal(src, dst), f"{src} -> {dst}"


def test_closed_and_done_states_are_the_terminal_ones() -> None:
    assert {S.DEAL_LOST, S.CONTRACT_DECLINED, S.WELCOMED} == TERMINAL_STATES


def test_every_state_is_reachable_from_received() -> None:
    reached = {S.RECEIVED}
    frontier = [S.RECEIVED]
    while frontier:
        state = frontier.pop()
        for src, dst in legal_edges():
            if src is state and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert reached == set(JourneyState)


@pytest.mark.parametrize(
    "state", [s for s in JourneyState if s not in TERMINAL_STATES and s is not S.DEAD_LETTERED]
)
def test_a_non_terminal_state_can_be_dead_lettered_and_resumed(state: JourneyState) -> None:
    assert is_legal(state, S.DEAD_LETTERED)
    assert is_legal(S.DEAD_LETTERED, state, dead_lettered_from=state)


def test_a_dead_lettered_journey_resumes_only_the_step_it_failed_in() -> None:
    assert not is_legal(S.DEAD_LETTERED, S.PAID, dead_lettered_from=S.CHARGE_OPEN)
    assert not is_legal(S.DEAD_LETTERED, S.CHARGE_OPEN, dead_lettered_from=None)


def test_causes_are_the_five_recorded_kinds() -> None:
    assert {cause.value for cause in Cause} == {"webhook", "poll", "reconcile", "manual", "gate"}


def test_an_unknown_state_name_is_refused_by_name() -> None:
    with pytest.raises(UnknownState, match="'shipped'"):
        parse_state("shipped")


def test_an_unknown_cause_is_refused_listing_the_accepted_ones() -> None:
    with pytest.raises(UnknownCause, match=r"'cron'.*webhook, poll, reconcile, manual, gate"):
        parse_cause("cron")
