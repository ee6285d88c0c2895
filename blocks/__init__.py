"""Vendor credentials as Prefect Blocks, the clients they build, and the shared HTTP policy."""
