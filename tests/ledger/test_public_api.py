"""The names other parts of leadflow code against: pinned, so a change is a visible decision."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

import ledger
from ledger import errors, views

PUBLIC_NAMES = {
    "CONTACT_KEYS",
    "DEFAULT_EFFECT_LEASE_SECONDS",
    "EFFECT_DONE",
    "EFFECT_FAILED",
    "EFFECT_PENDING",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Cause",
    "ClaimLost",
    "ClaimedJourney",
    "EffectInFlight",
    "EffectLeaseLost",
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
    "begin_effect": ["key", "vendor", "operation", "lead_id", "lease_seconds"],
    "renew_effect": ["key", "token", "lease_seconds"],
    "complete_effect": ["key", "vendor_object_id", "response"],
    "fail_effect": ["key", "error", "permanent", "token"],
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


def test_ledger_methods_take_the_agreed_parameters() -> None:
    actual = {
        method: [
            name
            for name in inspect.signature(getattr(ledger.Ledger, method)).parameters
            if name != "self"
        ]
        for method in LEDGER_METHODS
    }
    assert actual == LEDGER_METHODS


def test_parameters_added_after_the_agreed_api_are_keyword_only() -> None:
    """Callers written against the first API keep working: new parameters never shift
    positions."""
    added = {"begin_effect": "lease_seconds", "fail_effect": "token", "transition": "worker"}
    for method, name in added.items():
        parameter = inspect.signature(getattr(ledger.Ledger, method)).parameters[name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (method, name)


def _documented_tree() -> dict[str, str | None]:
    """Each class named in ledger.errors' docstring tree, mapped to the parent it is drawn
    under (None for the root)."""
    lines = (errors.__doc__ or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "LedgerError")
    parents: dict[str, str | None] = {"LedgerError": None}
    stack: list[tuple[int, str]] = [(-1, "LedgerError")]
    for line in lines[start + 1 :]:
        match = re.match(r"^([ │]*)[├└]── (\w+)", line)
        if match is None:
            if not line.strip():
                break
            continue  # a wrapped description
        depth = len(match.group(1))
        while stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(2)] = stack[-1][1]
        stack.append((depth, match.group(2)))
    return parents


def test_the_error_tree_in_the_docstring_is_the_class_hierarchy() -> None:
    classes = {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    tree = _documented_tree()
    assert set(tree) == set(classes)
    for name, parent in tree.items():
        if parent is not None:
            ledger_bases = [
                base.__name__ for base in classes[name].__bases__ if base in classes.values()
            ]
            assert ledger_bases == [parent], name


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
