"""The nightly quarantine report: how many leads wait in quarantine, for which rules.

Scheduled every night (deployments/schedules.py). It counts the open quarantine records (not
yet replayed) by the rule they broke, publishes the counts as a markdown artifact, and alerts
(deployments/alerts.py) when more records are open than the threshold
(`LEADFLOW_QUARANTINE_ALERT_THRESHOLD`): a form that changed or a gate rule that is too strict
shows up here before a week of leads is lost. Counts only: no record's values.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from prefect import flow

from leadflow.settings import get_settings
from ledger import Ledger, shared_ledger

__all__ = ["count_open_by_rule", "quarantine_report"]


def count_open_by_rule(ledger: Ledger) -> tuple[int, Counter[str]]:
    """Open quarantine records, and how many broke each rule (a record may break several)."""
    records = ledger.list_quarantine()
    by_rule: Counter[str] = Counter()
    for record in records:
        rules = {str(reason.get("rule") or "unnamed rule") for reason in record.reasons}
        by_rule.update(rules or {"unnamed rule"})
    return len(records), by_rule


def _markdown(open_records: int, by_rule: Counter[str], threshold: int) -> str:
    lines = [
        "# Quarantine",
        "",
        f"**{open_records}** open records (alert threshold {threshold}).",
        "",
        "| rule | records |",
        "|---|---:|",
    ]
    lines += [f"| {rule} | {count} |" for rule, count in sorted(by_rule.items())]
    lines += ["", "Fix and replay: `leadflow quarantine list`, then the replay-quarantine flow."]
    return "\n".join(lines)


@flow(name="quarantine-report")
async def quarantine_report(threshold: int | None = None) -> dict[str, int]:
    """Count open quarantine records by rule, publish them, alert past the threshold."""
    from prefect.artifacts import acreate_markdown_artifact

    from deployments.alerts import alert_quarantine_past_threshold

    settings = get_settings()
    limit = settings.quarantine_alert_threshold if threshold is None else threshold
    ledger = shared_ledger(settings.database_url)
    open_records, by_rule = await asyncio.to_thread(count_open_by_rule, ledger)
    await acreate_markdown_artifact(
        markdown=_markdown(open_records, by_rule, limit),
        key="quarantine-report",
        description="Open quarantine records by rule",
    )
    if open_records > limit:
        await alert_quarantine_past_threshold(open_records, limit, by_rule)
    return {"open": open_records, "threshold": limit, **dict(by_rule)}
