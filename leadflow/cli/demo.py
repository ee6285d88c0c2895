"""`leadflow demo`: run an agency's week of clients against the sandbox, live, then account for it.

    leadflow demo [--leads 200] [--faults 0.2] [--seed 7] [--fresh]

What it does is leadflow/demo.py; this module is the command: options, the live display of
journeys per state, the accounting tables at the end, Ctrl-C, and the exit code (0: every lead
accounted for and nothing created twice; 1: the books do not balance; 130: interrupted, a rerun
continues).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from leadflow.cli.common import command_group, err_console, fail

if TYPE_CHECKING:
    from leadflow.demo import Accounting, DemoOutcome, Progress

app = command_group(
    "Run an agency's week of clients against the sandbox and account for every lead.",
    invoke_without_command=True,
)
console = Console(highlight=False)
if not console.is_terminal:
    console.width = 100  # a log or a captured run: wide enough for the tables, never wrapped
REASON_WIDTH = 60


def reason_label(reason: str) -> str:
    """A dead letter's reason as the demo's summary groups it: its first REASON_WIDTH
    characters (what follows names one lead), and '…' where it was cut, so a cut reason is
    never read as the whole one."""
    if len(reason) <= REASON_WIDTH:
        return reason
    return reason[: REASON_WIDTH - 1].rstrip() + "…"


#: Prefect's console output is for operators; the demo shows its own picture, and says when a
#: reconciler round failed (the runs, their logs and artifacts still go to the Prefect API and
#: its UI). Set before Prefect is imported; a value already in the environment wins.
QUIET_PREFECT: dict[str, str] = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # the temporary server migrates its database on first start: slow on a busy machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "500",
}

STATE_LABELS: dict[str, str] = {
    "received": "received",
    "quarantined": "quarantined (bad data)",
    "qualified": "qualified",
    "deal_open": "deal open (salesperson)",
    "deal_lost": "deal lost",
    "deal_won": "deal won",
    "contract_sent": "contract sent (client signs)",
    "contract_declined": "contract declined",
    "contract_signed": "contract signed",
    "charge_open": "PIX charge open (client pays)",
    "paid": "paid",
    "activating": "site being built",
    "activated": "site live",
    "welcomed": "welcomed",
    "dead_lettered": "dead-lettered",
}


def journeys_table(progress: Progress) -> Table:
    """Journeys per state, with a bar: the live picture."""
    from leadflow.demo import STATE_ORDER

    total = sum(progress.counts.values()) or 1
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("state", min_width=30)
    table.add_column("n", justify="right", min_width=5)
    table.add_column("bar", min_width=40)
    for state in STATE_ORDER:
        count = progress.counts.get(state, 0)
        if not count:
            continue
        colour = (
            "green"
            if state == "welcomed"
            else "red"
            if state in ("dead_lettered", "quarantined")
            else "yellow"
            if state in ("deal_open", "contract_sent", "charge_open")
            else "cyan"
        )
        bar = "█" * max(1, round(40 * count / total))
        table.add_row(STATE_LABELS.get(state, state), str(count), Text(bar, style=colour))
    return table


def live_view(progress: Progress) -> Panel:
    faults = f", faults {progress.faults:.0%}" if progress.faults else ""
    failed = f" ({progress.failed_rounds} failed)" if progress.failed_rounds else ""
    header = Text(
        f"{progress.phase} · {progress.elapsed:5.1f} s · leads {progress.submitted}"
        f"/{progress.target} · reconciler rounds {progress.rounds}{failed}{faults}"
    )
    return Panel(
        Group(header, Text(""), journeys_table(progress)), title="leadflow demo", expand=False
    )


def _line(progress: Progress) -> str:
    """One line of progress when the output is not a terminal (a log, a CI job)."""
    from leadflow.demo import STATE_ORDER

    parts = [f"{s}={progress.counts[s]}" for s in STATE_ORDER if progress.counts.get(s)]
    return f"[{progress.elapsed:5.1f} s] {progress.phase}: " + (" ".join(parts) or "-")


def accounting_tables(outcome: DemoOutcome) -> Group:
    """The end of the demo: what happened to every lead, and the proof nothing was made twice."""
    from leadflow.demo import HAND_MINUTES_PER_CLIENT

    acc = outcome.accounting
    books = Table(title="What happened to every lead", show_header=False, title_justify="left")
    books.add_column("what", min_width=44, max_width=72, no_wrap=True, overflow="ellipsis")
    books.add_column("n", justify="right")
    books.add_row("leads in (Facebook form)", str(acc.leads_in))
    books.add_row("  recorded in the ledger", str(acc.recorded))
    books.add_row("  repeated people merged into one journey", str(acc.duplicates_merged))
    books.add_row("  quarantined at the gate (by rule broken)", str(acc.quarantined))
    for rule, count in sorted(acc.quarantine_rules.items(), key=lambda item: -item[1]):
        books.add_row(f"      {rule}", str(count))
    books.add_row("deals won / lost", f"{acc.deals_won} / {acc.deals_lost}")
    books.add_row(
        "contracts signed / declined", f"{acc.contracts_signed} / {acc.contracts_declined}"
    )
    books.add_row("PIX charges paid", str(acc.charges_paid))
    books.add_row("sites activated at Hostinger", str(acc.services_activated))
    books.add_row("clients welcomed on WhatsApp", str(acc.welcomed))
    waiting = acc.waiting
    books.add_row("waiting on a person past the demo's horizon", str(sum(waiting.values())))
    for state, who in (
        ("deal_open", "a salesperson"),
        ("contract_sent", "a client to sign"),
        ("charge_open", "a client to pay"),
    ):
        if waiting.get(state):
            books.add_row(f"      {who}", str(waiting[state]))
    books.add_row("dead-lettered (a person must fix the cause)", str(len(acc.dead_lettered)))
    reasons = Counter(reason_label(reason) for reason in acc.dead_lettered.values())
    for reason, count in reasons.most_common(8):
        books.add_row(f"      {reason}", str(count))

    proof = Table(
        title="The vendors' own counters against the ledger (nothing created twice)",
        title_justify="left",
    )
    for column, justify in (("vendor", "left"), ("object", "left"), ("created", "right")):
        proof.add_column(column, justify=justify)  # type: ignore[arg-type]
    proof.add_column("in the ledger", justify="right")
    proof.add_column("", justify="left")
    for check in acc.kinds:
        mark = "[red]created twice[/red]" if check.twice else "[green]ok[/green]"
        proof.add_row(check.vendor, check.kind, str(check.created), str(check.in_ledger), mark)

    if acc.unconfirmed:
        proof.caption = (
            f"{acc.unconfirmed} WhatsApp message(s) lost their answer: recorded as unconfirmed "
            "and never resent (WhatsApp has no look-up: at most once)"
        )
    time_table = Table(title="Time", show_header=False, title_justify="left")
    time_table.add_column("what", min_width=44, no_wrap=True)
    time_table.add_column("value")
    per_lead = outcome.journey_seconds / max(acc.leads_in, 1)
    time_table.add_row(
        "the whole run", f"{outcome.elapsed_seconds:.1f} s ({outcome.rounds} reconciler rounds)"
    )
    for phase, seconds in outcome.phases:
        time_table.add_row(f"      {phase}", f"{seconds:.1f} s")
    time_table.add_row("leadflow's time per lead", f"{per_lead:.2f} s of wall clock")
    if acc.welcome_seconds:
        median = statistics.median(acc.welcome_seconds)
        time_table.add_row(
            "form to welcome, per client", f"{median:.1f} s median (people's delays included)"
        )
    clients = acc.recorded - acc.duplicates_merged - acc.quarantined
    time_table.add_row(
        "the same work by hand",
        f"~{HAND_MINUTES_PER_CLIENT} min per client: "
        f"{clients * HAND_MINUTES_PER_CLIENT / 60:.0f} h for these {clients} clients",
    )
    return Group(books, Text(""), proof, Text(""), time_table)


def next_steps(outcome: DemoOutcome, state_dir: Path) -> Text:
    acc = outcome.accounting
    sample = acc.example_lead or 1
    database = f"sqlite:///{(state_dir / 'ledger.db').resolve()}"
    lines = [
        "Where to look next, with this run's ledger:",
        f"  export LEADFLOW_DATABASE_URL={database}",
        "  leadflow journeys list           journeys per state, most recent first",
        f"  leadflow journeys show {sample:<9} one client: every step, why, every vendor id",
        "  leadflow quarantine list         the leads stopped at the gate, and the rules broken",
    ]
    if outcome.prefect_ui:
        lines.append(f"  {outcome.prefect_ui}/runs   the flow runs, their logs and artifacts")
    else:
        lines.append(
            "  the Prefect UI: `prefect server start`, then "
            "PREFECT_API_URL=http://127.0.0.1:4200/api make demo"
        )
    lines.append("  .leadflow/data_docs/index.html   the gate's rules and results (Data Docs)")
    return Text("\n".join(lines))


async def _run_with_display(options: Any) -> DemoOutcome:
    """Run the demo with a live picture, turning the first Ctrl-C into a clean stop."""
    from rich.live import Live

    from leadflow.demo import Progress, run_demo

    progress = Progress()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    demo = asyncio.create_task(run_demo(options, progress, stop))

    def interrupt() -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for a clean stop
            demo.cancel()
            return
        stop.set()
        err_console.print("\nstopping: the state is kept, and a rerun continues from it")

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        if console.is_terminal:
            with Live(live_view(progress), console=console, refresh_per_second=4) as live:
                while not demo.done():
                    live.update(live_view(progress))
                    await asyncio.wait({demo}, timeout=0.25)
                live.update(live_view(progress))
        else:
            last = ""
            while not demo.done():
                await asyncio.wait({demo}, timeout=3)
                line = _line(progress)
                if line.split(": ", 1)[1] != last:
                    console.print(line)
                    last = line.split(": ", 1)[1]
        return await demo
    finally:
        loop.remove_signal_handler(signal.SIGINT)


@app.callback()
def demo(
    leads: Annotated[int, typer.Option(help="How many people fill the lead form.")] = 200,
    faults: Annotated[
        float,
        typer.Option(help="Share of vendor calls and webhooks that fail transiently (0 to 0.5)."),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Sandbox seed: the same people, answers, faults.")] = 7,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Forget the previous run's state.")
    ] = False,
    state_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its ledger and the sandbox's state.")
    ] = Path(".leadflow/demo"),
    time_limit: Annotated[
        float, typer.Option(help="Give up (exit 1) after this many seconds.", hidden=True)
    ] = 180.0,
) -> None:
    """Run an agency's week of clients: leads in, deals, contracts, PIX, sites, welcomes."""
    for name, value in QUIET_PREFECT.items():
        os.environ.setdefault(name, value)
    from leadflow.demo import DemoOptions

    try:
        options = DemoOptions(
            leads=leads,
            faults=faults,
            seed=seed,
            fresh=fresh,
            state_dir=state_dir,
            time_limit_seconds=time_limit,
        )
    except ValueError as exc:
        raise fail("demo", str(exc), 2) from None
    console.print(
        f"leadflow demo: {leads} leads, faults {faults:.0%}, seed {seed}, state in {state_dir}/"
        + (" (fresh)" if fresh else "")
    )
    try:
        outcome = asyncio.run(_run_with_display(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console.print("[yellow]stopped[/yellow]: run `leadflow demo` again to continue")
        raise typer.Exit(130) from None
    except Exception as exc:  # one line for a newcomer; the state is kept for a rerun
        from leadflow.privacy import mask_text

        err_console.print(
            f"[red]leadflow demo failed: {mask_text(f'{type(exc).__name__}: {exc}')}[/red]\n"
            f"The state in {state_dir}/ is kept: run again to continue, or add --fresh."
        )
        raise typer.Exit(1) from None
    report(outcome, state_dir)
    sys.stdout.flush()
    raise typer.Exit(outcome.exit_code)


def report(outcome: DemoOutcome, state_dir: Path) -> None:
    """Print the accounting, the next steps and the verdict."""
    acc: Accounting = outcome.accounting
    if outcome.resumed:
        console.print("(continued from the previous run's state; --fresh starts over)")
    console.print()
    console.print(accounting_tables(outcome))
    console.print()
    if outcome.interrupted:
        console.print("[yellow]Interrupted[/yellow]: run `leadflow demo` again to continue.")
        return
    if outcome.failed_rounds:
        console.print(
            f"[yellow]{outcome.failed_rounds} reconciler round(s) failed and the next one went "
            f"on; the last error: {outcome.last_error}[/yellow] (the Prefect UI has each run)"
        )
    if outcome.timed_out:
        console.print("[red]The journeys did not settle in time.[/red]")
    if acc.ok and not outcome.timed_out:
        console.print(
            f"[green]Every one of the {acc.leads_in} leads is accounted for, and no vendor "
            "object was created twice.[/green]"
        )
    for problem in acc.problems:
        console.print(f"[red]✗ {problem}[/red]")
    console.print()
    console.print(next_steps(outcome, state_dir))
