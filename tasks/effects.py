"""Exactly-once vendor writes: the one helper every vendor-writing task goes through.

DESIGN.md principle 1. A task says only what to create and how to find it again (`VendorWrite`);
`perform` does the rest against the ledger's effect protocol:

1. `begin_effect` — another worker holds the attempt → `IN_FLIGHT` (the journey is released
   and retried later; the vendor is never called twice at once);
2. the effect is done → `REUSED` with the recorded vendor id; failed for good → `PERMANENT`;
3. an earlier attempt may have reached the vendor (`needs_lookup`), or the write is an upsert →
   look the object up by the external reference leadflow set; found → recorded, `FOUND`;
4. otherwise create it and record its id → `CREATED`.

How a vendor error is recorded comes from the error tree (blocks/errors.py): a `PermanentError`
fails the effect for good (the journey dead-letters with the vendor's message); a
`TransientError` fails the attempt only (the next run retries it); an `UnknownOutcomeError`
means the write may have happened, so the next attempt looks it up before creating.

A vendor that offers no look-up (WhatsApp: no idempotency key, no search) cannot be made
exactly-once: `UnknownOutcome.HOLD` says that after an answer was lost the write is recorded as
`unconfirmed` and never resent (at most once), and that is shown in `leadflow journeys show`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from blocks import PermanentError, UnknownOutcomeError, VendorError
from leadflow.privacy import mask_text
from ledger import (
    DEFAULT_EFFECT_LEASE_SECONDS,
    EffectInFlight,
    EffectLeaseLost,
    EffectStateError,
    EffectView,
    LeadView,
    Ledger,
)
from ledger.group_commit import group_commit

__all__ = [
    "NOT_SENT",
    "UNCONFIRMED",
    "EffectResult",
    "Effected",
    "Recorded",
    "UnknownOutcome",
    "VendorWrite",
    "effect_key",
    "in_ledger",
    "perform",
    "vendor_message",
]

T = TypeVar("T")

#: the vendor id recorded for a write whose answer was lost and that is never resent
UNCONFIRMED = "unconfirmed"
#: how a failed attempt that certainly did not reach the vendor is marked (HOLD writes)
NOT_SENT = "not sent: "


class UnknownOutcome(StrEnum):
    """What a write does after an attempt whose answer was lost."""

    LOOK_UP = "look_up"  # find it by external reference, create only if absent (exactly once)
    HOLD = "hold"  # record it unconfirmed and never resend (at most once)


class EffectResult(StrEnum):
    CREATED = "created"
    FOUND = "found"
    REUSED = "reused"
    UNCONFIRMED = "unconfirmed"
    IN_FLIGHT = "in_flight"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Effected:
    """How one vendor write ended, for the task to turn into a journey move."""

    result: EffectResult
    key: str
    vendor_object_id: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """The object exists at the vendor (or was sent, unconfirmed): the step may go on."""
        return self.result in {
            EffectResult.CREATED,
            EffectResult.FOUND,
            EffectResult.REUSED,
            EffectResult.UNCONFIRMED,
        }


@dataclass(frozen=True)
class VendorWrite(Generic[T]):
    """One vendor write as a task states it: what to create, how to find it, its id."""

    key: str
    vendor: str
    operation: str
    lead_id: int | None
    create: Callable[[], Awaitable[T]]
    object_id: Callable[[T], str]
    find: Callable[[], Awaitable[T | None]] | None = None
    upsert: bool = False
    unknown_outcome: UnknownOutcome = UnknownOutcome.LOOK_UP
    #: the person's names this write sends: masked in any vendor message that echoes them
    names: tuple[str, ...] = ()

    @classmethod
    def for_lead(
        cls,
        lead: LeadView,
        effect: str,
        operation: str,
        *,
        create: Callable[[], Awaitable[T]],
        object_id: Callable[[T], str],
        find: Callable[[], Awaitable[T | None]] | None = None,
        upsert: bool = False,
        unknown_outcome: UnknownOutcome = UnknownOutcome.LOOK_UP,
    ) -> VendorWrite[T]:
        """A write about one lead: its key is `effect_key(lead, effect)`, its vendor the
        effect's prefix (`asaas.pix_charge` → asaas), and the lead's name is masked in any
        vendor message that echoes it."""
        return cls(
            key=effect_key(lead.lead_id, effect),
            vendor=effect.split(".", 1)[0],
            operation=operation,
            lead_id=lead.lead_id,
            create=create,
            object_id=object_id,
            find=find,
            upsert=upsert,
            unknown_outcome=unknown_outcome,
            names=(lead.normalized.full_name,) if lead.normalized is not None else (),
        )

    def __post_init__(self) -> None:
        if self.unknown_outcome is UnknownOutcome.LOOK_UP and self.find is None:
            raise ValueError(f"{self.key}: a look-up write needs `find`")


@dataclass(frozen=True)
class Recorded:
    """A lead's effects as the ledger held them when the step began: what the steps before it
    made at each vendor, read for the whole batch in one query (`Ledger.effects_for_leads`).

    Why not a read per lead: in the welcome step such reads (the deal's id, the website, every
    id for the note) were half of the ledger's calls, each a round trip through the ledger's
    thread that the lead waited for (bench_journey). What the current step writes is not here:
    its outcome is the `Effected` that `perform` returns."""

    lead_id: int
    effects: tuple[EffectView, ...] = ()

    def effect(self, name: str) -> EffectView | None:
        """The lead's effect `name` (`pipedrive.deal`), or None when none was recorded."""
        key = effect_key(self.lead_id, name)
        return next((effect for effect in self.effects if effect.key == key), None)

    def vendor_id(self, name: str) -> str | None:
        """The vendor's id for the lead's effect `name` once done; None before."""
        effect = self.effect(name)
        return effect.vendor_object_id if effect is not None and effect.is_done else None

    def done(self) -> list[EffectView]:
        """The lead's effects that are done, oldest first."""
        return [effect for effect in self.effects if effect.is_done]


def effect_key(lead_id: int, effect: str) -> str:
    """The deterministic idempotency key of one of a lead's vendor writes (DESIGN.md,
    principle 1): `lead:42:asaas.pix_charge`."""
    return f"lead:{lead_id}:{effect}"


def vendor_message(error: BaseException, names: tuple[str, ...] = ()) -> str:
    """An error as the journey records it: the vendor's own words, personal data masked (the
    names the write sent too: vendors echo them)."""
    return mask_text(str(error), names=names)[:2000]


def _as_response(value: Any) -> dict[str, Any] | None:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return value
    return None


async def in_ledger(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A ledger method's call (a write or a read), made with those of the other leads in
    flight: one worker-thread hop and one transaction for all of them (ledger.group_commit)."""
    ledger: Ledger = call.__self__  # type: ignore[attr-defined]  # a bound Ledger method
    return await group_commit(ledger).call(call, *args, **kwargs)


async def perform(
    ledger: Ledger, write: VendorWrite[T], *, lease_seconds: float = DEFAULT_EFFECT_LEASE_SECONDS
) -> Effected:
    """Do one vendor write exactly once (or at most once, for HOLD writes). `lease_seconds`
    must outlast the vendor call with its retries."""
    try:
        effect: EffectView = await in_ledger(
            ledger.begin_effect,
            write.key,
            write.vendor,
            write.operation,
            write.lead_id,
            lease_seconds=lease_seconds,
        )
    except EffectInFlight as busy:
        return Effected(EffectResult.IN_FLIGHT, write.key, error=str(busy))
    if effect.is_done:
        return Effected(EffectResult.REUSED, write.key, effect.vendor_object_id)
    if effect.is_permanently_failed:
        return Effected(EffectResult.PERMANENT, write.key, error=effect.last_error)
    token = effect.lease_token
    try:
        if effect.needs_lookup and write.unknown_outcome is UnknownOutcome.HOLD:
            if not (effect.last_error or "").startswith(NOT_SENT):
                return await _record_unconfirmed(ledger, write, "an earlier attempt's answer")
        elif effect.needs_lookup or write.upsert:
            assert write.find is not None
            found = await write.find()
            if found is not None:
                return await _record(ledger, write, found, EffectResult.FOUND)
        created = await write.create()
    except PermanentError as error:
        message = vendor_message(error, write.names)
        await _fail(ledger, write.key, message, permanent=True, token=token)
        return Effected(EffectResult.PERMANENT, write.key, error=message)
    except UnknownOutcomeError as error:
        if write.unknown_outcome is UnknownOutcome.HOLD:
            return await _record_unconfirmed(ledger, write, "this attempt's answer")
        message = f"outcome unknown, will look up: {vendor_message(error, write.names)}"
        await _fail(ledger, write.key, message, permanent=False, token=token)
        return Effected(EffectResult.TRANSIENT, write.key, error=message)
    except VendorError as error:  # transient: the vendor said no for now, nothing was written
        message = vendor_message(error, write.names)
        if write.unknown_outcome is UnknownOutcome.HOLD:
            message = NOT_SENT + message
        await _fail(ledger, write.key, message, permanent=False, token=token)
        retry_after = getattr(error, "retry_after", None)
        return Effected(EffectResult.TRANSIENT, write.key, error=message, retry_after=retry_after)
    except Exception as error:  # leadflow's own failure around the call: a bug, unusable data
        # Left held, the lease would tell every round "another worker is calling the vendor"
        # until it ran out, and hide the real error. Whether the vendor was reached is not
        # known, so the next attempt looks up first (a write without a look-up holds).
        message = f"{type(error).__name__}: {vendor_message(error, write.names)}"
        await _fail(ledger, write.key, message, permanent=False, token=token)
        raise
    return await _record(ledger, write, created, EffectResult.CREATED)


async def _record(
    ledger: Ledger, write: VendorWrite[T], value: T, result: EffectResult
) -> Effected:
    object_id = write.object_id(value)
    try:
        done = await in_ledger(ledger.complete_effect, write.key, object_id, _as_response(value))
    except EffectStateError:
        done = await in_ledger(ledger.get_effect, write.key)
    if done.vendor_object_id != object_id:
        # another attempt recorded a different object first (this worker's lease was taken
        # over mid-call): the ledger keeps this one's id as an orphan candidate for a person
        # to clean up, and the journey goes on with the recorded one
        note = f"orphan {object_id} left at {write.vendor}"
        return Effected(EffectResult.REUSED, write.key, done.vendor_object_id, error=note)
    return Effected(result, write.key, object_id)


async def _record_unconfirmed(ledger: Ledger, write: VendorWrite[T], whose: str) -> Effected:
    note = f"{whose} was lost; not resent (at most once: {write.vendor} has no look-up)"
    await in_ledger(ledger.complete_effect, write.key, UNCONFIRMED, None, note=note)
    return Effected(EffectResult.UNCONFIRMED, write.key, UNCONFIRMED, error=note)


async def _fail(
    ledger: Ledger, key: str, message: str, *, permanent: bool, token: str | None
) -> None:
    # another worker may have taken the attempt over: then its outcome is the one that counts
    with contextlib.suppress(EffectLeaseLost):
        await in_ledger(ledger.fail_effect, key, message, permanent=permanent, token=token)
