"""The frozen views the Ledger returns: snapshots, never live ORM objects.

A view can be passed between threads, tasks and processes and kept after its session closed;
changing the ledger goes through the Ledger's methods only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from data_quality.lead import NormalizedLead
from ledger.states import Cause, EffectStatus, InboxOutcome, JourneyState


@dataclass(frozen=True)
class RecordedLead:
    """What `record_lead` did: the lead, the journey that carries it, and whether it was new.

    For a lead attached as a duplicate, `journey_id` is the earlier lead's journey and
    `duplicate_of` that earlier lead's id.
    """

    lead_id: int
    journey_id: int
    created: bool
    duplicate_of: int | None = None


@dataclass(frozen=True)
class GateDecision:
    """What the gate's `pass_gate` did with a lead: qualified it, or attached it as a
    duplicate of an earlier lead of the same person (`duplicate_of`)."""

    lead_id: int
    qualified: bool
    duplicate_of: int | None = None


@dataclass(frozen=True)
class LeadView:
    """A lead as received (raw) and as the gate normalised it (None until it passed)."""

    lead_id: int
    source: str
    source_id: str
    raw: dict[str, Any]
    normalized: NormalizedLead | None
    received_at: datetime
    duplicate_of: int | None
    duplicate_reason: str | None


@dataclass(frozen=True)
class JourneyView:
    """A journey's current state, when its next step is due, and who holds it."""

    journey_id: int
    lead_id: int
    state: JourneyState
    due_at: datetime | None
    dead_lettered_from: JourneyState | None
    claimed_by: str | None
    claimed_until: datetime | None
    updated_at: datetime
    #: when the journey entered its state
    state_since: datetime | None = None
    #: why its last step left it there (a person to act, a vendor to retry), if it said
    waiting_reason: str | None = None


@dataclass(frozen=True)
class TransitionView:
    """One recorded move of a journey."""

    at: datetime
    from_state: JourneyState
    to_state: JourneyState
    cause: Cause
    reason: str | None


@dataclass(frozen=True)
class ClaimedJourney:
    """A journey a worker now holds until `claimed_until` (its lease)."""

    journey_id: int
    lead_id: int
    state: JourneyState
    due_at: datetime | None
    dead_lettered_from: JourneyState | None
    claimed_by: str
    claimed_until: datetime


@dataclass(frozen=True)
class EffectView:
    """An external side effect and how far it got.

    `status` is pending, done or failed. `attempts` counts `begin_effect` calls that led to a
    vendor call; more than one means an earlier attempt may have reached the vendor.
    A pending effect returned by `begin_effect` is held by the caller alone until
    `leased_until`: no other worker calls the vendor for it meanwhile.
    """

    key: str
    vendor: str
    operation: str
    lead_id: int | None
    status: EffectStatus
    vendor_object_id: str | None
    response: dict[str, Any] | None
    attempts: int
    last_error: str | None
    permanent: bool
    created_at: datetime
    updated_at: datetime
    #: The attempt this caller holds (pass it to `fail_effect(..., token=...)`); None once the
    #: effect is done or failed.
    lease_token: str | None = None
    #: When that attempt's lease runs out and another worker may take the effect over.
    leased_until: datetime | None = None
    #: Vendor object ids reported by a late worker after another attempt completed the
    #: effect: they may exist at the vendor as second objects (issue: look them up, cancel).
    orphan_candidates: tuple[str, ...] = ()
    #: What the last worker noted about its decision ("sent; outcome unknown").
    note: str | None = None

    @property
    def is_done(self) -> bool:
        """The vendor object exists and its id is recorded: callers skip the call."""
        return self.status is EffectStatus.DONE

    @property
    def is_permanently_failed(self) -> bool:
        """The vendor refused for good: callers dead-letter instead of calling again."""
        return self.status is EffectStatus.FAILED and self.permanent

    @property
    def needs_lookup(self) -> bool:
        """An earlier attempt may have created the object: look it up by external reference
        before creating it (DESIGN.md, principle 1)."""
        return self.status is EffectStatus.PENDING and self.attempts > 1


@dataclass(frozen=True)
class InboxView:
    """A stored webhook delivery: who holds it for processing, and how it ended."""

    id: int
    vendor: str
    event_id: str
    body: bytes
    headers: dict[str, Any]
    received_at: datetime
    processed_at: datetime | None
    outcome: InboxOutcome | None = None
    reason: str | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None


@dataclass(frozen=True)
class QuarantineView:
    """A quarantined lead: the rules it broke, the values to replay, the fixes made to them."""

    id: int
    lead_id: int
    reasons: list[dict[str, Any]]
    values: dict[str, Any]
    fixes: list[dict[str, Any]]
    quarantined_at: datetime
    fixed_at: datetime | None
    replayed_at: datetime | None
