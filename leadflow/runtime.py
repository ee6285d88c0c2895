"""How a process that runs leadflow's flows treats Python's garbage collector.

A flow-run process imports Prefect, pandas, SQLAlchemy and pydantic before its first lead: a few
million objects that live as long as the process. Python's full (generation 2) collections walk
every one of them each time, and a run of 1,000 leads triggers one to three of them at 0.25-0.5 s
of CPU each: 0.3-0.5 ms per intake lead, 10-15% of leadflow's CPU in bench_journey's intake and
about 5% of the whole journey's. `gc.freeze()` moves the objects alive at that moment out of
every later collection. Objects are still freed by reference counting as usual; only a reference
cycle among the frozen ones would stay, and the imports' objects are not garbage.

Done in a process Prefect started for one flow run (a deployment's run: Prefect sets
PREFECT__FLOW_RUN_ID there) once the flows are imported, and again once the quality gate has
imported Great Expectations (data_quality.suite.gate_suite, the first lead through the gate);
never in a process that merely imports leadflow (a notebook, a test, the webhook service):
freezing is a whole-process choice.
"""

from __future__ import annotations

import gc
import os

__all__ = ["in_flow_run_process", "settle_startup_heap"]


def in_flow_run_process() -> bool:
    """True in a process Prefect started to execute one flow run."""
    return bool(os.environ.get("PREFECT__FLOW_RUN_ID"))


def settle_startup_heap() -> None:
    """Keep every object alive now out of the garbage collector's later scans (see the module)."""
    gc.collect()  # what start-up left as garbage goes first, so none of it is kept for good
    gc.freeze()
