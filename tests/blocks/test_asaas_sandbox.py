"""The Asaas client against the in-process sandbox: real HTTP, with and without injected faults.

Faults are set through the sandbox's admin API for one route and cleared after each test. An
outage "ends during the backoff" (tests/blocks/conftest.py `VendorSandbox`): the policy's sleep
clears the fault, so a test shows the retry succeeding without waiting and without depending on
a random draw.
"""

from __future__ import annotations

import logging
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest

from blocks.asaas import (
    AsaasClient,
    AsaasCredentials,
    AsaasPayment,
    NewCustomer,
)
from blocks.errors import (
    AuthenticationError,
    PermanentError,
    RateLimitedError,
    UnknownOutcomeError,
)
from tests.blocks.conftest import VendorSandbox, pix_charge, saved_and_checked_by_the_cli
from tests.conftest import new_cpf

VENDOR = "asaas"


@pytest.fixture
def asaas(vendor_client: Any) -> AsaasClient:
    assert isinstance(vendor_client, AsaasClient)
    return vendor_client


def reference(kind: str) -> str:
    return f"{kind}_{uuid.uuid4().hex[:12]}"


async def test_a_customer_a_pix_charge_and_its_code_round_trip(asaas: AsaasClient) -> None:
    customer = await asaas.create_customer(
        NewCustomer(name="Maria Silva", cpf_cnpj=new_cpf(), external_reference=reference("lead"))
    )
    charge_reference = reference("j") + ":charge:1"
    payment = await asaas.create_pix_charge(pix_charge(customer.id, charge_reference))
    qr = await asaas.get_pix_qr_code(payment.id)
    assert payment.billing_type == "PIX"
    assert payment.status == "PENDING"
    assert payment.value == Decimal("129.9")
    assert qr.payload.startswith("000201")
    assert (await asaas.get_payment(payment.id)).customer == customer.id
    found = await asaas.find_by_reference(charge_reference, of=AsaasPayment)
    assert found is not None
    assert found.id == payment.id


async def test_find_customer_finds_by_reference_and_by_document(asaas: AsaasClient) -> None:
    cpf, lead = new_cpf(), reference("lead")
    created = await asaas.create_customer(
        NewCustomer(name="João Souza", cpf_cnpj=cpf, external_reference=lead)
    )
    by_reference = await asaas.find_customer(external_reference=lead)
    by_document = await asaas.find_customer(external_reference=reference("other"), cpf_cnpj=cpf)
    assert by_reference is not None
    assert by_reference.id == created.id
    assert by_document is not None
    assert by_document.id == created.id
    assert await asaas.find_customer(external_reference=reference("nobody")) is None


async def test_a_lost_charge_answer_is_unknown_and_the_lookup_finds_the_one_charge(
    asaas: AsaasClient, sandbox: VendorSandbox
) -> None:
    customer = await asaas.create_customer(NewCustomer(name="Ana Lima", cpf_cnpj=new_cpf()))
    charge_reference = reference("j") + ":charge:1"
    await sandbox.fault("POST /v3/payments", lost_answer_rate=1.0)
    with pytest.raises(UnknownOutcomeError):
        await asaas.create_pix_charge(pix_charge(customer.id, charge_reference))
    await sandbox.clear()
    page = await asaas.list_payments(external_reference=charge_reference)
    assert page.total_count == 1  # sent once, committed once: nothing to create again
    found = await asaas.find_by_reference(charge_reference, of=AsaasPayment)
    assert found is not None
    assert found.status == "PENDING"


async def test_a_lost_customer_answer_is_unknown_and_the_reference_finds_the_one_customer(
    asaas: AsaasClient, sandbox: VendorSandbox
) -> None:
    lead = reference("lead")
    await sandbox.fault("POST /v3/customers", lost_answer_rate=1.0)
    with pytest.raises(UnknownOutcomeError):
        await asaas.create_customer(
            NewCustomer(name="Bruna Reis", cpf_cnpj=new_cpf(), external_reference=lead)
        )
    await sandbox.clear()
    assert (await asaas.list_customers(external_reference=lead)).total_count == 1
    found = await asaas.find_customer(external_reference=lead)
    assert found is not None
    assert found.external_reference == lead


async def test_a_read_is_retried_through_a_server_outage(
    asaas: AsaasClient, sandbox: VendorSandbox
) -> None:
    customer = await asaas.create_customer(NewCustomer(name="Rita Alves", cpf_cnpj=new_cpf()))
    payment = await asaas.create_pix_charge(pix_charge(customer.id, reference("j")))
    await sandbox.fault("GET /v3/payments/{payment_id}", error_rate=1.0, error_statuses=[503])
    sandbox.outage_lasts = 2
    read = await asaas.get_payment(payment.id)
    assert read.id == payment.id
    assert len(sandbox.waits) >= 2


async def test_a_customer_create_refused_for_rate_is_retried_and_made_once(
    asaas: AsaasClient, sandbox: VendorSandbox
) -> None:
    lead = reference("lead")
    await sandbox.fault("POST /v3/customers", throttle_rate=1.0, retry_after_seconds=1)
    sandbox.outage_lasts = 1
    await asaas.create_customer(
        NewCustomer(name="Caio Reis", cpf_cnpj=new_cpf(), external_reference=lead)
    )
    assert 1.0 in sandbox.waits
    assert (await asaas.list_customers(external_reference=lead)).total_count == 1


async def test_a_throttle_that_never_ends_raises_rate_limited(
    asaas: AsaasClient, sandbox: VendorSandbox
) -> None:
    await sandbox.fault("GET /v3/customers", throttle_rate=1.0, retry_after_seconds=1)
    with pytest.raises(RateLimitedError) as raised:
        await asaas.list_customers(external_reference=reference("lead"))
    assert raised.value.status == 429


async def test_a_charge_for_an_unknown_customer_is_permanent(asaas: AsaasClient) -> None:
    with pytest.raises(PermanentError) as raised:
        await asaas.create_pix_charge(pix_charge("cus_000000000000", reference("j")))
    assert raised.value.status == 400
    assert raised.value.code is not None


async def test_a_wrong_api_key_raises_authentication_error(
    block: AsaasCredentials, sandbox: VendorSandbox
) -> None:
    wrong = AsaasCredentials(api_key="$aact_hmlg_wrong", base_url=block.base_url)
    async with wrong.get_client(policy=sandbox.policy(), rate_limit=sandbox.rate_limit()) as c:
        with pytest.raises(AuthenticationError) as raised:
            await c.list_customers(external_reference=reference("lead"))
    assert raised.value.code == "invalid_access_token"


async def test_the_call_log_names_routes_but_no_key_document_or_email(
    asaas: AsaasClient, block: AsaasCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    cpf, email = new_cpf(), f"{reference('maria')}@example.com"
    with caplog.at_level(logging.DEBUG):
        created = await asaas.create_customer(
            NewCustomer(name="Maria Silva", cpf_cnpj=cpf, email=email)
        )
        await asaas.find_customer(cpf_cnpj=cpf)
        await asaas.get_customer(created.id)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "path=/v3/customers " in logged
    assert "path=/v3/customers/{id} " in logged
    assert cpf not in logged
    assert email not in logged
    assert block.api_key.get_secret_value() not in logged
    calls = [r.getMessage() for r in caplog.records if r.name == "leadflow.http"]
    assert not [line for line in calls if created.id in line]  # the call log keeps templates


async def test_check_access_counts_the_accounts_customers(asaas: AsaasClient) -> None:
    await asaas.create_customer(NewCustomer(name="Lia Melo", cpf_cnpj=new_cpf()))
    assert re.fullmatch(r"[1-9]\d* customer\(s\)", await asaas.check_access())


def test_the_cli_saves_the_block_and_checks_it_against_the_sandbox(
    prefect_server: None, sandbox_urls: dict[str, str]
) -> None:
    loaded, checked = saved_and_checked_by_the_cli(sandbox_urls, VENDOR, AsaasCredentials)
    assert "customer(s)" in checked
    assert loaded.base_url == sandbox_urls[VENDOR]
    assert loaded.webhook_auth_token is not None
