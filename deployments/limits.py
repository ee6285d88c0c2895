"""Per-vendor global concurrency limits: every worker together under each vendor's limit.

Inside one process, each vendor client paces itself (blocks/http.py: a token bucket at the
vendor's published rate). Across processes and machines that is not enough: two workers each
at the full rate would double it. Prefect's global concurrency limits are shared by every
process that talks to the same Prefect server, so leadflow keeps one limit per vendor, named
after the vendor, counting vendor requests in flight across all workers. `setup_prefect`
creates them (idempotently); tasks take a slot with `vendor_slot`:

    async with vendor_slot("pipedrive", occupy=concurrency):   # a batch of `concurrency` calls
        moves = await for_each(leads, upsert_one, concurrency)

A missing limit is not enforced (`strict=False`): leadflow still runs before `leadflow setup`,
with only the per-process limits. See docs/scaling.md for how many workers each limit feeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["VENDOR_LIMITS", "VendorLimit", "limit_name", "vendor_slot"]


@dataclass(frozen=True)
class VendorLimit:
    """How many requests to one vendor may be in flight across every worker, and why."""

    vendor: str
    slots: int
    published: str


#: slot counts derived from each vendor's published limit (../shared/contracts/README.md)
VENDOR_LIMITS: dict[str, VendorLimit] = {
    limit.vendor: limit
    for limit in (
        VendorLimit(
            "pipedrive",
            20,
            "20 requests per rolling 2 s per API token on the smallest plan (80 with OAuth): "
            "more than 20 in flight would overrun one window",
        ),
        VendorLimit(
            "docusign",
            100,
            "3,000 calls per hour per account, bursts of 500 per 30 s (200 in demo); the "
            "DocuSign block's own burst is 100",
        ),
        VendorLimit("asaas", 50, "at most 50 concurrent GET requests per account, then 429"),
        VendorLimit(
            "hostinger",
            10,
            "no published number except 90/min on domain availability; the Hostinger block's "
            "self-imposed burst is 10",
        ),
        VendorLimit(
            "whatsapp", 80, "80 messages per second per business number by default (20 coexistence)"
        ),
        VendorLimit(
            "facebook",
            4,
            "200 x 24 x leads of 90 days per day per Page (business use case); polling is "
            "a handful of form reads, 4 keeps a burst small",
        ),
    )
}


def limit_name(vendor: str) -> str:
    """The Prefect global concurrency limit of `vendor` (the vendor's own name)."""
    if vendor not in VENDOR_LIMITS:
        known = ", ".join(sorted(VENDOR_LIMITS))
        raise KeyError(f"no concurrency limit for vendor {vendor!r}; known: {known}")
    return vendor


@asynccontextmanager
async def vendor_slot(
    vendor: str, occupy: int = 1, timeout_seconds: float | None = None
) -> AsyncIterator[None]:
    """Hold `occupy` of the vendor's slots across all workers while calling it.

    Waits while other workers hold them; released on exit, also on error. Outside a Prefect
    server or before `leadflow setup` created the limit, it does not wait at all.
    """
    from prefect.concurrency.asyncio import concurrency

    name = limit_name(vendor)
    if name not in await _existing_limits() and name not in await _existing_limits(fresh=True):
        yield  # no `leadflow setup` on this server: only the per-process limits apply
        return
    occupy = max(1, min(occupy, VENDOR_LIMITS[name].slots))
    async with concurrency(name, occupy=occupy, timeout_seconds=timeout_seconds, strict=False):
        yield


#: which limits the Prefect server has, asked once a minute per process (Prefect itself logs a
#: warning for every acquisition of a limit that does not exist)
_KNOWN: dict[str, tuple[float, frozenset[str]]] = {}
LIMITS_RECHECK_SECONDS = 60.0


async def _existing_limits(*, fresh: bool = False) -> frozenset[str]:
    """The limit names the server has: cached for a minute, or asked now (`fresh`) when a
    limit is missing from the cache (it may have been made since: `leadflow setup`)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    api = str(get_current_settings().api.url or "ephemeral")
    checked = _KNOWN.get(api)
    recent = checked is not None and time.monotonic() - checked[0] < LIMITS_RECHECK_SECONDS
    if checked is not None and recent and not fresh:
        return checked[1]
    try:
        async with get_client() as client:
            limits = await client.read_global_concurrency_limits(limit=200)
        names = frozenset(limit.name for limit in limits)
    except Exception:  # an unreachable API: the per-process limits still hold
        names = frozenset()
    _KNOWN[api] = (time.monotonic(), names)
    return names
