"""Performance lives here, never in timed tests: `make bench` runs every benchmarks/bench_*.py.

Each benchmark module exposes `main() -> list[Figure]`; it measures its figure and its baseline
in the same run and the runner prints them side by side with their ratio.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any


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
        # three decimals: a ratio printed as 0.80x was 0.796, under a 0.8x target
        target = f"  target: {self.target}" if self.target else ""
        return (
            f"{self.name}: {self.value:,.3f} {self.unit}  |  {self.baseline_name}: "
            f"{self.baseline:,.3f} {self.unit}  |  ratio {self.ratio:.3f}x{target}"
        )


@dataclass
class Window:
    """What a throughput benchmark's workers look at: count a request only while `measuring`
    (after the warm-up), and stop once `stopped`."""

    measuring: bool = False
    stopped: bool = False
    done: int = 0

    def finished_one(self) -> None:
        if self.measuring:
            self.done += 1

    async def rate(
        self,
        workers: Callable[[], Coroutine[Any, Any, None]],
        count: int,
        *,
        warmup_seconds: float,
        measure_seconds: float,
    ) -> float:
        """Run `count` workers through a warm-up and a measured window; finished per second."""
        tasks = [asyncio.create_task(workers()) for _ in range(count)]
        await asyncio.sleep(warmup_seconds)
        self.measuring, started = True, time.perf_counter()
        await asyncio.sleep(measure_seconds)
        self.measuring, elapsed = False, time.perf_counter() - started
        self.stopped = True
        await asyncio.gather(*tasks)
        return self.done / elapsed
