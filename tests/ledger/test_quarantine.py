"""The quarantine: leads stopped at the gate, every rule they broke, fixes, and replay."""

from __future__ import annotations

import pytest

from ledger import Ledger, QuarantineClosed, UnknownLead
from ledger.errors import UnknownQuarantine
from tests.ledger.conftest import new_lead

REASONS = [
    {"rule": "email_valid", "field": "email", "value": "an***@exa"},
    {"rule": "cpf_valid", "field": "cpf", "value": "111.***.***-11"},
]
VALUES = {"full_name": "Ana da Silva", "email": "ana@exa", "cpf": "11111111111"}


def test_a_quarantined_lead_keeps_every_rule_it_broke_and_its_values(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    record_id = ledger.quarantine_lead(lead_id, REASONS, VALUES)
    record = ledger.get_quarantine(record_id)
    assert (record.lead_id, record.reasons, record.values, record.fixes) == (
        lead_id,
        REASONS,
        VALUES,
        [],
    )
    assert record.quarantined_at.tzinfo is not None
    assert (record.fixed_at, record.replayed_at) == (None, None)


def test_a_fix_changes_the_values_to_replay_and_is_recorded_with_its_time(
    ledger: Ledger,
) -> None:
    record_id = ledger.quarantine_lead(new_lead(ledger), REASONS, VALUES)
    fixed = ledger.fix_quarantine(record_id, "email", "ana@example.com")
    assert fixed.values == {**VALUES, "email": "ana@example.com"}
    assert [(fix["field"], fix["value"]) for fix in fixed.fixes] == [("email", "ana@example.com")]
    assert fixed.fixed_at is not None
    assert fixed.reasons == REASONS


def test_open_records_are_listed_oldest_first_and_replayed_ones_only_on_request(
    ledger: Ledger,
) -> None:
    first = ledger.quarantine_lead(new_lead(ledger), REASONS, VALUES)
    second = ledger.quarantine_lead(new_lead(ledger), REASONS, VALUES)
    replayed = ledger.mark_replayed(first)
    assert replayed.replayed_at is not None
    assert [r.id for r in ledger.list_quarantine()] == [second]
    assert [r.id for r in ledger.list_quarantine(include_replayed=True)] == [first, second]


def test_a_replayed_record_cannot_be_fixed_or_replayed_again(ledger: Ledger) -> None:
    record_id = ledger.quarantine_lead(new_lead(ledger), REASONS, VALUES)
    ledger.mark_replayed(record_id)
    with pytest.raises(QuarantineClosed):
        ledger.fix_quarantine(record_id, "email", "ana@example.com")
    with pytest.raises(QuarantineClosed):
        ledger.mark_replayed(record_id)


def test_a_lead_goes_through_quarantine_fix_and_replay_to_qualified(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    record_id = ledger.quarantine_lead(lead_id, REASONS, VALUES)
    ledger.transition(lead_id, "quarantined", "gate", "email_valid, cpf_valid")
    ledger.fix_quarantine(record_id, "email", "ana@example.com")
    ledger.fix_quarantine(record_id, "cpf", "52998224725")
    ledger.mark_replayed(record_id)
    ledger.transition(lead_id, "received", "manual", "fixed and replayed")
    ledger.transition(lead_id, "qualified", "gate")
    assert [t.to_state for t in ledger.journey_history(lead_id)] == [
        "quarantined",
        "received",
        "qualified",
    ]
    assert ledger.list_quarantine() == []


def test_quarantining_an_unknown_lead_raises_unknown_lead(ledger: Ledger) -> None:
    with pytest.raises(UnknownLead):
        ledger.quarantine_lead(8080, REASONS, VALUES)


def test_a_quarantine_needs_at_least_one_broken_rule(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ledger.quarantine_lead(new_lead(ledger), [], VALUES)


def test_an_unknown_quarantine_record_raises_unknown_quarantine(ledger: Ledger) -> None:
    with pytest.raises(UnknownQuarantine):
        ledger.get_quarantine(777)
