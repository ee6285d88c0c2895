"""The Asaas client against respx: customers, PIX charges, QR codes, and Asaas's error envelope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from blocks import errors
from blocks.asaas import (
    AsaasClient,
    AsaasCredentials,
    AsaasPayment,
    NewCustomer,
    NewPixCharge,
    asaas_error,
)
from blocks.http import HttpPolicy, RateLimit
from tests.blocks.conftest import RecordedSleeps
from tests.contracts import assert_matches

BASE = "https://api.asaas.com"
API_KEY = "$aact_prod_000MzkwODA2MWY2OGM3MWRlMDU2NWM3MzJlNzZmNGZhZGY6OmFhY2hfN2Y"
CUSTOMER = {
    "object": "customer",
    "id": "cus_000005401844",
    "dateCreated": "2026-11-28",
    "name": "Maria Silva",
    "email": "maria@example.com",
    "mobilePhone": "11999998888",
    "cpfCnpj": "24971563792",
    "personType": "FISICA",
    "deleted": False,
    "externalReference": "lead_42",
    "notificationDisabled": True,
}
PAYMENT = {
    "object": "payment",
    "id": "pay_080225913252",
    "dateCreated": "2026-11-28",
    "customer": "cus_000005401844",
    "value": 129.9,
    "netValue": 128.91,
    "billingType": "PIX",
    "status": "PENDING",
    "dueDate": "2026-12-01",
    "originalDueDate": "2026-12-01",
    "invoiceNumber": "080225913",
    "description": "Hospedagem anual",
    "externalReference": "j_123:charge:1",
    "invoiceUrl": "https://www.asaas.com/i/080225913252",
    "deleted": False,
}
QR = {
    "encodedImage": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "payload": "00020126580014br.gov.bcb.pix0136a1b2c3d4-e5f6-4789-8abc-def01234567852040000"
    "53039865802BR",
    "expirationDate": "2027-12-01 23:59:59",
}


def page(items: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "hasMore": has_more,
        "totalCount": len(items),
        "limit": 100,
        "offset": 0,
        "data": items,
    }


def asaas_errors(status: int, *entries: tuple[str, str]) -> httpx.Response:
    body = {"errors": [{"code": code, "description": text} for code, text in entries]}
    assert_matches(body, "asaas", "client_error")
    return httpx.Response(status, json=body)


def sent_query(route: respx.Route) -> dict[str, str]:
    return dict(route.calls.last.request.url.params)


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


@pytest.fixture
async def asaas(policy: HttpPolicy, sleeps: RecordedSleeps) -> AsyncIterator[AsaasClient]:
    credentials = AsaasCredentials(api_key=API_KEY, user_agent="leadflow-tests")
    bucket = RateLimit(25_000, 43_200, 500, clock=sleeps.clock, sleep=sleeps.sleep)
    async with credentials.get_client(policy=policy, rate_limit=bucket) as client:
        yield client


# ------------------------------------------------------------------------------ the requests


async def test_every_request_carries_the_api_key_and_the_user_agent(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/payments/pay_080225913252").respond(200, json=PAYMENT)
    await asaas.get_payment("pay_080225913252")
    request = route.calls.last.request
    assert request.headers["access_token"] == API_KEY
    assert request.headers.get_list("user-agent") == ["leadflow-tests"]
    assert "authorization" not in request.headers


async def test_create_customer_posts_the_document_as_digits_and_returns_the_customer(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    assert_matches(CUSTOMER, "asaas", "client_customer")
    route = mock.post("/v3/customers").respond(200, json=CUSTOMER)
    customer = await asaas.create_customer(
        NewCustomer(
            name="Maria Silva",
            cpf_cnpj="249.715.637-92",
            email="maria@example.com",
            mobile_phone="+55 (11) 99999-8888",
            external_reference="lead_42",
            notification_disabled=True,
        )
    )
    body = sent_json(route)
    assert_matches(body, "asaas", "client_customer_request")
    assert body == {
        "name": "Maria Silva",
        "cpfCnpj": "24971563792",
        "email": "maria@example.com",
        "mobilePhone": "11999998888",
        "externalReference": "lead_42",
        "notificationDisabled": True,
    }
    assert customer.id == "cus_000005401844"
    assert customer.person_type == "FISICA"
    assert customer.external_reference == "lead_42"


def test_a_customer_needs_a_cpf_or_a_cnpj() -> None:
    with pytest.raises(ValueError, match="CPF"):
        NewCustomer(name="Maria", cpf_cnpj="123.456")


async def test_list_customers_filters_by_cpf_cnpj_digits(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    body = page([CUSTOMER])
    assert_matches(body, "asaas", "client_customer_list")
    route = mock.get("/v3/customers").respond(200, json=body)
    found = await asaas.list_customers(cpf_cnpj="249.715.637-92")
    assert dict(route.calls.last.request.url.params) == {
        "offset": "0",
        "limit": "10",
        "cpfCnpj": "24971563792",
    }
    assert route.calls.last.request.content == b""  # Asaas answers 403 to a GET with a body
    assert [c.id for c in found.data] == ["cus_000005401844"]
    assert found.total_count == 1
    assert not found.has_more


async def test_find_customer_tries_the_reference_then_the_document(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    by_reference = mock.get("/v3/customers", params={"externalReference": "lead_42"}).respond(
        200, json=page([])
    )
    by_document = mock.get("/v3/customers", params={"cpfCnpj": "24971563792"}).respond(
        200, json=page([{**CUSTOMER, "id": "cus_old", "deleted": True}, CUSTOMER])
    )
    customer = await asaas.find_customer(external_reference="lead_42", cpf_cnpj="24971563792")
    assert by_reference.call_count == 1
    assert by_document.call_count == 1
    assert customer is not None
    assert customer.id == "cus_000005401844"


async def test_find_customer_returns_none_when_asaas_has_no_live_match(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    mock.get("/v3/customers").respond(200, json=page([{**CUSTOMER, "deleted": True}]))
    assert await asaas.find_customer(external_reference="lead_42") is None


async def test_find_customer_never_returns_a_customer_with_another_reference(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    # a filter Asaas ignored answers with every customer: none of them is the journey's client
    mock.get("/v3/customers").respond(
        200, json=page([{**CUSTOMER, "externalReference": "lead_7", "cpfCnpj": "52998224725"}])
    )
    assert (
        await asaas.find_customer(external_reference="lead_42", cpf_cnpj="249.715.637-92") is None
    )


async def test_find_customer_by_document_matches_the_digits_of_a_formatted_cpf(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/customers").respond(200, json=page([CUSTOMER]))
    customer = await asaas.find_customer(cpf_cnpj="249.715.637-92")
    assert customer is not None
    assert customer.id == "cus_000005401844"
    assert route.calls.last.request.url.params["cpfCnpj"] == "24971563792"


async def test_find_customer_needs_a_reference_or_a_document(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    with pytest.raises(ValueError, match="external_reference or a cpf_cnpj"):
        await asaas.find_customer()
    assert not mock.calls


async def test_create_pix_charge_posts_billing_type_pix_with_value_and_due_date(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    assert_matches(PAYMENT, "asaas", "client_payment")
    route = mock.post("/v3/payments").respond(200, json=PAYMENT)
    payment = await asaas.create_pix_charge(
        NewPixCharge(
            customer="cus_000005401844",
            value=Decimal("129.90"),
            due_date=date(2026, 12, 1),
            description="Hospedagem anual",
            external_reference="j_123:charge:1",
        )
    )
    body = sent_json(route)
    assert_matches(body, "asaas", "client_payment_request")
    assert body == {
        "billingType": "PIX",
        "customer": "cus_000005401844",
        "value": 129.9,
        "dueDate": "2026-12-01",
        "description": "Hospedagem anual",
        "externalReference": "j_123:charge:1",
    }
    assert payment.id == "pay_080225913252"
    assert payment.value == Decimal("129.9")
    assert payment.status == "PENDING"
    assert not payment.is_paid


@pytest.mark.parametrize(
    ("status", "paid"),
    [
        ("CONFIRMED", True),
        ("RECEIVED", True),
        ("PENDING", False),
        ("OVERDUE", False),
        ("REFUNDED", False),
    ],
)
async def test_get_payment_reads_only_confirmed_and_received_as_paid(
    mock: respx.MockRouter, asaas: AsaasClient, status: str, paid: bool
) -> None:
    mock.get("/v3/payments/pay_080225913252").respond(200, json={**PAYMENT, "status": status})
    payment = await asaas.get_payment("pay_080225913252")
    assert payment.is_paid is paid


async def test_list_payments_filters_by_external_reference(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    body = page([PAYMENT])
    assert_matches(body, "asaas", "client_payment_list")
    route = mock.get("/v3/payments").respond(200, json=body)
    found = await asaas.list_payments(external_reference="j_123:charge:1", limit=100)
    assert route.calls.last.request.url.params["externalReference"] == "j_123:charge:1"
    assert route.calls.last.request.url.params["limit"] == "100"
    assert [p.id for p in found.data] == ["pay_080225913252"]


async def test_find_by_reference_skips_deleted_charges(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    mock.get("/v3/payments").respond(200, json=page([{**PAYMENT, "deleted": True}]))
    assert await asaas.find_by_reference("j_123:charge:1", of=AsaasPayment) is None


async def test_every_customer_filter_is_a_query_parameter_asaas_defines(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/customers").respond(200, json=page([]))
    await asaas.list_customers(
        cpf_cnpj="249.715.637-92", external_reference="lead_42", offset=100, limit=50
    )
    assert_matches(sent_query(route), "asaas", "client_customer_query")
    assert sent_query(route) == {
        "cpfCnpj": "24971563792",
        "externalReference": "lead_42",
        "offset": "100",
        "limit": "50",
    }


async def test_every_payment_filter_is_a_query_parameter_asaas_defines(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/payments").respond(200, json=page([]))
    await asaas.list_payments(
        external_reference="j_123:charge:1",
        customer="cus_000005401844",
        status="PENDING",
        billing_type="PIX",
        offset=0,
        limit=10,
    )
    assert_matches(sent_query(route), "asaas", "client_payment_query")
    assert sent_query(route) == {
        "externalReference": "j_123:charge:1",
        "customer": "cus_000005401844",
        "status": "PENDING",
        "billingType": "PIX",
        "offset": "0",
        "limit": "10",
    }


async def test_find_by_reference_returns_the_live_charge_with_exactly_that_reference(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/payments").respond(
        200,
        json=page(
            [
                {**PAYMENT, "id": "pay_other", "externalReference": "j_999:charge:1"},
                {**PAYMENT, "id": "pay_gone", "deleted": True},
                PAYMENT,
            ]
        ),
    )
    found = await asaas.find_by_reference("j_123:charge:1", of=AsaasPayment)
    assert found is not None
    assert found.id == "pay_080225913252"
    params = route.calls.last.request.url.params
    assert params["externalReference"] == "j_123:charge:1"
    assert params["limit"] == "100"


async def test_get_pix_qr_code_returns_the_copy_and_paste_payload(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    assert_matches(QR, "asaas", "client_pix_qr_code")
    mock.get("/v3/payments/pay_080225913252/pixQrCode").respond(200, json=QR)
    qr = await asaas.get_pix_qr_code("pay_080225913252")
    assert qr.payload.startswith("000201")
    assert qr.encoded_image == QR["encodedImage"]
    assert qr.expiration_date == "2027-12-01 23:59:59"


async def test_path_ids_are_quoted_as_one_segment(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/payments/pay%2F..%2Fx").respond(200, json=PAYMENT)
    await asaas.get_payment("pay/../x")
    assert route.called


async def test_a_page_larger_than_asaas_allows_is_refused_before_any_call(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/payments")
    with pytest.raises(ValueError, match="1 to 100"):
        await asaas.list_payments(external_reference="j_123", limit=101)
    assert not route.called


def test_a_charge_must_have_a_positive_value_in_cents() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        NewPixCharge(customer="cus_1", value=Decimal("0"), due_date=date(2026, 1, 1))
    with pytest.raises(ValueError, match="decimal places"):
        NewPixCharge(customer="cus_1", value=Decimal("1.005"), due_date=date(2026, 1, 1))


# -------------------------------------------------------------------------------- the errors


async def test_a_validation_error_is_permanent_with_the_vendor_code_and_every_description(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    mock.post("/v3/payments").mock(
        return_value=asaas_errors(
            400,
            ("invalid_customer", "Customer inválido ou não informado."),
            ("invalid_value", "O valor deve ser maior que zero."),
        )
    )
    charge = NewPixCharge(customer="cus_x", value=Decimal("1"), due_date=date(2026, 12, 1))
    with pytest.raises(errors.PermanentError) as raised:
        await asaas.create_pix_charge(charge)
    error = raised.value
    assert type(error) is errors.PermanentError
    assert (error.vendor, error.status, error.code) == ("asaas", 400, "invalid_customer")
    assert "Customer inválido" in error.message
    assert "maior que zero" in error.message
    assert error.path == "/v3/payments"


async def test_an_invalid_api_key_raises_authentication_error(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    mock.get("/v3/customers").mock(
        return_value=asaas_errors(
            401, ("invalid_access_token", "A chave de API fornecida é inválida")
        )
    )
    with pytest.raises(errors.AuthenticationError) as raised:
        await asaas.list_customers(external_reference="lead_42")
    assert raised.value.code == "invalid_access_token"


async def test_an_unknown_payment_raises_not_found(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    mock.get("/v3/payments/pay_nope").respond(404, json={"errors": []})
    with pytest.raises(errors.NotFoundError):
        await asaas.get_payment("pay_nope")


async def test_a_lost_answer_to_a_charge_is_an_unknown_outcome_and_not_retried(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.post("/v3/payments").mock(side_effect=httpx.ReadTimeout("no answer"))
    charge = NewPixCharge(customer="cus_x", value=Decimal("10"), due_date=date(2026, 12, 1))
    with pytest.raises(errors.UnknownOutcomeError):
        await asaas.create_pix_charge(charge)
    assert route.call_count == 1


async def test_a_503_to_a_customer_create_is_an_unknown_outcome(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.post("/v3/customers").respond(503, text="Service Unavailable")
    with pytest.raises(errors.UnknownOutcomeError):
        await asaas.create_customer(NewCustomer(name="Maria", cpf_cnpj="24971563792"))
    assert route.call_count == 1


async def test_a_429_is_retried_after_the_ratelimit_reset_then_raised_as_rate_limited(
    mock: respx.MockRouter, asaas: AsaasClient, sleeps: RecordedSleeps
) -> None:
    throttled = httpx.Response(
        429,
        headers={"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
        json={"errors": [{"code": "too_many_requests", "description": "Limite excedido"}]},
    )
    route = mock.get("/v3/payments/pay_1").mock(return_value=throttled)
    with pytest.raises(errors.RateLimitedError) as raised:
        await asaas.get_payment("pay_1")
    assert route.call_count > 1
    assert 30.0 in sleeps.waits
    assert raised.value.code == "too_many_requests"


async def test_a_read_of_a_payment_is_retried_through_a_server_error(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get("/v3/payments/pay_080225913252").mock(
        side_effect=[httpx.Response(502, text="Bad Gateway"), httpx.Response(200, json=PAYMENT)]
    )
    payment = await asaas.get_payment("pay_080225913252")
    assert route.call_count == 2
    assert payment.id == "pay_080225913252"


async def test_a_read_that_keeps_failing_raises_transient_error(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    mock.get("/v3/payments/pay_1/pixQrCode").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(errors.TransientError) as raised:
        await asaas.get_pix_qr_code("pay_1")
    assert type(raised.value) is errors.TransientError


def test_the_error_parser_falls_back_to_the_reason_phrase_without_a_json_body() -> None:
    assert asaas_error(httpx.Response(502, text="<html>bad gateway</html>")) == (
        None,
        "Bad Gateway",
    )


# --------------------------------------------------------------------------------- the Block


def test_the_block_keeps_both_secrets_secret() -> None:
    block = AsaasCredentials(api_key=API_KEY, webhook_auth_token="whsec-asaas-0123456789")
    shown = repr(block) + str(block.model_dump())
    assert API_KEY not in shown
    assert "whsec-asaas-0123456789" not in shown
    assert block.base_url == "https://api.asaas.com"
    assert block.webhook_auth_token is not None
    assert block.webhook_auth_token.get_secret_value() == "whsec-asaas-0123456789"


async def test_clients_of_one_api_key_share_one_rate_limit() -> None:
    first = AsaasCredentials(api_key=API_KEY).get_client()
    second = AsaasCredentials(api_key=API_KEY).get_client()
    other = AsaasCredentials(api_key=API_KEY + "x").get_client()
    try:
        assert first._http.rate_limit is second._http.rate_limit
        assert first._http.rate_limit is not other._http.rate_limit
    finally:
        for client in (first, second, other):
            await client.aclose()
