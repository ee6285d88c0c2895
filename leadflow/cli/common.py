"""What every `leadflow` command group shares: how a group is made, where it prints, how a
problem ends a command, and how a command reaches the ledger.

A problem is one line on stderr, `leadflow <group>: <what went wrong>`, and an exit code (1: the
work failed, 2: it could not be started as asked) — never a traceback: these commands are run by
operators and newcomers, and their output ends up in tickets and CI logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ledger import Ledger

T = TypeVar("T")

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def whole_table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells fold onto more lines instead of ending in "…": on a narrow terminal
    (80 columns, a CI log) an id or a vendor's message cut short is a wrong id or message."""
    table = Table(*headers, title=title)
    for column in table.columns:
        column.overflow = "fold"
    return table


def command_group(help: str, *, invoke_without_command: bool = False) -> typer.Typer:
    """A sub-command group of `leadflow`: its help when called bare (unless the group itself is
    the command), and Python's plain exceptions rather than typer's framed ones."""
    return typer.Typer(
        help=help,
        no_args_is_help=not invoke_without_command,
        invoke_without_command=invoke_without_command,
        pretty_exceptions_enable=False,
    )


def fail(group: str, message: str, code: int = 1) -> typer.Exit:
    """Say what went wrong in one line on stderr; the Exit to raise with `code`. The message is
    printed as text, never read as markup: it may quote a vendor's or a person's words."""
    err_console.print(f"[red]leadflow {group}: {escape(message)}[/red]")
    return typer.Exit(code)


def with_ledger(group: str, action: Callable[[Ledger], T]) -> T:
    """Run `action` on the configured ledger (LEADFLOW_DATABASE_URL), disposed afterwards; a
    ledger without schema, an unreachable one or an unknown record is one line and exit code 1.
    The message is masked: a ledger error may quote the lead's contact data."""
    from leadflow.privacy import mask_text
    from leadflow.settings import get_settings
    from ledger import Ledger, LedgerError

    try:
        ledger = Ledger(get_settings().database_url)
        try:
            if ledger.current_revision() is None:
                raise fail(
                    group, f"{ledger.url} has no ledger schema yet; run `leadflow db upgrade`"
                )
            return action(ledger)
        finally:
            ledger.dispose()
    except LedgerError as exc:
        raise fail(group, mask_text(str(exc))) from None
