"""Every Asaas and Hostinger answer and Asaas webhook carries only keys its vendor declares.

The billing half of tests/sandbox/test_contract_fidelity.py: one journey through each emulator
(in-process), every answer and error checked both ways — it matches the trimmed schema under
tests/contracts/ and declares nothing the schema does not (tests/sandbox/contract_keys.py).
Asaas webhook bodies are captured at the sandbox's delivery point, so the test sees exactly the
bytes a receiver would, in the order they were sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.vendors import asaas, hostinger
from tests.sandbox.conftest import Delivery, capture_deliveries, in_process
from tests.sandbox.contract_keys import assert_exactly_declared as check
from tests.sandbox.contract_keys import undeclared_keys

HOOK = "http://127.0.0.1:9/never-called"
ASAAS = {"access_token": asaas.DEFAULT_CREDENTIALS["api_key"], "User-Agent": "leadflow-tests"}
HOSTINGER = {"Authorization": f"Bearer {hostinger.DEFAULT_CREDENTIALS['api_token']}"}
TODAY = datetime(2026, 3, 10, 9, 30, tzinfo=asaas.BRAZIL)


@pytest.fixture
def deliveries(sandbox: Sandbox) -> list[Delivery]:
    """Asaas webhooks as the sandbox hands them to its sender (nothing goes on the wire)."""
    captured = capture_deliveries(sandbox)
    sandbox.webhook_targets["asaas"] = HOOK
    return captured


@pytest.fixture
async def client(sandbox: Sandbox, deliveries: list[Delivery]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sandbox)
    sandbox.emulators["asaas"].clock = lambda: TODAY
    async with in_process(app) as client:
        yield client


def test_the_key_check_sees_an_invented_asaas_or_hostinger_key() -> None:
    """The billing schemas are constrained enough for the check to fail on an invented key."""
    payment = {"object": "payment", "id": "pay_1", "pixCopiaECola": "000201"}
    website = {"domain": "a.com.br", "is_enabled": True, "status": "active"}
    listing = {"data": [website], "meta": {"current_page": 1, "per_page": 25, "total": 1}}
    assert undeclared_keys(payment, "asaas", "payment") == ["/pixCopiaECola"]
    assert undeclared_keys({"payment": payment}, "asaas", "webhook_payment_event") == [
        "/payment/pixCopiaECola"
    ]
    assert undeclared_keys(listing, "hostinger", "website_list") == ["/data/0/status"]
    assert undeclared_keys({"message": "m", "error": "e"}, "hostinger", "unauthorized") == [
        "/error"
    ]


# -- Asaas ---------------------------------------------------------------------------------------


async def created_read_and_found(
    client: httpx.AsyncClient, kind: str, body: dict[str, Any], query: dict[str, str]
) -> str:
    """Create an Asaas `kind` (customer, payment), read it back and find it by `query`: each
    answer checked both ways, the listing holding exactly it. Its id."""
    path = f"/asaas/v3/{kind}s"
    created = await client.post(path, json=body, headers=ASAAS)
    assert created.status_code == 200, created.text
    check(created.json(), "asaas", kind)
    object_id: str = created.json()["id"]
    check((await client.get(f"{path}/{object_id}", headers=ASAAS)).json(), "asaas", kind)
    listed = await client.get(path, params=query, headers=ASAAS)
    check(listed.json(), "asaas", f"{kind}_list")
    assert [o["id"] for o in listed.json()["data"]] == [object_id]
    return object_id


async def test_asaas_answers_and_webhooks_declare_only_spec_keys(
    client: httpx.AsyncClient, sandbox: Sandbox, deliveries: list[Delivery]
) -> None:
    customer_request = {
        "name": "Maria Souza",
        "cpfCnpj": "529.982.247-25",
        "email": "maria@example.com.br",
        "mobilePhone": "11987654321",
        "externalReference": "lead-1",
    }
    check(customer_request, "asaas", "customer_request")
    customer_id = await created_read_and_found(
        client, "customer", customer_request, {"cpfCnpj": "52998224725"}
    )

    def payment_request(reference: str) -> dict[str, Any]:
        body = {
            "customer": customer_id,
            "billingType": "PIX",
            "value": 129.9,
            "dueDate": "2026-03-13",
            "description": "Site institucional",
            "externalReference": reference,
        }
        check(body, "asaas", "payment_request")
        return body

    paid_id = await created_read_and_found(
        client, "payment", payment_request("j-1:1"), {"externalReference": "j-1:1"}
    )
    qr = await client.get(f"/asaas/v3/payments/{paid_id}/pixQrCode", headers=ASAAS)
    check(qr.json(), "asaas", "pix_qr_code")
    confirmed = await client.post(f"/asaas/v3/sandbox/payment/{paid_id}/confirm", headers=ASAAS)
    check(confirmed.json(), "asaas", "payment")
    assert confirmed.json()["status"] == "RECEIVED"

    late = await client.post("/asaas/v3/payments", json=payment_request("j-2:1"), headers=ASAAS)
    late_id = late.json()["id"]
    overdue = await client.post(f"/asaas/v3/sandbox/payment/{late_id}/overdue", headers=ASAAS)
    check(overdue.json(), "asaas", "payment")

    await client.put("/__sandbox__/asaas/pix-hold", json={"enabled": True})
    held = await client.post("/asaas/v3/payments", json=payment_request("j-3:1"), headers=ASAAS)
    held_id = held.json()["id"]
    on_hold = await client.post(f"/asaas/v3/sandbox/payment/{held_id}/confirm", headers=ASAAS)
    check(on_hold.json(), "asaas", "payment")
    assert on_hold.json()["status"] == "CONFIRMED"
    released = await client.post(f"/asaas/v3/sandbox/payment/{held_id}/confirm", headers=ASAAS)
    check(released.json(), "asaas", "payment")

    events = []
    for delivery in deliveries:
        assert (delivery.vendor, delivery.url) == ("asaas", HOOK)
        body = json.loads(delivery.body)
        check(body, "asaas", "webhook_payment_event")
        token = delivery.headers["asaas-access-token"]
        assert token == asaas.DEFAULT_CREDENTIALS["webhook_auth_token"]
        events.append((body["payment"]["id"], body["event"]))
    assert events == [
        (paid_id, "PAYMENT_CREATED"),
        (paid_id, "PAYMENT_RECEIVED"),
        (late_id, "PAYMENT_CREATED"),
        (late_id, "PAYMENT_OVERDUE"),
        (held_id, "PAYMENT_CREATED"),
        (held_id, "PAYMENT_CONFIRMED"),
        (held_id, "PAYMENT_RECEIVED"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "/asaas/v3/customers", None, {"User-Agent": "t"}, 401),
        ("GET", "/asaas/v3/customers", None, {**ASAAS, "access_token": "$aact_hmlg_x"}, 401),
        ("POST", "/asaas/v3/customers", {"name": "Maria", "cpfCnpj": "123"}, ASAAS, 400),
        ("POST", "/asaas/v3/customers", {"cpfCnpj": "52998224725"}, ASAAS, 400),
        ("POST", "/asaas/v3/payments", {"customer": "cus_000000000001"}, ASAAS, 400),
        ("GET", "/asaas/v3/payments", {"limit": "101"}, ASAAS, 400),
        ("GET", "/asaas/v3/payments/pay_000000000001/pixQrCode", None, ASAAS, 404),
    ],
)
async def test_asaas_errors_declare_only_spec_keys(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    status: int,
) -> None:
    if method == "GET":
        response = await client.get(path, params=body, headers=headers)
    else:
        response = await client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 404:  # Asaas documents no body for an unknown id
        assert response.content == b""
    else:
        check(response.json(), "asaas", "error")


async def test_asaas_throttle_declares_only_spec_keys(client: httpx.AsyncClient) -> None:
    await client.put(
        "/__sandbox__/asaas/limits", json={"requests_per_window": 1, "window_seconds": 600}
    )
    assert (await client.get("/asaas/v3/customers", headers=ASAAS)).status_code == 200
    refused = await client.get("/asaas/v3/customers", headers=ASAAS)
    assert refused.status_code == 429
    check(refused.json(), "asaas", "error")


# -- Hostinger -----------------------------------------------------------------------------------

WEBSITES = "/hostinger/api/hosting/v1/websites"


async def test_hostinger_answers_declare_only_spec_keys(client: httpx.AsyncClient) -> None:
    await client.put(
        "/__sandbox__/hostinger/settings",
        json={"activation_delay_seconds": 0, "activation_polls": 2},
    )
    orders = await client.get(
        "/hostinger/api/hosting/v1/orders", params={"statuses[]": "active"}, headers=HOSTINGER
    )
    check(orders.json(), "hostinger", "hosting_order_list")
    order_id = orders.json()["data"][0]["id"]
    datacenters = await client.get(
        "/hostinger/api/hosting/v1/datacenters", params={"order_id": order_id}, headers=HOSTINGER
    )
    check(datacenters.json(), "hostinger", "datacenters")
    request = {
        "domain": "cliente.com.br",
        "order_id": order_id,
        "datacenter_code": datacenters.json()[0]["code"],
    }
    check(request, "hostinger", "website_request")
    accepted = await client.post(WEBSITES, json=request, headers=HOSTINGER)
    assert accepted.status_code == 200, accepted.text
    check(accepted.json(), "hostinger", "accepted")
    pending = await client.get(WEBSITES, params={"domain": "cliente.com.br"}, headers=HOSTINGER)
    check(pending.json(), "hostinger", "website_list")
    enabled = await client.get(WEBSITES, params={"domain": "cliente.com.br"}, headers=HOSTINGER)
    check(enabled.json(), "hostinger", "website_list")
    assert [w["is_enabled"] for w in enabled.json()["data"]] == [True]

    check(
        (await client.get("/hostinger/api/billing/v1/catalog", headers=HOSTINGER)).json(),
        "hostinger",
        "catalog",
    )
    check(
        (await client.get("/hostinger/api/billing/v1/subscriptions", headers=HOSTINGER)).json(),
        "hostinger",
        "subscriptions",
    )
    purchase = {"items": [{"item_id": "hostingercom-hosting-business-brl-12m", "quantity": 1}]}
    check(purchase, "hostinger", "purchase_request")
    order = await client.post("/hostinger/api/billing/v1/orders", json=purchase, headers=HOSTINGER)
    assert order.status_code == 200, order.text
    check(order.json(), "hostinger", "billing_order")


async def test_hostinger_errors_declare_only_spec_keys(client: httpx.AsyncClient) -> None:
    unauthenticated = await client.get(WEBSITES, headers={"Authorization": "Bearer wrong"})
    assert unauthenticated.status_code == 401
    check(unauthenticated.json(), "hostinger", "unauthorized")
    assert unauthenticated.json()["message"] == "Unauthenticated"

    invalid = await client.post(WEBSITES, json={"domain": "www.cliente.com.br"}, headers=HOSTINGER)
    assert invalid.status_code == 422
    check(invalid.json(), "hostinger", "validation_error")
    assert sorted(invalid.json()["errors"]) == ["domain", "order_id"]

    await client.put("/__sandbox__/hostinger/settings", json={"requests_per_minute": 1})
    await client.get(WEBSITES, headers=HOSTINGER)
    throttled = await client.get(WEBSITES, headers=HOSTINGER)
    assert throttled.status_code == 429
    check(throttled.json(), "hostinger", "error")


HOSTINGER_ROUTES = [
    ("GET", "/hostinger/api/hosting/v1/orders"),
    ("GET", "/hostinger/api/hosting/v1/datacenters"),
    ("GET", "/hostinger/api/hosting/v1/websites"),
    ("POST", "/hostinger/api/hosting/v1/websites"),
    ("GET", "/hostinger/api/billing/v1/catalog"),
    ("GET", "/hostinger/api/billing/v1/subscriptions"),
    ("POST", "/hostinger/api/billing/v1/orders"),
]
ASAAS_ROUTES = [
    ("POST", "/asaas/v3/customers"),
    ("GET", "/asaas/v3/customers"),
    ("GET", "/asaas/v3/customers/cus_000000000001"),
    ("POST", "/asaas/v3/payments"),
    ("GET", "/asaas/v3/payments"),
    ("GET", "/asaas/v3/payments/pay_000000000001"),
    ("GET", "/asaas/v3/payments/pay_000000000001/status"),
    ("GET", "/asaas/v3/payments/pay_000000000001/pixQrCode"),
    ("POST", "/asaas/v3/sandbox/payment/pay_000000000001/confirm"),
    ("POST", "/asaas/v3/sandbox/payment/pay_000000000001/overdue"),
]


@pytest.mark.parametrize(("method", "path"), HOSTINGER_ROUTES)
async def test_every_hostinger_operation_refuses_a_wrong_token_in_hostinger_shape(
    client: httpx.AsyncClient, sandbox: Sandbox, method: str, path: str
) -> None:
    response = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    check(response.json(), "hostinger", "unauthorized")
    assert response.json()["message"] == "Unauthenticated"
    assert "hostinger" not in sandbox.state.counters()


@pytest.mark.parametrize(("method", "path"), ASAAS_ROUTES)
async def test_every_asaas_operation_refuses_a_wrong_key_in_asaas_shape(
    client: httpx.AsyncClient, sandbox: Sandbox, method: str, path: str
) -> None:
    headers = {**ASAAS, "access_token": "$aact_hmlg_wrong"}
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 401
    check(response.json(), "asaas", "error")
    assert [e["code"] for e in response.json()["errors"]] == ["invalid_access_token"]
    assert "asaas" not in sandbox.state.counters()
