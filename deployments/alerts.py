"""Alerts that reach a person: a journey dead-lettered, a flow run failed or crashed, the
quarantine past its threshold.

Every alert takes one path: a Prefect event, an automation on the Prefect server that reacts to
it, and the `leadflow-alerts` notification block that automation sends through (a generic JSON
webhook by default; Slack or e-mail by configuration). Flow runs emit their own events
(`prefect.flow-run.Failed` / `.Crashed`); leadflow emits the other two here. `setup_prefect`
(deployments/setup.py) saves the block and the automations; until it has, the events are still
recorded (Prefect's event feed) but nobody is told.

One event, one automation, one notification: nothing is sent from the worker itself, so an
alert arrives exactly once however many workers there are. Alerts name the journey (its lead
id) or the flow run, never a person: reasons pass through `leadflow.privacy.mask_text`, and
flow-run alerts carry neither parameters nor the failure message (those may hold a lead's
data; the run's page has them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from leadflow.privacy import mask_text

__all__ = [
    "BLOCK_NAME",
    "DEAD_LETTERED_EVENT",
    "QUARANTINE_EVENT",
    "SILENT_RUN_SECONDS",
    "alert_dead_lettered",
    "alert_quarantine_past_threshold",
    "automations",
    "crash_silent_runs",
]

#: the notification block every leadflow automation sends through
BLOCK_NAME = "leadflow-alerts"
DEAD_LETTERED_EVENT = "leadflow.journey.dead-lettered"
QUARANTINE_EVENT = "leadflow.quarantine.past-threshold"
FLOW_RUN_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")


def _emit(event: str, resource: dict[str, str], payload: dict[str, Any]) -> None:
    """Queue the event on Prefect's events worker (sent in the background, flushed at exit)."""
    from prefect.events import emit_event

    emit_event(event=event, resource=resource, payload=payload)


async def alert_dead_lettered(lead_id: int, step: str, reason: str) -> None:
    """A journey stopped on a permanent error: tell a person which one, where, and why.

    Called once when the journey enters `dead_lettered` (the ledger transition is the
    once-only guard). The reason is masked: a vendor's message may quote an e-mail or CPF.
    """
    _emit(
        DEAD_LETTERED_EVENT,
        {
            "prefect.resource.id": f"leadflow.journey.{int(lead_id)}",
            "prefect.resource.name": f"journey {int(lead_id)}",
            "leadflow.step": step,
        },
        {"lead_id": int(lead_id), "step": step, "reason": mask_text(reason)},
    )


async def alert_quarantine_past_threshold(
    open_records: int, threshold: int, by_rule: Mapping[str, int]
) -> None:
    """The quarantine holds more open records than the threshold: the form or the gate needs
    a look. Counts only; no record's values."""
    _emit(
        QUARANTINE_EVENT,
        {"prefect.resource.id": "leadflow.quarantine", "prefect.resource.name": "quarantine"},
        {
            "open": int(open_records),
            "threshold": int(threshold),
            "by_rule": {mask_text(str(rule)): int(count) for rule, count in by_rule.items()},
        },
    )


#: flow runs beat every this many seconds (PREFECT_FLOWS_HEARTBEAT_FREQUENCY on the workers)
HEARTBEAT_SECONDS = 30
#: a run silent this long is declared Crashed: three heartbeats missed
SILENT_RUN_SECONDS = 90


def crash_silent_runs() -> Any:
    """Prefect's zombie-run recipe: a flow run whose heartbeats stop (its worker's machine
    died, a kill -9) is marked Crashed after SILENT_RUN_SECONDS, which fires the crashed alert.
    Needs PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 where the workers run."""
    from datetime import timedelta

    from prefect.automations import AutomationCore, EventTrigger, Posture
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState

    return AutomationCore(
        name="leadflow: crash silent flow runs",
        description="A flow run without a heartbeat for 90 s is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": "prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=SILENT_RUN_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message="No heartbeat for 90 s: its worker stopped (leadflow automation).",
            )
        ],
    )


def automations(block_document_id: UUID | None) -> list[Any]:
    """The automations leadflow keeps on the Prefect server: the silent-run detector, and,
    with a notification block, one alert automation per kind sending through it."""
    from prefect.automations import AutomationCore, EventTrigger, Posture, SendNotification

    if block_document_id is None:
        return [crash_silent_runs()]

    def alert(
        name: str, description: str, event: set[str], resource: str, subject: str, body: str
    ) -> AutomationCore:
        """Each `event` on a resource matching `resource` sends one notification through the
        block: no threshold, no window, every occurrence is news to an operator."""
        return AutomationCore(
            name=f"leadflow: {name}",
            description=description,
            trigger=EventTrigger(
                expect=event,
                match={"prefect.resource.id": resource},
                posture=Posture.Reactive,
                threshold=1,
                within=0,
            ),
            actions=[
                SendNotification(
                    block_document_id=block_document_id, subject=f"leadflow: {subject}", body=body
                )
            ],
        )

    return [
        crash_silent_runs(),
        alert(
            "flow run failed or crashed",
            "A flow run ended Failed or Crashed: one notification naming the run.",
            set(FLOW_RUN_EVENTS),
            "prefect.flow-run.*",
            "flow run {{ flow_run.name }} {{ flow_run.state.name }}",
            "Flow run {{ flow.name }}/{{ flow_run.name }} ({{ flow_run.id }}) ended "
            "{{ flow_run.state.name }}. Details: prefect flow-run inspect {{ flow_run.id }}",
        ),
        alert(
            "journey dead-lettered",
            "A journey stopped on a permanent vendor error or missing data.",
            {DEAD_LETTERED_EVENT},
            "leadflow.journey.*",
            "journey {{ event.payload.lead_id }} dead-lettered",
            "Journey {{ event.payload.lead_id }} dead-lettered at step "
            "{{ event.payload.step }}: {{ event.payload.reason }}. "
            "Fix the cause, then: leadflow journeys retry {{ event.payload.lead_id }}",
        ),
        alert(
            "quarantine past threshold",
            "More open quarantine records than LEADFLOW_QUARANTINE_ALERT_THRESHOLD.",
            {QUARANTINE_EVENT},
            "leadflow.quarantine",
            "{{ event.payload.open }} leads in quarantine",
            "{{ event.payload.open }} open quarantine records (threshold "
            "{{ event.payload.threshold }}). By rule: {{ event.payload.by_rule }}. "
            "See: leadflow quarantine list",
        ),
    ]
