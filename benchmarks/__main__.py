"""Run every benchmark (or those named on the command line), each figure beside its baseline,
and write them as one markdown table, with the machine and the date, to benchmarks/RESULTS.md.

A benchmark that cannot run here (bench_scaling without a PostgreSQL URL, say) is listed in
the table with its reason instead of stopping the others. A partial run (names given on the
command line) replaces only its own benchmarks' rows and keeps the others' from the file,
each row with the time it was measured.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

import benchmarks
from benchmarks import Figure

RESULTS = Path(benchmarks.__file__).parent / "RESULTS.md"


def _benchmark_modules(selected: list[str]) -> list[str]:
    here = Path(benchmarks.__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    return names


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine() -> str:
    """What the figures were measured on: they mean little without it (a shared 2-core box
    and a quiet 16-core one differ by more than any optimisation)."""
    cpu = _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"
    memory = _first_line("/proc/meminfo", "MemTotal")
    memory_text = f", {int(memory.split()[0]) / 1024 / 1024:.1f} GiB RAM" if memory else ""
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.2f} {:.2f} {:.2f} at the start".format(*os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs{memory_text}{load}; {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


HEADER = "| benchmark | figure | value | baseline | baseline value | ratio | target | measured |"


def result_rows(rows: list[tuple[str, Figure | None, str]], started: datetime) -> list[str]:
    """One markdown row per figure (or per benchmark that did not run, with its reason)."""
    when = f"{started:%Y-%m-%d %H:%M} UTC"
    lines = []
    for name, figure, note in rows:
        if figure is None:
            lines.append(f"| {name} | not run: {_cell(note)} | | | | | | {when} |")
            continue
        lines.append(
            f"| {name} | {_cell(figure.name)} | {figure.value:,.3f} {figure.unit} | "
            f"{_cell(figure.baseline_name)} | {figure.baseline:,.3f} {figure.unit} | "
            f"{figure.ratio:.3f}x | {_cell(figure.target)} | {when} |"
        )
    return lines


def kept_rows(previous: str, replaced: set[str]) -> list[str]:
    """The rows of an earlier RESULTS.md for benchmarks this run did not measure."""
    kept = []
    for line in previous.splitlines():
        if not line.startswith("| bench_"):
            continue
        if line.split("|")[1].strip() not in replaced and line.count("|") == HEADER.count("|"):
            kept.append(line)
    return kept


def results_table(rows: list[str], machine_text: str) -> str:
    """The markdown of RESULTS.md, rows sorted by benchmark (a row keeps its figures' order)."""
    ordered = sorted(enumerate(rows), key=lambda item: (item[1].split("|")[1].strip(), item[0]))
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python -m benchmarks`); the last run was on: {machine_text}.",
        "Each figure sits beside its baseline, measured in the same run; the ratio is "
        "figure / baseline. See each benchmarks/bench_*.py for what exactly is measured.",
        "",
        HEADER,
        "|---|---|---:|---|---:|---:|---|---|",
        *(row for _, row in ordered),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str], results: Path = RESULTS) -> int:
    names = _benchmark_modules(argv)
    if not names:
        print("no benchmark matched", argv, file=sys.stderr)
        return 1
    started = datetime.now(UTC)
    machine_text = machine()
    rows: list[tuple[str, Figure | None, str]] = []
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            figures = module.main()
        except (Exception, SystemExit) as error:  # one benchmark's failure stops no other
            failed += 1
            reason = str(error) or type(error).__name__
            print(f"{name} did not run: {reason}", file=sys.stderr, flush=True)
            if not isinstance(error, SystemExit):
                traceback.print_exc()
            rows.append((name, None, reason))
            continue
        for figure in figures:
            print(figure.line(), flush=True)
            rows.append((name, figure, ""))
    previous = results.read_text(encoding="utf-8") if results.exists() else ""
    table = kept_rows(previous, set(names)) + result_rows(rows, started)
    results.write_text(results_table(table, machine_text), encoding="utf-8")
    print(f"table written to {results}")
    return 1 if failed == len(names) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
