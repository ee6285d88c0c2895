"""Prefect tasks: one business operation on one vendor or on the ledger each."""
