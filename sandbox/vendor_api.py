"""What the vendors' HTTP surfaces share: reading a JSON body, refusing, the admin API's bodies.

Each vendor answers a missing or unreadable body in its own words (Asaas and Pipedrive with
their error envelopes, Hostinger as no input at all, DocuSign with INVALID_REQUEST_BODY), so
`json_body` reads the bytes once and leaves those two answers to the vendor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict


async def json_body(
    request: Request,
    *,
    empty: Any = None,
    refuse: Callable[[], Exception] | None = None,
    unreadable: Any = None,
) -> Any:
    """The request's body read as JSON, or `empty` when it has none. A body that is not JSON
    raises the vendor's error that `refuse()` makes, or without one reads as `unreadable`."""
    raw = await request.body()
    if not raw:
        return empty
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        if refuse is not None:
            raise refuse() from None
    return unreadable


class VendorError(Exception):
    """A vendor's refusal: its HTTP status, its message and the headers its answer carries
    (a 429's Retry-After); each vendor's subclass adds what its error body says besides."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class AdminBody(BaseModel):
    """A body the admin API takes: an unknown field (a typo) or a NaN/infinite number is
    refused with 422 rather than silently ignored or stored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
