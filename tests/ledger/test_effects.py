"""The effect protocol: pending before the vendor call, done with the vendor's id, or failed."""

from __future__ import annotations

import dataclasses

import pytest

from ledger import (
    EffectInFlight,
    EffectLeaseLost,
    EffectStateError,
    EffectView,
    Ledger,
    UnknownEffect,
    UnknownLead,
)
from tests.ledger.conftest import Clock, new_lead

KEY = "lead:1:asaas.payment"


def taken_over(ledger: Ledger, clock: Clock) -> tuple[EffectView, EffectView]:
    """An attempt that held KEY for 60 s and stalled (or crashed), and the attempt that took
    the effect over once that lease had run out."""
    stalled = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None, lease_seconds=60)
    clock.advance(61)
    return stalled, ledger.begin_effect(KEY, "asaas", "create_pix_charge", None, lease_seconds=60)


def test_beginning_a_new_effect_writes_it_pending_as_the_first_attempt(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    effect = ledger.begin_effect(KEY, "asaas", "create_pix_charge", lead_id)
    assert (effect.status, effect.attempts, effect.lead_id) == ("pending", 1, lead_id)
    assert not effect.needs_lookup
    assert not effect.is_done
    assert ledger.get_effect(KEY) == effect


def test_completing_an_effect_records_the_vendor_object_and_response(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    done = ledger.complete_effect(KEY, "pay_080225913252", {"id": "pay_080225913252"})
    assert (done.status, done.vendor_object_id, done.response) == (
        "done",
        "pay_080225913252",
        {"id": "pay_080225913252"},
    )
    assert done.is_done


def test_beginning_a_done_effect_returns_it_so_the_call_is_skipped(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    ledger.complete_effect(KEY, "pay_1")
    again = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    assert (again.status, again.vendor_object_id, again.attempts) == ("done", "pay_1", 1)


def test_a_transient_failure_is_retried_by_the_next_begin_with_a_look_up_first(
    ledger: Ledger,
) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    failed = ledger.fail_effect(KEY, "503 Service Unavailable", permanent=False)
    assert (failed.status, failed.last_error, failed.permanent) == (
        "failed",
        "503 Service Unavailable",
        False,
    )
    retried = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    assert (retried.status, retried.attempts) == ("pending", 2)
    assert retried.needs_lookup


def test_a_permanent_failure_stays_failed_when_begun_again(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    ledger.fail_effect(KEY, "invalid_cpfCnpj: CPF inválido", permanent=True)
    again = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    assert (again.status, again.attempts, again.permanent) == ("failed", 1, True)
    assert again.is_permanently_failed
    assert again.last_error == "invalid_cpfCnpj: CPF inválido"


def test_a_second_begin_while_the_first_attempt_is_in_flight_is_refused(ledger: Ledger) -> None:
    first = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None, lease_seconds=60)
    with pytest.raises(EffectInFlight, match="in flight") as raised:
        ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    assert raised.value.leased_until == first.leased_until
    assert ledger.get_effect(KEY) == first, "a refused begin must change nothing"


def test_an_effect_left_pending_by_a_crash_is_taken_over_with_a_look_up_once_its_lease_ends(
    ledger: Ledger, clock: Clock
) -> None:
    crashed, resumed = taken_over(ledger, clock)
    assert (resumed.status, resumed.attempts) == ("pending", 2)
    assert resumed.needs_lookup
    assert resumed.lease_token not in (None, crashed.lease_token)
    assert resumed.leased_until is not None
    assert crashed.leased_until is not None
    assert resumed.leased_until > crashed.leased_until


def test_a_stalled_worker_cannot_fail_the_attempt_that_took_over(
    ledger: Ledger, clock: Clock
) -> None:
    stalled, current = taken_over(ledger, clock)
    with pytest.raises(EffectLeaseLost, match="no longer holds"):
        ledger.fail_effect(KEY, "read timeout", permanent=False, token=stalled.lease_token)
    assert ledger.get_effect(KEY) == current
    with pytest.raises(EffectInFlight):
        ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)


def test_a_stalled_worker_whose_call_succeeded_still_records_the_vendor_object(
    ledger: Ledger, clock: Clock
) -> None:
    taken_over(ledger, clock)
    done = ledger.complete_effect(KEY, "pay_made_by_the_stalled_call")
    assert (done.status, done.vendor_object_id, done.lease_token) == (
        "done",
        "pay_made_by_the_stalled_call",
        None,
    )


def test_the_holder_fails_its_own_attempt_with_its_token_and_the_lease_ends(
    ledger: Ledger,
) -> None:
    held = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    failed = ledger.fail_effect(KEY, "503", permanent=False, token=held.lease_token)
    assert (failed.status, failed.lease_token, failed.leased_until) == ("failed", None, None)
    with pytest.raises(EffectLeaseLost):
        ledger.fail_effect(KEY, "503 again", permanent=False, token=held.lease_token)
    assert ledger.begin_effect(KEY, "asaas", "create_pix_charge", None).attempts == 2


def test_a_renewed_effect_lease_keeps_other_workers_out_past_its_first_end(
    ledger: Ledger, clock: Clock
) -> None:
    held = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None, lease_seconds=60)
    clock.advance(50)
    assert held.lease_token is not None
    renewed = ledger.renew_effect(KEY, held.lease_token, lease_seconds=60)
    clock.advance(50)
    with pytest.raises(EffectInFlight):
        ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    assert (renewed.lease_token, renewed.attempts) == (held.lease_token, 1)


def test_a_lease_taken_over_cannot_be_renewed(ledger: Ledger, clock: Clock) -> None:
    stalled, current = taken_over(ledger, clock)
    assert stalled.lease_token is not None
    with pytest.raises(EffectLeaseLost):
        ledger.renew_effect(KEY, stalled.lease_token)
    assert ledger.get_effect(KEY) == current


def test_an_effect_for_an_unknown_lead_is_refused_as_unknown_lead(ledger: Ledger) -> None:
    with pytest.raises(UnknownLead, match="no lead 999999"):
        ledger.begin_effect(KEY, "asaas", "create_pix_charge", 999_999)
    with pytest.raises(UnknownEffect):
        ledger.get_effect(KEY)


def test_a_lease_must_be_positive(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        ledger.begin_effect(KEY, "asaas", "create_pix_charge", None, lease_seconds=0)
    with pytest.raises(UnknownEffect):
        ledger.get_effect(KEY)


def test_an_effect_found_at_the_vendor_after_a_failure_can_be_completed(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    ledger.fail_effect(KEY, "read timeout", permanent=False)
    done = ledger.complete_effect(KEY, "pay_found_by_external_reference")
    assert (done.status, done.vendor_object_id, done.last_error) == (
        "done",
        "pay_found_by_external_reference",
        "read timeout",
    )


def test_completing_twice_with_the_same_vendor_object_is_a_no_op(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    first = ledger.complete_effect(KEY, "pay_1")
    assert ledger.complete_effect(KEY, "pay_1") == first


def test_completing_with_a_second_vendor_object_is_refused(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    ledger.complete_effect(KEY, "pay_1")
    with pytest.raises(EffectStateError, match=r"'pay_1'.*'pay_2'"):
        ledger.complete_effect(KEY, "pay_2")
    assert ledger.get_effect(KEY).vendor_object_id == "pay_1"


def test_a_done_effect_cannot_fail(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    ledger.complete_effect(KEY, "pay_1")
    with pytest.raises(EffectStateError, match="already done"):
        ledger.fail_effect(KEY, "late timeout", permanent=False)
    assert ledger.get_effect(KEY).status == "done"


def test_a_key_reused_for_another_operation_is_refused(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    with pytest.raises(EffectStateError, match=r"asaas\.create_pix_charge"):
        ledger.begin_effect(KEY, "pipedrive", "upsert_deal", None)


@pytest.mark.parametrize(
    "operation",
    [
        lambda ledger: ledger.get_effect("nope"),
        lambda ledger: ledger.complete_effect("nope", "x"),
        lambda ledger: ledger.fail_effect("nope", "boom", permanent=False),
    ],
    ids=["get", "complete", "fail"],
)
def test_an_unknown_effect_key_raises_unknown_effect(ledger: Ledger, operation) -> None:
    with pytest.raises(UnknownEffect, match="'nope'"):
        operation(ledger)


def test_a_very_long_error_is_kept_only_as_far_as_it_is_useful(ledger: Ledger) -> None:
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    failed = ledger.fail_effect(KEY, "<html>" + "x" * 10_000, permanent=True)
    assert failed.last_error is not None
    assert failed.last_error.startswith("<html>")
    assert len(failed.last_error) == 4000


def test_a_leads_effects_are_listed_in_the_order_they_began(ledger: Ledger) -> None:
    lead_id, other = new_lead(ledger), new_lead(ledger)
    ledger.begin_effect(f"lead:{lead_id}:pipedrive.person", "pipedrive", "upsert_person", lead_id)
    ledger.begin_effect(f"lead:{other}:pipedrive.person", "pipedrive", "upsert_person", other)
    ledger.begin_effect(f"lead:{lead_id}:pipedrive.deal", "pipedrive", "upsert_deal", lead_id)
    assert [effect.operation for effect in ledger.effects_for_lead(lead_id)] == [
        "upsert_person",
        "upsert_deal",
    ]


def test_a_leads_effects_without_responses_are_the_same_effects_with_no_answer(
    ledger: Ledger,
) -> None:
    lead_id = new_lead(ledger)
    for effect in ("pipedrive.person", "asaas.pix_charge"):
        ledger.begin_effect(f"lead:{lead_id}:{effect}", effect.split(".")[0], effect, lead_id)
        ledger.complete_effect(f"lead:{lead_id}:{effect}", f"id-{effect}", {"big": "x" * 500})
    full = ledger.effects_for_lead(lead_id)
    light = ledger.effects_for_lead(lead_id, responses=False)
    assert [effect.response for effect in light] == [None, None]
    assert [effect.response for effect in full] == [{"big": "x" * 500}] * 2
    assert [dataclasses.replace(effect, response=None) for effect in full] == light


def test_a_batchs_effects_are_read_in_one_call_each_leads_as_its_own_read_gives_them(
    ledger: Ledger,
) -> None:
    first, second, none_yet = new_lead(ledger), new_lead(ledger), new_lead(ledger)
    made = [(first, "pipedrive.person"), (second, "pipedrive.person"), (first, "pipedrive.deal")]
    for lead_id, effect in made:
        key = f"lead:{lead_id}:{effect}"
        ledger.begin_effect(key, "pipedrive", effect, lead_id)
        ledger.complete_effect(key, f"id-{lead_id}", {"big": "x"})

    batch = ledger.effects_for_leads([second, first, none_yet, 999_999, 2**70])

    assert batch == {
        lead_id: ledger.effects_for_lead(lead_id, responses=False)
        for lead_id in (first, second, none_yet, 999_999)
    }
    assert [effect.operation for effect in batch[first]] == ["pipedrive.person", "pipedrive.deal"]
    assert batch[none_yet] == batch[999_999] == []
    assert ledger.effects_for_leads([]) == {}


def test_a_late_workers_object_after_a_takeover_is_recorded_as_an_orphan_candidate(
    ledger: Ledger, clock: Clock
) -> None:
    """Issue 8 point 5: the stalled worker's completion is refused, but its object's id is
    kept where a person or the reconciler finds it."""
    ledger.begin_effect(KEY, "asaas", "create_pix_charge", None, lease_seconds=30)
    clock.advance(31)
    takeover = ledger.begin_effect(KEY, "asaas", "create_pix_charge", None)
    assert takeover.needs_lookup
    ledger.complete_effect(KEY, "pay_by_the_new_worker")
    with pytest.raises(EffectStateError, match="orphan candidate"):
        ledger.complete_effect(KEY, "pay_by_the_stalled_worker")
    with pytest.raises(EffectStateError):
        ledger.complete_effect(KEY, "pay_by_the_stalled_worker")  # reported twice: kept once
    effect = ledger.get_effect(KEY)
    assert effect.vendor_object_id == "pay_by_the_new_worker"
    assert effect.orphan_candidates == ("pay_by_the_stalled_worker",)
    assert ledger.effects_for_lead(2**70) == []


def test_a_note_on_the_decision_is_recorded_with_the_completion_or_failure(
    ledger: Ledger,
) -> None:
    ledger.begin_effect(KEY, "whatsapp", "send_template", None)
    failed = ledger.fail_effect(KEY, "read timeout", permanent=False, note="retry later")
    assert failed.note == "retry later"
    ledger.begin_effect(KEY, "whatsapp", "send_template", None)
    done = ledger.complete_effect(KEY, "wamid.1", note="sent; outcome unknown")
    assert (done.note, ledger.get_effect(KEY).note) == ("sent; outcome unknown",) * 2


def test_a_vendor_object_leads_back_to_its_lead_and_can_be_noted(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    key = f"lead:{lead_id}:whatsapp.welcome"
    ledger.begin_effect(key, "whatsapp", "send_template", lead_id)
    ledger.complete_effect(key, "wamid.HBg1")
    assert ledger.lead_for_vendor_object("whatsapp", "wamid.HBg1") == lead_id
    assert ledger.lead_for_vendor_object("asaas", "wamid.HBg1") is None
    assert ledger.note_effect_by_vendor_object("whatsapp", "wamid.HBg1", "failed: 131026")
    assert ledger.get_effect(key).note == "failed: 131026"
    assert not ledger.note_effect_by_vendor_object("whatsapp", "wamid.other", "x")
