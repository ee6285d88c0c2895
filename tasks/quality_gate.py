"""The quality gate as a Prefect task: leads in `received` become `qualified` or `quarantined`.

Between intake (a lead recorded in the ledger by the webhook service or a poll) and the first
vendor call (the Pipedrive person and deal), DESIGN.md principle 3: bad data stops here.

For a batch of leads `run_gate`:
1. loads each lead still in `received` (its raw form answers) in one query, and maps them to
   lead fields;
2. splits them with data_quality.split_leads (normalise, GX suite, per-row reasons);
3. in lead-id order, records ONE decision per lead, each one ledger transaction:
   - passed: `Ledger.pass_gate` stores its `NormalizedLead` and qualifies it, or attaches it
     to an earlier lead with the same e-mail, phone or CPF/CNPJ (the person keeps one journey);
   - broke only uniqueness-in-batch rules and the earlier lead of the batch passed:
     `Ledger.attach_duplicate` (compared on the values the gate normalised);
   - otherwise `Ledger.quarantine_at_gate` with every rule it broke.

`replay_quarantined` sends fixed quarantine records back through the same gate (a fix never
bypasses it): the records' values are gated first, and only then each lead's decision is
recorded together with closing its record (`replay_of`). A crash in the gate leaves every
record open and every journey where it was, so the replay can simply be run again.

`gate_leads` is the Prefect task around `run_gate`, which also publishes a table artifact
(counts per rule, masked samples) and writes GX Data Docs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from prefect import task
from prefect.artifacts import acreate_table_artifact

from data_quality import LEAD_FIELDS, FieldMapping, split_leads
from data_quality.gate import NOT_TEXT
from data_quality.lead import NormalizedLead, PhoneKind
from data_quality.normalize import normalize_cnpj, normalize_cpf, normalize_email, normalize_phone
from data_quality.suite import RULE_DESCRIPTIONS, RULE_NAMES, UNIQUENESS_RULES
from leadflow.privacy import install_masking, mask_field
from leadflow.settings import get_settings
from ledger import IllegalTransition, InvalidValue, Ledger, QuarantineClosed, QuarantineView

ARTIFACT_KEY = "quality-gate"
logger = install_masking(logging.getLogger(__name__))
VALUE_NOT_TEXT = "value_not_text"


@dataclass
class GateOutcome:
    """Where each lead of a gate run went, and how often each rule was broken."""

    qualified: list[int] = field(default_factory=list)
    quarantined: dict[int, int] = field(default_factory=dict)  # lead id → quarantine id
    duplicates: dict[int, int] = field(default_factory=dict)  # lead id → earlier lead id
    skipped: list[int] = field(default_factory=list)  # not in `received`: already gated
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule → masked values


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
    wanted = sorted(set(lead_ids))
    journeys = ledger.get_journeys(wanted)
    received = [i for i in wanted if i in journeys and journeys[i].state == "received"]
    leads = ledger.get_leads(received)
    rows = {lead_id: mapping.map_row(leads[lead_id].raw) for lead_id in received}
    outcome = _gate(ledger, rows, mapping, data_docs_dir, replays={})
    outcome.skipped = [i for i in wanted if i not in rows] + outcome.skipped
    return outcome


def replay_quarantined(
    ledger: Ledger,
    quarantine_ids: Sequence[int] | None = None,
    mapping: FieldMapping | None = None,
) -> GateOutcome:
    """Send quarantine records (all open ones when none are named) back through the gate.

    Each lead is gated again on its record's (fixed) values and qualified only if they now
    pass. Its decision, closing the record and moving its journey out of quarantine are one
    ledger transaction per lead; nothing moves before the whole batch has been gated. An
    unknown record (UnknownQuarantine) or a closed one (QuarantineClosed) among those named
    is refused before any lead is gated.
    """
    records = (
        [ledger.get_quarantine(i) for i in dict.fromkeys(quarantine_ids)]
        if quarantine_ids
        else ledger.list_quarantine()
    )
    for record in records:
        if record.replayed_at is not None:
            raise QuarantineClosed(f"quarantine record {record.id} was already replayed")
    replays: dict[int, QuarantineView] = {record.lead_id: record for record in records}
    rows = {lead_id: dict(record.values) for lead_id, record in replays.items()}
    return _gate(ledger, rows, mapping or FieldMapping(), None, replays=replays)


def _gate(
    ledger: Ledger,
    rows: Mapping[int, dict[str, Any]],
    mapping: FieldMapping,
    data_docs_dir: Path | None,
    *,
    replays: Mapping[int, QuarantineView],
) -> GateOutcome:
    """Split `rows` (lead id → lead fields), then record each lead's decision in the ledger,
    closing its replayed record (if any) in the same transaction."""
    if not rows:
        return GateOutcome(counts=dict.fromkeys(RULE_NAMES, 0))
    batch = [{**values, "lead_id": lead_id} for lead_id, values in sorted(rows.items())]
    result = split_leads(batch, mapping, data_docs_dir=data_docs_dir)
    # records keyed by column name (pandas-stubs types a record's keys as any Hashable)
    clean_rows = cast("list[dict[str, Any]]", result.clean.to_dict("records"))
    stopped_rows = cast("list[dict[str, Any]]", result.quarantined.to_dict("records"))
    clean = {int(r["lead_id"]): r for r in clean_rows}
    stopped = {int(r["lead_id"]): r for r in stopped_rows}
    leads = ledger.get_leads(clean) if clean else {}

    def decide_all() -> GateOutcome:
        outcome = GateOutcome(counts=dict.fromkeys(RULE_NAMES, 0))
        for lead_id in sorted([*clean, *stopped]):
            replay_of = replays[lead_id].id if lead_id in replays else None
            try:
                _decide(ledger, lead_id, clean, stopped, leads, replay_of, outcome)
            except (IllegalTransition, QuarantineClosed):
                # another worker decided this lead meanwhile (its claim ran out under us):
                # its decision stands, and this batch goes on with the other leads
                outcome.skipped.append(lead_id)
        return outcome

    # the batch's decisions in one transaction (one commit per lead was most of the gate's
    # cost); should one of them raise or the commit fail, each is made again alone
    outcome = ledger.batched(decide_all)
    logger.info(
        "quality gate: %d qualified, %d quarantined, %d attached to an earlier lead",
        len(outcome.qualified),
        len(outcome.quarantined),
        len(outcome.duplicates),
    )
    return outcome


def _decide(
    ledger: Ledger,
    lead_id: int,
    clean: Mapping[int, dict[str, Any]],
    stopped: Mapping[int, dict[str, Any]],
    leads: Mapping[int, Any],
    replay_of: int | None,
    outcome: GateOutcome,
) -> None:
    """Record one lead's decision: qualified (or attached to an earlier lead) or quarantined."""
    if lead_id in clean:
        lead = leads[lead_id]
        _pass(ledger, lead_id, clean[lead_id], lead.source, lead.source_id, replay_of, outcome)
    elif not (
        set(stopped[lead_id]["reasons"]) <= UNIQUENESS_RULES
        and _attach_in_batch(ledger, lead_id, stopped[lead_id], replay_of, outcome)
    ):
        _quarantine(ledger, lead_id, stopped[lead_id], replay_of, outcome)


def _normalized_lead(row: dict[str, Any], source: str, source_id: str) -> NormalizedLead:
    """A clean row as the one typed lead; a valid number that is neither a mobile nor a
    landline (toll-free, say) has no kind WhatsApp or a salesperson could use."""
    kind = row.get("phone_kind")
    row = {**row, "phone_kind": kind if kind in set(PhoneKind) else None}
    return NormalizedLead.from_gate_row(row, source=source, source_id=source_id)


def _pass(
    ledger: Ledger,
    lead_id: int,
    row: dict[str, Any],
    source: str,
    source_id: str,
    replay_of: int | None,
    outcome: GateOutcome,
) -> None:
    lead = _normalized_lead(row, source, source_id)
    try:
        decision = ledger.pass_gate(lead_id, lead, replay_of=replay_of)
    except InvalidValue as refused:
        # a value the gate accepted but the ledger cannot store (longer than its column):
        # this lead is stopped with the ledger's reason, the batch goes on
        reasons = [{"rule": VALUE_NOT_TEXT, "description": f"not storable: {refused}"}]
        values = {name: row.get(name) for name in LEAD_FIELDS}
        _record_quarantine(ledger, lead_id, reasons, values, replay_of, outcome)
        return
    if decision.duplicate_of is not None:
        outcome.duplicates[lead_id] = decision.duplicate_of
    else:
        outcome.qualified.append(lead_id)


def _attach_in_batch(
    ledger: Ledger,
    lead_id: int,
    row: dict[str, Any],
    replay_of: int | None,
    outcome: GateOutcome,
) -> bool:
    """A lead that broke only uniqueness-in-batch rules repeats an earlier lead of the batch:
    once that one passed, attach this one to it. False when the earlier lead did not pass
    (it was quarantined): then this one is quarantined too, with its reasons.

    The values are normalised by the gate's own normalisers (cached: the split just ran them
    on these very values), so they compare equal to the NormalizedLead the earlier lead
    stored."""
    email = normalize_email(row.get("email")).value
    phone = normalize_phone(row.get("phone_number")).value
    document = normalize_cpf(row.get("cpf")).value or normalize_cnpj(row.get("cnpj")).value
    earlier = ledger.find_lead_by_contact(email, phone, document, lead_id)
    if earlier is None:
        return False
    reason = f"same person as lead {earlier} ({', '.join(row['reasons'])})"
    ledger.attach_duplicate(lead_id, earlier, reason, replay_of=replay_of)
    outcome.duplicates[lead_id] = earlier
    return True


def _quarantine(
    ledger: Ledger,
    lead_id: int,
    row: dict[str, Any],
    replay_of: int | None,
    outcome: GateOutcome,
) -> None:
    reasons = [_reason(name, row.get(NOT_TEXT)) for name in row["reasons"]]
    values = {name: row.get(name) for name in LEAD_FIELDS}
    _record_quarantine(ledger, lead_id, reasons, values, replay_of, outcome)


def _reason(rule: str, not_text: str | None) -> dict[str, str]:
    """A quarantine reason; `value_not_text` also says which field held what kind of value
    (never the value itself)."""
    description = RULE_DESCRIPTIONS[rule]
    if rule == VALUE_NOT_TEXT and not_text:
        description = f"{description} ({not_text})"
    return {"rule": rule, "description": description}


def _record_quarantine(
    ledger: Ledger,
    lead_id: int,
    reasons: list[dict[str, str]],
    values: dict[str, Any],
    replay_of: int | None,
    outcome: GateOutcome,
) -> None:
    record_id = ledger.quarantine_at_gate(lead_id, reasons, values, replay_of=replay_of)
    outcome.quarantined[lead_id] = record_id
    logger.info(
        "lead %s quarantined (record %s) for %s: %s",
        lead_id,
        record_id,
        ", ".join(reason["rule"] for reason in reasons),
        ", ".join(f"{name}={value}" for name, value in masked(values).items()),
    )
    for reason in reasons:
        name = reason["rule"]
        outcome.counts[name] = outcome.counts.get(name, 0) + 1
        outcome.samples.setdefault(name, masked(values))


def masked(values: Mapping[str, Any]) -> dict[str, str]:
    """A lead's fields as artifacts and logs may show them (leadflow.privacy's rules)."""
    return {name: mask_field(name, value) for name, value in values.items() if value is not None}


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


async def publish_artifact(outcome: GateOutcome) -> None:
    """The run's table artifact (artifact_table) under ARTIFACT_KEY, with the totals in words:
    the one place an operator reads what a gate run decided, whichever step ran it."""
    await acreate_table_artifact(
        artifact_table(outcome),
        key=ARTIFACT_KEY,
        description=(
            f"Quality gate: {len(outcome.qualified)} qualified, {len(outcome.quarantined)} "
            f"quarantined, {len(outcome.duplicates)} attached to an earlier lead "
            "(personal data masked)."
        ),
    )


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
    await publish_artifact(outcome)
    return outcome
