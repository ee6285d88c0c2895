"""The Hostinger emulator activates a client's website the way the published API does.

Requests and answers are checked against trimmed copies of Hostinger's official OpenAPI
(tests/contracts/hostinger/). Activation is asynchronous at Hostinger; here it completes by a
clock the tests move, or after a set number of polls, so no test waits or measures time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.server import RunningSandbox
from sandbox.vendors import hostinger
from tests.contracts import assert_matches
from tests.sandbox.conftest import in_process

TOKEN = hostinger.DEFAULT_CREDENTIALS["api_token"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBSITES = "/api/hosting/v1/websites"
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(sandbox: Sandbox) -> Clock:
    return Clock()


@pytest.fixture
async def client(sandbox: Sandbox, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sandbox)
    sandbox.emulators["hostinger"].clock = clock
    async with in_process(app, "/hostinger", headers=AUTH) as client:
        yield client


async def order_ids(client: httpx.AsyncClient) -> list[int]:
    response = await client.get("/api/hosting/v1/orders")
    return [order["id"] for order in response.json()["data"]]


def website_body(order_id: int, domain: str = "cliente.com.br", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"domain": domain, "order_id": order_id, **extra}
    assert_matches(body, "hostinger", "website_request")
    return body


async def create_website(
    client: httpx.AsyncClient, domain: str = "cliente.com.br", datacenter: str | None = "br-sao"
) -> int:
    order_id = (await order_ids(client))[0]
    extra = {"datacenter_code": datacenter} if datacenter else {}
    response = await client.post(WEBSITES, json=website_body(order_id, domain, **extra))
    assert response.status_code == 200, response.text
    return order_id


async def website(client: httpx.AsyncClient, domain: str) -> dict[str, Any]:
    response = await client.get(WEBSITES, params={"domain": domain})
    assert_matches(response.json(), "hostinger", "website_list")
    [found] = [w for w in response.json()["data"] if w["domain"] == domain]
    return found


def assert_validation(response: httpx.Response, *fields: str) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    assert_matches(response.json(), "hostinger", "validation_error")
    assert sorted(response.json()["errors"]) == sorted(fields)
    return response.json()["errors"]


# -- hosting orders and datacenters -----------------------------------------------------------


async def test_agency_owns_active_hosting_orders(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/hosting/v1/orders", params={"statuses[]": "active"})
    assert response.status_code == 200
    assert_matches(response.json(), "hostinger", "hosting_order_list")
    assert len(response.json()["data"]) == 2
    assert response.json()["meta"] == {"current_page": 1, "per_page": 25, "total": 2}


async def test_orders_filter_by_order_ids(client: httpx.AsyncClient) -> None:
    first, _ = await order_ids(client)
    response = await client.get("/api/hosting/v1/orders", params={"order_ids[]": first})
    assert [o["id"] for o in response.json()["data"]] == [first]


async def test_orders_with_unknown_status_filter_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/hosting/v1/orders", params={"statuses[]": "paid"})
    assert_validation(response, "statuses.0")


async def test_datacenters_for_an_order(client: httpx.AsyncClient) -> None:
    order_id = (await order_ids(client))[0]
    response = await client.get("/api/hosting/v1/datacenters", params={"order_id": order_id})
    assert response.status_code == 200
    assert_matches(response.json(), "hostinger", "datacenters")
    assert "br-sao" in [d["code"] for d in response.json()]


@pytest.mark.parametrize("params", [{}, {"order_id": "abc"}, {"order_id": 999}])
async def test_datacenters_need_a_known_order(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/api/hosting/v1/datacenters", params=params)
    assert_validation(response, "order_id")


# -- creating a website -----------------------------------------------------------------------


async def test_create_website_answers_request_accepted(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    order_id = (await order_ids(client))[0]
    body = website_body(order_id, datacenter_code="br-sao")
    response = await client.post(WEBSITES, json=body)
    assert response.status_code == 200
    assert_matches(response.json(), "hostinger", "accepted")
    assert response.json() == {"message": "Request accepted"}
    assert sandbox.state.counters()["hostinger"] == {"website": 1}


async def test_new_website_is_listed_disabled_until_the_job_finishes(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    order_id = await create_website(client)
    pending = await website(client, "cliente.com.br")
    assert (pending["is_enabled"], pending["order_id"]) == (False, order_id)
    clock.advance(0.5)
    assert (await website(client, "cliente.com.br"))["is_enabled"] is True


async def test_activation_can_complete_on_the_nth_poll(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    settings = {"activation_delay_seconds": 0, "activation_polls": 3}
    await client.put("http://sandbox/__sandbox__/hostinger/settings", json=settings)
    await create_website(client)
    polls = [(await website(client, "cliente.com.br"))["is_enabled"] for _ in range(4)]
    assert polls == [False, False, True, True]


async def test_admin_can_finish_every_pending_activation(client: httpx.AsyncClient) -> None:
    await create_website(client)
    response = await client.post("http://sandbox/__sandbox__/hostinger/websites/complete")
    assert response.json() == {"enabled": ["cliente.com.br"]}
    assert (await website(client, "cliente.com.br"))["is_enabled"] is True


async def test_website_job_state_is_readable_in_the_admin_state_dump(
    client: httpx.AsyncClient,
) -> None:
    await create_website(client)
    response = await client.get("http://sandbox/__sandbox__/state")
    assert response.status_code == 200
    assert response.json()["hostinger"]["websites"]["cliente.com.br"]["is_enabled"] is False
    assert response.json()["hostinger"]["jobs"]["cliente.com.br"]["datacenter"] == "br-sao"


async def test_admin_settings_are_kept_typed_in_the_state(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    settings = {"activation_delay_seconds": 2, "activation_polls": 3, "requests_per_minute": 50}
    await client.put("http://sandbox/__sandbox__/hostinger/settings", json=settings)
    state = sandbox.state.bucket("hostinger", hostinger.HostingerState)
    assert state.settings == hostinger.HostingerSettings(2, 3, 50)


async def test_a_reset_returns_the_settings_to_their_defaults(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await client.put("http://sandbox/__sandbox__/hostinger/settings", json={"activation_polls": 3})
    await client.post("http://sandbox/__sandbox__/reset")
    assert sandbox.emulators["hostinger"].settings == hostinger.HostingerSettings()


async def test_hosting_times_are_utc_with_an_offset_and_billing_times_end_in_z(
    client: httpx.AsyncClient,
) -> None:
    """As the spec's examples write them: `2024-01-15T10:30:00+00:00` vs `...T11:54:22Z`."""
    await create_website(client)
    created = (await website(client, "cliente.com.br"))["created_at"]
    assert created == "2026-03-10T12:00:00+00:00"
    order = (await client.get("/api/hosting/v1/orders")).json()["data"][0]
    assert order["created_at"].endswith("+00:00")
    subscription = (await client.get("/api/billing/v1/subscriptions")).json()[0]
    assert subscription["created_at"].endswith("Z")


async def test_second_create_for_the_same_domain_is_422(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    order_id = await create_website(client)
    response = await client.post(WEBSITES, json=website_body(order_id, "CLIENTE.com.br"))
    errors = assert_validation(response, "domain")
    assert errors["domain"] == ["The domain has already been taken."]
    assert sandbox.state.counters()["hostinger"] == {"website": 1}


async def test_first_website_on_a_plan_needs_a_datacenter(client: httpx.AsyncClient) -> None:
    order_id = (await order_ids(client))[0]
    response = await client.post(WEBSITES, json=website_body(order_id))
    assert_validation(response, "datacenter_code")


async def test_later_websites_on_a_plan_need_no_datacenter_and_are_addons(
    client: httpx.AsyncClient,
) -> None:
    order_id = await create_website(client, "cliente.com.br")
    response = await client.post(WEBSITES, json=website_body(order_id, "outro-cliente.com.br"))
    assert response.status_code == 200
    assert (await website(client, "cliente.com.br"))["vhost_type"] == "main"
    assert (await website(client, "outro-cliente.com.br"))["vhost_type"] == "addon"


async def test_missing_fields_are_all_named_with_laravel_summary(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(WEBSITES, json={})
    assert_validation(response, "domain", "order_id")
    assert response.json()["message"] == "The domain field is required. (and 1 more error)"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domain": "www.cliente.com.br"}, "domain"),
        ({"domain": "cliente"}, "domain"),
        ({"domain": "cli ente.com.br"}, "domain"),
        ({"order_id": "12345"}, "order_id"),
        ({"order_id": 999}, "order_id"),
        ({"datacenter_code": "mars-1"}, "datacenter_code"),
    ],
)
async def test_invalid_website_field_is_refused(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    order_id = (await order_ids(client))[0]
    request = {"domain": "cliente.com.br", "order_id": order_id, "datacenter_code": "br-sao"}
    request.update(body)
    assert_validation(await client.post(WEBSITES, json=request), field)


async def test_unparsable_body_reads_as_missing_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        WEBSITES, content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert_validation(response, "domain", "order_id")


# -- listing websites -------------------------------------------------------------------------


async def test_domain_filter_is_a_case_insensitive_substring(client: httpx.AsyncClient) -> None:
    order_id = await create_website(client, "padaria-joao.com.br")
    await client.post(WEBSITES, json=website_body(order_id, "oficina.com.br"))
    response = await client.get(WEBSITES, params={"domain": "JOAO"})
    assert [w["domain"] for w in response.json()["data"]] == ["padaria-joao.com.br"]


async def test_is_enabled_filter(client: httpx.AsyncClient, clock: Clock) -> None:
    order_id = await create_website(client, "antigo.com.br")
    clock.advance(1)
    await client.post(WEBSITES, json=website_body(order_id, "novo.com.br"))
    response = await client.get(WEBSITES, params={"is_enabled": "true"})
    assert [w["domain"] for w in response.json()["data"]] == ["antigo.com.br"]


async def test_new_website_is_an_empty_other_site_and_website_types_filters_by_it(
    client: httpx.AsyncClient,
) -> None:
    await create_website(client)
    others = await client.get(WEBSITES, params={"website_types": "wordpress,other"})
    wordpress = await client.get(WEBSITES, params={"website_types": "wordpress"})
    assert [w["website_type"] for w in others.json()["data"]] == ["other"]
    assert wordpress.json()["data"] == []
    assert_validation(
        await client.get(WEBSITES, params={"website_types": "joomla"}), "website_types"
    )


async def test_websites_paginate_with_meta(client: httpx.AsyncClient) -> None:
    order_id = await create_website(client, "site0.com.br")
    for n in range(1, 3):
        await client.post(WEBSITES, json=website_body(order_id, f"site{n}.com.br"))
    response = await client.get(WEBSITES, params={"page": 2, "per_page": 2})
    assert_matches(response.json(), "hostinger", "website_list")
    assert [w["domain"] for w in response.json()["data"]] == ["site2.com.br"]
    assert response.json()["meta"] == {"current_page": 2, "per_page": 2, "total": 3}


@pytest.mark.parametrize(
    ("params", "field"), [({"per_page": 101}, "per_page"), ({"page": 0}, "page")]
)
async def test_pagination_out_of_bounds_is_refused(
    client: httpx.AsyncClient, params: dict[str, int], field: str
) -> None:
    assert_validation(await client.get(WEBSITES, params=params), field)


# -- auth and limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
async def test_missing_or_wrong_bearer_token_is_401(
    sandbox: Sandbox, headers: dict[str, str]
) -> None:
    async with in_process(create_app(sandbox)) as anonymous:
        response = await anonymous.get(f"/hostinger{WEBSITES}", headers=headers)
    assert response.status_code == 401
    assert_matches(response.json(), "hostinger", "unauthorized")
    assert response.json()["message"] == "Unauthenticated"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/hosting/v1/no_such_thing", 404), ("DELETE", WEBSITES, 405)],
)
async def test_unrouted_call_answers_hostinger_error_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert_matches(response.json(), "hostinger", "error")


async def test_spent_request_quota_answers_429_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    await client.put(
        "http://sandbox/__sandbox__/hostinger/settings", json={"requests_per_minute": 1}
    )
    first = await client.get(WEBSITES)
    assert first.headers["X-RateLimit-Remaining"] == "0"
    response = await client.get(WEBSITES)
    assert response.status_code == 429
    assert_matches(response.json(), "hostinger", "error")
    assert int(response.headers["Retry-After"]) > 0


async def test_injected_server_error_has_hostinger_error_shape(
    client: httpx.AsyncClient,
) -> None:
    faults = {"error_rate": 1.0, "error_statuses": [500]}
    await client.put("http://sandbox/__sandbox__/faults/hostinger", json=faults)
    response = await client.get(WEBSITES)
    assert response.status_code == 500
    assert_matches(response.json(), "hostinger", "error")


# -- billing ----------------------------------------------------------------------------------


async def test_catalog_lists_price_items(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/billing/v1/catalog")
    assert response.status_code == 200
    assert_matches(response.json(), "hostinger", "catalog")
    assert "hostingercom-hosting-business" in [item["id"] for item in response.json()]


async def test_catalog_filters_by_category_and_wildcard_name(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/billing/v1/catalog", params={"category": "DOMAIN", "name": ".COM*"}
    )
    assert [item["name"] for item in response.json()] == [".COM.BR"]


async def test_catalog_with_unknown_category_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/billing/v1/catalog", params={"category": "CARS"})
    assert_validation(response, "category")


async def test_subscriptions_show_the_plans_already_owned(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/billing/v1/subscriptions")
    assert_matches(response.json(), "hostinger", "subscriptions")
    owned = {
        order["subscription_id"]
        for order in (await client.get("/api/hosting/v1/orders")).json()["data"]
    }
    assert owned <= {subscription["id"] for subscription in response.json()}


async def test_purchase_costs_money_and_is_counted(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = {"items": [{"item_id": "hostingercom-vps-kvm2-brl-1m", "quantity": 2}]}
    assert_matches(body, "hostinger", "purchase_request")
    response = await client.post("/api/billing/v1/orders", json=body)
    assert response.status_code == 200
    assert_matches(response.json(), "hostinger", "billing_order")
    assert response.json()["total"] == 2 * 4_999
    spending = await client.get("http://sandbox/__sandbox__/hostinger/spending")
    assert spending.json() == {"spent_cents": 9_998, "orders": 1}
    assert sandbox.state.counters()["hostinger"] == {"billing_order": 1}


async def test_buying_a_hosting_plan_adds_a_hosting_order(client: httpx.AsyncClient) -> None:
    before = await order_ids(client)
    body = {"items": [{"item_id": "hostingercom-hosting-business-brl-12m"}]}
    bought = (await client.post("/api/billing/v1/orders", json=body)).json()
    orders = (await client.get("/api/hosting/v1/orders")).json()["data"]
    [new] = [o for o in orders if o["id"] not in before]
    assert new["subscription_id"] == bought["subscription_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "items"),
        ({"items": [{"item_id": "hostingercom-nope"}]}, "items.0.item_id"),
        (
            {"items": [{"item_id": "hostingercom-vps-kvm2-brl-1m", "quantity": 0}]},
            "items.0.quantity",
        ),
    ],
)
async def test_invalid_purchase_is_refused_and_costs_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox, body: dict[str, Any], field: str
) -> None:
    assert_validation(await client.post("/api/billing/v1/orders", json=body), field)
    spending = await client.get("http://sandbox/__sandbox__/hostinger/spending")
    assert spending.json() == {"spent_cents": 0, "orders": 0}


# -- concurrency and the real server -----------------------------------------------------------


async def test_fifty_concurrent_creates_and_searches_lose_and_duplicate_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    order_id = await create_website(client, "primeiro.com.br")

    async def create_then_find(n: int) -> list[str]:
        domain = f"cliente-{n}.com.br"
        created = await client.post(WEBSITES, json=website_body(order_id, domain))
        assert created.status_code == 200
        found = await client.get(WEBSITES, params={"domain": domain, "order_id": order_id})
        return [w["domain"] for w in found.json()["data"]]

    results = await asyncio.gather(*(create_then_find(n) for n in range(50)))
    assert results == [[f"cliente-{n}.com.br"] for n in range(50)]
    listing = await client.get(WEBSITES, params={"per_page": 100})
    assert listing.json()["meta"]["total"] == 51
    assert sandbox.state.counters()["hostinger"] == {"website": 51}


async def test_fifty_concurrent_creates_of_one_domain_accept_exactly_one(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    order_id = (await order_ids(client))[0]
    body = website_body(order_id, "disputado.com.br", datacenter_code="br-sao")
    responses = await asyncio.gather(*(client.post(WEBSITES, json=body) for _ in range(50)))
    assert sorted(r.status_code for r in responses) == [200] + [422] * 49
    assert sandbox.state.counters()["hostinger"] == {"website": 1}


def test_served_sandbox_activates_a_website_over_http(served: RunningSandbox) -> None:
    served.sandbox.emulators["hostinger"].clock = Clock()
    token = served.credentials["hostinger"]["api_token"]
    with httpx.Client(
        base_url=served.base_urls["hostinger"], headers={"Authorization": f"Bearer {token}"}
    ) as http:
        order_id = http.get("/api/hosting/v1/orders").json()["data"][0]["id"]
        body = website_body(order_id, "cliente.com.br", datacenter_code="br-sao")
        assert http.post(WEBSITES, json=body).json() == {"message": "Request accepted"}
        before = http.get(WEBSITES, params={"domain": "cliente.com.br"}).json()
        served.sandbox.emulators["hostinger"].clock.advance(1)
        after = http.get(WEBSITES, params={"domain": "cliente.com.br"}).json()
    assert [w["is_enabled"] for w in before["data"] + after["data"]] == [False, True]
    assert_matches(after, "hostinger", "website_list")
