"""The effect protocol (DESIGN.md, principle 1), as a task writes it, run against the sandbox's
Asaas: the example `ledger/__init__.py` points at.

`charge_lead` below is the pattern every vendor call follows:

1. `begin_effect` writes the effect `pending` and leases the attempt to this caller; while
   another worker holds it, EffectInFlight: do not call the vendor, try again later.
2. A done effect is reused (its `vendor_object_id`); a permanently failed one dead-letters.
3. Otherwise, when an earlier attempt may have reached the vendor (`needs_lookup`), look the
   object up by the external reference leadflow set, and create it only if it is not there.
4. `complete_effect(key, id)`; or `fail_effect(key, error, permanent=..., token=...)`: a
   PermanentError (4xx) is permanent, a TransientError (5xx, 429, and UnknownOutcomeError, a
   lost answer) is not, so the next run begins again, with a look-up first.

Each test drives it through one situation and counts the charges the vendor holds, so "no
second charge" is checked at the vendor, not assumed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from blocks.asaas import AsaasClient, AsaasCredentials, AsaasPayment, NewCustomer
from blocks.errors import PermanentError, TransientError, UnknownOutcomeError
from ledger import Cause, EffectInFlight, EffectStatus, JourneyState, Ledger
from tests.blocks.conftest import pix_charge
from tests.conftest import new_cpf
from tests.ledger.conftest import Clock, lead_in_state

VENDOR = "asaas"
RUN = {"prefix": ""}


@dataclass(frozen=True)
class Outcome:
    """What one run of the step did: the charge's id, or why it has none."""

    charge_id: str | None = None
    in_flight: bool = False
    dead_lettered: bool = False


def effect_key(lead_id: int) -> str:
    """The charge's idempotency key, also its external reference at Asaas. In production it is
    `lead:<id>:asaas.payment`; here a per-test prefix keeps apart the tests that share one
    sandbox (each test's lead ids start again at 1)."""
    return f"{RUN['prefix']}lead:{lead_id}:asaas.payment"


@pytest.fixture(autouse=True)
def own_references() -> None:
    RUN["prefix"] = f"t{uuid.uuid4().hex[:8]}:"


async def charge_lead(ledger: Ledger, asaas: AsaasClient, lead_id: int, customer: str) -> Outcome:
    """Create the lead's PIX charge once, whatever fails and however often this runs."""
    key = effect_key(lead_id)
    try:
        effect = await ledger.aio.begin_effect(key, VENDOR, "create_pix_charge", lead_id)
    except EffectInFlight:  # another worker is calling Asaas for this charge right now
        return Outcome(in_flight=True)
    if effect.is_done:  # created before: reuse it
        return Outcome(charge_id=effect.vendor_object_id)
    if effect.is_permanently_failed:  # Asaas refused for good: a person must fix the data
        await ledger.aio.transition(
            lead_id, JourneyState.DEAD_LETTERED, Cause.RECONCILE, effect.last_error
        )
        return Outcome(dead_lettered=True)
    try:
        found = await asaas.find_by_reference(key, of=AsaasPayment) if effect.needs_lookup else None
        charge = found or await asaas.create_pix_charge(pix_charge(customer, key))
    except PermanentError as error:
        await ledger.aio.fail_effect(key, str(error), permanent=True, token=effect.lease_token)
        return await charge_lead(ledger, asaas, lead_id, customer)  # now dead-letters
    except TransientError as error:  # 5xx, 429, or a lost answer (UnknownOutcomeError)
        await ledger.aio.fail_effect(key, str(error), permanent=False, token=effect.lease_token)
        raise  # the task's retry (or the next reconciler run) begins again, looking up first
    await ledger.aio.complete_effect(key, charge.id, charge.model_dump(mode="json"))
    return Outcome(charge_id=charge.id)


@pytest.fixture
def admin(sandbox_urls: dict[str, str]) -> str:
    """The sandbox's admin API (faults, credentials)."""
    return sandbox_urls[VENDOR].rsplit("/", 1)[0] + "/__sandbox__"


@pytest.fixture
async def asaas(sandbox_urls: dict[str, str], admin: str) -> AsyncIterator[AsaasClient]:
    async with httpx.AsyncClient() as client:
        (await client.delete(f"{admin}/faults/{VENDOR}")).raise_for_status()
        overview = (await client.get(f"{admin}/")).raise_for_status().json()
    secrets = overview["vendors"][VENDOR]["credentials"]
    block = AsaasCredentials(api_key=secrets["api_key"], base_url=sandbox_urls[VENDOR])
    async with block.get_client() as client:
        yield client
    async with httpx.AsyncClient() as client:
        (await client.delete(f"{admin}/faults/{VENDOR}")).raise_for_status()


@pytest.fixture
async def customer(asaas: AsaasClient) -> str:
    created = await asaas.create_customer(
        NewCustomer(name="Maria Silva", cpf_cnpj=new_cpf(), external_reference=uuid.uuid4().hex)
    )
    return created.id


async def charges_at_the_vendor(asaas: AsaasClient, lead_id: int) -> list[str]:
    page = await asaas.list_payments(external_reference=effect_key(lead_id))
    return [payment.id for payment in page.data if not payment.deleted]


def charge_open_lead(ledger: Ledger) -> int:
    return lead_in_state(ledger, JourneyState.CONTRACT_SIGNED)


async def test_the_first_run_creates_the_charge_and_a_rerun_reuses_it(
    ledger: Ledger, asaas: AsaasClient, customer: str
) -> None:
    lead_id = charge_open_lead(ledger)
    first = await charge_lead(ledger, asaas, lead_id, customer)
    again = await charge_lead(ledger, asaas, lead_id, customer)
    assert first.charge_id is not None
    assert again == first
    assert await charges_at_the_vendor(asaas, lead_id) == [first.charge_id]
    effect = ledger.get_effect(effect_key(lead_id))
    assert (effect.is_done, effect.attempts) == (True, 1)


async def test_after_a_crash_past_the_call_the_next_run_finds_the_charge_instead_of_a_second(
    ledger: Ledger, asaas: AsaasClient, customer: str, clock: Clock
) -> None:
    lead_id = charge_open_lead(ledger)
    key = effect_key(lead_id)
    # a worker began, Asaas created the charge, and the worker died before recording it
    ledger.begin_effect(key, VENDOR, "create_pix_charge", lead_id, lease_seconds=60)
    created = await asaas.create_pix_charge(pix_charge(customer, key))
    assert (await charge_lead(ledger, asaas, lead_id, customer)).in_flight  # lease still runs
    clock.advance(61)
    outcome = await charge_lead(ledger, asaas, lead_id, customer)
    assert outcome.charge_id == created.id
    assert await charges_at_the_vendor(asaas, lead_id) == [created.id]
    assert ledger.get_effect(key).attempts == 2


async def test_a_lost_answer_fails_the_attempt_and_the_retry_finds_the_charge_it_made(
    ledger: Ledger, asaas: AsaasClient, customer: str, admin: str
) -> None:
    lead_id = charge_open_lead(ledger)
    async with httpx.AsyncClient() as client:
        fault = {"route": "POST /v3/payments", "faults": {"lost_answer_rate": 1.0}}
        (await client.put(f"{admin}/faults/{VENDOR}/routes", json=fault)).raise_for_status()
    with pytest.raises(UnknownOutcomeError):
        await charge_lead(ledger, asaas, lead_id, customer)
    failed = ledger.get_effect(effect_key(lead_id))
    assert (failed.status, failed.permanent) == (EffectStatus.FAILED, False)
    made = await charges_at_the_vendor(asaas, lead_id)
    assert len(made) == 1  # Asaas did create it: only the answer was lost
    async with httpx.AsyncClient() as client:
        (await client.delete(f"{admin}/faults/{VENDOR}")).raise_for_status()
    outcome = await charge_lead(ledger, asaas, lead_id, customer)  # the task's retry
    assert outcome.charge_id == made[0]
    assert await charges_at_the_vendor(asaas, lead_id) == made


async def test_a_charge_asaas_refuses_for_good_dead_letters_the_journey_once(
    ledger: Ledger, asaas: AsaasClient
) -> None:
    lead_id = charge_open_lead(ledger)
    outcome = await charge_lead(ledger, asaas, lead_id, "cus_000000000000")  # no such customer
    assert outcome.dead_lettered
    effect = ledger.get_effect(effect_key(lead_id))
    assert effect.is_permanently_failed
    assert effect.last_error
    journey = ledger.get_journey(lead_id)
    assert (journey.state, journey.dead_lettered_from) == (
        JourneyState.DEAD_LETTERED,
        JourneyState.CONTRACT_SIGNED,
    )
    assert await charges_at_the_vendor(asaas, lead_id) == []
