"""The effect helper (tasks/effects.py), branch by branch: exactly once where a look-up exists,
at most once where it does not, and never two callers at the vendor for one effect."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from blocks import PermanentError, TransientError, UnknownOutcomeError
from ledger import EffectStatus, Ledger
from tasks.effects import UNCONFIRMED, EffectResult, UnknownOutcome, VendorWrite, perform
from tests.journey.conftest import Clock, FakeVendor

KEY = "lead:1:vendor.thing"


def write(
    vendor: FakeVendor,
    lead_id: int,
    *,
    create: Any = None,
    upsert: bool = False,
    hold: bool = False,
) -> VendorWrite[dict[str, Any]]:
    return VendorWrite(
        key=KEY,
        vendor="asaas",
        operation="create_thing",
        lead_id=lead_id,
        create=create or vendor.create,
        object_id=lambda obj: obj["id"],
        find=None if hold else vendor.find,
        upsert=upsert,
        unknown_outcome=UnknownOutcome.HOLD if hold else UnknownOutcome.LOOK_UP,
    )


async def test_a_new_write_creates_the_object_and_records_its_id(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    effected = await perform(ledger, write(vendor, lead_id))

    assert (effected.result, effected.vendor_object_id) == (EffectResult.CREATED, "obj_1")
    assert ledger.get_effect(KEY).vendor_object_id == "obj_1"
    assert (vendor.creates, vendor.finds) == (1, 0)


async def test_a_done_write_reuses_the_recorded_object_without_calling_the_vendor(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    await perform(ledger, write(vendor, lead_id))

    again = await perform(ledger, write(vendor, lead_id))

    assert (again.result, again.vendor_object_id) == (EffectResult.REUSED, "obj_1")
    assert vendor.creates == 1


async def test_an_upsert_looks_up_first_and_records_what_it_found(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.objects["cus_9"] = {"id": "cus_9"}

    effected = await perform(ledger, write(vendor, lead_id, upsert=True))

    assert (effected.result, effected.vendor_object_id) == (EffectResult.FOUND, "cus_9")
    assert (vendor.creates, vendor.finds) == (0, 1)


async def test_a_permanent_refusal_fails_the_effect_for_good_with_the_vendors_message(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.fail_with.append(PermanentError("asaas", 400, "invalid_cpfCnpj", "CPF inválido"))

    effected = await perform(ledger, write(vendor, lead_id, create=vendor.refuse))
    again = await perform(ledger, write(vendor, lead_id, create=vendor.refuse))

    assert effected.result is EffectResult.PERMANENT
    assert "CPF inválido" in (effected.error or "")
    assert ledger.get_effect(KEY).is_permanently_failed
    assert again.result is EffectResult.PERMANENT
    assert vendor.creates == 1


async def test_a_transient_failure_is_retried_by_the_next_attempt(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.fail_with.append(TransientError("asaas", "503 Service Unavailable"))

    first = await perform(ledger, write(vendor, lead_id, create=vendor.refuse))
    second = await perform(ledger, write(vendor, lead_id, create=vendor.refuse))

    assert first.result is EffectResult.TRANSIENT
    assert ledger.get_effect(KEY).status == EffectStatus.DONE
    assert (second.result, second.vendor_object_id) == (EffectResult.CREATED, "obj_1")


async def test_after_a_lost_answer_the_next_attempt_finds_the_object_instead_of_creating_it(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.fail_with.append(UnknownOutcomeError("asaas", "read timeout after the request"))

    first = await perform(ledger, write(vendor, lead_id))
    second = await perform(ledger, write(vendor, lead_id))

    assert first.result is EffectResult.TRANSIENT
    assert (second.result, second.vendor_object_id) == (EffectResult.FOUND, "obj_1")
    assert (vendor.creates, len(vendor.objects)) == (1, 1)


async def test_after_a_lost_answer_with_nothing_to_find_the_object_is_created(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.fail_with.append(UnknownOutcomeError("asaas", "connection dropped before sending"))

    await perform(ledger, write(vendor, lead_id, create=vendor.refuse))
    second = await perform(ledger, write(vendor, lead_id, create=vendor.refuse))

    assert second.result is EffectResult.CREATED
    assert (vendor.finds, vendor.creates, len(vendor.objects)) == (1, 2, 1)


async def test_a_failure_of_leadflows_own_code_ends_the_attempt_with_its_error(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    async def broken() -> dict[str, Any]:
        raise ValueError("a Pipedrive person needs an e-mail or a phone")

    with pytest.raises(ValueError, match="needs an e-mail"):
        await perform(ledger, write(vendor, lead_id, create=broken))
    effect = ledger.get_effect(KEY)
    again = await perform(ledger, write(vendor, lead_id))

    assert effect.status == EffectStatus.FAILED
    assert not effect.permanent
    assert effect.last_error == "ValueError: a Pipedrive person needs an e-mail or a phone"
    assert again.result == EffectResult.CREATED  # not "another worker is calling the vendor"
    assert (vendor.finds, vendor.creates) == (1, 1)  # the vendor may have been reached: look up


async def test_while_another_worker_holds_the_attempt_the_vendor_is_not_called(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    ledger.begin_effect(KEY, "asaas", "create_thing", lead_id)  # a worker mid-call

    effected = await perform(ledger, write(vendor, lead_id))

    assert effected.result is EffectResult.IN_FLIGHT
    assert (vendor.creates, vendor.finds) == (0, 0)


async def test_a_crashed_workers_attempt_is_taken_over_with_a_look_up_once_its_lease_ends(
    ledger: Ledger, lead_id: int, vendor: FakeVendor, clock: Clock
) -> None:
    ledger.begin_effect(KEY, "asaas", "create_thing", lead_id)  # then the worker died...
    vendor.objects["obj_1"] = {"id": "obj_1"}  # ...after the vendor created the object
    clock.advance(301)

    effected = await perform(ledger, write(vendor, lead_id))

    assert (effected.result, effected.vendor_object_id) == (EffectResult.FOUND, "obj_1")
    assert vendor.creates == 0


async def test_a_lease_taken_over_mid_call_keeps_one_object_and_names_the_other_an_orphan(
    ledger: Ledger, lead_id: int, vendor: FakeVendor, clock: Clock
) -> None:
    """A stalled worker resumes after another took its attempt over and created the object:
    the journey keeps the object already recorded, and the late one is recorded as an orphan
    candidate for a person to clean up."""
    release = asyncio.Event()

    async def stalled_create() -> dict[str, Any]:
        obj = {"id": "late_1"}
        vendor.objects[obj["id"]] = obj
        await release.wait()  # the answer takes longer than the lease
        return obj

    async def quick_create() -> dict[str, Any]:
        return {"id": "quick_1"}

    stalled = asyncio.create_task(perform(ledger, write(vendor, lead_id, create=stalled_create)))
    await asyncio.sleep(0.05)
    clock.advance(301)
    taken_over = await perform(
        ledger,
        VendorWrite(
            key=KEY,
            vendor="asaas",
            operation="create_thing",
            lead_id=lead_id,
            create=quick_create,
            object_id=lambda obj: obj["id"],
            find=lambda: asyncio.sleep(0, result=None),
        ),
    )
    release.set()
    late = await stalled

    assert taken_over.vendor_object_id == "quick_1"
    assert (late.result, late.vendor_object_id) == (EffectResult.REUSED, "quick_1")
    assert "late_1" in ledger.get_effect(KEY).orphan_candidates


async def test_a_send_without_look_up_whose_answer_was_lost_is_never_resent(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.fail_with.append(UnknownOutcomeError("whatsapp", "read timeout"))

    first = await perform(ledger, write(vendor, lead_id, hold=True))
    second = await perform(ledger, write(vendor, lead_id, hold=True))

    assert (first.result, first.vendor_object_id) == (EffectResult.UNCONFIRMED, UNCONFIRMED)
    assert second.result is EffectResult.REUSED
    assert vendor.creates == 1


async def test_a_send_without_look_up_that_was_certainly_refused_is_sent_again(
    ledger: Ledger, lead_id: int, vendor: FakeVendor
) -> None:
    vendor.fail_with.append(TransientError("whatsapp", "503"))

    await perform(ledger, write(vendor, lead_id, create=vendor.refuse, hold=True))
    second = await perform(ledger, write(vendor, lead_id, create=vendor.refuse, hold=True))

    assert second.result is EffectResult.CREATED
    assert vendor.creates == 2


async def test_a_send_without_look_up_whose_worker_crashed_is_held_not_resent(
    ledger: Ledger, lead_id: int, vendor: FakeVendor, clock: Clock
) -> None:
    ledger.begin_effect(KEY, "asaas", "create_thing", lead_id)  # crashed mid-send
    clock.advance(301)

    effected = await perform(ledger, write(vendor, lead_id, hold=True))

    assert effected.result is EffectResult.UNCONFIRMED
    assert vendor.creates == 0


def test_a_look_up_write_without_a_finder_is_refused_when_it_is_declared() -> None:
    with pytest.raises(ValueError, match="needs `find`"):
        VendorWrite(
            key=KEY,
            vendor="asaas",
            operation="create_thing",
            lead_id=1,
            create=FakeVendor().create,
            object_id=lambda obj: obj["id"],
        )
