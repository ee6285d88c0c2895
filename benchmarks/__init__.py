"""Performance lives here, never in timed tests: `make bench` runs every benchmarks/bench_*.py.

Each benchmark module exposes `main() -> list[Figure]`; it measures its figure and its baseline
in the same run and the runner prints them side by side with their ratio.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure beside the baseline it is judged against, measured in the same run."""

    name: str
    value: float
    baseline_name: str
    baseline: float
    unit: str
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")

    def line(self) -> str:
        target = f"  target: {self.target}" if self.target else ""
        return (
            f"{self.name}: {self.value:,.3f} {self.unit}  |  {self.baseline_name}: "
            f"{self.baseline:,.3f} {self.unit}  |  ratio {self.ratio:.2f}x{target}"
        )
