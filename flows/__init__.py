"""Prefect flows: the client's journey as code, one flow per stage."""
