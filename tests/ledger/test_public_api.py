"""The names other parts of leadflow code against: the exports are pinned, so a change is a
visible decision; the methods are tested by what they do, not by their parameter names."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

import pytest

import ledger
from ledger import errors, views

PUBLIC_NAMES = {
    "AsyncLedger",
    "BatchSpoiled",
    "Cause",
    "ClaimLost",
    "ClaimedJourney",
    "DEFAULT_EFFECT_LEASE_SECONDS",
    "DatabaseRefused",
    "EffectInFlight",
    "EffectLeaseLost",
    "EffectStateError",
    "EffectStatus",
    "EffectView",
    "GateDecision",
    "IllegalTransition",
    "InboxOutcome",
    "InboxView",
    "InvalidValue",
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
    "TERMINAL_STATES",
    "TRANSITIONS",
    "TransitionView",
    "UnknownCause",
    "UnknownEffect",
    "UnknownInboxEntry",
    "UnknownLead",
    "UnknownQuarantine",
    "UnknownState",
    "is_legal",
    "legal_edges",
    "shared_ledger",
}


def test_the_package_exports_exactly_the_public_names() -> None:
    assert set(ledger.__all__) == PUBLIC_NAMES
    for name in PUBLIC_NAMES:
        assert getattr(ledger, name) is not None


def test_statuses_causes_and_outcomes_are_str_enums_that_compare_as_their_strings() -> None:
    for enum in (ledger.JourneyState, ledger.Cause, ledger.EffectStatus, ledger.InboxOutcome):
        assert issubclass(enum, StrEnum)
    assert ledger.EffectStatus.DONE == "done"
    assert ledger.Cause("gate") is ledger.Cause.GATE


def test_views_carry_enums_not_bare_strings(ledger_url: str) -> None:
    """Read back from the database, states and causes are the enums (typed everywhere)."""
    own = ledger.Ledger(ledger_url)
    try:
        own.upgrade()
        lead_id = own.record_lead("api-test", uuid.uuid4().hex, {}).lead_id
        own.transition(lead_id, ledger.JourneyState.QUARANTINED, ledger.Cause.GATE, "x")
        (move,) = own.journey_history(lead_id)
        effect = own.begin_effect(f"api:{lead_id}", "asaas", "create_customer", lead_id)
        journey = own.get_journey(lead_id)
    finally:
        own.dispose()
    assert move.to_state is ledger.JourneyState.QUARANTINED
    assert move.cause is ledger.Cause.GATE
    assert journey.state is ledger.JourneyState.QUARANTINED
    assert effect.status is ledger.EffectStatus.PENDING


def test_fail_effect_takes_permanent_by_keyword_only(ledger_url: str) -> None:
    own = ledger.Ledger(ledger_url)
    try:
        own.upgrade()
        effect = own.begin_effect(f"api:{uuid.uuid4().hex}", "asaas", "create_customer", None)
        with pytest.raises(TypeError):
            own.fail_effect(effect.key, "503", True)  # type: ignore[misc]
        failed = own.fail_effect(effect.key, "503", permanent=True)
    finally:
        own.dispose()
    assert failed.is_permanently_failed


def test_the_async_facade_offers_every_ledger_operation_as_a_coroutine(ledger_url: str) -> None:
    own = ledger.Ledger(ledger_url)

    async def journey() -> tuple[ledger.RecordedLead, str]:
        recorded = await own.aio.record_lead("async", uuid.uuid4().hex, {"a": 1})
        await own.aio.transition(recorded.lead_id, "quarantined", "gate", "x")
        return recorded, await own.aio.journey_state(recorded.lead_id)

    try:
        own.upgrade()
        recorded, state = asyncio.run(journey())
        assert recorded.created
        assert state == "quarantined"
        assert own.aio is own.aio
        assert set(ledger.operations.ASYNC_METHODS) >= {"begin_effect", "claim", "pass_gate"}
        assert inspect.iscoroutinefunction(own.aio.begin_effect)
        with pytest.raises(AttributeError):
            _ = own.aio.engine
    finally:
        own.dispose()


def test_a_shared_ledger_is_built_once_per_url_even_from_many_threads(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with ThreadPoolExecutor(8) as pool:
        built = list(pool.map(lambda _: ledger.shared_ledger(url), range(16)))
    assert len({id(one) for one in built}) == 1
    other = ledger.shared_ledger(f"sqlite:///{tmp_path / 'other.db'}")
    assert other is not built[0]
    for one in (built[0], other):
        one.dispose()


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
