"""The journey state machine, as data, in one place (DESIGN.md, "A journey's states").

Every lead has one journey; its state says how far the client has come from the ad to the paid
service. `transition` in the ledger accepts a move only if `is_legal` says so. Two families of
edges exist:

* the business edges in `TRANSITIONS` (received → qualified → deal_open → ...), and
* the dead-letter edges: any non-terminal state → `dead_lettered` (a permanent vendor error), and
  `dead_lettered` → the one state it was dead-lettered from (fix + retry resumes the same step),
  which the journey records in `dead_lettered_from`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from ledger.errors import UnknownCause, UnknownState

Named = TypeVar("Named", bound=StrEnum)


class JourneyState(StrEnum):
    """Where a lead's journey stands. Values are the strings stored in the ledger."""

    RECEIVED = "received"
    QUARANTINED = "quarantined"
    QUALIFIED = "qualified"
    DEAL_OPEN = "deal_open"
    DEAL_LOST = "deal_lost"
    DEAL_WON = "deal_won"
    CONTRACT_SENT = "contract_sent"
    CONTRACT_DECLINED = "contract_declined"
    CONTRACT_SIGNED = "contract_signed"
    CHARGE_OPEN = "charge_open"
    PAID = "paid"
    ACTIVATING = "activating"
    ACTIVATED = "activated"
    WELCOMED = "welcomed"
    DEAD_LETTERED = "dead_lettered"


class Cause(StrEnum):
    """What made a journey move; recorded with every transition."""

    WEBHOOK = "webhook"
    POLL = "poll"
    RECONCILE = "reconcile"
    MANUAL = "manual"
    GATE = "gate"


class EffectStatus(StrEnum):
    """How far an external side effect got: written before the call, done or failed after."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class InboxOutcome(StrEnum):
    """How a stored webhook delivery ended: acted upon, or deliberately left alone."""

    PROCESSED = "processed"
    IGNORED = "ignored"


S = JourneyState

#: The business edges: state → the states it may move to next.
TRANSITIONS: dict[JourneyState, frozenset[JourneyState]] = {
    S.RECEIVED: frozenset({S.QUARANTINED, S.QUALIFIED}),
    S.QUARANTINED: frozenset({S.RECEIVED}),
    S.QUALIFIED: frozenset({S.DEAL_OPEN}),
    S.DEAL_OPEN: frozenset({S.DEAL_LOST, S.DEAL_WON}),
    S.DEAL_LOST: frozenset(),
    S.DEAL_WON: frozenset({S.CONTRACT_SENT}),
    S.CONTRACT_SENT: frozenset({S.CONTRACT_DECLINED, S.CONTRACT_SIGNED}),
    S.CONTRACT_DECLINED: frozenset(),
    S.CONTRACT_SIGNED: frozenset({S.CHARGE_OPEN}),
    S.CHARGE_OPEN: frozenset({S.PAID}),
    S.PAID: frozenset({S.ACTIVATING}),
    S.ACTIVATING: frozenset({S.ACTIVATED}),
    S.ACTIVATED: frozenset({S.WELCOMED}),
    S.WELCOMED: frozenset(),
    S.DEAD_LETTERED: frozenset(),  # leaves only towards dead_lettered_from, see is_legal
}

#: States a journey never leaves: closed (deal lost, contract declined) or done (welcomed).
TERMINAL_STATES: frozenset[JourneyState] = frozenset({S.DEAL_LOST, S.CONTRACT_DECLINED, S.WELCOMED})

#: States that wait for a person to fix something: nothing is due for the reconciler there.
AWAITING_FIX_STATES: frozenset[JourneyState] = frozenset({S.QUARANTINED, S.DEAD_LETTERED})

#: The state a new lead's journey starts in.
INITIAL_STATE = S.RECEIVED


def parse_state(name: str) -> JourneyState:
    """The state called `name`, or UnknownState naming it (a typo must not look illegal)."""
    try:
        return JourneyState(name)
    except ValueError:
        raise UnknownState(f"unknown journey state {name!r}") from None


def parse_cause(name: str) -> Cause:
    """The cause called `name`, or UnknownCause listing the accepted ones."""
    return _parse_listed(Cause, name, "transition cause", UnknownCause)


def parse_outcome(name: str) -> InboxOutcome:
    """The inbox outcome called `name`; ValueError naming the accepted ones."""
    return _parse_listed(InboxOutcome, name, "inbox outcome", ValueError)


def _parse_listed(kind: type[Named], name: str, what: str, error: type[Exception]) -> Named:
    """The member of `kind` called `name`, or `error` listing the accepted names (a caller
    that typed one wrong learns the right ones)."""
    try:
        return kind(name)
    except ValueError:
        accepted = ", ".join(member.value for member in kind)
        raise error(f"unknown {what} {name!r}; use one of {accepted}") from None


def is_dead_letterable(state: JourneyState) -> bool:
    """Whether a permanent vendor error may dead-letter a journey standing in `state`."""
    return state not in TERMINAL_STATES and state is not S.DEAD_LETTERED


def is_legal(
    from_state: JourneyState, to_state: JourneyState, dead_lettered_from: JourneyState | None = None
) -> bool:
    """Whether a journey in `from_state` may move to `to_state`.

    `dead_lettered_from` matters only when leaving `dead_lettered`: the journey may go back only
    to the step it failed in, so a retry resumes that step rather than skipping ahead.
    """
    if from_state is S.DEAD_LETTERED:
        return dead_lettered_from is not None and to_state is dead_lettered_from
    if to_state is S.DEAD_LETTERED:
        return is_dead_letterable(from_state)
    return to_state in TRANSITIONS[from_state]


def legal_edges() -> frozenset[tuple[JourneyState, JourneyState]]:
    """Every (from, to) pair the machine allows, the dead-letter round trips included.

    A `dead_lettered → X` edge exists for each X that can be dead-lettered; whether a given
    journey may take it depends on where it was dead-lettered from (see is_legal).
    """
    edges = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}
    for state in JourneyState:
        if is_dead_letterable(state):
            edges.add((state, S.DEAD_LETTERED))
            edges.add((S.DEAD_LETTERED, state))
    return frozenset(edges)
