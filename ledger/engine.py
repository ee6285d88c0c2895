"""How the ledger opens its database: one Engine per Ledger, tuned per backend.

SQLite (the embedded default) gets WAL (readers never block the writer), a busy timeout (a
second writer waits instead of failing), foreign keys on, and explicit `BEGIN IMMEDIATE` for
write transactions, so a read-then-write (claim, transition) holds the write lock from its first
read: that is what makes SQLite safe under one writer at a time. PostgreSQL (production) gets a
connect timeout so an unreachable server fails in seconds, and row locks do the rest.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from ledger.errors import LedgerUnavailable

#: Execution option that asks SQLite for `BEGIN IMMEDIATE` (write lock at the first statement).
SQLITE_BEGIN_OPTION = "ledger_sqlite_begin"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10


#: The one driver per backend the ledger runs on (synchronous, and installed with leadflow).
DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL, or LedgerUnavailable if it is not one, names another backend, or a
    driver the ledger does not use (the message says which URL to write instead).

    A bare `postgresql://` means psycopg (version 3) here, not SQLAlchemy's default psycopg2,
    which leadflow does not install.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LedgerUnavailable("the ledger database URL is not a SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend not in DRIVERS:
        raise LedgerUnavailable(f"the ledger supports sqlite and postgresql, not {backend!r}")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    driver = parsed.get_driver_name()
    if driver != DRIVERS[backend]:
        raise LedgerUnavailable(_wrong_driver(backend, driver))
    return parsed


def _wrong_driver(backend: str, driver: str) -> str:
    if backend == "sqlite":
        use = "sqlite:///PATH/TO/ledger.db (Python's built-in sqlite3)"
    else:
        use = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE (psycopg 3)"
    if driver in {"asyncpg", "aiosqlite", "psycopg_async"}:
        why = f"{driver} is an async driver and the ledger is synchronous"
    elif importlib.util.find_spec(driver) is None:
        why = f"the {driver} driver is not installed"
    else:
        why = f"the ledger does not use the {driver} driver"
    return f"the ledger database URL names {backend}+{driver}: {why}; use {use}"


def is_in_memory(url: URL) -> bool:
    """Whether `url` is an in-memory SQLite database, which keeps nothing once closed."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database
    return not database or database == ":memory:" or database.startswith("file::memory:")


def describe_url(url: URL) -> str:
    """The URL as it may appear in messages and logs: password masked."""
    return url.render_as_string(hide_password=True)


def create_ledger_engine(url: URL) -> Engine:
    """An Engine for `url` with the per-backend settings described in this module's docstring."""
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _create_sqlite_engine(url: URL) -> Engine:
    database = url.database
    in_memory = is_in_memory(url)
    if in_memory or database is None:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerUnavailable(
                f"cannot create the folder of the ledger database {describe_url(url)}: "
                f"{exc.strerror or exc}"
            ) from None
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: the "begin" hook below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                _switch_to_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Put the database in WAL mode, waiting out other connections doing the same.

    Switching the journal mode needs an exclusive lock and SQLite answers "database is locked"
    at once, without its busy handler, when several processes open a new database together;
    once one of them has switched, the mode is persistent and the others only read it.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
