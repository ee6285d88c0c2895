"""`leadflow quarantine`: see, correct and replay the leads the quality gate stopped.

    leadflow quarantine list                 open records, personal data masked
    leadflow quarantine show ID [--reveal]   one record and its fixes (values in full with
                                             --reveal only)
    leadflow quarantine fix ID field=value   correct a lead field (several pairs allowed)
    leadflow quarantine replay [ID...]       send fixed records (all open ones by default)
                                             back through the gate

A replayed record re-enters the gate (tasks.quality_gate.replay_quarantined): it is qualified
only if its values now pass every rule, otherwise it is quarantined again with the rules it
still breaks. The ledger is `LEADFLOW_DATABASE_URL`; a database problem or an unknown record is
one line on stderr and exit code 1; a usage error (a record id beyond 64 bits, a value that is
not text) is one line and exit code 2, the value itself never repeated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from data_quality.fields import LEAD_FIELDS
from leadflow.cli.common import command_group, console, fail, whole_table, with_ledger
from leadflow.privacy import mask_field, mask_text

if TYPE_CHECKING:
    from ledger import Ledger, QuarantineView

app = command_group("See, fix and replay the leads the quality gate quarantined.")

GROUP = "quarantine"
MAX_RECORD_ID = 2**63 - 1
"""The largest id a ledger row can have (a 64-bit BIGINT, on SQLite and PostgreSQL alike)."""


def _record_id(value: str) -> int:
    """A quarantine record id as typed: a positive whole number that fits the ledger's ids
    (64 bits), or one line and exit code 2."""
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise fail(GROUP, f"{mask_text(text)[:40]!r} is not a record id: write a whole number", 2)
    number = int(text) if len(text) <= 20 else MAX_RECORD_ID + 1
    if not 1 <= number <= MAX_RECORD_ID:
        shown = text if len(text) <= 25 else f"{text[:25]}…"
        raise fail(
            GROUP, f"{shown} is not a record id: ids run from 1 to {MAX_RECORD_ID} (64 bits)", 2
        )
    return number


RECORD_ID = typer.Argument(help="Quarantine record id.", metavar="ID", show_default=False)


def _rules(record: QuarantineView) -> str:
    return ", ".join(str(reason.get("rule")) for reason in record.reasons)


def _masked_values(values: dict[str, Any]) -> str:
    """One masked `field=value` per line, so a narrow terminal wraps the table instead of
    cutting each value down to its stars."""
    return "\n".join(
        f"{name}={mask_field(name, value)}" for name, value in values.items() if value is not None
    )


@app.command("list")
def list_records(
    all_records: Annotated[
        bool, typer.Option("--all", help="Include records already replayed.")
    ] = False,
) -> None:
    """Quarantined leads, oldest first, with the rules they broke (personal data masked)."""
    records = with_ledger(
        GROUP, lambda ledger: ledger.list_quarantine(include_replayed=all_records)
    )
    if not records:
        console.print("No quarantined leads.")
        return
    table = whole_table(
        "id",
        "lead",
        "quarantined at",
        "rules broken",
        "values (masked)",
        "status",
        title="Quarantined leads",
    )
    for record in records:
        status = "replayed" if record.replayed_at else ("fixed" if record.fixed_at else "open")
        table.add_row(
            str(record.id),
            str(record.lead_id),
            record.quarantined_at.strftime("%Y-%m-%d %H:%M"),
            _rules(record),
            _masked_values(record.values),
            status,
        )
    console.print(table)


@app.command()
def show(
    record: Annotated[str, RECORD_ID],
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Show the values in full, for the person correcting them (personal data).",
        ),
    ] = False,
) -> None:
    """One record: rules broken, values to replay and fixes made, masked unless --reveal.

    Terminals end up in screenshots, pasted tickets and CI logs: personal data is shown in
    clear only when asked for, for the one record asked for.
    """
    record_id = _record_id(record)
    found = with_ledger(GROUP, lambda ledger: ledger.get_quarantine(record_id))

    def shown(name: str, value: Any) -> str:
        if value is None:
            return ""
        return str(value) if reveal else mask_field(name, value)

    console.print(f"Quarantine record {found.id} — lead {found.lead_id}")
    rules = whole_table("rule", "meaning", title="Rules broken")
    for reason in found.reasons:
        rules.add_row(str(reason.get("rule")), str(reason.get("description", "")))
    console.print(rules)
    values = whole_table(
        "field",
        "value",
        title="Values to replay" + ("" if reveal else " (masked; --reveal shows them)"),
    )
    for name, value in found.values.items():
        values.add_row(name, shown(name, value))
    console.print(values)
    if found.fixes:
        fixes = whole_table("at", "field", "value", title="Fixes")
        for fix in found.fixes:
            field = str(fix.get("field"))
            fixes.add_row(str(fix.get("at")), field, shown(field, fix.get("value")))
        console.print(fixes)
    if found.replayed_at:
        console.print(f"Replayed at {found.replayed_at:%Y-%m-%d %H:%M}.")


def _parse_assignment(text: str) -> tuple[str, str]:
    """`field=value` → (field, value). The message never repeats the value: it may be the
    personal data being corrected, and terminals end up in screenshots and CI logs."""
    field, sep, value = text.partition("=")
    field = field.strip()
    fields = ", ".join(LEAD_FIELDS)
    if not sep:
        shown = repr(text) if text.strip() in LEAD_FIELDS else "an argument"
        raise typer.BadParameter(
            f"{shown} has no '=': write field=value (e.g. email=ana@exemplo.com.br); "
            "an empty value (email=) clears the field",
            param_hint="FIELD=VALUE",
        )
    if not field:
        raise typer.BadParameter(
            f"a field name is missing before '=': one of {fields}", param_hint="FIELD=VALUE"
        )
    if field not in LEAD_FIELDS:
        raise typer.BadParameter(
            f"unknown field {mask_text(field)!r}: one of {fields}", param_hint="FIELD=VALUE"
        )
    return field, value.strip()


def _not_typed_text(value: str) -> str | None:
    """Why a corrected value is not text a person could type, or None. Checked before
    anything is stored: a value the gate cannot read would close nothing but block the
    replay (issue 8.1). The ledger refuses the same (InvalidValue) as a second guard."""
    import unicodedata

    from data_quality.normalize import not_text

    if not_text(value) is not None:
        return "is not valid UTF-8 text (a byte that is not UTF-8, or NUL), or is too long"
    if any(unicodedata.category(char) == "Cc" for char in value):
        return "contains a control character (newline, tab, escape, ...)"
    return None


@app.command()
def fix(
    record: Annotated[str, RECORD_ID],
    assignments: Annotated[
        list[str], typer.Argument(help="field=value, e.g. email=ana@exemplo.com.br")
    ],
) -> None:
    """Correct fields of a quarantined lead. Nothing is replayed yet: run `replay`."""
    from data_quality.normalize import MISSING, NORMALISERS

    record_id = _record_id(record)
    pairs = [_parse_assignment(text) for text in assignments]
    for field, value in pairs:
        problem = _not_typed_text(value)
        if problem is not None:
            raise fail(GROUP, f"the value given for {field} {problem}; nothing was stored", 2)
    repeated = sorted({f for f, _ in pairs if [g for g, _ in pairs].count(f) > 1})
    if repeated:
        raise typer.BadParameter(
            f"{', '.join(repeated)} given more than once: give each field once",
            param_hint="FIELD=VALUE",
        )

    def apply(ledger: Ledger) -> None:
        for field, value in pairs:
            ledger.fix_quarantine(record_id, field, value or None)

    with_ledger(GROUP, apply)
    for field, value in pairs:
        verdict = NORMALISERS[field](value or None)
        if verdict.reason == MISSING:
            hint = " (cleared)"
        elif verdict.reason is not None:
            hint = f" (still breaks {verdict.reason}: `replay` will quarantine it again)"
        else:
            hint = ""
        console.print(f"Record {record_id}: {field} corrected{hint}.")


@app.command()
def replay(
    record_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Records to replay; all open ones if none.", metavar="[ID]..."),
    ] = None,
) -> None:
    """Send records back through the quality gate; each lead is qualified only if it passes."""
    from tasks.quality_gate import replay_quarantined

    ids = [_record_id(text) for text in record_ids or []]

    outcome = with_ledger(GROUP, lambda ledger: replay_quarantined(ledger, ids or None))
    if not (outcome.qualified or outcome.quarantined or outcome.duplicates or outcome.skipped):
        console.print("Nothing to replay.")
        return
    table = whole_table("lead", "outcome", title="Replay")
    for lead_id in outcome.qualified:
        table.add_row(str(lead_id), "qualified")
    for lead_id, earlier in outcome.duplicates.items():
        table.add_row(str(lead_id), f"same person as lead {earlier}: attached to its journey")
    for lead_id, new_record in outcome.quarantined.items():
        table.add_row(str(lead_id), f"quarantined again (record {new_record})")
    for lead_id in outcome.skipped:
        table.add_row(str(lead_id), "not gated: its journey had already left `received`")
    console.print(table)
