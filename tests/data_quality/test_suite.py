"""The GX suite itself: one expectation per rule, named in its meta, and the package's promise
to import neither Great Expectations nor Prefect until a batch is validated."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

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
