"""The quality gate as a Prefect task: leads in `received` become `qualified` or `quarantined`.

Between intake (a lead recorded in the ledger by the webhook service or a poll) and the first
vendor call (the Pipedrive person and deal), DESIGN.md principle 3: bad data stops here.

For a batch of leads `run_gate`:
1. loads each lead still in `received` — its raw form answers, or, after a replay, the fixed
   values of its latest replayed quarantine record — and maps them to lead fields;
2. splits them with data_quality.split_leads (normalise, GX suite, per-row reasons);
3. in lead-id order, for a lead that passed (or broke only a uniqueness-in-batch rule): looks
   for an earlier lead with the same e-mail, phone or CPF/CNPJ. Found: the lead is attached
   to it (`Ledger.attach_duplicate`: it keeps its raw payload, points to the earlier lead, and
   its own journey is removed, so the person has one journey and no second deal is opened).
   Not found: its normalised fields are stored and its journey moves to `qualified` (cause
   "gate"). Only qualified leads' fields are stored, so a quarantined lead never attracts
   duplicates; the earlier of two leads in one batch is processed first, and the later one
   is attached to it;
4. quarantines every other lead with every rule it broke and moves it to `quarantined`.

`gate_leads` is the Prefect task around it, which also publishes a table artifact (counts per
rule, masked samples) and writes GX Data Docs. `replay_quarantined` sends fixed records back
through the same gate: a fix never bypasses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import acreate_table_artifact

from data_quality import LEAD_FIELDS, FieldMapping, mask_field, split_leads
from data_quality.suite import RULE_DESCRIPTIONS, RULE_NAMES, UNIQUENESS_RULES
from leadflow.settings import get_settings
from ledger import LeadHasNoJourney, Ledger

ARTIFACT_KEY = "quality-gate"
GATE_CAUSE = "gate"
REPLAY_CAUSE = "manual"


@dataclass
class GateOutcome:
    """Where each lead of a gate run went, and how often each rule was broken."""

    qualified: list[int] = field(default_factory=list)
    quarantined: dict[int, int] = field(default_factory=dict)  # lead id → quarantine id
    duplicates: dict[int, int] = field(default_factory=dict)  # lead id → earlier lead id
    skipped: list[int] = field(default_factory=list)  # not in `received`: already gated
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule → masked values


def _fixed_values(ledger: Ledger, lead_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The values of each lead's latest replayed quarantine record: a replayed lead is gated
    on its fixed values, even if the process that replayed it died before gating it."""
    wanted = set(lead_ids)
    latest: dict[int, dict[str, Any]] = {}
    for record in ledger.list_quarantine(include_replayed=True):
        if record.lead_id in wanted and record.replayed_at is not None:
            latest[record.lead_id] = record.values  # records come oldest first
    return latest


def _state(ledger: Ledger, lead_id: int) -> str | None:
    try:
        return ledger.journey_state(lead_id)
    except LeadHasNoJourney:
        return None  # attached as a duplicate earlier: nothing left to gate


def _normalized_fields(row: dict[str, Any]) -> dict[str, Any]:
    keep = (*LEAD_FIELDS, "phone_kind")
    return {name: row[name] for name in keep if row.get(name) is not None}


def _document(values: dict[str, Any]) -> str | None:
    return values.get("cpf") or values.get("cnpj")


def run_gate(
    ledger: Ledger,
    lead_ids: Sequence[int],
    mapping: FieldMapping | None = None,
    data_docs_dir: Path | None = None,
) -> GateOutcome:
    """Gate the given leads (those still in `received`; others are skipped, so a rerun after
    a crash finishes the batch without gating anything twice). With `data_docs_dir`, the
    batch's GX Data Docs are written there."""
    mapping = mapping or FieldMapping()
    outcome = GateOutcome(counts=dict.fromkeys(RULE_NAMES, 0))
    fixed = _fixed_values(ledger, lead_ids)
    rows: list[dict[str, Any]] = []
    for lead_id in sorted(set(lead_ids)):
        if _state(ledger, lead_id) != "received":
            outcome.skipped.append(lead_id)
            continue
        values = fixed.get(lead_id) or mapping.map_row(ledger.get_lead(lead_id).raw)
        rows.append({**values, "lead_id": lead_id})
    if not rows:
        return outcome

    result = split_leads(rows, mapping, data_docs_dir=data_docs_dir)
    clean = {int(r["lead_id"]): r for r in result.clean.to_dict("records")}
    stopped = {int(r["lead_id"]): r for r in result.quarantined.to_dict("records")}

    for lead_id in sorted([*clean, *stopped]):
        if lead_id in clean:
            _pass(ledger, lead_id, clean[lead_id], outcome)
        elif set(stopped[lead_id]["reasons"]) <= UNIQUENESS_RULES and _attach_in_batch(
            ledger, lead_id, stopped[lead_id], outcome
        ):
            continue
        else:
            _quarantine(ledger, lead_id, stopped[lead_id], outcome)
    return outcome


def _pass(ledger: Ledger, lead_id: int, row: dict[str, Any], outcome: GateOutcome) -> None:
    normalized = _normalized_fields(row)
    earlier = ledger.find_lead_by_contact(
        normalized.get("email"),
        normalized.get("phone_number"),
        _document(normalized),
        exclude_lead_id=lead_id,
    )
    ledger.update_normalized(lead_id, normalized)
    if earlier is not None:
        ledger.attach_duplicate(lead_id, earlier, f"same e-mail, phone or CPF/CNPJ as {earlier}")
        outcome.duplicates[lead_id] = earlier
        return
    ledger.transition(lead_id, "qualified", GATE_CAUSE, "passed the quality gate")
    outcome.qualified.append(lead_id)


def _attach_in_batch(
    ledger: Ledger, lead_id: int, row: dict[str, Any], outcome: GateOutcome
) -> bool:
    """A lead that broke only uniqueness-in-batch rules repeats an earlier lead of the batch:
    once that one was qualified, attach this one to it. False when the earlier lead did not
    pass (it was quarantined): then this one is quarantined too, with its reasons."""
    from data_quality import normalize_cnpj, normalize_cpf, normalize_email, normalize_phone

    normalized = {
        "email": normalize_email(row.get("email")).value,
        "phone_number": normalize_phone(row.get("phone_number")).value,
        "cpf": normalize_cpf(row.get("cpf")).value,
        "cnpj": normalize_cnpj(row.get("cnpj")).value,
    }
    earlier = ledger.find_lead_by_contact(
        normalized["email"], normalized["phone_number"], _document(normalized), lead_id
    )
    if earlier is None:
        return False
    reason = f"same person as lead {earlier} ({', '.join(row['reasons'])})"
    ledger.attach_duplicate(lead_id, earlier, reason)
    outcome.duplicates[lead_id] = earlier
    return True


def _quarantine(ledger: Ledger, lead_id: int, row: dict[str, Any], outcome: GateOutcome) -> None:
    reasons: list[str] = list(row["reasons"])
    values = {name: row.get(name) for name in LEAD_FIELDS}
    record_id = ledger.quarantine_lead(
        lead_id,
        [{"rule": name, "description": RULE_DESCRIPTIONS[name]} for name in reasons],
        values,
    )
    ledger.transition(lead_id, "quarantined", GATE_CAUSE, ", ".join(reasons))
    outcome.quarantined[lead_id] = record_id
    for name in reasons:
        outcome.counts[name] += 1
        outcome.samples.setdefault(
            name, {k: mask_field(k, v) for k, v in values.items() if v is not None}
        )


def replay_quarantined(
    ledger: Ledger,
    quarantine_ids: Sequence[int] | None = None,
    mapping: FieldMapping | None = None,
) -> GateOutcome:
    """Send quarantine records (all open ones when none are named) back through the gate.

    Each record's lead moves back to `received` (cause "manual"), the record is closed, and
    the lead is gated again on the record's (fixed) values: it is qualified only if they now
    pass. A replayed record cannot be replayed again (QuarantineClosed), so one record never
    feeds the gate twice.
    """
    records = (
        [ledger.get_quarantine(i) for i in dict.fromkeys(quarantine_ids)]
        if quarantine_ids
        else ledger.list_quarantine()
    )
    # every record is checked before any journey moves: an unknown or closed record among
    # several leaves all of them as they were, rather than some leads back in `received`
    for record in records:
        if record.replayed_at is not None:
            ledger.mark_replayed(record.id)  # raises QuarantineClosed, naming the record
    lead_ids: list[int] = []
    for record in records:
        if _state(ledger, record.lead_id) == "quarantined":
            ledger.transition(
                record.lead_id, "received", REPLAY_CAUSE, f"replay of quarantine {record.id}"
            )
        ledger.mark_replayed(record.id)
        lead_ids.append(record.lead_id)
    return run_gate(ledger, lead_ids, mapping)


def artifact_table(outcome: GateOutcome) -> list[dict[str, Any]]:
    """The run's table artifact: one row per rule (count, masked sample) and the totals.
    Values are masked: artifacts are read by people without access to personal data."""
    rows: list[dict[str, Any]] = [
        {"rule": "qualified", "leads": len(outcome.qualified), "sample": ""},
        {"rule": "quarantined", "leads": len(outcome.quarantined), "sample": ""},
        {"rule": "attached to an earlier lead", "leads": len(outcome.duplicates), "sample": ""},
        {"rule": "skipped (already gated)", "leads": len(outcome.skipped), "sample": ""},
    ]
    for name in RULE_NAMES:
        sample = outcome.samples.get(name, {})
        rows.append(
            {
                "rule": name,
                "leads": outcome.counts.get(name, 0),
                "sample": ", ".join(f"{k}={v}" for k, v in sample.items()),
            }
        )
    return rows


@task(name="gate-leads")
async def gate_leads(
    ledger_url: str,
    lead_ids: list[int],
    mapping: FieldMapping | None = None,
    data_docs_dir: str | None = None,
    write_data_docs: bool = True,
) -> GateOutcome:
    """Gate a batch of received leads, publish the `quality-gate` table artifact, and write
    the batch's GX Data Docs to `data_docs_dir` (default: settings.data_docs_dir).

    The ledger is synchronous: it runs in a worker thread so the event loop keeps serving
    other tasks of the flow.
    """
    docs: Path | None = None
    if write_data_docs:
        docs = Path(data_docs_dir) if data_docs_dir else get_settings().data_docs_dir
    ledger = Ledger(ledger_url)
    try:
        outcome = await asyncio.to_thread(run_gate, ledger, lead_ids, mapping, docs)
    finally:
        ledger.dispose()
    await acreate_table_artifact(
        artifact_table(outcome),
        key=ARTIFACT_KEY,
        description=(
            f"Quality gate: {len(outcome.qualified)} qualified, {len(outcome.quarantined)} "
            f"quarantined, {len(outcome.duplicates)} attached to an earlier lead "
            "(personal data masked)."
        ),
    )
    return outcome
