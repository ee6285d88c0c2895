"""The gate's decisions and the quarantine: every rule broken, fixes, and atomic replay.

Issue 8 point 1: a fix that is not text is refused before it is stored, and a replay closes
the record and moves the journey together with the gate's decision, or not at all.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from data_quality.lead import NormalizedLead
from ledger import (
    GateDecision,
    IllegalTransition,
    InvalidValue,
    Ledger,
    QuarantineClosed,
    UnknownLead,
)
from ledger.errors import UnknownQuarantine
from tests.ledger.conftest import new_lead

REASONS = [
    {"rule": "email_valid", "field": "email", "value": "an***@exa"},
    {"rule": "cpf_valid", "field": "cpf", "value": "111.***.***-11"},
]
VALUES = {"full_name": "Ana da Silva", "email": "ana@exa", "cpf": "11111111111"}


def clean(lead_id: int, email: str = "ana@example.com") -> NormalizedLead:
    return NormalizedLead(
        source="facebook", source_id=f"lead-{lead_id}", full_name="Ana da Silva", email=email
    )


def quarantined(ledger: Ledger) -> tuple[int, int]:
    lead_id = new_lead(ledger)
    return lead_id, ledger.quarantine_at_gate(lead_id, REASONS, VALUES)


def test_quarantining_records_every_rule_and_moves_the_journey_in_one_call(
    ledger: Ledger,
) -> None:
    lead_id, record_id = quarantined(ledger)
    record = ledger.get_quarantine(record_id)
    assert (record.lead_id, record.reasons, record.values, record.fixes) == (
        lead_id,
        REASONS,
        VALUES,
        [],
    )
    assert record.quarantined_at.tzinfo is not None
    assert (record.fixed_at, record.replayed_at) == (None, None)
    (move,) = ledger.journey_history(lead_id)
    assert (move.from_state, move.to_state, move.cause, move.reason) == (
        "received",
        "quarantined",
        "gate",
        "email_valid, cpf_valid",
    )


def test_a_fix_changes_the_values_to_replay_and_is_recorded_with_its_time(
    ledger: Ledger,
) -> None:
    _, record_id = quarantined(ledger)
    fixed = ledger.fix_quarantine(record_id, "email", "ana@example.com")
    assert fixed.values == {**VALUES, "email": "ana@example.com"}
    assert [(fix["field"], fix["value"]) for fix in fixed.fixes] == [("email", "ana@example.com")]
    assert fixed.fixed_at is not None
    assert fixed.reasons == REASONS


@pytest.mark.parametrize(
    "value",
    ["j\udcff@exemplo.com.br", "ana\x00@exemplo.com.br", "ana@exemplo\x1b.com", 42, b"a@b.c"],
    ids=["0xff-byte-as-surrogate", "nul", "escape", "int", "bytes"],
)
def test_a_fix_that_is_not_valid_text_is_refused_naming_the_field_and_nothing_is_stored(
    ledger: Ledger, value: object
) -> None:
    _, record_id = quarantined(ledger)
    with pytest.raises(InvalidValue, match="email") as refused:
        ledger.fix_quarantine(record_id, "email", value)  # type: ignore[arg-type]
    assert refused.value.field == "email"
    record = ledger.get_quarantine(record_id)
    assert (record.values, record.fixes, record.fixed_at) == (VALUES, [], None)


def test_a_fix_may_clear_a_field(ledger: Ledger) -> None:
    _, record_id = quarantined(ledger)
    assert ledger.fix_quarantine(record_id, "cpf", None).values["cpf"] is None


def test_a_replay_that_passes_closes_the_record_and_qualifies_the_lead_together(
    ledger: Ledger,
) -> None:
    lead_id, record_id = quarantined(ledger)
    ledger.fix_quarantine(record_id, "email", "ana@example.com")
    decision = ledger.pass_gate(lead_id, clean(lead_id), replay_of=record_id)
    assert decision == GateDecision(lead_id, qualified=True, duplicate_of=None)
    assert ledger.get_quarantine(record_id).replayed_at is not None
    assert ledger.list_quarantine() == []
    assert [(t.to_state, t.cause, t.reason) for t in ledger.journey_history(lead_id)] == [
        ("quarantined", "gate", "email_valid, cpf_valid"),
        ("received", "manual", f"replay of quarantine {record_id}"),
        ("qualified", "gate", "passed the quality gate"),
    ]


def test_a_replay_that_fails_again_closes_the_record_and_opens_a_new_one_together(
    ledger: Ledger,
) -> None:
    lead_id, record_id = quarantined(ledger)
    new_record = ledger.quarantine_at_gate(lead_id, REASONS[:1], VALUES, replay_of=record_id)
    assert new_record != record_id
    assert [r.id for r in ledger.list_quarantine()] == [new_record]
    assert ledger.journey_state(lead_id) == "quarantined"
    assert [t.to_state for t in ledger.journey_history(lead_id)] == [
        "quarantined",
        "received",
        "quarantined",
    ]


def test_a_replay_attached_as_a_duplicate_closes_the_record_in_the_same_transaction(
    ledger: Ledger,
) -> None:
    earlier = new_lead(ledger)
    lead_id, record_id = quarantined(ledger)
    ledger.attach_duplicate(lead_id, earlier, "same person", replay_of=record_id)
    assert ledger.get_lead(lead_id).duplicate_of == earlier
    assert ledger.get_quarantine(record_id).replayed_at is not None


def test_a_replay_whose_decision_fails_leaves_the_record_open_and_the_lead_quarantined(
    ledger: Ledger,
) -> None:
    """The bug of issue 8 point 1: the record closed and the lead in `received`, then the gate
    crashed. Here the decision fails (a normalised value too long to store): nothing moved."""
    lead_id, record_id = quarantined(ledger)
    too_long = clean(lead_id, email="a" * 400 + "@exemplo.com.br")
    with pytest.raises(InvalidValue, match="email"):
        ledger.pass_gate(lead_id, too_long, replay_of=record_id)
    assert ledger.get_quarantine(record_id).replayed_at is None
    assert [r.id for r in ledger.list_quarantine()] == [record_id]
    assert ledger.journey_state(lead_id) == "quarantined"
    assert ledger.get_lead(lead_id).normalized is None
    # and the lead can still be replayed once fixed
    assert ledger.pass_gate(lead_id, clean(lead_id), replay_of=record_id).qualified


def test_a_replayed_record_cannot_be_fixed_or_replayed_again(ledger: Ledger) -> None:
    lead_id, record_id = quarantined(ledger)
    ledger.pass_gate(lead_id, clean(lead_id), replay_of=record_id)
    with pytest.raises(QuarantineClosed):
        ledger.fix_quarantine(record_id, "email", "ana@example.com")
    with pytest.raises(QuarantineClosed):
        ledger.quarantine_at_gate(lead_id, REASONS, VALUES, replay_of=record_id)


def test_a_replay_of_another_leads_record_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    _, record_id = quarantined(ledger)
    other, _other_record = quarantined(ledger)
    with pytest.raises(UnknownQuarantine, match="belongs to lead"):
        ledger.pass_gate(other, clean(other), replay_of=record_id)
    assert ledger.get_quarantine(record_id).replayed_at is None
    assert ledger.journey_state(other) == "quarantined"


def test_gating_a_lead_twice_is_refused(ledger: Ledger) -> None:
    lead_id = new_lead(ledger)
    ledger.pass_gate(lead_id, clean(lead_id))
    with pytest.raises(IllegalTransition, match="'qualified'"):
        ledger.pass_gate(lead_id, clean(lead_id))


def test_open_records_are_listed_oldest_first_and_replayed_ones_only_on_request(
    ledger: Ledger,
) -> None:
    first_lead, first = quarantined(ledger)
    _, second = quarantined(ledger)
    ledger.pass_gate(first_lead, clean(first_lead), replay_of=first)
    assert [r.id for r in ledger.list_quarantine()] == [second]
    assert [r.id for r in ledger.list_quarantine(include_replayed=True)] == [first, second]


def test_quarantining_an_unknown_lead_raises_unknown_lead(ledger: Ledger) -> None:
    with pytest.raises(UnknownLead):
        ledger.quarantine_at_gate(8080, REASONS, VALUES)


def test_a_quarantine_needs_at_least_one_broken_rule(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ledger.quarantine_at_gate(new_lead(ledger), [], VALUES)


@pytest.mark.parametrize("record_id", [777, 2**64, 2**70])
def test_an_unknown_quarantine_record_raises_unknown_quarantine(
    ledger: Ledger, record_id: int
) -> None:
    with pytest.raises(UnknownQuarantine):
        ledger.get_quarantine(record_id)


def test_two_workers_gating_two_leads_of_one_person_at_once_qualify_exactly_one(
    ledger: Ledger, ledger_url: str
) -> None:
    workers = 4
    leads = [new_lead(ledger) for _ in range(workers)]
    barrier = Barrier(workers)
    ledgers = [Ledger(ledger_url) for _ in range(workers)]

    def gate(pair: tuple[Ledger, int]) -> GateDecision:
        own, lead_id = pair
        barrier.wait()
        return own.pass_gate(lead_id, clean(lead_id, email="same.person@exemplo.com.br"))

    try:
        with ThreadPoolExecutor(workers) as pool:
            decisions = list(pool.map(gate, zip(ledgers, leads, strict=True)))
    finally:
        for own in ledgers:
            own.dispose()
    qualified = [d.lead_id for d in decisions if d.qualified]
    assert len(qualified) == 1
    assert {d.duplicate_of for d in decisions if not d.qualified} == set(qualified)
