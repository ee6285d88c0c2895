"""Alembic's entry point for the ledger: runs migrations on the connection ledger.migrate passes.

There is no alembic.ini: ledger.migrate builds the Config in code and hands over an open
connection in `config.attributes["connection"]`, so the ledger's engine settings (SQLite
pragmas, PostgreSQL connect timeout) apply to migrations too.
"""

from __future__ import annotations

from alembic import context

from ledger.migrate import VERSION_TABLE
from ledger.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run the ledger's migrations through ledger.migrate or `leadflow db`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
