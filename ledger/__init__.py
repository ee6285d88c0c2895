"""The ledger: leadflow's source of truth (DESIGN.md, principle 1).

Every lead has a journey with a state; every external side effect has an effect row keyed by a
deterministic idempotency key; every webhook delivery is stored in the inbox before it is
acknowledged; every lead stopped at the gate is in quarantine with the rules it broke. The rest
of leadflow (webhooks/, tasks/, flows/) reads and records through the `Ledger` only; this
package imports nothing of the project and takes a database URL (SQLite or PostgreSQL).

    from ledger import Ledger
    ledger = Ledger("sqlite:///.leadflow/ledger.db")
    ledger.upgrade()

The effect protocol around every vendor call (DESIGN.md, principle 1):

    try:
        effect = ledger.begin_effect(f"lead:{lead_id}:asaas.payment", "asaas",
                                     "create_pix_charge", lead_id)
    except EffectInFlight:                  # another worker is calling the vendor right now
        ...                                 # retry later; never call the vendor here
    if effect.is_done:                      # created before: reuse effect.vendor_object_id
        ...
    elif effect.is_permanently_failed:      # the vendor refused for good
        ledger.transition(lead_id, "dead_lettered", "reconcile", effect.last_error)
    else:                                   # this caller alone holds the attempt (its lease)
        try:
            found = look_up_by_external_reference() if effect.needs_lookup else None
            charge = found or create_charge()
        except TransientVendorError as error:
            ledger.fail_effect(effect.key, str(error), False, token=effect.lease_token)
            raise
        ledger.complete_effect(effect.key, charge["id"], charge)

`begin_effect` leases the attempt for `lease_seconds` (default 300): a second caller meanwhile
gets EffectInFlight, so two workers never call the vendor for one effect at the same time. If
the holder crashes, its lease runs out and the next `begin_effect` takes over with
`needs_lookup`, so the object a lost answer may have created is found rather than made twice.

Which operations move the journey: only `transition` does (and `record_lead`, which opens it in
`received`). `quarantine_lead` and `mark_replayed` record the quarantine only: the gate calls
`transition(lead_id, "quarantined", "gate")` and the replay `transition(lead_id, "received",
"manual")` itself. The ledger is synchronous (SQLAlchemy sessions): from async code, call it
through `asyncio.to_thread` when a call may wait on a lock.
"""

from ledger.errors import (
    ClaimLost,
    EffectInFlight,
    EffectLeaseLost,
    EffectStateError,
    IllegalTransition,
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
from ledger.operations import (
    CONTACT_KEYS,
    DEFAULT_EFFECT_LEASE_SECONDS,
    EFFECT_DONE,
    EFFECT_FAILED,
    EFFECT_PENDING,
    Ledger,
    canonical_document,
    canonical_email,
    canonical_phone,
    redact_secret_headers,
)
from ledger.states import (
    TERMINAL_STATES,
    TRANSITIONS,
    Cause,
    JourneyState,
    is_legal,
    legal_edges,
)
from ledger.views import (
    ClaimedJourney,
    EffectView,
    InboxView,
    JourneyView,
    LeadView,
    QuarantineView,
    RecordedLead,
    TransitionView,
)

__all__ = [
    "CONTACT_KEYS",
    "DEFAULT_EFFECT_LEASE_SECONDS",
    "EFFECT_DONE",
    "EFFECT_FAILED",
    "EFFECT_PENDING",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Cause",
    "ClaimLost",
    "ClaimedJourney",
    "EffectInFlight",
    "EffectLeaseLost",
    "EffectStateError",
    "EffectView",
    "IllegalTransition",
    "InboxView",
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
    "canonical_document",
    "canonical_email",
    "canonical_phone",
    "is_legal",
    "legal_edges",
    "redact_secret_headers",
]
