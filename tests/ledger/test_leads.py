"""Recording leads (idempotent per source id), normalised fields, de-dup look-up, duplicates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from ledger import IllegalTransition, LeadHasNoJourney, Ledger, UnknownLead
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
    again = ledger.record_lead("facebook", "9001", {"other": "payload"}, {"email": "x@y.z"})
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


def test_normalised_fields_are_stored_and_returned(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    normalized = {
        "full_name": "Ana da Silva",
        "email": "ana@example.com",
        "phone": "+5511987654321",
    }
    ledger.update_normalized(lead_id, normalized)
    assert ledger.get_lead(lead_id).normalized == normalized


def test_a_lead_is_found_by_the_same_email_in_another_case(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.update_normalized(lead_id, {"email": "ana@example.com"})
    assert ledger.find_lead_by_contact(" Ana@Example.COM", None, None) == lead_id


def test_a_lead_is_found_by_the_same_e164_phone(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.update_normalized(lead_id, {"phone": "+5511987654321"})
    assert ledger.find_lead_by_contact(None, "+55 11 98765-4321", None) == lead_id


@pytest.mark.parametrize("key", ["document", "cpf", "cnpj", "cpf_cnpj"])
def test_a_lead_is_found_by_the_same_cpf_or_cnpj_digits(ledger: Ledger, key: str) -> None:
    lead_id = new_lead(ledger)
    ledger.update_normalized(lead_id, {key: "52998224725"})
    assert ledger.find_lead_by_contact(None, None, "529.982.247-25") == lead_id


def test_contact_look_up_answers_the_earliest_matching_lead(ledger: Ledger) -> None:
    first, second = new_lead(ledger), new_lead(ledger)
    ledger.update_normalized(first, {"email": "ana@example.com"})
    ledger.update_normalized(second, {"phone": "+5511987654321"})
    assert ledger.find_lead_by_contact("ana@example.com", "+5511987654321", None) == first


def test_contact_look_up_can_exclude_the_lead_being_checked(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.update_normalized(lead_id, {"email": "ana@example.com"})
    assert ledger.find_lead_by_contact("ana@example.com", None, None, lead_id) is None


def test_in_one_batch_the_oldest_lead_of_a_person_goes_on_whatever_the_order(
    ledger: Ledger,
) -> None:
    older, newer = new_lead(ledger), new_lead(ledger)
    for lead_id in (older, newer):
        ledger.update_normalized(lead_id, {"email": "ana@example.com"})
    assert ledger.find_lead_by_contact("ana@example.com", None, None, older) is None
    assert ledger.find_lead_by_contact("ana@example.com", None, None, newer) == older


def test_a_lead_replayed_after_a_newer_one_went_ahead_finds_the_newer_one(
    ledger: Ledger,
) -> None:
    older = new_lead(ledger)
    ledger.transition(older, "quarantined", "gate", "email_valid")
    newer = lead_in_state(ledger, JourneyState.QUALIFIED)
    ledger.update_normalized(newer, {"email": "ana@example.com"})
    ledger.transition(older, "received", "manual", "fixed")
    ledger.update_normalized(older, {"email": "ana@example.com"})
    assert ledger.find_lead_by_contact("ana@example.com", None, None, older) == newer


def test_contact_look_up_without_any_contact_finds_nothing(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.update_normalized(lead_id, {"full_name": "Ana"})
    assert ledger.find_lead_by_contact(None, "  ", "") is None


def test_a_lead_with_other_contacts_is_not_found(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.update_normalized(lead_id, {"email": "ana@example.com"})
    assert ledger.find_lead_by_contact("bia@example.com", "+5511911112222", "1") is None


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
    first, second = new_lead(ledger), new_lead(ledger)
    ledger.update_normalized(second, {"email": "ana@example.com"})
    ledger.update_normalized(first, {"email": "other@example.com"})
    ledger.attach_duplicate(second, first, "same phone")
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
