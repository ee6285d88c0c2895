"""`setup_prefect`: what the Prefect server needs before leadflow runs on it, made idempotent.

It creates or corrects, and reports only what it created or changed:

- the process work pool `leadflow-pool` that every worker polls;
- one global concurrency limit per vendor (deployments/limits.py: slot counts from each
  vendor's published limit);
- the `leadflow-alerts` notification block (a generic JSON webhook at
  LEADFLOW_ALERT_WEBHOOK_URL by default; Slack or e-mail with LEADFLOW_ALERT_CHANNEL);
- the automations that send through it (deployments/alerts.py): a flow run failed or crashed,
  a journey dead-lettered, the quarantine past its threshold; and Prefect's silent-run
  detector, which marks a flow run Crashed when its heartbeats stop (a worker killed).

Run it as often as you like (`python -m deployments.setup`, or `leadflow setup`): a second run
against the same server and settings changes nothing and returns an empty list. Without an
alert destination the block and automations are skipped, and the list says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from deployments.alerts import BLOCK_NAME, automations
from deployments.limits import VENDOR_LIMITS
from deployments.schedules import WORK_POOL
from leadflow.settings import Settings, get_settings

__all__ = ["ALERTS_NOT_CONFIGURED", "notification_block", "setup_prefect"]

ALERTS_NOT_CONFIGURED = (
    "alerts not configured (set LEADFLOW_ALERT_WEBHOOK_URL, or LEADFLOW_ALERT_CHANNEL=email "
    "with LEADFLOW_ALERT_EMAIL_TO): no notification block or automation"
)


def notification_block(settings: Settings) -> Any | None:
    """The notification block the settings ask for, unsaved; None when alerts have nowhere
    to go."""
    from prefect.blocks.notifications import (
        CustomWebhookNotificationBlock,
        SendgridEmail,
        SlackWebhook,
    )

    url = settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
    if settings.alert_channel == "email":
        if not (settings.alert_email_to and settings.alert_sendgrid_api_key):
            return None
        return SendgridEmail(
            api_key=settings.alert_sendgrid_api_key,
            sender_email=settings.alert_email_from or settings.alert_email_to[0],
            to_emails=list(settings.alert_email_to),
        )
    if not url:
        return None
    if settings.alert_channel == "slack":
        return SlackWebhook(url=url)
    return CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=url,
        json_data={"source": "leadflow", "subject": "{{subject}}", "text": "{{body}}"},
    )


def _comparable(value: Any) -> str:
    """A stable text of a block's or automation's content (secrets included, ids and the
    server's own bookkeeping left out), to tell "same" from "changed"."""

    def normal(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: normal(v) for k, v in sorted(item.items()) if k not in {"id"}}
        if isinstance(item, list | set | tuple):
            items = [normal(v) for v in item]
            # sets (a trigger's expect, after, for_each) come back as lists in any order
            unordered = isinstance(item, set) or all(isinstance(v, str) for v in items)
            return sorted(items, key=json.dumps) if unordered else items
        if isinstance(item, int | float) and not isinstance(item, bool):
            return float(item)  # the server answers 10.0 for the 10 it was given
        return item

    return json.dumps(normal(value), sort_keys=True, default=str)


def _block_content(block: Any) -> str:
    from pydantic import SecretStr

    data = {}
    for name in type(block).model_fields:
        value = getattr(block, name)
        data[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        if hasattr(value, "get_secret_value") and not isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
    return _comparable(data)


async def _ensure_block(block: Any, changes: list[str]) -> Any:
    """Save the block unless one with the same content is already saved; the saved block."""
    try:
        saved = await type(block).aload(BLOCK_NAME)
    except ValueError:
        saved = None
    if saved is not None and _block_content(saved) == _block_content(block):
        return saved
    await block.asave(BLOCK_NAME, overwrite=True)
    kind = type(block).get_block_type_slug()
    changes.append(f"notification block {BLOCK_NAME} ({kind}) {'updated' if saved else 'created'}")
    return await type(block).aload(BLOCK_NAME)


def _automation_content(automation: Any) -> str:
    data = automation.model_dump(mode="json", exclude={"id"})
    keys = ("name", "description", "enabled", "trigger", "actions")
    return _comparable({k: data[k] for k in keys})


async def _ensure_automations(block_document_id: Any | None, changes: list[str]) -> None:
    from prefect.automations import Automation

    for wanted in automations(block_document_id):
        try:
            existing = await Automation.aread(name=wanted.name)
        except ValueError:
            existing = None
        if existing is None:
            await Automation(**wanted.model_dump()).acreate()
            changes.append(f"automation {wanted.name!r} created")
        elif _automation_content(existing) != _automation_content(wanted):
            updated = Automation(**{**wanted.model_dump(), "id": existing.id})
            await updated.aupdate()
            changes.append(f"automation {wanted.name!r} updated")


async def _ensure_work_pool(client: Any, changes: list[str]) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    try:
        await client.read_work_pool(WORK_POOL)
    except ObjectNotFound:
        await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
        changes.append(f"work pool {WORK_POOL} (process) created")


async def _ensure_limits(client: Any, slots: Mapping[str, int], changes: list[str]) -> None:
    from prefect.exceptions import ObjectNotFound

    for name, limit in slots.items():
        try:
            existing = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            existing = None
        if existing is not None and existing.limit == limit and existing.active:
            continue
        await client.upsert_global_concurrency_limit_by_name(name, limit)
        if existing is not None and not existing.active:
            from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(active=True)
            )
        verb = "created" if existing is None else f"changed from {existing.limit}"
        changes.append(f"concurrency limit {name} = {limit} slots ({verb})")


async def setup_prefect(
    settings: Settings | None = None, *, vendor_slots: Mapping[str, int] | None = None
) -> list[str]:
    """Bring the Prefect server (PREFECT_API_URL) to what leadflow needs; what was created or
    changed, one line each (empty when everything was already so).

    `vendor_slots` overrides the slot counts of deployments/limits.py (say, a Pipedrive plan
    with a higher burst limit).
    """
    from prefect import get_client

    settings = settings or get_settings()
    slots = {vendor: limit.slots for vendor, limit in VENDOR_LIMITS.items()}
    slots.update(vendor_slots or {})
    changes: list[str] = []
    async with get_client() as client:
        await _ensure_work_pool(client, changes)
        await _ensure_limits(client, slots, changes)
    block = notification_block(settings)
    if block is None:
        await _ensure_automations(None, changes)
        return [*changes, ALERTS_NOT_CONFIGURED] if changes else []
    saved = await _ensure_block(block, changes)
    await _ensure_automations(saved._block_document_id, changes)
    return changes


def main() -> int:
    """`python -m deployments.setup`: print what changed (or that nothing did)."""
    changes = asyncio.run(setup_prefect())
    for line in changes:
        print(line)
    if not changes:
        print("Prefect is already set up for leadflow: nothing changed")
    if notification_block(get_settings()) is None and ALERTS_NOT_CONFIGURED not in changes:
        print(ALERTS_NOT_CONFIGURED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
