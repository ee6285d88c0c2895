"""Peak memory of the quality gate on 100,000 leads, each run in a fresh subprocess so the
peak (ru_maxrss) is that run's alone.

Baseline, measured in the same run: plain pandas normalising and applying the same rules
(benchmarks/bench_quality_gate.py's `plain_pandas_gate`) on the same 100,000 leads. The gap is
what Great Expectations' context, suite and per-row results hold on top of the data; the
target is an absolute ceiling: under 1 GiB (issue 14, about 0.5 GiB when it was filed).

    python -m benchmarks gate_memory
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks import Figure

LEADS = 100_000
TARGET_MIB = 1024

#: one measured run: build the leads, gate them, report the process's peak RSS
_RUN = """
import json, resource, sys
from benchmarks.bench_quality_gate import _leads, plain_pandas_gate
frame = _leads()
built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "gate":
    from data_quality import split_leads
    result = split_leads(frame)
    rows = (len(result.clean), len(result.quarantined))
else:
    clean, quarantined, _ = plain_pandas_gate(frame)
    rows = (len(clean), len(quarantined))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"peak_kib": peak, "frame_kib": built, "rows": rows,
                  "gx_loaded": "great_expectations" in sys.modules}))
"""


def measure(kind: str) -> dict[str, object]:
    """Peak RSS of one subprocess gating the leads with `kind` ("gate" or "pandas")."""
    done = subprocess.run(  # noqa: S603 - runs this module's own constant code
        [sys.executable, "-c", _RUN, kind],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mib(kib: object) -> float:
    return float(kib) / 1024 if isinstance(kib, (int, float)) else float("nan")


def main() -> list[Figure]:
    gate = measure("gate")
    pandas = measure("pandas")
    if gate["rows"] != pandas["rows"]:  # both must gate alike, or the comparison means nothing
        raise AssertionError(f"gate and baseline disagree: {gate['rows']} vs {pandas['rows']}")
    print(
        f"{LEADS:,} leads ({gate['rows']} clean/quarantined); the process after building them: "
        f"{_mib(gate['frame_kib']):,.0f} MiB; GX loaded by the baseline: {pandas['gx_loaded']}"
    )
    return [
        Figure(
            name=f"split_leads peak RSS, {LEADS:,} leads",
            value=_mib(gate["peak_kib"]),
            baseline_name="plain pandas, same rules",
            baseline=_mib(pandas["peak_kib"]),
            unit="MiB",
            target=f"< {TARGET_MIB:,} MiB",
        )
    ]


if __name__ == "__main__":
    for figure in main():
        print(figure.line())
