"""Two workers gating the same lead (the first one's claim ran out while it was gating): the
decision recorded first stands, and the late worker's batch goes on with its other leads."""

from __future__ import annotations

from typing import Any

import pytest

import tasks.quality_gate as gate
from data_quality.lead import NormalizedLead
from ledger import JourneyState, Ledger

NAMES = {1: "Ana Souza", 2: "Bruno Lima"}


def _lead(ledger: Ledger, n: int) -> int:
    answers = {
        "full_name": NAMES[n],
        "email": f"cliente{n}@exemplo.com.br",
        "phone_number": f"(11) 98765-432{n}",
    }
    return ledger.record_lead("adhoc", f"race-{n}", answers).lead_id


def test_a_lead_gated_meanwhile_by_another_worker_is_skipped_not_a_crash(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _lead(ledger, 1), _lead(ledger, 2)
    split = gate.split_leads

    def split_while_another_worker_qualifies_the_first(*args: Any, **kwargs: Any) -> Any:
        other = NormalizedLead(source="adhoc", source_id="race-1", full_name="Ana Souza")
        ledger.pass_gate(first, other)  # the other worker's decision lands first
        return split(*args, **kwargs)

    monkeypatch.setattr(gate, "split_leads", split_while_another_worker_qualifies_the_first)

    outcome = gate.run_gate(ledger, [first, second])

    assert first in outcome.skipped
    assert outcome.qualified == [second]
    assert ledger.get_journey(first).state == JourneyState.QUALIFIED
