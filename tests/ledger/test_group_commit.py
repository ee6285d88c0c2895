"""Group commit: ledger writes from many coroutines share one transaction, each call keeps its
own outcome, and nothing is handed back before it is stored (ledger.group_commit)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import pytest

from ledger import (
    BatchSpoiled,
    DatabaseRefused,
    EffectInFlight,
    EffectStatus,
    IllegalTransition,
    JourneyState,
    Ledger,
    UnknownLead,
)
from ledger.group_commit import GroupCommit, group_commit
from tests.ledger.conftest import new_lead


def _key() -> str:
    return f"group-{uuid.uuid4().hex}"


def test_calls_inside_a_batch_are_committed_together_at_its_end(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    key = _key()
    with ledger.batch():
        ledger.begin_effect(key, "asaas", "create_customer", lead)
        ledger.complete_effect(key, "cus_1")
        assert ledger.get_effect(key).status is EffectStatus.DONE  # seen inside the batch
    assert ledger.get_effect(key).vendor_object_id == "cus_1"


def test_a_batch_that_raises_stores_nothing(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    key = _key()

    def stopped_midway() -> None:
        with ledger.batch():
            ledger.begin_effect(key, "asaas", "create_customer", lead)
            raise RuntimeError("the process stops here")

    with pytest.raises(RuntimeError):
        stopped_midway()
    assert ledger.effects_for_lead(lead) == []


def test_every_write_made_inside_a_batch_is_stored(ledger: Ledger) -> None:
    leads = [new_lead(ledger) for _ in range(3)]
    with ledger.batch():
        for lead in leads:
            ledger.transition(lead, JourneyState.QUALIFIED, "poll")
    assert [ledger.journey_state(lead) for lead in leads] == [JourneyState.QUALIFIED] * 3


def _batch_with_a_call_in_flight(ledger: Ledger, lead: int, held: str, *others: str) -> None:
    """A batch whose first call finds `held` in flight, then begins `others`."""
    with ledger.batch():
        with pytest.raises(EffectInFlight):
            ledger.begin_effect(held, "asaas", "create_customer", lead)
        for other in others:
            ledger.begin_effect(other, "asaas", "create_payment", lead)


def test_a_call_that_fails_inside_a_batch_spoils_it_and_nothing_is_stored(
    ledger: Ledger,
) -> None:
    lead = new_lead(ledger)
    held, other = _key(), _key()
    ledger.begin_effect(held, "asaas", "create_customer", lead)
    with pytest.raises(BatchSpoiled, match="EffectInFlight"):
        _batch_with_a_call_in_flight(ledger, lead, held, other)
    assert [e.key for e in ledger.effects_for_lead(lead)] == [held]
    assert ledger.get_effect(held).attempts == 1


def test_a_spoiled_batch_does_not_spoil_the_next_one(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    held, other = _key(), _key()
    ledger.begin_effect(held, "asaas", "create_customer", lead)
    with pytest.raises(BatchSpoiled):
        _batch_with_a_call_in_flight(ledger, lead, held)
    with ledger.batch():
        ledger.begin_effect(other, "asaas", "create_payment", lead)
    assert [e.key for e in ledger.effects_for_lead(lead)] == [held, other]


def test_a_failing_call_among_queued_ones_undoes_only_itself(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    held, others = _key(), [_key() for _ in range(5)]
    ledger.begin_effect(held, "asaas", "create_customer", lead)

    async def begin_all() -> list[object]:
        queue = GroupCommit(ledger)
        calls = [queue.call(ledger.begin_effect, k, "asaas", "create", lead) for k in others]
        calls.insert(2, queue.call(ledger.begin_effect, held, "asaas", "create_customer", lead))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(begin_all())
    assert isinstance(outcomes[2], EffectInFlight)
    assert [o.key for o in outcomes[:2] + outcomes[3:]] == others  # type: ignore[union-attr]
    assert [e.key for e in ledger.effects_for_lead(lead)] == [held, *others]
    assert ledger.get_effect(held).attempts == 1


def test_batches_nest_by_joining_the_outer_one(ledger: Ledger) -> None:
    lead = new_lead(ledger)

    def outer_fails() -> None:
        with ledger.batch():
            with ledger.batch():
                ledger.transition(lead, JourneyState.QUALIFIED, "poll")
            raise RuntimeError("the outer batch fails")

    with pytest.raises(RuntimeError):
        outer_fails()
    assert ledger.journey_state(lead) is JourneyState.RECEIVED


def test_batched_calls_are_made_again_alone_when_one_of_them_raises(ledger: Ledger) -> None:
    moved, refused = new_lead(ledger), new_lead(ledger)

    def moves() -> str:
        ledger.transition(moved, JourneyState.QUALIFIED, "poll")
        with contextlib.suppress(IllegalTransition):  # spoils the batch: no savepoint
            ledger.transition(refused, JourneyState.WELCOMED, "poll")
        return "done"

    assert ledger.batched(moves) == "done"
    history = ledger.journey_history(moved)
    assert [(step.from_state, step.to_state) for step in history] == [
        (JourneyState.RECEIVED, JourneyState.QUALIFIED)  # moved once, not once per attempt
    ]
    assert ledger.journey_state(refused) is JourneyState.RECEIVED


def test_fifty_coroutines_get_their_own_outcomes_from_shared_transactions(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    keys = [_key() for _ in range(50)]

    async def begin_all() -> list[object]:
        queue = group_commit(ledger)
        calls = [queue.call(ledger.begin_effect, k, "asaas", "create", lead) for k in keys]
        calls.append(queue.call(ledger.begin_effect, keys[0], "asaas", "create", lead))
        calls.append(queue.call(ledger.begin_effect, _key(), "asaas", "create", 10**9))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(begin_all())
    assert [o.key for o in outcomes[:50]] == keys  # type: ignore[union-attr]
    assert isinstance(outcomes[50], EffectInFlight)  # the second begin of the same key
    assert isinstance(outcomes[51], UnknownLead)
    assert {e.key for e in ledger.effects_for_lead(lead)} == set(keys)


def test_calls_are_redone_alone_when_their_batch_cannot_be_committed(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = new_lead(ledger)
    keys = [_key() for _ in range(5)]
    real_batch = ledger.batch
    failed: list[bool] = []

    def failing_batch():  # type: ignore[no-untyped-def]
        if failed:
            return real_batch()
        failed.append(True)
        raise DatabaseRefused("the commit was refused")

    monkeypatch.setattr(ledger, "batch", failing_batch)

    async def begin_all() -> list[object]:
        queue = GroupCommit(ledger)
        return await asyncio.gather(
            *(queue.call(ledger.begin_effect, k, "asaas", "create", lead) for k in keys)
        )

    outcomes = asyncio.run(begin_all())
    assert failed == [True]
    assert [o.key for o in outcomes] == keys  # type: ignore[attr-defined]
    assert {e.key for e in ledger.effects_for_lead(lead)} == set(keys)


class _Pauses:
    """The queue's `sleep`: records each wait, and runs `during` (other leads' calls arriving)
    while the batch waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.during: list[Callable[[], object]] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        for arrive in self.during:
            arrive()
        await asyncio.sleep(0)


def _counting_batches(queue: GroupCommit) -> list[int]:
    """The size of every batch `queue` writes, in order."""
    sizes: list[int] = []
    write = queue._write

    def counted(calls: list[Callable[[], object]]) -> object:
        sizes.append(len(calls))
        return write(calls)

    queue._write = counted  # type: ignore[method-assign]
    return sizes


def test_a_lone_call_is_written_at_once(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    pauses = _Pauses()

    async def begin_one() -> object:
        queue = GroupCommit(ledger, gather_seconds=60, sleep=pauses)
        first = await queue.call(ledger.begin_effect, _key(), "asaas", "create", lead)
        await queue.call(ledger.begin_effect, _key(), "asaas", "create", lead)
        return first

    asyncio.run(begin_one())
    assert pauses.waits == []


def test_after_a_shared_batch_the_next_waits_for_the_calls_still_coming(ledger: Ledger) -> None:
    lead = new_lead(ledger)
    keys = [_key() for _ in range(4)]
    pauses = _Pauses()

    async def begin_all() -> list[int]:
        queue = GroupCommit(ledger, gather_seconds=0.25, sleep=pauses)
        sizes = _counting_batches(queue)
        await asyncio.gather(
            *(queue.call(ledger.begin_effect, k, "asaas", "create", lead) for k in keys[:2])
        )
        late: list[asyncio.Task[object]] = []
        pauses.during.append(
            lambda: late.append(
                asyncio.ensure_future(
                    queue.call(ledger.begin_effect, keys[3], "asaas", "create", lead)
                )
            )
        )
        await queue.call(ledger.begin_effect, keys[2], "asaas", "create", lead)
        await asyncio.gather(*late)
        return sizes

    sizes = asyncio.run(begin_all())
    assert pauses.waits == [0.25]  # the first batch did not wait; the second did, once
    assert sizes == [2, 2]  # the call that arrived while it waited went into it
    assert {e.key for e in ledger.effects_for_lead(lead)} == set(keys)
