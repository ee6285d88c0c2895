"""What the journey (issue 10) stands on: poll cursors, retrying a dead letter, batch reads,
listing journeys, claiming named leads, and refusing a move when the journey moved meanwhile."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger import Cause, EffectStatus, IllegalTransition, InvalidValue, JourneyState, Ledger
from tests.ledger.conftest import Clock, lead_in_state, new_lead

S = JourneyState


def test_a_cursor_is_none_before_the_first_poll_then_what_was_set_last(ledger: Ledger) -> None:
    assert ledger.get_cursor("facebook:form:123") is None
    ledger.set_cursor("facebook:form:123", "QVFIU...1")
    ledger.set_cursor("facebook:form:123", "QVFIU...2")
    ledger.set_cursor("facebook:form:456", "other")
    assert ledger.get_cursor("facebook:form:123") == "QVFIU...2"
    assert ledger.get_cursor("facebook:form:456") == "other"


def test_a_cursor_name_beyond_its_column_is_refused_naming_it(ledger: Ledger) -> None:
    with pytest.raises(InvalidValue, match="cursor name"):
        ledger.set_cursor("x" * 256, "value")


def test_retrying_a_dead_letter_resumes_its_step_and_makes_the_failed_effect_retryable(
    ledger: Ledger,
) -> None:
    lead_id = lead_in_state(ledger, S.CONTRACT_SIGNED)
    key = f"lead:{lead_id}:asaas.customer"
    ledger.begin_effect(key, "asaas", "create_customer", lead_id)
    ledger.fail_effect(key, "invalid_cpfCnpj", permanent=True)
    ledger.transition(lead_id, S.DEAD_LETTERED, Cause.RECONCILE, "invalid_cpfCnpj")
    assert ledger.begin_effect(key, "asaas", "create_customer", lead_id).is_permanently_failed

    (reset,) = ledger.retry_dead_lettered(lead_id, "CPF corrected by Ana")
    assert (reset.key, reset.status, reset.permanent) == (key, EffectStatus.FAILED, False)
    journey = ledger.get_journey(lead_id)
    assert (journey.state, journey.dead_lettered_from) == (S.CONTRACT_SIGNED, None)
    last = ledger.journey_history(lead_id)[-1]
    assert (last.cause, last.reason) == (Cause.MANUAL, "CPF corrected by Ana")
    again = ledger.begin_effect(key, "asaas", "create_customer", lead_id)
    assert (again.status, again.attempts, again.needs_lookup) == (EffectStatus.PENDING, 2, True)


def test_only_a_dead_lettered_journey_is_retried(ledger: Ledger) -> None:
    lead_id = lead_in_state(ledger, S.QUALIFIED)
    with pytest.raises(IllegalTransition, match="dead-lettered"):
        ledger.retry_dead_lettered(lead_id, "nothing to retry")
    assert ledger.journey_state(lead_id) == S.QUALIFIED


def test_journeys_of_many_leads_are_read_in_one_call(ledger: Ledger) -> None:
    first, second, attached = new_lead(ledger), lead_in_state(ledger, S.QUALIFIED), new_lead(ledger)
    ledger.attach_duplicate(attached, first, "same person")
    journeys = ledger.get_journeys([first, second, attached, 424242])
    assert {lead_id: j.state for lead_id, j in journeys.items()} == {
        first: S.RECEIVED,
        second: S.QUALIFIED,
    }


def test_journeys_are_listed_newest_move_first_by_state_and_since(
    ledger: Ledger, clock: Clock
) -> None:
    old = new_lead(ledger)
    clock.advance(60)
    since = clock()
    newer = lead_in_state(ledger, S.QUALIFIED)
    newest = new_lead(ledger)
    assert [j.lead_id for j in ledger.list_journeys()] == [newest, newer, old]
    assert [j.lead_id for j in ledger.list_journeys(state="received")] == [newest, old]
    assert [j.lead_id for j in ledger.list_journeys(since=since)] == [newest, newer]
    assert [j.lead_id for j in ledger.list_journeys(limit=1)] == [newest]


def test_a_claim_of_named_leads_takes_them_due_or_not_but_not_those_held_by_others(
    ledger: Ledger, clock: Clock
) -> None:
    later = clock() + timedelta(hours=1)
    leads = [lead_in_state(ledger, S.QUALIFIED) for _ in range(3)]
    ledger.claim(S.QUALIFIED, 1, "other", lead_ids=[leads[2]])
    for lead_id in leads[:2]:
        ledger.claim(S.QUALIFIED, 1, "setup", lead_ids=[lead_id])
        ledger.release(lead_id, "setup", due_at=later)
    assert ledger.claim(S.QUALIFIED, 10, "reconciler") == []  # none is due
    claimed = ledger.claim(S.QUALIFIED, 10, "webhook", lead_ids=[*leads, 2**70])
    assert sorted(c.lead_id for c in claimed) == leads[:2]
    assert {c.claimed_by for c in claimed} == {"webhook"}
    assert ledger.claim(S.DEAL_OPEN, 10, "webhook", lead_ids=leads) == []


def test_a_move_expecting_a_state_the_journey_left_meanwhile_is_refused(ledger: Ledger) -> None:
    lead_id = lead_in_state(ledger, S.CONTRACT_SENT)
    ledger.transition(lead_id, S.CONTRACT_SIGNED, Cause.WEBHOOK, expected_from=S.CONTRACT_SENT)
    with pytest.raises(IllegalTransition, match="moved meanwhile"):
        ledger.transition(
            lead_id, S.CONTRACT_SIGNED, Cause.RECONCILE, expected_from=S.CONTRACT_SENT
        )
    assert [t.cause for t in ledger.journey_history(lead_id)][-1] == Cause.WEBHOOK
