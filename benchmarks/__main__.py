"""Run every benchmark (or those named on the command line), each figure beside its baseline."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import benchmarks


def _benchmark_modules(selected: list[str]) -> list[str]:
    here = Path(benchmarks.__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    return names


def main(argv: list[str]) -> int:
    names = _benchmark_modules(argv)
    if not names:
        print("no benchmark matched", argv, file=sys.stderr)
        return 1
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        for figure in module.main():
            print(figure.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
