"""A flow-run process keeps its start-up objects out of the garbage collector's scans
(leadflow/runtime.py); any other process that imports the flows is left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FROZEN_AFTER_IMPORT = "import gc, flows; print(gc.get_freeze_count())"
FROZEN_AROUND_THE_GATE = (
    "import gc, flows; from data_quality.suite import gate_suite; "
    "before = gc.get_freeze_count(); gate_suite(); print(before, gc.get_freeze_count())"
)


def _frozen_after_importing_flows(flow_run_id: str | None) -> int:
    (frozen,) = _run(FROZEN_AFTER_IMPORT, flow_run_id)
    return frozen


def _frozen_counts_around_the_gate(flow_run_id: str | None) -> tuple[int, int]:
    before, after = _run(FROZEN_AROUND_THE_GATE, flow_run_id)
    return before, after


def _run(code: str, flow_run_id: str | None) -> list[int]:
    """The numbers `code` prints on its last line, run in a new Python process."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT__FLOW_RUN_ID"}
    if flow_run_id is not None:
        env["PREFECT__FLOW_RUN_ID"] = flow_run_id
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [int(number) for number in done.stdout.strip().splitlines()[-1].split()]


def test_a_flow_run_process_freezes_what_its_imports_made() -> None:
    assert _frozen_after_importing_flows("0b1c9a4e-0000-4000-8000-000000000001") > 100_000


def test_a_flow_run_process_freezes_great_expectations_once_the_gate_loads_it() -> None:
    before, after = _frozen_counts_around_the_gate("0b1c9a4e-0000-4000-8000-000000000001")
    assert after > before > 0


def test_importing_the_flows_elsewhere_leaves_the_collector_alone() -> None:
    assert _frozen_after_importing_flows(None) == 0


@pytest.mark.parametrize("value", ["", None])
def test_only_a_flow_run_id_marks_a_flow_run_process(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadflow.runtime import in_flow_run_process

    if value is None:
        monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    else:
        monkeypatch.setenv("PREFECT__FLOW_RUN_ID", value)
    assert not in_flow_run_process()
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "0b1c9a4e-0000-4000-8000-000000000001")
    assert in_flow_run_process()
