"""The `leadflow` command: one typer app, a sub-command group per part of the system.

Each group lives in its own module (db.py, sandbox.py, blocks.py, quarantine.py, ...) and is
registered in `_register_groups`; heavy imports (Prefect, Great Expectations) happen inside the
commands, so `leadflow --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from leadflow.settings import ConfigError

app = typer.Typer(
    name="leadflow",
    help="Lead-to-cash automation on Prefect: ledger, sandbox, vendor blocks, data quality.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# module name under leadflow.cli -> sub-command name
_GROUPS: dict[str, str] = {
    "db": "db",
    "sandbox": "sandbox",
    "blocks": "blocks",
    "quarantine": "quarantine",
    "journeys": "journeys",
    "setup": "setup",
    "webhooks": "webhooks",
    "demo": "demo",
}


def _register_groups() -> None:
    for module_name, command_name in _GROUPS.items():
        try:
            module = importlib.import_module(f"leadflow.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"leadflow.cli.{module_name}":
                continue  # that part of the system is not built yet
            raise
        app.add_typer(module.app, name=command_name)


_register_groups()


def main() -> None:
    """Entry point of the console script: a broken setting is one clear line, exit code 2."""
    try:
        app()
    except ConfigError as exc:
        err_console.print(f"[red]leadflow: {exc}[/red]", highlight=False, soft_wrap=True)
        sys.exit(2)
