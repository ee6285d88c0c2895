"""The quality gate as a journey step: received leads become qualified or quarantined.

The gate itself (normalise, Great Expectations suite, de-duplication, quarantine) lives in
data_quality/ and tasks/quality_gate.py, which records its decisions in the ledger atomically;
this task runs it over the batch the intake stage claimed, publishes the gate's table artifact,
and reports each lead's outcome beside the other steps'.
"""

from __future__ import annotations

import asyncio
import contextlib

from ledger import ClaimedJourney, ClaimLost, JourneyState
from tasks.journey import Move, MoveKind, StepContext, journey_task
from tasks.quality_gate import publish_artifact, run_gate

__all__ = ["qualify"]


@journey_task("qualify")
async def qualify(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """received → qualified | quarantined (or attached to an earlier lead of the same person)."""
    if not journeys:
        return []
    lead_ids = [journey.lead_id for journey in journeys]
    outcome = await asyncio.to_thread(run_gate, context.ledger, lead_ids)
    moves = [
        Move.advance(i, JourneyState.QUALIFIED, "passed the quality gate")
        for i in outcome.qualified
    ]
    moves += [
        Move(i, MoveKind.ADVANCE, f"quarantine record {record}", JourneyState.QUARANTINED)
        for i, record in outcome.quarantined.items()
    ]
    moves += [
        Move(i, MoveKind.ADVANCE, f"the same person as lead {earlier}", None)
        for i, earlier in outcome.duplicates.items()
    ]

    def release_skipped() -> None:
        for lead_id in outcome.skipped:
            with contextlib.suppress(ClaimLost):
                context.ledger.release(lead_id, context.worker)

    await asyncio.to_thread(release_skipped)
    await publish_artifact(outcome)
    return moves
