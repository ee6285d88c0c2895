"""The GX suite itself: one expectation per rule, named in its meta, and the package's promise
to import neither Great Expectations nor Prefect until a batch is validated."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pandas as pd
import pytest

from data_quality import split_leads
from data_quality.gate import build_suite_frame
from data_quality.suite import RULE_NAMES, failing_rows, gate_suite


def test_every_rule_is_one_expectation_of_the_suite() -> None:
    suite = gate_suite().suite

    assert [e.meta["rule"] for e in suite.expectations] == list(RULE_NAMES)


def test_gx_reports_failing_rows_by_lead_id_and_every_duplicate() -> None:
    frame = pd.DataFrame(
        {
            "lead_id": [10, 20, 30],
            "full_name": ["Ana", "Ana", "Bia 2"],
            "email": ["a@x.com", "A@X.com", None],
            "phone_number": [None, None, "(11) 3456-7890"],
            "cpf": ["111.111.111-11", None, None],
        }
    )
    suite_frame, _ = build_suite_frame(frame)

    failing = failing_rows(suite_frame)

    assert failing["cpf_valid"] == [10]
    assert failing["full_name_valid"] == [30]
    assert failing["phone_is_mobile"] == [30]
    assert sorted(failing["email_unique_in_batch"]) == [10, 20]


def test_importing_the_package_loads_neither_gx_nor_prefect() -> None:
    code = (
        "import sys, data_quality; "
        "print(any(m.split('.')[0] in {'great_expectations', 'prefect', 'ledger', 'leadflow'} "
        "for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"


def test_quarantine_reasons_are_what_gx_reported_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """split_leads has no check of its own: a rule GX did not report is no reason, and a row GX
    reported is quarantined for that rule even if the normalisers would let it through."""
    from data_quality import suite

    real = suite.failing_rows

    def gx_with_one_rule_silenced(frame: pd.DataFrame) -> dict[str, list[Any]]:
        failing = real(frame)
        failing["cpf_valid"] = []
        failing["cnpj_valid"] = [2]
        return failing

    monkeypatch.setattr(suite, "failing_rows", gx_with_one_rule_silenced)
    good = {"full_name": "Ana", "email": "ana@exemplo.com", "phone_number": None}

    result = split_leads([{**good, "cpf": "111.111.111-11"}, {**good, "email": "bia@x.com"}])

    assert result.clean["lead_id"].tolist() == [1]
    assert result.quarantined["reasons"].tolist() == [["cnpj_valid"]]


def test_failing_rows_reads_gx_validation_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were GX bypassed, changing what GX's validation returns would change nothing."""
    from great_expectations.datasource.fluent.interfaces import Batch

    real_validate = Batch.validate
    calls: list[int] = []

    def validate_then_pass_the_name_rule(self: Batch, *args: Any, **kwargs: Any) -> Any:
        result = real_validate(self, *args, **kwargs)
        calls.append(1)
        for outcome in result.results:
            if outcome.expectation_config.meta["rule"] == "full_name_valid":
                outcome.success = True
        return result

    monkeypatch.setattr(Batch, "validate", validate_then_pass_the_name_rule)
    frame = pd.DataFrame({"lead_id": [7], "full_name": ["Ana 2"], "email": ["a@x.com"]})
    suite_frame, _ = build_suite_frame(frame)

    failing = failing_rows(suite_frame)

    assert calls == [1]
    assert failing["full_name_valid"] == []
    assert set(failing) == set(RULE_NAMES)


def test_a_rule_gx_could_not_run_stops_the_batch_instead_of_passing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An expectation that raised inside GX reports success=False with no rows: read naively,
    the batch would pass. The gate refuses to decide instead."""
    from data_quality import expectations

    def broken(value: str) -> bool:
        raise RuntimeError("validator crashed")

    monkeypatch.setattr(expectations, "is_brazilian_mobile", broken)
    frame = pd.DataFrame({"lead_id": [1], "full_name": ["Ana"], "phone_number": ["11987654321"]})
    suite_frame, _ = build_suite_frame(frame)

    with pytest.raises(RuntimeError, match="could not run"):
        failing_rows(suite_frame)


def test_one_factory_builds_a_column_expectation_gx_runs_with_per_row_results() -> None:
    """Issue 9.6: the metric/expectation pairs come from `column_expectation`; a new rule is
    one call, and GX runs it and names the failing rows like a built-in expectation."""
    from data_quality.expectations import column_expectation

    expect_even = column_expectation(
        "ExpectColumnValuesToBeLeadflowTestEven",
        "column_values.leadflow_test_even",
        lambda value: int(value) % 2 == 0,
        "Each value is an even number.",
    )
    frame = pd.DataFrame({"lead_id": [1, 2, 3], "n": ["2", "3", None]})
    batch = gate_suite().batch_definition.get_batch(batch_parameters={"dataframe": frame})

    result = batch.validate(
        expect_even(column="n"),
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["lead_id"]},
    )

    assert result.success is False
    assert [row["lead_id"] for row in result.result["unexpected_index_list"]] == [2]
    assert expect_even.__doc__ == "Each value is an even number."


def test_gates_running_at_once_in_one_process_each_judge_their_own_rows() -> None:
    """The webhook path and the reconciler gate their batches in threads of one process; GX's
    shared context must not validate one thread's rows against the other's (seen in the demo:
    leads with no contact at all passed while another batch was being gated)."""
    from concurrent.futures import ThreadPoolExecutor

    bad = pd.DataFrame(
        {"lead_id": range(1, 41), "full_name": [f"Sem Contato {n}" for n in range(1, 41)]}
    )
    good = pd.DataFrame(
        {
            "lead_id": range(101, 141),
            "full_name": [f"Cliente {chr(65 + n % 26)}{chr(97 + n // 26)}" for n in range(40)],
            "email": [f"cliente{n}@exemplo.com.br" for n in range(1, 41)],
        }
    )

    def gate(frame: pd.DataFrame) -> tuple[int, int]:
        result = split_leads(frame)
        return len(result.clean), len(result.quarantined)

    gate(good)  # GX imported and its context built before the race
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(gate, frame) for _ in range(6) for frame in (bad, good)]
        outcomes = [run.result() for run in runs]

    assert outcomes == [(0, 40), (40, 0)] * 6
