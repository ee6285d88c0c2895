"""Every error the ledger raises, so callers can tell a broken rule from a broken database.

The tree (each class's parent first):

    LedgerError
    ├── LedgerUnavailable      the database URL is wrong or the server cannot be reached
    ├── DatabaseRefused        the database refused a statement; says which kind of error and
    │                          where, never the statement's values (no CPF or e-mail in it)
    ├── InvalidValue           a value the ledger will not store (too long, not text, NUL or
    │                          control characters); names the field (also a ValueError)
    ├── MigrationError         an unknown revision, or a schema newer than this code
    ├── BatchSpoiled           a call inside `Ledger.batch()` raised: nothing of the batch was
    │                          stored; make its calls again alone
    ├── IllegalTransition      the state machine (ledger.states) has no such edge; names both states
    ├── UnknownState           a state name the state machine does not know (also a ValueError)
    ├── UnknownCause           a transition cause outside webhook|poll|reconcile|manual|gate
    │                          (also a ValueError)
    ├── UnknownLead            no lead with that id
    │   └── LeadHasNoJourney   the lead was attached as a duplicate: its journey was removed
    ├── ClaimLost              a worker acted on a journey it no longer holds (lease expired,
    │   │                      released, or the journey moved on)
    │   └── EffectLeaseLost    a worker failed an effect whose lease it no longer holds
    ├── UnknownEffect          no effect with that idempotency key
    ├── EffectInFlight         another worker holds the effect's lease: do not call the vendor
    ├── EffectStateError       the effect is not in a status that allows the operation
    ├── UnknownInboxEntry      no inbox row with that id
    ├── UnknownQuarantine      no quarantine record with that id
    └── QuarantineClosed       the quarantine record was already replayed

Names read as what happened (IllegalTransition, ClaimLost), as agreed with the code that
catches them, rather than carrying an `Error` suffix.

The ledger sits under every stage of the journey (DESIGN.md, principle 1); these classes are the
only exceptions that cross its public boundary. Faults the ledger cannot classify (a full
disk, a dropped connection in the middle of a transaction) are wrapped too: a database error
becomes DatabaseRefused (or LedgerUnavailable for a lost connection) whose message carries no
SQL parameters, and whose cause is suppressed so no traceback prints them (LGPD, principle 9).
"""

from __future__ import annotations

from datetime import datetime


class LedgerError(Exception):
    """Base class of everything the ledger raises on purpose."""


class LedgerUnavailable(LedgerError):  # noqa: N818 - the agreed API name
    """The database cannot be reached or opened; the message is one line, password masked."""


class DatabaseRefused(LedgerError):  # noqa: N818 - reads as what happened
    """The database refused a statement for a reason the ledger does not name on its own.

    The message says the kind of error (SQLSTATE, constraint, table, column), never the
    statement's parameters: those may hold a CPF, an e-mail or a phone.
    """


class InvalidValue(LedgerError, ValueError):  # noqa: N818 - reads as what happened
    """A value the ledger refuses to store, on SQLite and PostgreSQL alike; `field` names it.

    Identifiers (source ids, effect keys, vendor object ids, worker names) must be text within
    their column's length, without NUL or lone surrogates; a quarantine fix must be text
    without control characters. Nothing is stored when this is raised.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class BatchSpoiled(LedgerError):  # noqa: N818 - reads as what happened
    """A call inside `Ledger.batch()` raised, so the batch stored nothing (it has no savepoint
    per call to undo that call alone): its caller makes each call again on its own."""


class MigrationError(LedgerError):
    """A schema migration cannot run: unknown revision, or a database from a newer leadflow."""


class IllegalTransition(LedgerError):  # noqa: N818 - the agreed API name
    """A journey was asked to move along an edge the state machine does not have.

    `from_state` and `to_state` name both ends, so the message reads as the rule that was broken.
    """

    def __init__(
        self, from_state: str, to_state: str, lead_id: int | None = None, detail: str | None = None
    ) -> None:
        self.from_state = from_state
        self.to_state = to_state
        self.lead_id = lead_id
        subject = f"lead {lead_id}: " if lead_id is not None else ""
        message = f"{subject}illegal transition from {from_state!r} to {to_state!r}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class UnknownState(LedgerError, ValueError):  # noqa: N818 - the agreed API name
    """A journey state name that the state machine does not define."""


class UnknownCause(LedgerError, ValueError):  # noqa: N818 - the agreed API name
    """A transition cause that is not one of the recorded kinds."""


class UnknownLead(LedgerError):  # noqa: N818 - the agreed API name
    """No lead with that id exists in the ledger."""


class LeadHasNoJourney(UnknownLead):
    """The lead was attached to an earlier lead as a duplicate; that lead's journey is the one."""


class ClaimLost(LedgerError):  # noqa: N818 - the agreed API name
    """A worker released or transitioned a journey whose claim it no longer holds."""


class EffectLeaseLost(ClaimLost):
    """A worker reported a failure for an effect it no longer holds: its lease ran out and
    another worker took the effect over (or it was already completed or failed). Nothing was
    changed, so the new holder's attempt stays in flight; the old worker must stop."""


class EffectInFlight(LedgerError):  # noqa: N818 - reads as what happened, like ClaimLost
    """Another worker began this effect and its lease has not run out: the vendor call may be
    under way right now, so calling the vendor again could create a second object.

    Retry later (a Prefect task retry, or the next reconciler run): by then the effect is done,
    failed, or its lease has expired and `begin_effect` hands it over with a look-up first.
    """

    def __init__(self, key: str, leased_until: datetime | None) -> None:
        self.key = key
        self.leased_until = leased_until
        until = f" until {leased_until.isoformat()}" if leased_until is not None else ""
        super().__init__(f"effect {key!r} is in flight: another worker holds it{until}")


class UnknownEffect(LedgerError):  # noqa: N818 - the agreed API name
    """No effect row with that idempotency key exists."""


class EffectStateError(LedgerError):
    """The effect's status does not allow the operation (e.g. failing an effect already done)."""


class UnknownInboxEntry(LedgerError):  # noqa: N818 - the agreed API name
    """No inbox row with that id exists."""


class UnknownQuarantine(LedgerError):  # noqa: N818 - the agreed API name
    """No quarantine record with that id exists."""


class QuarantineClosed(LedgerError):  # noqa: N818 - the agreed API name
    """The quarantine record was already replayed; a new failure opens a new record."""
