"""Alembic migrations of the ledger; run them with `leadflow db upgrade` or `Ledger.upgrade()`."""
