"""Recording leads (idempotent per source id), normalised fields, de-dup look-up, duplicates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from data_quality.lead import NormalizedLead
from ledger import GateDecision, IllegalTransition, LeadHasNoJourney, Ledger, UnknownLead
from ledger.states import JourneyState
from tests.ledger.conftest import Clock, lead_in_state, new_lead

RAW = {"id": "9001", "field_data": [{"name": "email", "values": ["Ana@Example.com"]}]}


def test_a_new_lead_is_stored_with_its_journey_in_received_and_due_now(
    ledger: Ledger, clock: Clock
) -> None:
    recorded = ledger.record_lead("facebook", "9001", RAW)
    assert recorded.created
    lead = ledger.get_lead(recorded.lead_id)
    assert (lead.source, lead.source_id, lead.raw, lead.normalized) == (
        "facebook",
        "9001",
        RAW,
        None,
    )
    assert lead.received_at.tzinfo is not None
    journey = ledger.get_journey(recorded.lead_id)
    assert (journey.journey_id, journey.state) == (recorded.journey_id, "received")
    assert journey.due_at is not None
    assert journey.due_at <= clock()


def test_recording_the_same_lead_again_returns_it_unchanged(ledger: Ledger) -> None:
    first = ledger.record_lead("facebook", "9001", RAW)
    again = ledger.record_lead("facebook", "9001", {"other": "payload"})
    assert (again.lead_id, again.journey_id, again.created) == (
        first.lead_id,
        first.journey_id,
        False,
    )
    lead = ledger.get_lead(first.lead_id)
    assert (lead.raw, lead.normalized) == (RAW, None)


def test_the_same_source_id_from_another_source_is_another_lead(ledger: Ledger) -> None:
    facebook = ledger.record_lead("facebook", "9001", RAW)
    site = ledger.record_lead("website", "9001", RAW)
    assert site.created
    assert site.lead_id != facebook.lead_id


def test_concurrent_deliveries_of_one_lead_create_it_exactly_once(
    ledger: Ledger, ledger_url: str
) -> None:
    workers = 6
    barrier = Barrier(workers)
    ledgers = [Ledger(ledger_url) for _ in range(workers)]

    def deliver(own: Ledger) -> tuple[int, bool]:
        barrier.wait()
        recorded = own.record_lead("facebook", "race-1", RAW)
        return recorded.lead_id, recorded.created

    try:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(deliver, ledgers))
    finally:
        for own in ledgers:
            own.dispose()
    assert len({lead_id for lead_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def normalized(lead_id: int, **contacts: str) -> NormalizedLead:
    return NormalizedLead(
        source="facebook", source_id=f"lead-of-{lead_id}", full_name="Ana da Silva", **contacts
    )


def gated(ledger: Ledger, **contacts: str) -> int:
    """A new lead passed through the gate with these contacts (qualified, or attached)."""
    lead_id = new_lead(ledger)
    ledger.pass_gate(lead_id, normalized(lead_id, **contacts))
    return lead_id


def test_the_normalised_lead_is_stored_and_returned_as_a_normalized_lead(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    lead = normalized(lead_id, email="ana@example.com", phone="+5511987654321", cpf="52998224725")
    decision = ledger.pass_gate(lead_id, lead)
    assert decision == GateDecision(lead_id, qualified=True, duplicate_of=None)
    stored = ledger.get_lead(lead_id).normalized
    assert isinstance(stored, NormalizedLead)
    assert stored == lead
    assert stored.document == "52998224725"


def test_a_lead_is_found_by_the_same_email(ledger: Ledger) -> None:
    lead_id = gated(ledger, email="ana@example.com")
    assert ledger.find_lead_by_contact("ana@example.com", None, None) == lead_id


def test_the_ledger_compares_contacts_as_given_and_no_longer_normalises(ledger: Ledger) -> None:
    gated(ledger, email="ana@example.com", phone="+5511987654321", cpf="52998224725")
    assert ledger.find_lead_by_contact(" Ana@Example.COM", "+55 11 98765-4321", None) is None
    assert ledger.find_lead_by_contact(None, None, "529.982.247-25") is None


def test_a_lead_is_found_by_the_same_e164_phone(ledger: Ledger) -> None:
    lead_id = gated(ledger, phone="+5511987654321")
    assert ledger.find_lead_by_contact(None, "+5511987654321", None) == lead_id


@pytest.mark.parametrize("key", ["cpf", "cnpj"])
def test_a_lead_is_found_by_the_same_cpf_or_cnpj(ledger: Ledger, key: str) -> None:
    document = "52998224725" if key == "cpf" else "11222333000181"
    lead_id = gated(ledger, **{key: document})
    assert ledger.find_lead_by_contact(None, None, document) == lead_id


def test_contact_look_up_answers_the_earliest_matching_lead(ledger: Ledger) -> None:
    first = gated(ledger, email="ana@example.com")
    gated(ledger, phone="+5511987654321")
    assert ledger.find_lead_by_contact("ana@example.com", "+5511987654321", None) == first


def test_contact_look_up_can_exclude_the_lead_being_checked(ledger: Ledger) -> None:
    lead_id = gated(ledger, email="ana@example.com")
    assert ledger.find_lead_by_contact("ana@example.com", None, None, lead_id) is None


def test_gated_in_order_the_oldest_lead_of_a_person_goes_on_and_the_later_attaches(
    ledger: Ledger,
) -> None:
    older, newer = new_lead(ledger), new_lead(ledger)
    first = ledger.pass_gate(older, normalized(older, email="ana@example.com"))
    second = ledger.pass_gate(newer, normalized(newer, email="ana@example.com"))
    assert first == GateDecision(older, qualified=True, duplicate_of=None)
    assert second == GateDecision(newer, qualified=False, duplicate_of=older)
    reason = ledger.get_lead(newer).duplicate_reason
    assert reason == f"same e-mail, phone or CPF/CNPJ as lead {older}"
    with pytest.raises(LeadHasNoJourney):
        ledger.get_journey(newer)


def test_a_received_lead_not_yet_gated_is_not_a_match(ledger: Ledger) -> None:
    new_lead(ledger)
    later = gated(ledger, email="ana@example.com")
    assert ledger.journey_state(later) == "qualified"


def test_a_lead_replayed_after_a_newer_one_went_ahead_attaches_to_the_newer_one(
    ledger: Ledger,
) -> None:
    older = new_lead(ledger)
    record_id = ledger.quarantine_at_gate(older, [{"rule": "email_valid"}], {"email": "x"})
    newer = gated(ledger, email="ana@example.com")
    decision = ledger.pass_gate(
        older, normalized(older, email="ana@example.com"), replay_of=record_id
    )
    assert decision == GateDecision(older, qualified=False, duplicate_of=newer)
    assert ledger.get_quarantine(record_id).replayed_at is not None


def test_contact_look_up_without_any_contact_finds_nothing(ledger: Ledger) -> None:
    gated(ledger)
    assert ledger.find_lead_by_contact(None, "", "") is None


def test_a_lead_with_other_contacts_is_not_found(ledger: Ledger) -> None:
    gated(ledger, email="ana@example.com")
    assert ledger.find_lead_by_contact("bia@example.com", "+5511911112222", "1") is None


def test_get_leads_reads_many_leads_in_one_call_and_leaves_unknown_ids_out(
    ledger: Ledger,
) -> None:
    first, second = new_lead(ledger), gated(ledger, email="ana@example.com")
    leads = ledger.get_leads([first, second, 999_999, 2**70])
    assert sorted(leads) == [first, second]
    assert leads[second].normalized is not None
    assert leads[first].normalized is None
    assert ledger.get_leads([]) == {}


def test_an_id_beyond_64_bits_is_an_unknown_lead_on_every_database(ledger: Ledger) -> None:
    with pytest.raises(UnknownLead):
        ledger.get_lead(2**70)
    with pytest.raises(UnknownLead):
        ledger.journey_state(2**64)


def test_reading_an_unknown_lead_raises_unknown_lead(ledger: Ledger) -> None:
    with pytest.raises(UnknownLead):
        ledger.get_lead(31337)


def test_a_duplicate_points_to_the_earlier_lead_and_loses_its_own_journey(
    ledger: Ledger,
) -> None:
    earlier = ledger.record_lead("facebook", "1", RAW)
    later = ledger.record_lead("facebook", "2", {"again": True})
    ledger.attach_duplicate(later.lead_id, earlier.lead_id, "same e-mail")
    lead = ledger.get_lead(later.lead_id)
    assert (lead.duplicate_of, lead.duplicate_reason, lead.raw) == (
        earlier.lead_id,
        "same e-mail",
        {"again": True},
    )
    with pytest.raises(LeadHasNoJourney, match=f"duplicate of lead {earlier.lead_id}"):
        ledger.journey_state(later.lead_id)
    assert ledger.journey_state(earlier.lead_id) == "received"


def test_recording_an_attached_duplicate_again_answers_the_earlier_journey(
    ledger: Ledger,
) -> None:
    earlier = ledger.record_lead("facebook", "1", RAW)
    later = ledger.record_lead("facebook", "2", RAW)
    ledger.attach_duplicate(later.lead_id, earlier.lead_id, "same phone")
    again = ledger.record_lead("facebook", "2", RAW)
    assert (again.lead_id, again.journey_id, again.created, again.duplicate_of) == (
        later.lead_id,
        earlier.journey_id,
        False,
        earlier.lead_id,
    )


def test_attaching_to_a_duplicate_attaches_to_the_lead_it_duplicates(ledger: Ledger) -> None:
    first, second, third = new_lead(ledger), new_lead(ledger), new_lead(ledger)
    ledger.attach_duplicate(second, first, "same e-mail")
    ledger.attach_duplicate(third, second, "same CPF")
    assert ledger.get_lead(third).duplicate_of == first


def test_attaching_the_same_duplicate_twice_is_a_no_op(ledger: Ledger) -> None:
    first, second = new_lead(ledger), new_lead(ledger)
    ledger.attach_duplicate(second, first, "same e-mail")
    ledger.attach_duplicate(second, first, "same e-mail")
    assert ledger.get_lead(second).duplicate_of == first


def test_a_lead_already_under_way_cannot_be_attached_as_a_duplicate(ledger: Ledger) -> None:
    first = new_lead(ledger)
    second = lead_in_state(ledger, JourneyState.QUALIFIED)
    with pytest.raises(IllegalTransition, match="'qualified'"):
        ledger.attach_duplicate(second, first, "same e-mail")
    assert ledger.journey_state(second) == "qualified"
    assert ledger.get_lead(second).duplicate_of is None


def test_contact_look_up_ignores_leads_attached_as_duplicates(ledger: Ledger) -> None:
    first = gated(ledger, email="other@example.com", phone="+5511911112222")
    second = new_lead(ledger)
    ledger.pass_gate(second, normalized(second, email="ana@example.com", phone="+5511911112222"))
    assert ledger.get_lead(second).duplicate_of == first
    assert ledger.find_lead_by_contact("ana@example.com", None, None) is None


def test_a_lead_cannot_duplicate_itself(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    with pytest.raises(ValueError, match="itself"):
        ledger.attach_duplicate(lead_id, lead_id, "same")


def test_a_duplicate_replayed_from_quarantine_loses_its_journey_and_its_history(
    ledger: Ledger,
) -> None:
    earlier, later = new_lead(ledger), new_lead(ledger)
    ledger.transition(later, "quarantined", "gate", "email_valid")
    ledger.transition(later, "received", "manual", "fixed")
    ledger.attach_duplicate(later, earlier, "same e-mail once fixed")
    with pytest.raises(LeadHasNoJourney):
        ledger.journey_history(later)
    assert ledger.journey_history(earlier) == []
