"""Schema migrations of the ledger, driven from code (no alembic.ini anywhere).

`leadflow db upgrade|downgrade|current` and `Ledger.upgrade()` call these functions. The
revision history lives in ledger/migrations/versions. Alembic's bookkeeping table is called
`ledger_alembic_version`, not `alembic_version`, so the ledger can share a PostgreSQL database
with a Prefect server (which has its own `alembic_version`) without either confusing the other.
Downgrading to `base` also drops that table: the database is left as the ledger found it.

Several processes may start at once and each call `upgrade()` (the webhook service, workers):
a migration runs in one transaction that first takes a lock (a PostgreSQL advisory lock, or
SQLite's write lock via `BEGIN IMMEDIATE`), so the others wait and then find nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from ledger.engine import SQLITE_BEGIN_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "ledger_alembic_version"

#: Key of the PostgreSQL advisory lock held while migrating ("leadflow" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = int.from_bytes(b"leadflow", "big") >> 1


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic Config pointing at ledger/migrations, built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        # ConfigParser reads % as interpolation: an encoded URL (":memory:", a password with %)
        # must have it doubled
        url = engine.url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the versions folder ships with the package
        raise RuntimeError("ledger/migrations/versions holds no revision")
    return head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema up to `revision`, in one transaction."""
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the schema down to `revision`; `base` removes every ledger table."""
    _run(engine, lambda config: command.downgrade(config, revision))
    if revision == "base":
        with engine.begin() as connection:
            if inspect(connection).has_table(VERSION_TABLE):
                connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database the ledger never touched."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def _run(engine: Engine, action: Callable[[Config], None]) -> None:
    """Run an Alembic command in one transaction that holds the migration lock throughout."""
    config = alembic_config(engine)
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        action(config)
