"""The names other parts of leadflow code against: pinned, so a change is a visible decision."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import ledger
from ledger import errors, views

PUBLIC_NAMES = {
    "CONTACT_KEYS",
    "EFFECT_DONE",
    "EFFECT_FAILED",
    "EFFECT_PENDING",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Cause",
    "ClaimLost",
    "ClaimedJourney",
    "EffectStateError",
    "EffectView",
    "IllegalTransition",
    "InboxView",
    "JourneyState",
    "JourneyView",
    "LeadHasNoJourney",
    "LeadView",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "MigrationError",
    "QuarantineClosed",
    "QuarantineView",
    "RecordedLead",
    "TransitionView",
    "UnknownCause",
    "UnknownEffect",
    "UnknownInboxEntry",
    "UnknownLead",
    "UnknownQuarantine",
    "UnknownState",
    "canonical_document",
    "canonical_email",
    "canonical_phone",
    "is_legal",
    "legal_edges",
    "redact_secret_headers",
}

LEDGER_METHODS = {
    "upgrade": ["revision"],
    "downgrade": ["revision"],
    "current_revision": [],
    "session": [],
    "record_lead": ["source", "source_id", "raw", "normalized"],
    "find_lead_by_contact": ["email", "phone", "document", "exclude_lead_id"],
    "update_normalized": ["lead_id", "normalized"],
    "get_lead": ["lead_id"],
    "attach_duplicate": ["lead_id", "existing_lead_id", "reason"],
    "transition": ["lead_id", "to_state", "cause", "reason", "due_at", "worker"],
    "journey_state": ["lead_id"],
    "get_journey": ["lead_id"],
    "journey_history": ["lead_id"],
    "journey_counts": [],
    "claim": ["state", "limit", "worker", "lease_seconds"],
    "renew_claim": ["lead_id", "worker", "lease_seconds"],
    "release": ["lead_id", "worker", "due_at"],
    "begin_effect": ["key", "vendor", "operation", "lead_id"],
    "complete_effect": ["key", "vendor_object_id", "response"],
    "fail_effect": ["key", "error", "permanent"],
    "get_effect": ["key"],
    "effects_for_lead": ["lead_id"],
    "store_inbox": ["vendor", "event_id", "body", "headers"],
    "unprocessed_inbox": ["vendor", "limit"],
    "get_inbox": ["inbox_id"],
    "mark_inbox_processed": ["inbox_id"],
    "quarantine_lead": ["lead_id", "reasons", "values"],
    "list_quarantine": ["include_replayed"],
    "get_quarantine": ["quarantine_id"],
    "fix_quarantine": ["quarantine_id", "field", "value"],
    "mark_replayed": ["quarantine_id"],
}


def test_the_package_exports_exactly_the_public_names() -> None:
    assert set(ledger.__all__) == PUBLIC_NAMES
    for name in ledger.__all__:
        assert hasattr(ledger, name), name


@pytest.mark.parametrize(("method", "parameters"), sorted(LEDGER_METHODS.items()))
def test_ledger_methods_take_the_agreed_parameters(method: str, parameters: list[str]) -> None:
    signature = inspect.signature(getattr(ledger.Ledger, method))
    assert [name for name in signature.parameters if name != "self"] == parameters


def test_every_error_the_ledger_raises_is_a_ledger_error_listed_in_the_tree() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    for error_class in classes:
        assert issubclass(error_class, errors.LedgerError)
        assert error_class.__name__ in (errors.__doc__ or ""), error_class.__name__


@pytest.mark.parametrize(
    "view",
    [value for value in vars(views).values() if dataclasses.is_dataclass(value)],
    ids=lambda view: view.__name__,
)
def test_every_view_is_a_frozen_dataclass(view: type) -> None:
    assert view.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_an_illegal_transition_names_both_states() -> None:
    error = ledger.IllegalTransition("deal_open", "paid", lead_id=7)
    assert str(error) == "lead 7: illegal transition from 'deal_open' to 'paid'"
