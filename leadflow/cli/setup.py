"""`leadflow setup`: what leadflow needs at Prefect and, with `--sandbox URL`, at the sandbox.

    leadflow setup --sandbox http://127.0.0.1:8765   Blocks + leadflow.toml for a running sandbox
    leadflow setup                                   Prefect's side only (concurrency limits per
                                                     vendor, alert notifications)

Running it twice changes nothing the second time; each run says what it did and what is left
for a person to do.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from leadflow.cli.common import command_group, console, fail
from leadflow.privacy import mask_text

app = command_group(
    "Set up Prefect (limits, alerts) and, with --sandbox, Blocks and leadflow.toml.",
    invoke_without_command=True,
)


@app.callback()
def setup(
    sandbox: Annotated[
        str | None, typer.Option(help="A running sandbox's URL: save its Blocks, write toml.")
    ] = None,
    blocks_name: Annotated[
        str, typer.Option(help="Name of the saved Block documents.")
    ] = "sandbox",
    business_file: Annotated[
        Path, typer.Option(help="Where to write the business choices.")
    ] = Path("leadflow.toml"),
    prefect: Annotated[bool, typer.Option(help="Also set up Prefect's limits and alerts.")] = True,
) -> None:
    """Set leadflow up; idempotent."""
    from leadflow.setup import setup_sandbox

    lines_done: list[str] = []
    lines_same: list[str] = []
    by_hand: list[str] = []
    try:
        if sandbox:
            report = asyncio.run(
                setup_sandbox(sandbox, blocks_name=blocks_name, business_file=business_file)
            )
            lines_done += report.done
            lines_same += report.unchanged
            by_hand += report.by_hand
        if prefect and importlib.util.find_spec("deployments.setup") is not None:
            from deployments.setup import setup_prefect

            lines_done += asyncio.run(setup_prefect())
    except Exception as exc:  # one line, never a traceback: the cause is named
        raise fail("setup", mask_text(f"{type(exc).__name__}: {exc}"), 2) from None
    for line in lines_done:
        console.print(f"[green]done[/green]      {line}")
    for line in lines_same:
        console.print(f"unchanged {line}")
    for line in by_hand:
        console.print(f"[yellow]by hand[/yellow]   {line}")
