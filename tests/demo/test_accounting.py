"""The demo's books: a lead is accounted for once, and the vendors' counters must match the
ledger's done effects — the two ways the demo's exit code turns non-zero."""

from __future__ import annotations

from pathlib import Path

from leadflow.demo import (
    KIND_OF_EFFECT,
    Accounting,
    LedgerSnapshot,
    account,
    read_ledger,
)
from ledger import Cause, JourneyState, Ledger


def snapshot(**changes: object) -> LedgerSnapshot:
    """Three leads: one welcomed, one quarantined, one merged into the first (a repeat)."""
    base: dict[str, object] = {
        "facebook_leads": {"g1": (1, None), "g2": (2, None), "g3": (3, 1)},
        "states": {1: "welcomed", 2: "quarantined"},
        "orphans": (),
        "reached": {
            "deal_won": frozenset({1}),
            "paid": frozenset({1}),
            "welcomed": frozenset({1}),
            "quarantined": frozenset({2}),
        },
        "dead_letter_reasons": {},
        "quarantine_rules": {"email_valid": 1},
        "done_effects": {("pipedrive", "create_deal"): 1, ("whatsapp", "send_pix_code"): 1},
        "orphan_candidates": 0,
        "unconfirmed": 0,
        "welcome_seconds": {1: 4.5},
        "transitions": 9,
    }
    base.update(changes)
    return LedgerSnapshot(**base)  # type: ignore[arg-type]


COUNTERS = {"pipedrive": {"deal": 1, "webhook": 3}, "whatsapp": {"message": 1}}


def test_balanced_books_account_for_every_lead() -> None:
    books = account(snapshot(), COUNTERS, ["g1", "g2", "g3"])

    assert books.ok, books.problems
    assert (books.leads_in, books.recorded, books.duplicates_merged) == (3, 3, 1)
    assert (books.quarantined, books.welcomed, books.charges_paid) == (1, 1, 1)
    assert books.quarantine_rules == {"email_valid": 1}


def test_a_lead_the_ledger_never_got_is_unaccounted() -> None:
    books = account(snapshot(), COUNTERS, ["g1", "g2", "g3", "g4"])

    assert not books.ok
    assert books.problems == (
        "1 lead(s) submitted to the form never reached the ledger (Graph ids g4)",
    )


def test_an_object_the_vendor_made_twice_fails_the_books() -> None:
    books = account(snapshot(), {**COUNTERS, "pipedrive": {"deal": 2}}, ["g1", "g2", "g3"])

    assert [(c.vendor, c.kind, c.created, c.in_ledger) for c in books.created_twice] == [
        ("pipedrive", "deal", 2, 1)
    ]
    assert "created twice" in books.problems[0]


def test_a_journey_still_moving_or_a_lead_without_journey_is_unaccounted() -> None:
    books = account(
        snapshot(states={1: "paid", 2: "quarantined"}, orphans=(7,)),
        COUNTERS,
        ["g1", "g2", "g3"],
    )

    assert books.problems == (
        "1 lead(s) have neither a journey nor an earlier lead (lead ids 7)",
        "1 journey(s) still in 'paid' when the demo ended",
    )


def test_waiting_on_a_person_is_accounted_for() -> None:
    books: Accounting = account(
        snapshot(states={1: "charge_open", 2: "deal_open"}), COUNTERS, ["g1", "g2", "g3"]
    )

    assert books.ok
    assert books.waiting == {"deal_open": 1, "contract_sent": 0, "charge_open": 1}


def test_every_counted_kind_names_operations_of_its_own_vendor() -> None:
    assert all(operations for operations in KIND_OF_EFFECT.values())
    assert len({op for ops in KIND_OF_EFFECT.values() for op in ops}) == sum(
        len(ops) for ops in KIND_OF_EFFECT.values()
    )


def test_the_ledger_is_read_whole(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.upgrade()
    first = ledger.record_lead("facebook", "g1", {"full_name": "Ana"}).lead_id
    repeat = ledger.record_lead("facebook", "g2", {"full_name": "Ana"}).lead_id
    ledger.attach_duplicate(repeat, first, "same e-mail")
    ledger.transition(first, JourneyState.QUALIFIED, Cause.GATE, "passed")
    ledger.transition(first, JourneyState.DEAD_LETTERED, Cause.RECONCILE, "Pipedrive: 400 bad")
    ledger.dispose()

    read = read_ledger(url)

    assert read.facebook_leads == {"g1": (first, None), "g2": (repeat, first)}
    assert read.states == {first: "dead_lettered"}
    assert read.dead_letter_reasons == {first: "Pipedrive: 400 bad"}
    assert read.reached["qualified"] == frozenset({first})
    assert read.orphans == ()
    assert read.transitions == 2


def test_a_long_dead_letter_reason_is_grouped_by_its_start_and_shown_as_cut() -> None:
    from leadflow.cli.demo import REASON_WIDTH, reason_label

    reason = "billing needs a valid CPF/CNPJ: the contract's 'cpf' field holds 123.456.789-00"
    label = reason_label(reason)
    assert label.endswith("…")
    assert len(label) <= REASON_WIDTH
    assert reason.startswith(label[:-1])
    assert reason_label(reason.replace("123.456.789-00", "987.654.321-00")) == label
    assert reason_label("the vendor refused the charge") == "the vendor refused the charge"
