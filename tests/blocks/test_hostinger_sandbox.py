"""The Hostinger client against the in-process sandbox: activation, polling, purchases, faults.

The sandbox builds a website asynchronously (enabled about half a second after the create), so
the activation tests poll with real sleeps at a short interval; fault tests use the admin API
and the outage-ending sleep of tests/blocks/conftest.py.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from blocks.errors import PermanentError, UnknownOutcomeError
from blocks.hostinger import (
    CreatedWebsite,
    HostingerClient,
    HostingerCredentials,
    NewWebsite,
    PurchasesDisabledError,
)
from blocks.http import HttpPolicy
from tests.blocks.conftest import VendorSandbox, saved_and_checked_by_the_cli

VENDOR = "hostinger"
ITEM = "hostingercom-hosting-business-brl-12m"


@pytest.fixture
def hostinger(vendor_client: Any) -> HostingerClient:
    assert isinstance(vendor_client, HostingerClient)
    return vendor_client


def new_domain() -> str:
    return f"cliente-{uuid.uuid4().hex[:10]}.com.br"


async def active_order(hostinger: HostingerClient) -> int:
    orders = await hostinger.list_hosting_orders(statuses=["active"])
    return orders.data[0].id


async def spending(sandbox: VendorSandbox) -> dict[str, int]:
    async with httpx.AsyncClient() as admin:
        response = await admin.get(f"{sandbox.admin}/{VENDOR}/spending")
        return response.raise_for_status().json()


async def new_website(hostinger: HostingerClient, order_id: int, domain: str) -> NewWebsite:
    centres = await hostinger.list_datacenters(order_id)
    return NewWebsite(domain=domain, order_id=order_id, datacenter_code=centres[0].code)


async def test_a_created_website_is_found_by_its_domain_and_read_again_once_enabled(
    hostinger: HostingerClient, sandbox: VendorSandbox
) -> None:
    """The journey's `activating` step: create, then read it again whenever `due_at` comes."""
    order_id, domain = await active_order(hostinger), new_domain()
    created = await hostinger.create_website(await new_website(hostinger, order_id, domain))
    assert created == CreatedWebsite(id=domain, order_id=order_id, message="Request accepted")
    listed = await hostinger.find_by_reference(domain, order_id=order_id)
    assert listed is not None
    assert not listed.is_enabled
    async with httpx.AsyncClient() as admin:
        (await admin.post(f"{sandbox.admin}/{VENDOR}/websites/complete")).raise_for_status()
    site = await hostinger.find_by_reference(domain, order_id=order_id)
    assert site is not None
    assert site.domain == domain
    assert site.is_enabled
    assert site.order_id == order_id


async def test_a_domain_that_was_never_created_is_not_found(hostinger: HostingerClient) -> None:
    assert await hostinger.find_by_reference(new_domain()) is None


async def test_a_second_website_for_a_domain_is_a_permanent_error_naming_the_field(
    hostinger: HostingerClient,
) -> None:
    order_id, domain = await active_order(hostinger), new_domain()
    website = await new_website(hostinger, order_id, domain)
    await hostinger.create_website(website)
    with pytest.raises(PermanentError) as raised:
        await hostinger.create_website(website)
    assert raised.value.status == 422
    assert "domain:" in raised.value.message


async def test_a_lost_create_answer_is_unknown_and_the_lookup_finds_the_site(
    hostinger: HostingerClient, sandbox: VendorSandbox
) -> None:
    order_id, domain = await active_order(hostinger), new_domain()
    website = await new_website(hostinger, order_id, domain)
    await sandbox.fault("POST /api/hosting/v1/websites", lost_answer_rate=1.0)
    with pytest.raises(UnknownOutcomeError):
        await hostinger.create_website(website)
    await sandbox.clear()
    assert await hostinger.find_by_reference(domain, order_id=order_id) is not None


async def test_a_create_that_times_out_is_unknown_and_the_lookup_says_it_was_not_made(
    block: HostingerCredentials, sandbox: VendorSandbox
) -> None:
    impatient = HttpPolicy.from_settings(read_timeout=0.2, max_attempts=4, sleep=sandbox.sleep)
    async with block.get_client(policy=impatient, rate_limit=sandbox.rate_limit()) as client:
        order_id, domain = await active_order(client), new_domain()
        website = await new_website(client, order_id, domain)
        await sandbox.fault("POST /api/hosting/v1/websites", timeout_rate=1.0, timeout_seconds=1)
        with pytest.raises(UnknownOutcomeError):
            await client.create_website(website)
        await sandbox.clear()
        assert await client.find_by_reference(domain, order_id=order_id) is None
        assert (await client.create_website(website)).id == domain


async def test_a_website_list_is_retried_through_a_gateway_outage(
    hostinger: HostingerClient, sandbox: VendorSandbox
) -> None:
    await sandbox.fault("GET /api/hosting/v1/websites", error_rate=1.0, error_statuses=[502])
    sandbox.outage_lasts = 1
    page = await hostinger.list_websites(per_page=5)
    assert page.meta.per_page == 5
    assert sandbox.waits


async def test_the_catalog_and_subscriptions_are_readable(hostinger: HostingerClient) -> None:
    catalog = await hostinger.get_catalog()
    subscriptions = await hostinger.list_subscriptions()
    assert ITEM in {price.id for item in catalog for price in item.prices}
    assert subscriptions


async def test_a_block_without_allow_purchases_spends_nothing(
    hostinger: HostingerClient, sandbox: VendorSandbox
) -> None:
    before = await spending(sandbox)
    with pytest.raises(PurchasesDisabledError):
        await hostinger.purchase(ITEM)
    assert await spending(sandbox) == before


async def test_a_purchase_whose_answer_is_lost_is_made_once_and_never_retried(
    block: HostingerCredentials, sandbox: VendorSandbox
) -> None:
    allowed = HostingerCredentials(
        api_token=block.api_token, base_url=block.base_url, allow_purchases=True
    )
    before = await spending(sandbox)
    before_buying = datetime.now(UTC).replace(microsecond=0)  # Hostinger keeps whole seconds
    await sandbox.fault("POST /api/billing/v1/orders", lost_answer_rate=1.0)
    async with allowed.get_client(
        policy=sandbox.policy(), rate_limit=sandbox.rate_limit()
    ) as buyer:
        with pytest.raises(UnknownOutcomeError):
            await buyer.purchase(ITEM)
        await sandbox.clear()
        placed = await buyer.find_subscriptions_created_since(before_buying)
    after = await spending(sandbox)
    assert after["orders"] == before["orders"] + 1
    assert len(placed) == 1  # the lookup proves the order went through: do not buy again


async def test_check_access_counts_the_active_hosting_orders(hostinger: HostingerClient) -> None:
    assert re.fullmatch(r"[1-9]\d* active hosting order\(s\)", await hostinger.check_access())


def test_the_cli_saves_the_block_and_checks_it_against_the_sandbox(
    prefect_server: None, sandbox_urls: dict[str, str]
) -> None:
    loaded, checked = saved_and_checked_by_the_cli(sandbox_urls, VENDOR, HostingerCredentials)
    assert "active hosting order(s)" in checked
    assert loaded.allow_purchases is False
