"""The ledger: leadflow's source of truth (DESIGN.md, principle 1).

Every lead has a journey with a state; every external side effect has an effect row keyed by a
deterministic idempotency key; every webhook delivery is stored in the inbox before it is
acknowledged; every lead stopped at the gate is in quarantine with the rules it broke. The rest
of leadflow (webhooks/, tasks/, flows/) reads and records through the `Ledger` only.

It imports two leaf modules of the project and nothing else of it (a DESIGN.md change, issue 9):
`data_quality.lead` (`NormalizedLead`, the one typed lead the gate hands over and the ledger
stores and returns) and `leadflow.privacy` (header redaction, and masking of database errors).
It takes a database URL (SQLite or PostgreSQL).

    from ledger import shared_ledger
    ledger = shared_ledger("sqlite:///.leadflow/ledger.db")   # one per process
    ledger.upgrade()

The effect protocol around every vendor call (DESIGN.md, principle 1) is shown, running against
the sandbox's Asaas, in tests/ledger/test_effect_protocol_example.py: `begin_effect` (an
exclusive lease; EffectInFlight while another worker holds it) → reuse `vendor_object_id` if
`is_done`, dead-letter if `is_permanently_failed` → otherwise look the object up first when
`needs_lookup`, call the vendor, and `complete_effect(key, id)`, or `fail_effect(key, error,
permanent=..., token=effect.lease_token)`.

`begin_effect` leases the attempt for `lease_seconds` (default 300): a second caller meanwhile
gets EffectInFlight, so two workers never call the vendor for one effect at the same time. If
the holder crashes, its lease runs out and the next `begin_effect` takes over with
`needs_lookup`, so the object a lost answer may have created is found rather than made twice.
A late worker's object id reported after the takeover completed the effect is kept as an
orphan candidate (`EffectView.orphan_candidates`).

Which operations move the journey: `transition`, `retry_dead_lettered`, the gate's decisions
(`pass_gate`, `quarantine_at_gate`, `attach_duplicate`: each one transaction, replay included),
and `record_lead`, which opens it in `received`. From async code use `AsyncLedger` (`ledger.aio`).
"""

from ledger.effects import DEFAULT_EFFECT_LEASE_SECONDS
from ledger.errors import (
    BatchSpoiled,
    ClaimLost,
    DatabaseRefused,
    EffectInFlight,
    EffectLeaseLost,
    EffectStateError,
    IllegalTransition,
    InvalidValue,
    LeadHasNoJourney,
    LedgerError,
    LedgerUnavailable,
    MigrationError,
    QuarantineClosed,
    UnknownCause,
    UnknownEffect,
    UnknownInboxEntry,
    UnknownLead,
    UnknownQuarantine,
    UnknownState,
)
from ledger.operations import AsyncLedger, Ledger, shared_ledger
from ledger.states import (
    TERMINAL_STATES,
    TRANSITIONS,
    Cause,
    EffectStatus,
    InboxOutcome,
    JourneyState,
    is_legal,
    legal_edges,
)
from ledger.views import (
    ClaimedJourney,
    EffectView,
    GateDecision,
    InboxView,
    JourneyView,
    LeadView,
    QuarantineView,
    RecordedLead,
    TransitionView,
)

__all__ = [
    "DEFAULT_EFFECT_LEASE_SECONDS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "AsyncLedger",
    "BatchSpoiled",
    "Cause",
    "ClaimLost",
    "ClaimedJourney",
    "DatabaseRefused",
    "EffectInFlight",
    "EffectLeaseLost",
    "EffectStateError",
    "EffectStatus",
    "EffectView",
    "GateDecision",
    "IllegalTransition",
    "InboxOutcome",
    "InboxView",
    "InvalidValue",
    "JourneyState",
    "JourneyView",
    "LeadHasNoJourney",
    "LeadView",
    "Ledger",
    "LedgerError",
    "LedgerUnavailable",
    "MigrationError",
    "QuarantineClosed",
    "QuarantineView",
    "RecordedLead",
    "TransitionView",
    "UnknownCause",
    "UnknownEffect",
    "UnknownInboxEntry",
    "UnknownLead",
    "UnknownQuarantine",
    "UnknownState",
    "is_legal",
    "legal_edges",
    "shared_ledger",
]
