"""`leadflow db`: create, migrate and inspect the ledger's schema.

    leadflow db upgrade            create the ledger or migrate it to the newest schema
    leadflow db downgrade REV      migrate down to REV (`base` removes every ledger table);
                                   asks first unless --yes
    leadflow db current            the schema revision the database is at

The database is `LEADFLOW_DATABASE_URL` (settings). Every problem is one line on stderr, never a
traceback, with the password in the URL masked: exit code 2 when the database cannot be used as
configured (a file that is not a database or cannot be written, a driver leadflow does not use,
an in-memory SQLite URL that would keep nothing, an unreachable server, a `.env` that is not
UTF-8), exit code 1 when the migration itself fails (an unknown revision).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from leadflow.settings import ConfigError, get_settings

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


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[red]leadflow: {escape(message)}[/red]")
    return typer.Exit(code)


def _check_configured_url() -> None:
    """Refuse, before anything runs or is asked, a URL the ledger cannot keep data in."""
    from ledger import LedgerUnavailable
    from ledger.engine import describe_url, is_in_memory, parse_url

    try:
        url = parse_url(get_settings().database_url)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except LedgerUnavailable as exc:
        raise _fail(str(exc), 2) from None
    if is_in_memory(url):
        raise _fail(
            f"{describe_url(url)} is an in-memory SQLite database: nothing would be kept once "
            "this command ends; set LEADFLOW_DATABASE_URL to a file, sqlite:///PATH/TO/ledger.db",
            2,
        )


def _with_ledger(action: Callable[[Ledger], T]) -> T:
    """Run `action` on the configured ledger; any problem becomes one line (see the module)."""
    from ledger import Ledger, LedgerError, LedgerUnavailable

    _check_configured_url()
    try:
        ledger = Ledger(get_settings().database_url)
        try:
            return action(ledger)
        finally:
            ledger.dispose()
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except LedgerUnavailable as exc:
        raise _fail(str(exc), 2) from None
    except LedgerError as exc:
        raise _fail(str(exc), 1) from None


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
    _check_configured_url()
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
    """The configured URL, password masked; a URL the ledger refuses is reported when used."""
    from ledger import LedgerError
    from ledger.engine import describe_url, parse_url

    try:
        return describe_url(parse_url(get_settings().database_url))
    except LedgerError:
        return "LEADFLOW_DATABASE_URL"
