"""The Hostinger client against respx: website activation, its polling, billing, and errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from blocks.errors import (
    AuthenticationError,
    PermanentError,
    UnknownOutcomeError,
)
from blocks.hostinger import (
    CreatedWebsite,
    HostingerClient,
    HostingerCredentials,
    NewWebsite,
    PurchasesDisabledError,
    hostinger_error,
)
from blocks.http import HttpPolicy, RateLimit
from tests.blocks.conftest import RecordedSleeps
from tests.contracts import assert_matches

BASE = "https://developers.hostinger.com"
TOKEN = "hst_0123456789abcdefABCDEF0123456789abcdef"
CORRELATION = "26a91bd9-f8c8-4a83-9df9-83e23d696fe3"
ORDER = {
    "id": 12345,
    "client_id": 67890,
    "subscription_id": "Azz353Uhl1xC54pR0",
    "created_at": "2026-10-08T12:00:00+00:00",
    "plan": {"name": "Business Web Hosting"},
    "status": "active",
}


def website(domain: str = "cliente.com.br", *, enabled: bool = True) -> dict[str, Any]:
    return {
        "domain": domain,
        "vhost_type": "addon",
        "is_enabled": enabled,
        "username": "u123456789",
        "client_id": 67890,
        "order_id": 12345,
        "created_at": "2026-11-28T10:30:00+00:00",
        "root_directory": f"/home/u123456789/domains/{domain}/public_html",
        "parent_domain": None,
        "website_type": "other",
        "horizons_uuid": None,
    }


def listing(*items: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    body = {
        "data": list(items),
        "meta": {
            "current_page": 1,
            "per_page": 100,
            "total": len(items) if total is None else total,
        },
    }
    return body


def websites(*items: dict[str, Any]) -> httpx.Response:
    body = listing(*items)
    assert_matches(body, "hostinger", "client_website_list")
    return httpx.Response(200, json=body)


def hostinger_failure(
    status: int, message: str, errors: dict[str, list[str]] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"message": message, "correlation_id": CORRELATION}
    if errors is not None:
        body["errors"] = errors
    assert_matches(body, "hostinger", "client_error")
    return httpx.Response(status, json=body)


def client_for(
    credentials: HostingerCredentials, policy: HttpPolicy, sleeps: RecordedSleeps
) -> HostingerClient:
    bucket = RateLimit(60, 60, 10, clock=sleeps.clock, sleep=sleeps.sleep)
    return credentials.get_client(policy=policy, rate_limit=bucket)


@pytest.fixture
async def hostinger(policy: HttpPolicy, sleeps: RecordedSleeps) -> AsyncIterator[HostingerClient]:
    async with client_for(HostingerCredentials(api_token=TOKEN), policy, sleeps) as client:
        yield client


@pytest.fixture
async def buyer(policy: HttpPolicy, sleeps: RecordedSleeps) -> AsyncIterator[HostingerClient]:
    credentials = HostingerCredentials(api_token=TOKEN, allow_purchases=True)
    async with client_for(credentials, policy, sleeps) as client:
        yield client


# ------------------------------------------------------------------------------------ hosting


async def test_requests_carry_the_api_token_as_bearer(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    route = mock.get("/api/hosting/v1/websites").mock(return_value=websites())
    await hostinger.list_websites()
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


def sent_query(params: httpx.QueryParams) -> dict[str, Any]:
    """The query as the contract schema sees it: `name[]` keys hold every value sent."""
    return {k: params.get_list(k) if k.endswith("[]") else params[k] for k in params}


async def test_list_hosting_orders_filters_by_status_in_laravel_array_form(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    body = listing(ORDER)
    assert_matches(body, "hostinger", "client_hosting_order_list")
    route = mock.get("/api/hosting/v1/orders").respond(200, json=body)
    orders = await hostinger.list_hosting_orders(statuses=["active"], order_ids=[12345])
    params = route.calls.last.request.url.params
    assert_matches(sent_query(params), "hostinger", "client_hosting_order_query")
    assert params.get_list("statuses[]") == ["active"]
    assert params.get_list("order_ids[]") == ["12345"]
    assert [(o.id, o.status, o.plan_name) for o in orders.data] == [
        (12345, "active", "Business Web Hosting")
    ]


async def test_list_datacenters_asks_for_the_order(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    body = [
        {
            "title": "Brazil",
            "code": "br-sao-1",
            "coordinates": {"latitude": -23.5, "longitude": -46.6},
        }
    ]
    assert_matches(body, "hostinger", "client_datacenters")
    route = mock.get("/api/hosting/v1/datacenters").respond(200, json=body)
    centres = await hostinger.list_datacenters(12345)
    assert route.calls.last.request.url.params["order_id"] == "12345"
    assert [c.code for c in centres] == ["br-sao-1"]


async def test_create_website_posts_domain_and_order_and_returns_the_acknowledgement(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    accepted = {"message": "Request accepted"}
    assert_matches(accepted, "hostinger", "client_accepted")
    route = mock.post("/api/hosting/v1/websites").respond(200, json=accepted)
    answer = await hostinger.create_website(
        NewWebsite(domain="Cliente.com.br.", order_id=12345, datacenter_code="br-sao-1")
    )
    body = json.loads(route.calls.last.request.content)
    assert_matches(body, "hostinger", "client_website_request")
    assert body == {"domain": "cliente.com.br", "order_id": 12345, "datacenter_code": "br-sao-1"}
    assert answer == CreatedWebsite(id="cliente.com.br", order_id=12345, message="Request accepted")
    assert answer.domain == "cliente.com.br"


def test_a_website_domain_cannot_start_with_www() -> None:
    with pytest.raises(ValueError, match="www"):
        NewWebsite(domain="www.cliente.com.br", order_id=12345)


async def test_a_domain_that_already_has_a_website_is_permanent_with_the_field_messages(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    mock.post("/api/hosting/v1/websites").mock(
        return_value=hostinger_failure(
            422,
            "The domain has already been taken.",
            {"domain": ["The domain has already been taken."]},
        )
    )
    with pytest.raises(PermanentError) as raised:
        await hostinger.create_website(NewWebsite(domain="cliente.com.br", order_id=12345))
    error = raised.value
    assert type(error) is PermanentError
    assert error.status == 422
    assert "domain: The domain has already been taken." in error.message
    assert CORRELATION in error.message
    assert error.details["errors"] == {"domain": ["The domain has already been taken."]}


async def test_a_lost_answer_to_create_website_is_an_unknown_outcome_sent_once(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    route = mock.post("/api/hosting/v1/websites").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UnknownOutcomeError):
        await hostinger.create_website(NewWebsite(domain="cliente.com.br", order_id=12345))
    assert route.call_count == 1


async def test_list_websites_filters_by_domain_and_order(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    route = mock.get("/api/hosting/v1/websites").mock(return_value=websites(website()))
    page = await hostinger.list_websites(domain="cliente.com.br", order_id=12345, is_enabled=True)
    params = route.calls.last.request.url.params
    assert_matches(sent_query(params), "hostinger", "client_website_query")
    assert params["domain"] == "cliente.com.br"
    assert params["order_id"] == "12345"
    assert params["is_enabled"] == "true"
    assert page.data[0].is_enabled
    assert page.meta.total == 1


async def test_find_by_reference_ignores_longer_domains_the_substring_filter_returns(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    mock.get("/api/hosting/v1/websites").mock(
        return_value=websites(website("loja.cliente.com.br"), website("cliente.com.br"))
    )
    found = await hostinger.find_by_reference("CLIENTE.com.br")
    assert found is not None
    assert found.domain == "cliente.com.br"


async def test_find_by_reference_reads_the_next_page_when_the_first_holds_only_longer_domains(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    longer = [website(f"s{n}.cliente.com.br") for n in range(100)]
    first = listing(*longer, total=101)
    second = listing(website("cliente.com.br"), total=101)
    second["meta"] = {**second["meta"], "current_page": 2}
    for body in (first, second):
        assert_matches(body, "hostinger", "client_website_list")
    route = mock.get("/api/hosting/v1/websites").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)]
    )
    found = await hostinger.find_by_reference("cliente.com.br", order_id=12345)
    assert found is not None
    assert found.domain == "cliente.com.br"
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2"]
    assert {c.request.url.params["order_id"] for c in route.calls} == {"12345"}


async def test_find_by_reference_returns_none_for_an_unknown_domain(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    mock.get("/api/hosting/v1/websites").mock(return_value=websites(website("loja.cliente.com.br")))
    assert await hostinger.find_by_reference("cliente.com.br") is None


async def test_find_by_reference_reports_a_listed_site_as_not_yet_enabled_without_polling(
    mock: respx.MockRouter, hostinger: HostingerClient, sleeps: RecordedSleeps
) -> None:
    route = mock.get("/api/hosting/v1/websites").mock(return_value=websites(website(enabled=False)))
    site = await hostinger.find_by_reference("cliente.com.br")
    assert site is not None
    assert not site.is_enabled
    assert route.call_count == 1
    assert sleeps.waits == []


# ------------------------------------------------------------------------------------ billing


async def test_get_catalog_returns_items_with_their_price_ids(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    body = [
        {
            "id": "hostingercom-hosting-business",
            "name": "Business Web Hosting",
            "category": "HOSTING",
            "metadata": None,
            "prices": [
                {
                    "id": "hostingercom-hosting-business-brl-12m",
                    "name": "Business 12 months",
                    "currency": "BRL",
                    "price": 35988,
                    "first_period_price": 16788,
                    "period": 12,
                    "period_unit": "month",
                }
            ],
        }
    ]
    assert_matches(body, "hostinger", "client_catalog")
    route = mock.get("/api/billing/v1/catalog").respond(200, json=body)
    items = await hostinger.get_catalog(category="VPS")
    assert route.calls.last.request.url.params["category"] == "VPS"
    assert items[0].prices[0].id == "hostingercom-hosting-business-brl-12m"
    assert items[0].prices[0].price == 35988


async def test_a_catalog_category_the_spec_does_not_list_is_refused_before_sending(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    route = mock.get("/api/billing/v1/catalog").respond(200, json=[])
    with pytest.raises(ValueError, match="DOMAIN, VPS, EMAIL"):
        await hostinger.get_catalog(category="HOSTING")  # type: ignore[arg-type]
    assert route.call_count == 0


def test_the_catalog_docstring_example_uses_a_category_the_spec_lists() -> None:
    doc = HostingerClient.get_catalog.__doc__ or ""
    assert 'category="VPS"' in doc
    assert "HOSTING" not in doc


async def test_list_subscriptions_returns_the_accounts_subscriptions(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    body = [
        {
            "id": "Azz353Uhl1xC54pR0",
            "name": "Business Web Hosting",
            "status": "active",
            "billing_period": 12,
            "billing_period_unit": "month",
            "currency_code": "BRL",
            "total_price": 16788,
            "renewal_price": 35988,
            "is_auto_renewed": True,
            "created_at": "2026-10-08T12:00:00Z",
            "expires_at": "2027-10-08T12:00:00Z",
            "next_billing_at": None,
        }
    ]
    assert_matches(body, "hostinger", "client_subscriptions")
    mock.get("/api/billing/v1/subscriptions").respond(200, json=body)
    subscriptions = await hostinger.list_subscriptions()
    assert [(s.id, s.status) for s in subscriptions] == [("Azz353Uhl1xC54pR0", "active")]


def subscription(
    sub_id: str, created_at: str, name: str = "Business Web Hosting"
) -> dict[str, Any]:
    body = {"id": sub_id, "name": name, "status": "active", "created_at": created_at}
    assert_matches([body], "hostinger", "client_subscriptions")
    return body


async def test_a_purchase_whose_answer_was_lost_is_found_among_subscriptions_since_it(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    mock.get("/api/billing/v1/subscriptions").respond(
        200,
        json=[
            subscription("AzzNew2", "2026-11-28T12:00:09Z"),
            subscription("AzzOld", "2026-10-08T12:00:00Z"),
            subscription("AzzVps", "2026-11-28T12:00:05Z", name="KVM 2"),
            subscription("AzzNew1", "2026-11-28T12:00:03+00:00"),
        ],
    )
    before_buying = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    found = await hostinger.find_subscriptions_created_since(
        before_buying, name="Business Web Hosting"
    )
    assert [s.id for s in found] == ["AzzNew1", "AzzNew2"]


async def test_no_subscription_since_the_purchase_means_it_was_not_placed(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    mock.get("/api/billing/v1/subscriptions").respond(
        200, json=[subscription("AzzOld", "2026-10-08T12:00:00Z")]
    )
    since = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert await hostinger.find_subscriptions_created_since(since) == []


async def test_purchase_without_allow_purchases_sends_nothing(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    route = mock.post("/api/billing/v1/orders")
    with pytest.raises(PurchasesDisabledError):
        await hostinger.purchase("hostingercom-hosting-business-brl-12m")
    assert not route.called


async def test_purchase_posts_the_price_item_and_returns_the_order(
    mock: respx.MockRouter, buyer: HostingerClient
) -> None:
    order = {
        "id": 2957086,
        "subscription_id": "Azz353Uhl1xC54pR0",
        "status": "completed",
        "currency": "BRL",
        "subtotal": 16788,
        "total": 16788,
        "created_at": "2026-11-28T11:54:22Z",
        "updated_at": "2026-11-28T11:54:22Z",
    }
    assert_matches(order, "hostinger", "client_billing_order")
    route = mock.post("/api/billing/v1/orders").respond(200, json=order)
    placed = await buyer.purchase("hostingercom-hosting-business-brl-12m", payment_method_id=7)
    body = json.loads(route.calls.last.request.content)
    assert_matches(body, "hostinger", "client_purchase_request")
    assert body == {
        "items": [{"item_id": "hostingercom-hosting-business-brl-12m", "quantity": 1}],
        "payment_method_id": 7,
    }
    assert (placed.id, placed.status, placed.subscription_id) == (
        2957086,
        "completed",
        "Azz353Uhl1xC54pR0",
    )


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(500, json={"message": "Error message", "correlation_id": CORRELATION}),
        httpx.Response(503, text="Service Unavailable"),
    ],
    ids=["read-timeout", "dropped", "500", "503"],
)
async def test_a_purchase_without_an_answer_is_never_retried(
    mock: respx.MockRouter, buyer: HostingerClient, failure: Any
) -> None:
    route = mock.post("/api/billing/v1/orders").mock(side_effect=[failure])
    with pytest.raises(UnknownOutcomeError):
        await buyer.purchase("hostingercom-hosting-business-brl-12m")
    assert route.call_count == 1


# -------------------------------------------------------------------------------- the errors


async def test_an_invalid_token_raises_authentication_error(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    mock.get("/api/billing/v1/subscriptions").mock(
        return_value=hostinger_failure(401, "Unauthenticated")
    )
    with pytest.raises(AuthenticationError) as raised:
        await hostinger.list_subscriptions()
    assert raised.value.message.startswith("Unauthenticated")


async def test_a_read_is_retried_through_a_server_error(
    mock: respx.MockRouter, hostinger: HostingerClient
) -> None:
    route = mock.get("/api/hosting/v1/websites").mock(
        side_effect=[hostinger_failure(500, "Error message"), websites(website())]
    )
    page = await hostinger.list_websites(domain="cliente.com.br")
    assert route.call_count == 2
    assert page.data[0].domain == "cliente.com.br"


def test_the_error_parser_gathers_field_messages_and_the_correlation_id() -> None:
    response = hostinger_failure(
        422, "The name field is required. (and 1 more error)", {"name": ["required"], "x": ["bad"]}
    )
    assert hostinger_error(response) == (
        None,
        "The name field is required. (and 1 more error) [name: required; x: bad] "
        f"(correlation_id {CORRELATION})",
    )


# --------------------------------------------------------------------------------- the Block


def test_the_block_keeps_the_token_secret_and_purchases_off_by_default() -> None:
    block = HostingerCredentials(api_token=TOKEN)
    assert TOKEN not in repr(block) + str(block.model_dump())
    assert block.allow_purchases is False
    assert block.base_url == "https://developers.hostinger.com"
