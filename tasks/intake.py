"""Facebook Lead Ads and ad-hoc leads into the ledger: every lead recorded once, before anything
else happens to it (DESIGN.md, principles 1 and 6).

`extract_leads` polls each form named in leadflow.toml from the cursor the ledger keeps for it
(the newest `created_time` recorded), so a rerun reads only what came since; the ledger's
uniqueness on (source, source id) makes a lead read twice one lead. Leads that arrive by webhook
are fetched and recorded by the delivery handler (flows/deliveries.py) through `record_graph_leads`.
`record_adhoc_leads` takes leads handed over from Python (`intake(leads=[...])`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import VendorError
from blocks.facebook import Lead as GraphLead
from leadflow.privacy import mask_text
from tasks.journey import StepContext, journey_task

__all__ = [
    "ADHOC_SOURCE",
    "FACEBOOK_SOURCE",
    "adhoc_source_id",
    "extract_leads",
    "record_adhoc_leads",
    "record_graph_leads",
]

logger = logging.getLogger(__name__)

FACEBOOK_SOURCE = "facebook"
ADHOC_SOURCE = "adhoc"
#: a poll re-reads this much before its cursor: Graph filters by whole seconds
CURSOR_OVERLAP = timedelta(seconds=1)


def form_cursor(form_id: str) -> str:
    return f"facebook:form:{form_id}"


def _graph_raw(lead: GraphLead) -> dict[str, Any]:
    return lead.model_dump(mode="json", exclude_none=True)


def record_graph_leads(context: StepContext, leads: Iterable[GraphLead]) -> list[int]:
    """Record Graph leads (sync: call in a thread), a page in one transaction; the ids of those
    recorded for the first time."""
    leads = list(leads)

    def record_all() -> list[int]:
        new: list[int] = []
        for lead in leads:
            recorded = context.ledger.record_lead(FACEBOOK_SOURCE, lead.id, _graph_raw(lead))
            if recorded.created:
                new.append(recorded.lead_id)
        return new

    return context.ledger.batched(record_all)


@journey_task("extract-leads", "facebook")
async def extract_leads(context: StepContext) -> list[int]:
    """Poll every configured form since its cursor; the ids of the leads recorded now."""
    if not context.business.forms:
        return []
    facebook = await context.client("facebook")
    recorded: list[int] = []
    for form in context.business.forms:
        cursor = await asyncio.to_thread(context.ledger.get_cursor, form_cursor(form.id))
        since = datetime.fromisoformat(cursor) - CURSOR_OVERLAP if cursor else None
        try:
            leads = await facebook.list_leads(form.id, since=since)
        except VendorError as error:  # this form waits for the next poll; the others go on
            logger.warning("form %s not polled: %s", form.id, mask_text(str(error)))
            continue
        # Graph may omit form_id when not asked for it: the form is known here
        leads = [
            lead if lead.form_id else lead.model_copy(update={"form_id": form.id}) for lead in leads
        ]
        recorded += await asyncio.to_thread(record_graph_leads, context, leads)
        if leads:
            newest = max(lead.created_time for lead in leads)
            await asyncio.to_thread(
                context.ledger.set_cursor, form_cursor(form.id), newest.isoformat()
            )
    return recorded


def adhoc_source_id(lead: dict[str, Any]) -> str:
    """A lead handed over from Python is identified by its own `source_id` key when it has one,
    else by its content: handing the same lead over twice records it once."""
    given = lead.get("source_id")
    if isinstance(given, str | int) and str(given).strip():
        return str(given)
    canonical = json.dumps(lead, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@task(name="record-leads", cache_policy=NO_CACHE)
async def record_adhoc_leads(context: StepContext, leads: list[dict[str, Any]]) -> list[int]:
    """Record leads handed over from Python; every lead's id, new or already recorded."""

    def record_all() -> list[int]:
        ids = []
        for lead in leads:
            source = str(lead.get("source") or ADHOC_SOURCE)
            recorded = context.ledger.record_lead(source, adhoc_source_id(lead), lead)
            ids.append(recorded.lead_id)
        return ids

    return await asyncio.to_thread(context.ledger.batched, record_all)
