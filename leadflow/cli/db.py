"""`leadflow db`: create, migrate and inspect the ledger's schema.

    leadflow db upgrade            create the ledger or migrate it to the newest schema
    leadflow db downgrade REV      migrate down to REV (`base` removes every ledger table);
                                   asks first unless --yes
    leadflow db current            the schema revision the database is at

The database is `LEADFLOW_DATABASE_URL` (settings). A wrong or unreachable database is one line
on stderr and exit code 1, never a traceback; the password in the URL is masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from leadflow.settings import get_settings

if TYPE_CHECKING:  # the ledger (SQLAlchemy, Alembic) is imported only when a command runs
    from ledger import Ledger

app = typer.Typer(
    help="Create, migrate and inspect the ledger database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


def _with_ledger(action: Callable[[Ledger], T]) -> T:
    """Run `action` on the configured ledger; a database problem becomes one line, exit 1."""
    from ledger import Ledger, LedgerError

    try:
        ledger = Ledger(get_settings().database_url)
        try:
            return action(ledger)
        finally:
            ledger.dispose()
    except LedgerError as exc:
        err_console.print(f"[red]leadflow: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the ledger's tables, or migrate them to the newest schema."""

    def run(ledger: Ledger) -> str | None:
        ledger.upgrade(revision)
        return ledger.current_revision()

    current = _with_ledger(run)
    console.print(f"ledger schema at revision {current} ({_url()})")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; `base` drops every table.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Migrate the ledger's schema down to REVISION (asks first: data in dropped tables is lost)."""
    if not yes:
        typer.confirm(
            f"Downgrading the ledger at {_url()} to {revision} drops what newer revisions "
            "created, with its data. Continue?",
            abort=True,
        )

    def run(ledger: Ledger) -> str | None:
        ledger.downgrade(revision)
        return ledger.current_revision()

    current = _with_ledger(run)
    where = f"revision {current}" if current else "base (no ledger tables)"
    console.print(f"ledger schema at {where} ({_url()})")


@app.command()
def current() -> None:
    """Print the schema revision of the ledger database, and whether it is the newest."""
    from ledger.migrate import head_revision

    revision = _with_ledger(lambda ledger: ledger.current_revision())
    head = head_revision()
    if revision is None:
        console.print(f"no ledger schema yet (newest: {head}); run `leadflow db upgrade`")
    elif revision == head:
        console.print(f"{revision} (newest)")
    else:
        console.print(f"{revision} (newest: {head}; run `leadflow db upgrade`)")


def _url() -> str:
    from ledger.engine import describe_url, parse_url

    return describe_url(parse_url(get_settings().database_url))
