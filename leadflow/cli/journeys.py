"""`leadflow journeys`: what happened to this client?

    leadflow journeys list [--state S] [--since 2026-12-01] [--limit 50]
    leadflow journeys show ID        states with times and causes, every vendor object with its id
                                     and attempts, orphan candidates, quarantine history, masked
                                     contact data
    leadflow journeys retry ID       a dead-lettered journey resumes the step it failed in (after
                                     the cause was fixed), and that step runs now

Contact data is masked (leadflow/privacy.py): these lists are read by people who need to know
where a client is, not who the client is. A problem is one line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from leadflow.cli.common import command_group, console, fail, whole_table, with_ledger
from leadflow.privacy import mask_field, mask_text

if TYPE_CHECKING:
    from ledger import JourneyView, Ledger

app = command_group(
    "Where each client's journey stands, what was done for it, and retrying a stuck one."
)

GROUP = "journeys"
MAX_ID = 2**63 - 1


def _lead_id(value: int) -> int:
    if not 1 <= value <= MAX_ID:
        raise fail(GROUP, f"{value} is not a lead id (1 to {MAX_ID})", 2)
    return value


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{moment:%Y-%m-%d %H:%M} ({int(seconds // size)} {unit} ago)"
    return f"{moment:%Y-%m-%d %H:%M:%S} (just now)"


@app.command("list")
def list_journeys(
    state: Annotated[str | None, typer.Option(help="Only journeys in this state.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only journeys that moved since (ISO date/time).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Journeys, most recently moved first."""
    from ledger import JourneyState, UnknownState

    try:
        wanted = JourneyState(state) if state else None
    except ValueError:
        names = ", ".join(s.value for s in JourneyState)
        raise fail(GROUP, f"unknown state {state!r}; use one of {names}", 2) from None
    moment = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since

    def show(ledger: Ledger) -> None:
        try:
            journeys = ledger.list_journeys(state=wanted, since=moment, limit=limit)
        except UnknownState as exc:
            raise fail(GROUP, str(exc), 2) from None
        table = whole_table("lead", "state", "since", "next step due", "held by")
        for journey in journeys:
            table.add_row(
                str(journey.lead_id),
                _state_text(journey),
                _ago(journey.updated_at),
                _ago(journey.due_at) if journey.due_at else "waits for a person",
                journey.claimed_by or "",
            )
        console.print(table)
        counts = ledger.journey_counts()
        console.print(", ".join(f"{name}: {count}" for name, count in sorted(counts.items())))

    with_ledger(GROUP, show)


def _state_text(journey: JourneyView) -> str:
    if journey.dead_lettered_from:
        return f"{journey.state} (at {journey.dead_lettered_from})"
    return str(journey.state)


@app.command()
def show(lead_id: Annotated[int, typer.Argument(help="The lead's id.")]) -> None:
    """Everything leadflow knows and did for one client."""
    lead_id = _lead_id(lead_id)

    def describe(ledger: Ledger) -> None:
        lead = ledger.get_lead(lead_id)
        journey = ledger.get_journey(lead_id)
        console.print(f"[bold]lead {lead_id}[/bold] from {lead.source} ({lead.source_id})")
        if lead.normalized is not None:
            contact = lead.normalized.model_dump()
            shown = ", ".join(
                f"{name}={mask_field(name, value)}"
                for name, value in contact.items()
                if value is not None and name not in {"source", "source_id"}
            )
            console.print(f"contact: {shown}")
        if lead.duplicate_of is not None:
            console.print(f"the same person as lead {lead.duplicate_of}: {lead.duplicate_reason}")
        console.print(
            f"state: [bold]{_state_text(journey)}[/bold] since {_ago(journey.updated_at)}"
        )
        console.print(
            "next step due: " + (_ago(journey.due_at) if journey.due_at else "waits for a person")
        )

        history = whole_table("when", "from", "to", "cause", "why", title="history")
        for step in ledger.journey_history(lead_id):
            history.add_row(
                f"{step.at:%Y-%m-%d %H:%M:%S}",
                str(step.from_state),
                str(step.to_state),
                str(step.cause),
                mask_text(step.reason or ""),
            )
        console.print(history)

        effects = whole_table(
            "vendor object", "id", "status", "attempts", "note", title="vendor objects"
        )
        for effect in ledger.effects_for_lead(lead_id):
            notes = [effect.note or "", effect.last_error or ""]
            if effect.orphan_candidates:
                notes.append("orphan candidates: " + ", ".join(effect.orphan_candidates))
            effects.add_row(
                f"{effect.vendor}.{effect.operation}",
                effect.vendor_object_id or "",
                str(effect.status) + (" (permanent)" if effect.is_permanently_failed else ""),
                str(effect.attempts),
                mask_text("; ".join(n for n in notes if n)),
            )
        console.print(effects)

        records = [r for r in ledger.list_quarantine(include_replayed=True) if r.lead_id == lead_id]
        if records:
            quarantine = whole_table("record", "when", "rules", "replayed", title="quarantine")
            for record in records:
                quarantine.add_row(
                    str(record.id),
                    f"{record.quarantined_at:%Y-%m-%d %H:%M}",
                    ", ".join(str(reason.get("rule")) for reason in record.reasons),
                    f"{record.replayed_at:%Y-%m-%d %H:%M}" if record.replayed_at else "open",
                )
            console.print(quarantine)

    with_ledger(GROUP, describe)


#: the stage flow that runs the step a journey resumes at
RESUME = {
    "received": "intake",
    "qualified": "deals",
    "deal_open": "deals",
    "deal_won": "contracts",
    "contract_sent": "contracts",
    "contract_signed": "billing",
    "charge_open": "billing",
    "paid": "activation",
    "activating": "activation",
    "activated": "welcome",
}


@app.command()
def retry(
    lead_id: Annotated[int, typer.Argument(help="The dead-lettered lead's id.")],
    run: Annotated[
        bool, typer.Option(help="Run the resumed step now (else: next reconcile).")
    ] = True,
) -> None:
    """Resume a dead-lettered journey at the step it failed in, once its cause is fixed."""
    from ledger import IllegalTransition, JourneyState

    lead_id = _lead_id(lead_id)

    def resume(ledger: Ledger) -> str:
        journey = ledger.get_journey(lead_id)
        if journey.state != JourneyState.DEAD_LETTERED:
            raise fail(
                GROUP, f"lead {lead_id} is {journey.state}, not dead_lettered: nothing to retry"
            )
        try:
            ledger.retry_dead_lettered(lead_id, "retried by hand (leadflow journeys retry)")
        except IllegalTransition as exc:
            raise fail(GROUP, str(exc)) from None
        return str(ledger.get_journey(lead_id).state)

    state = with_ledger(GROUP, resume)
    console.print(f"lead {lead_id} resumes at {state}")
    if run and state in RESUME:
        import flows

        stage = getattr(flows, RESUME[state])
        report = asyncio.run(stage(lead_ids=[lead_id]))
        console.print(mask_text(report.summary()))
