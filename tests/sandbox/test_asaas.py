"""The Asaas v3 emulator bills by PIX and reports payment exactly as Asaas documents it.

Requests and answers are checked against trimmed copies of Asaas's own definitions
(tests/contracts/asaas/); webhooks are checked for the `asaas-access-token` header (Asaas's
scheme is a static shared token, not an HMAC) with `hmac.compare_digest`, over the exact bytes
received; the PIX copy-and-paste code's CRC is recomputed here with `binascii.crc_hqx`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import struct
import threading
import zlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.people import Outcome, PersonBehaviour
from sandbox.server import RunningSandbox
from sandbox.vendors import asaas
from tests.contracts import assert_matches
from tests.sandbox.conftest import WebhookReceiver, in_process

CREDENTIALS = asaas.DEFAULT_CREDENTIALS
HEADERS = {"access_token": CREDENTIALS["api_key"], "User-Agent": "leadflow-tests"}
CPF = "52998224725"
CNPJ = "11222333000181"
TODAY = datetime(2026, 3, 10, 9, 30, tzinfo=asaas.BRAZIL)


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app in-process with Asaas's clock pinned to TODAY; paths below `/asaas`."""
    app = create_app(sandbox)
    sandbox.emulators["asaas"].clock = lambda: TODAY
    async with in_process(app, "/asaas", headers=HEADERS) as client:
        yield client


def customer_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Maria da Silva",
        "cpfCnpj": CPF,
        "email": "maria@example.com.br",
        "mobilePhone": "11987654321",
        "externalReference": "lead-1",
    }
    body.update(overrides)
    assert_matches(body, "asaas", "customer_request")
    return body


def payment_body(customer: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": customer,
        "billingType": "PIX",
        "value": 129.9,
        "dueDate": "2026-03-13",
        "description": "Site institucional",
        "externalReference": "journey-1:1",
    }
    body.update(overrides)
    return body


async def new_customer(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v3/customers", json=customer_body(**overrides))
    assert response.status_code == 200, response.text
    return response.json()


async def new_payment(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    customer = await new_customer(client)
    body = payment_body(customer["id"], **overrides)
    assert_matches(body, "asaas", "payment_request")
    response = await client.post("/v3/payments", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert_matches(response.json(), "asaas", "error")
    assert [e["code"] for e in response.json()["errors"]] == [code]


def token_matches(received: str, expected: str) -> bool:
    return hmac.compare_digest(received.encode(), expected.encode())


# -- customers ------------------------------------------------------------------------------


async def test_create_customer_answers_asaas_customer(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    assert_matches(customer, "asaas", "customer")
    assert customer["id"].startswith("cus_")
    assert customer["cpfCnpj"] == CPF
    assert customer["personType"] == "FISICA"
    assert customer["dateCreated"] == "2026-03-10"


async def test_create_customer_keeps_only_the_digits_of_a_formatted_cnpj(
    client: httpx.AsyncClient,
) -> None:
    customer = await new_customer(client, cpfCnpj="11.222.333/0001-81")
    assert customer["cpfCnpj"] == CNPJ
    assert customer["personType"] == "JURIDICA"


async def test_duplicate_customers_are_created_as_asaas_allows(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    first = await new_customer(client)
    second = await new_customer(client)
    assert first["id"] != second["id"]
    assert sandbox.state.counters()["asaas"]["customer"] == 2


async def test_list_customers_filters_by_external_reference(client: httpx.AsyncClient) -> None:
    await new_customer(client, externalReference="lead-1")
    wanted = await new_customer(client, externalReference="lead-2")
    response = await client.get("/v3/customers", params={"externalReference": "lead-2"})
    assert response.status_code == 200
    assert_matches(response.json(), "asaas", "customer_list")
    assert response.json()["totalCount"] == 1
    assert response.json()["data"] == [wanted]


async def test_list_customers_filters_by_cpf_cnpj_given_with_punctuation(
    client: httpx.AsyncClient,
) -> None:
    await new_customer(client, cpfCnpj=CNPJ)
    wanted = await new_customer(client, cpfCnpj=CPF)
    response = await client.get("/v3/customers", params={"cpfCnpj": "529.982.247-25"})
    assert [c["id"] for c in response.json()["data"]] == [wanted["id"]]


async def test_list_customers_pages_with_offset_limit_and_has_more(
    client: httpx.AsyncClient,
) -> None:
    for n in range(3):
        await new_customer(client, externalReference=f"lead-{n}")
    response = await client.get("/v3/customers", params={"offset": 1, "limit": 1})
    page = response.json()
    assert_matches(page, "asaas", "customer_list")
    assert (page["object"], page["totalCount"], page["limit"], page["offset"]) == ("list", 3, 1, 1)
    assert page["hasMore"] is True
    assert len(page["data"]) == 1


async def test_list_customers_filters_by_group_name_without_answering_it(
    client: httpx.AsyncClient,
) -> None:
    await new_customer(client, groupName="varejo")
    wanted = await new_customer(client, groupName="agencia-leadflow")
    response = await client.get("/v3/customers", params={"groupName": "agencia-leadflow"})
    assert_matches(response.json(), "asaas", "customer_list")
    assert [c["id"] for c in response.json()["data"]] == [wanted["id"]]
    assert "groupName" not in wanted


async def test_list_limit_above_one_hundred_is_refused(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v3/customers", params={"limit": 101}), 400, "invalid_limit")


async def test_get_customer_by_id(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    response = await client.get(f"/v3/customers/{customer['id']}")
    assert response.json() == customer


async def test_unknown_customer_is_404_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/customers/cus_000000000001")
    assert response.status_code == 404
    assert response.content == b""


@pytest.mark.parametrize("document", ["52998224724", "11222333000182", "123", "00000000000"])
async def test_customer_with_invalid_cpf_cnpj_is_refused(
    client: httpx.AsyncClient, document: str
) -> None:
    response = await client.post("/v3/customers", json=customer_body(cpfCnpj=document))
    assert_error(response, 400, "invalid_cpfCnpj")


@pytest.mark.parametrize(
    ("missing", "code"), [("name", "invalid_name"), ("cpfCnpj", "invalid_cpfCnpj")]
)
async def test_customer_without_a_required_field_is_refused(
    client: httpx.AsyncClient, missing: str, code: str
) -> None:
    body = customer_body()
    del body[missing]
    assert_error(await client.post("/v3/customers", json=body), 400, code)


async def test_customer_with_malformed_email_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/customers", json=customer_body(email="maria@"))
    assert_error(response, 400, "invalid_email")


async def test_refused_customer_is_not_created(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await client.post("/v3/customers", json=customer_body(cpfCnpj="52998224724"))
    assert "asaas" not in sandbox.state.counters()


# -- auth and request rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "leadflow-tests"},
        {"access_token": "$aact_prod_not-the-sandbox-key", "User-Agent": "leadflow-tests"},
    ],
)
async def test_missing_or_wrong_access_token_is_401(
    sandbox: Sandbox, headers: dict[str, str]
) -> None:
    async with in_process(create_app(sandbox), "/asaas") as anonymous:
        response = await anonymous.get("/v3/customers", headers=headers)
    assert_error(response, 401, "invalid_access_token")


async def test_unknown_path_is_404_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/no_such_resource")
    assert response.status_code == 404
    assert response.content == b""


async def test_request_without_user_agent_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/customers", headers={"User-Agent": ""})
    assert_error(response, 400, "invalid_user_agent")


async def test_get_with_a_body_is_forbidden(client: httpx.AsyncClient) -> None:
    response = await client.request("GET", "/v3/customers", content=b'{"name": "x"}')
    assert response.status_code == 403


async def test_invalid_json_body_is_refused_in_asaas_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v3/customers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_object")


async def test_answers_carry_rate_limit_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/customers")
    assert response.headers["RateLimit-Limit"] == "1000000"
    assert response.headers["RateLimit-Remaining"] == "999999"
    assert int(response.headers["RateLimit-Reset"]) > 0


async def test_spent_quota_answers_429_in_asaas_envelope(client: httpx.AsyncClient) -> None:
    limits = {"requests_per_window": 2, "window_seconds": 60, "concurrent_gets": 50}
    admin = await client.put("http://sandbox/__sandbox__/asaas/limits", json=limits)
    assert admin.status_code == 200
    assert (await client.get("/v3/customers")).status_code == 200
    assert (await client.get("/v3/customers")).status_code == 200
    response = await client.get("/v3/customers")
    assert_error(response, 429, "rate_limit_exceeded")
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["Retry-After"]) > 0


async def test_gets_beyond_the_concurrency_cap_answer_429(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    limits = {"requests_per_window": 1000, "window_seconds": 60, "concurrent_gets": 1}
    await client.put("http://sandbox/__sandbox__/asaas/limits", json=limits)
    emulator = sandbox.emulators["asaas"]
    emulator.enter_get()  # one GET is still being served
    try:
        assert_error(await client.get("/v3/customers"), 429, "rate_limit_exceeded")
    finally:
        emulator.leave_get()
    assert (await client.get("/v3/customers")).status_code == 200


async def test_injected_throttle_is_rendered_in_asaas_envelope(
    client: httpx.AsyncClient,
) -> None:
    faults = {"route": "POST /v3/payments", "faults": {"throttle_rate": 1.0}}
    await client.put("http://sandbox/__sandbox__/faults/asaas/routes", json=faults)
    response = await client.post("/v3/payments", json=payment_body("cus_000000000001"))
    assert_error(response, 429, "rate_limit_exceeded")
    assert response.headers["Retry-After"] == "1"


# -- payments -------------------------------------------------------------------------------


async def test_create_pix_payment_answers_a_pending_payment(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    assert_matches(payment, "asaas", "payment")
    assert payment["id"].startswith("pay_")
    assert (payment["status"], payment["billingType"]) == ("PENDING", "PIX")
    assert (payment["value"], payment["dueDate"]) == (129.9, "2026-03-13")
    assert payment["netValue"] < payment["value"]
    assert payment["externalReference"] == "journey-1:1"


async def test_pix_charge_smaller_than_the_fee_nets_nothing_rather_than_a_debt(
    client: httpx.AsyncClient,
) -> None:
    payment = await new_payment(client, value=0.5)
    assert (payment["value"], payment["netValue"]) == (0.5, 0)


async def test_invoice_url_shows_the_charge_to_the_payer(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    path = payment["invoiceUrl"].split("/asaas", 1)[1]
    page = await client.get(path, headers={"access_token": ""})
    assert page.status_code == 200
    assert "129.90" in page.text


async def test_payment_for_unknown_customer_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/payments", json=payment_body("cus_000000000001"))
    assert_error(response, 400, "invalid_customer")
    assert response.json()["errors"][0]["description"] == "Customer Inválido ou não informado"


@pytest.mark.parametrize("due", ["13/03/2026", "2026-3-13", "2026-03-13T00:00:00", "2026-02-30"])
async def test_due_date_not_in_yyyy_mm_dd_is_refused(client: httpx.AsyncClient, due: str) -> None:
    customer = await new_customer(client)
    response = await client.post("/v3/payments", json=payment_body(customer["id"], dueDate=due))
    assert_error(response, 400, "invalid_dueDate")


async def test_due_date_in_the_past_is_refused(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    body = payment_body(customer["id"], dueDate="2026-03-09")
    assert_error(await client.post("/v3/payments", json=body), 400, "invalid_dueDate")


async def test_due_date_today_in_sao_paulo_is_accepted(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client, dueDate="2026-03-10")
    assert payment["dueDate"] == "2026-03-10"


@pytest.mark.parametrize("value", [0, -10, "129.90", None, True])
async def test_value_that_is_not_a_positive_number_is_refused(
    client: httpx.AsyncClient, value: Any
) -> None:
    customer = await new_customer(client)
    response = await client.post("/v3/payments", json=payment_body(customer["id"], value=value))
    assert_error(response, 400, "invalid_value")


async def test_description_longer_than_500_characters_is_refused(
    client: httpx.AsyncClient,
) -> None:
    customer = await new_customer(client)
    body = payment_body(customer["id"], description="x" * 501)
    assert_error(await client.post("/v3/payments", json=body), 400, "invalid_description")


async def test_unknown_billing_type_is_refused(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    body = payment_body(customer["id"], billingType="BITCOIN")
    assert_error(await client.post("/v3/payments", json=body), 400, "invalid_billingType")


async def test_payment_without_discount_fine_or_interest_answers_zeros(
    client: httpx.AsyncClient,
) -> None:
    payment = await new_payment(client)
    assert payment["discount"] == {"value": 0, "dueDateLimitDays": 0, "type": "FIXED"}
    assert (payment["fine"], payment["interest"]) == ({"value": 0}, {"value": 0})


async def test_payment_answers_the_discount_fine_and_interest_it_was_given(
    client: httpx.AsyncClient,
) -> None:
    payment = await new_payment(
        client,
        discount={"value": 5, "dueDateLimitDays": 2, "type": "PERCENTAGE"},
        fine={"value": 2, "type": "PERCENTAGE"},
        interest={"value": 1},
        callback={"successUrl": "https://agencia.example.com.br/obrigado", "autoRedirect": False},
    )
    assert_matches(payment, "asaas", "payment")
    assert payment["discount"] == {"value": 5, "dueDateLimitDays": 2, "type": "PERCENTAGE"}
    assert (payment["fine"], payment["interest"]) == ({"value": 2}, {"value": 1})
    assert "callback" not in payment  # Asaas's payment answer has no such field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("discount", {"value": 129.9, "type": "FIXED"}),
        ("discount", {"value": 101, "type": "PERCENTAGE"}),
        ("discount", {"value": 5, "type": "PERCENT"}),
        ("discount", {"value": 5, "dueDateLimitDays": -1}),
        ("fine", {"value": -1}),
        ("interest", {"value": "2"}),
        ("callback", {"autoRedirect": True}),
        ("callback", {"successUrl": "https://x.com.br/" + "a" * 250}),
    ],
)
async def test_payment_with_an_impossible_discount_fine_interest_or_callback_is_refused(
    client: httpx.AsyncClient, sandbox: Sandbox, field: str, value: dict[str, Any]
) -> None:
    customer = await new_customer(client)
    body = payment_body(customer["id"], **{field: value})
    assert_error(await client.post("/v3/payments", json=body), 400, f"invalid_{field}")
    assert sandbox.emulators["asaas"].pending_pix() == []


async def test_get_payment_and_its_status(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    read = await client.get(f"/v3/payments/{payment['id']}")
    status = await client.get(f"/v3/payments/{payment['id']}/status")
    assert read.json() == payment
    assert status.json() == {"status": "PENDING"}


async def test_list_payments_filters_by_external_reference(client: httpx.AsyncClient) -> None:
    await new_payment(client, externalReference="journey-1:1")
    wanted = await new_payment(client, externalReference="journey-2:1")
    response = await client.get("/v3/payments", params={"externalReference": "journey-2:1"})
    assert_matches(response.json(), "asaas", "payment_list")
    assert [p["id"] for p in response.json()["data"]] == [wanted["id"]]


async def test_list_payments_filters_by_status_and_due_date_range(
    client: httpx.AsyncClient,
) -> None:
    early = await new_payment(client, dueDate="2026-03-11")
    await new_payment(client, dueDate="2026-04-30")
    await client.post(f"/v3/sandbox/payment/{early['id']}/confirm")
    response = await client.get(
        "/v3/payments", params={"status": "RECEIVED", "dueDate[le]": "2026-03-31"}
    )
    assert [p["id"] for p in response.json()["data"]] == [early["id"]]


async def test_list_payments_with_unknown_status_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/v3/payments", params={"status": "PAID"})
    assert_error(response, 400, "invalid_status")


# -- PIX QR code ------------------------------------------------------------------------------


def emv_fields(payload: str) -> dict[str, str]:
    fields, index = {}, 0
    while index < len(payload):
        tag, length = payload[index : index + 2], int(payload[index + 2 : index + 4])
        fields[tag] = payload[index + 4 : index + 4 + length]
        index += 4 + length
    return fields


async def test_pix_qr_code_payload_is_a_br_code_with_a_valid_crc(
    client: httpx.AsyncClient,
) -> None:
    payment = await new_payment(client)
    response = await client.get(f"/v3/payments/{payment['id']}/pixQrCode")
    assert response.status_code == 200
    assert_matches(response.json(), "asaas", "pix_qr_code")
    payload = response.json()["payload"]
    fields = emv_fields(payload)
    assert fields["00"] == "01"
    assert emv_fields(fields["26"])["00"] == "br.gov.bcb.pix"
    assert (fields["53"], fields["54"], fields["58"]) == ("986", "129.90", "BR")
    crc = binascii.crc_hqx(payload[:-4].encode("ascii"), 0xFFFF)
    assert fields["63"] == f"{crc:04X}"


async def test_pix_qr_code_image_is_a_base64_png(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    response = await client.get(f"/v3/payments/{payment['id']}/pixQrCode")
    image = base64.b64decode(response.json()["encodedImage"], validate=True)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert image[12:16] == b"IHDR"
    assert image.endswith(b"IEND\xaeB`\x82")


def test_pix_qr_code_image_draws_each_cell_of_its_pattern_as_a_square_block() -> None:
    """29 x 29 cells of 4 x 4 pixels, black or white by the payload's hash: the same payload
    always draws the same image, and another payload another one."""
    image = asaas.png_image.__wrapped__("00020101021226-payload")
    width, height, depth, colour = struct.unpack(">IIBB", image[16:26])
    assert (width, height, depth, colour) == (116, 116, 8, 0)
    idat_length = struct.unpack(">I", image[33:37])[0]
    raw = zlib.decompress(image[41 : 41 + idat_length])
    rows = [raw[y * 117 + 1 : (y + 1) * 117] for y in range(116)]
    assert all(raw[y * 117] == 0 for y in range(116))  # filter type 0 on every row
    cells = [[rows[cy * 4][cx * 4] for cx in range(29)] for cy in range(29)]
    for y, row in enumerate(rows):
        assert list(row) == [cells[y // 4][x // 4] for x in range(116)]
    assert {value for line in cells for value in line} == {0, 255}
    assert image == asaas.png_image.__wrapped__("00020101021226-payload")
    assert image != asaas.png_image.__wrapped__("00020101021226-other")


async def test_pix_qr_code_expires_twelve_months_after_the_due_date(
    client: httpx.AsyncClient,
) -> None:
    payment = await new_payment(client, dueDate="2026-03-13")
    response = await client.get(f"/v3/payments/{payment['id']}/pixQrCode")
    assert response.json()["expirationDate"] == "2027-03-13 23:59:59"


async def test_pix_qr_code_is_the_same_on_every_read(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    first = await client.get(f"/v3/payments/{payment['id']}/pixQrCode")
    second = await client.get(f"/v3/payments/{payment['id']}/pixQrCode")
    assert first.json() == second.json()


async def test_pix_qr_code_of_a_paid_charge_is_refused(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    response = await client.get(f"/v3/payments/{payment['id']}/pixQrCode")
    assert_error(response, 400, "invalid_status")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v3/payments/{id}"),
        ("GET", "/v3/payments/{id}/status"),
        ("GET", "/v3/payments/{id}/pixQrCode"),
        ("POST", "/v3/sandbox/payment/{id}/confirm"),
        ("POST", "/v3/sandbox/payment/{id}/overdue"),
    ],
)
async def test_every_operation_on_an_unknown_payment_is_404_without_a_body(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    await new_payment(client)  # a payment exists, just not this one
    response = await client.request(method, path.format(id="pay_000000000001"))
    assert response.status_code == 404
    assert response.content == b""
    events = (await client.get("http://sandbox/__sandbox__/asaas/events")).json()
    assert [e["event"] for e in events] == ["PAYMENT_CREATED"]


# -- the sandbox helpers and the payer --------------------------------------------------------


async def test_sandbox_confirm_receives_the_pix(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    response = await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    assert response.status_code == 200
    assert_matches(response.json(), "asaas", "payment")
    assert response.json()["status"] == "RECEIVED"
    assert response.json()["paymentDate"] == "2026-03-10"


async def test_sandbox_confirm_of_a_received_payment_is_refused(
    client: httpx.AsyncClient,
) -> None:
    payment = await new_payment(client)
    await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    response = await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    assert_error(response, 400, "invalid_action")


async def test_sandbox_overdue_makes_the_payment_overdue(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    response = await client.post(f"/v3/sandbox/payment/{payment['id']}/overdue")
    assert response.json()["status"] == "OVERDUE"


async def test_payer_waits_on_pending_pix_payments_only(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    waiting = await new_payment(client)
    paid = await new_payment(client)
    await new_payment(client, billingType="BOLETO")
    await client.post(f"/v3/sandbox/payment/{paid['id']}/confirm")
    assert sandbox.roles["payer"].pending() == [waiting["id"]]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        pytest.param("accept", "RECEIVED", id="accepting_receives_the_pix"),
        pytest.param("refuse", "OVERDUE", id="refusing_lets_the_charge_go_overdue"),
    ],
)
async def test_payer_decides_the_charge(
    client: httpx.AsyncClient, sandbox: Sandbox, outcome: Outcome, status: str
) -> None:
    payment = await new_payment(client)
    sandbox.people.act("payer", payment["id"], outcome)
    answer = await client.get(f"/v3/payments/{payment['id']}/status")
    assert answer.json() == {"status": status}


async def test_simulated_payer_pays_on_its_own_when_it_always_accepts(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.people.configure(
        "payer", PersonBehaviour(accept_probability=1, refuse_probability=0, delay_seconds=0)
    )
    payment = await new_payment(client)
    assert sandbox.people.tick() == 1
    status = await client.get(f"/v3/payments/{payment['id']}/status")
    assert status.json() == {"status": "RECEIVED"}
    assert sandbox.roles["payer"].pending() == []


async def test_admin_makes_the_payer_pay_a_given_charge(client: httpx.AsyncClient) -> None:
    payment = await new_payment(client)
    response = await client.post(f"http://sandbox/__sandbox__/people/payer/accept/{payment['id']}")
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "RECEIVED"


async def test_payer_cannot_pay_a_charge_twice(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    payment = await new_payment(client)
    sandbox.people.act("payer", payment["id"], "accept")
    with pytest.raises(ValueError, match="RECEIVED"):
        sandbox.people.act("payer", payment["id"], "accept")


# -- webhooks -------------------------------------------------------------------------------


def events(receiver: WebhookReceiver, count: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    received = receiver.wait_for(count)
    return [(json.loads(r.body), {k.lower(): v for k, v in r.headers.items()}) for r in received]


async def test_payment_created_webhook_carries_the_payment_and_the_token(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["asaas"] = receiver.url
    payment = await new_payment(client)
    [(body, headers)] = events(receiver, 1)
    assert_matches(body, "asaas", "webhook_payment_event")
    assert token_matches(headers["asaas-access-token"], CREDENTIALS["webhook_auth_token"])
    assert body["event"] == "PAYMENT_CREATED"
    assert body["id"].startswith("evt_")
    assert body["payment"] == payment
    assert body["dateCreated"] == "2026-03-10 09:30:00"


async def payer_decided_events(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver, outcome: Outcome
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The two events a new PIX charge fires when the payer decides: created, then the outcome."""
    sandbox.webhook_targets["asaas"] = receiver.url
    payment = await new_payment(client)
    sandbox.people.act("payer", payment["id"], outcome)
    return events(receiver, 2)


async def test_paid_pix_fires_payment_received_after_created(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    received = await payer_decided_events(client, sandbox, receiver, "accept")
    assert [body["event"] for body, _ in received] == ["PAYMENT_CREATED", "PAYMENT_RECEIVED"]
    body, headers = received[1]
    assert_matches(body, "asaas", "webhook_payment_event")
    assert body["payment"]["status"] == "RECEIVED"
    assert token_matches(headers["asaas-access-token"], CREDENTIALS["webhook_auth_token"])
    assert len({b["id"] for b, _ in received}) == 2


async def test_refused_pix_fires_payment_overdue(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    body, _ = (await payer_decided_events(client, sandbox, receiver, "refuse"))[1]
    assert (body["event"], body["payment"]["status"]) == ("PAYMENT_OVERDUE", "OVERDUE")


async def test_held_pix_is_confirmed_first_then_received_on_release(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["asaas"] = receiver.url
    hold = await client.put("http://sandbox/__sandbox__/asaas/pix-hold", json={"enabled": True})
    assert hold.status_code == 200
    payment = await new_payment(client)
    held = await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    released = await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    assert (held.json()["status"], released.json()["status"]) == ("CONFIRMED", "RECEIVED")
    received = events(receiver, 3)
    assert [body["event"] for body, _ in received] == [
        "PAYMENT_CREATED",
        "PAYMENT_CONFIRMED",
        "PAYMENT_RECEIVED",
    ]
    for body, _ in received:
        assert_matches(body, "asaas", "webhook_payment_event")


async def test_admin_ends_the_hold_of_every_confirmed_pix_firing_payment_received(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["asaas"] = receiver.url
    await client.put("http://sandbox/__sandbox__/asaas/pix-hold", json={"enabled": True})
    held = await new_payment(client)
    waiting = await new_payment(client)
    sandbox.people.act("payer", held["id"], "accept")
    response = await client.post("http://sandbox/__sandbox__/asaas/pix-hold/release")
    assert response.json() == {"released": [held["id"]]}
    statuses = [
        (await client.get(f"/v3/payments/{p['id']}/status")).json()["status"]
        for p in (held, waiting)
    ]
    assert statuses == ["RECEIVED", "PENDING"]
    mine = [b for b, _ in events(receiver, 4) if b["payment"]["id"] == held["id"]]
    assert [b["event"] for b in mine] == [
        "PAYMENT_CREATED",
        "PAYMENT_CONFIRMED",
        "PAYMENT_RECEIVED",
    ]
    assert_matches(mine[-1], "asaas", "webhook_payment_event")


async def test_webhook_token_follows_configured_credentials(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["asaas"] = receiver.url
    await client.put(
        "http://sandbox/__sandbox__/credentials/asaas",
        json={"webhook_auth_token": "token-configured-by-the-agency"},
    )
    await new_payment(client)
    [(_, headers)] = events(receiver, 1)
    assert token_matches(headers["asaas-access-token"], "token-configured-by-the-agency")


# -- webhook configurations (/v3/webhooks) ---------------------------------------------------


def webhook_body(url: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "leadflow",
        "url": url,
        "enabled": True,
        "interrupted": False,
        "apiVersion": 3,
        "authToken": "configured-webhook-token",
        "sendType": "SEQUENTIALLY",
        "events": ["PAYMENT_CREATED", "PAYMENT_RECEIVED"],
    }
    body.update(overrides)
    return body


async def test_a_webhook_configuration_is_listed_without_its_token(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/v3/webhooks", json=webhook_body("http://127.0.0.1:9/hook"))
    assert created.status_code == 200, created.text
    listing = (await client.get("/v3/webhooks")).json()
    assert listing["totalCount"] == 1
    [webhook] = listing["data"]
    assert webhook == created.json()
    assert webhook["hasAuthToken"] is True
    assert "configured-webhook-token" not in json.dumps(listing)


async def test_a_webhook_configuration_without_events_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v3/webhooks", json=webhook_body("http://h/x", events=[]))
    assert_error(response, 400, "invalid_events")


async def test_events_go_to_a_configured_webhook_with_its_own_token(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await client.post("/v3/webhooks", json=webhook_body(receiver.url))
    payment = await new_payment(client)
    [(body, headers)] = events(receiver, 1)
    assert (body["event"], body["payment"]["id"]) == ("PAYMENT_CREATED", payment["id"])
    assert token_matches(headers["asaas-access-token"], "configured-webhook-token")


async def test_a_configured_webhook_gets_only_the_events_it_asked_for(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    await client.post("/v3/webhooks", json=webhook_body(receiver.url, events=["PAYMENT_RECEIVED"]))
    payment = await new_payment(client)
    await client.post(f"/v3/sandbox/payment/{payment['id']}/confirm")
    assert sandbox.webhooks.wait_idle(timeout=10)
    assert [json.loads(r.body)["event"] for r in receiver.posts()] == ["PAYMENT_RECEIVED"]


@pytest.mark.parametrize("state", [{"enabled": False}, {"interrupted": True}])
async def test_a_disabled_or_interrupted_webhook_gets_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver, state: dict[str, bool]
) -> None:
    await client.post("/v3/webhooks", json=webhook_body(receiver.url, **state))
    await new_payment(client)
    assert sandbox.webhooks.wait_idle(timeout=10)
    assert receiver.posts() == []


async def test_the_console_target_is_not_sent_twice_when_a_configuration_has_its_url(
    client: httpx.AsyncClient, sandbox: Sandbox, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["asaas"] = receiver.url
    await client.post("/v3/webhooks", json=webhook_body(receiver.url))
    await new_payment(client)
    assert sandbox.webhooks.wait_idle(timeout=10)
    [delivery] = receiver.posts()
    assert token_matches(delivery.headers["asaas-access-token"], "configured-webhook-token")


# -- concurrency and the real server -----------------------------------------------------------


async def test_a_payer_racing_the_creates_never_gets_received_queued_before_created(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    """Each charge's events are queued in the order its changes happened, across threads."""
    queued: list[tuple[str, str]] = []

    def capture(
        vendor: str, url: str, body: bytes, headers: dict[str, str], redeliver: Any = None
    ) -> list[int]:
        event = json.loads(body)
        queued.append((event["payment"]["id"], event["event"]))
        return []

    sandbox.webhooks.deliver = capture  # type: ignore[method-assign]
    sandbox.webhook_targets["asaas"] = "http://127.0.0.1:9/never-called"
    emulator = sandbox.emulators["asaas"]
    customer = await new_customer(client)
    done = threading.Event()

    def payer() -> None:
        while not done.is_set():
            for payment_id in emulator.pending_pix():
                emulator.receive_pix(payment_id)

    thread = threading.Thread(target=payer)
    thread.start()
    try:
        created = [emulator.create_payment(payment_body(customer["id"])) for _ in range(200)]
    finally:
        done.set()
        thread.join()
    for payment_id in emulator.pending_pix():
        emulator.receive_pix(payment_id)
    for payment in created:
        mine = [event for paid, event in queued if paid == payment["id"]]
        assert mine == ["PAYMENT_CREATED", "PAYMENT_RECEIVED"]


async def test_fifty_concurrent_creates_and_searches_lose_and_duplicate_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    async def create_then_find(n: int) -> tuple[str, list[str]]:
        created = await new_customer(client, externalReference=f"lead-{n}")
        charge = payment_body(created["id"], externalReference=f"journey-{n}:1")
        payment = (await client.post("/v3/payments", json=charge)).json()
        found = await client.get("/v3/payments", params={"externalReference": f"journey-{n}:1"})
        return payment["id"], [p["id"] for p in found.json()["data"]]

    results = await asyncio.gather(*(create_then_find(n) for n in range(50)))
    assert all(found == [created] for created, found in results)
    assert len({created for created, _ in results}) == 50
    listing = await client.get("/v3/customers", params={"limit": 100})
    assert listing.json()["totalCount"] == 50
    assert sandbox.state.counters()["asaas"] == {"customer": 50, "payment": 50}


def test_served_sandbox_bills_and_reports_payment_over_http(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["asaas"] = receiver.url
    key = served.credentials["asaas"]["api_key"]
    headers = {"access_token": key, "User-Agent": "leadflow-tests"}
    with httpx.Client(base_url=served.base_urls["asaas"], headers=headers) as http:
        customer = http.post("/v3/customers", json=customer_body()).json()
        due = datetime.now(asaas.BRAZIL).date().isoformat()
        payment = http.post("/v3/payments", json=payment_body(customer["id"], dueDate=due))
        assert payment.status_code == 200, payment.text
        confirmed = http.post(f"/v3/sandbox/payment/{payment.json()['id']}/confirm")
    assert confirmed.json()["status"] == "RECEIVED"
    received = events(receiver, 2)
    assert [body["event"] for body, _ in received] == ["PAYMENT_CREATED", "PAYMENT_RECEIVED"]
    for body, received_headers in received:
        assert_matches(body, "asaas", "webhook_payment_event")
        assert token_matches(
            received_headers["asaas-access-token"], CREDENTIALS["webhook_auth_token"]
        )


async def test_state_is_laid_out_again_after_an_admin_reset(client: httpx.AsyncClient) -> None:
    await new_customer(client)
    assert (await client.post("http://sandbox/__sandbox__/reset")).status_code == 200
    customer = await new_customer(client)
    listing = await client.get("/v3/customers")
    assert [c["id"] for c in listing.json()["data"]] == [customer["id"]]
