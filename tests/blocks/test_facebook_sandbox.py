"""The Facebook Lead Ads client against the in-process sandbox, with and without faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from blocks.errors import AuthenticationError, TransientError, UnknownOutcomeError
from blocks.facebook import FacebookLeadAdsClient, FacebookLeadAdsCredentials
from blocks.http import HttpPolicy
from tests.blocks.conftest import SandboxAdmin


@pytest.fixture
def accepted(sandbox_admin: SandboxAdmin) -> dict[str, str]:
    return sandbox_admin.credentials("facebook")


@pytest.fixture
def credentials(
    sandbox_admin: SandboxAdmin, accepted: dict[str, str]
) -> FacebookLeadAdsCredentials:
    """The page and page token the sandbox accepts, at the sandbox's address."""
    return FacebookLeadAdsCredentials(
        base_url=sandbox_admin.base_urls["facebook"],
        page_id=accepted["page_id"],
        page_access_token=accepted["page_access_token"],
    )


@pytest.fixture
async def facebook(
    credentials: FacebookLeadAdsCredentials, policy: HttpPolicy
) -> AsyncIterator[FacebookLeadAdsClient]:
    async with credentials.get_client(policy=policy) as client:
        yield client


def submit_leads(admin: SandboxAdmin, count: int, created_time: int) -> list[dict[str, object]]:
    response = admin.client.post(
        "/facebook/leads",
        json={"count": count, "bad_share": 0, "created_time": created_time, "webhook": False},
    )
    return response.raise_for_status().json()["leads"]


async def test_forms_of_the_sandbox_page_are_listed(
    facebook: FacebookLeadAdsClient, accepted: dict[str, str]
) -> None:
    forms = await facebook.list_forms()
    assert accepted["form_id"] in {form.id for form in forms}


async def test_leads_since_a_time_come_back_across_pages_with_their_answers(
    sandbox_admin: SandboxAdmin, facebook: FacebookLeadAdsClient, accepted: dict[str, str]
) -> None:
    # a window in the future of every other test's leads, so only these 7 fall in it
    start = int(time.time()) + 10_000 + int(time.perf_counter_ns() % 100_000)
    submitted = submit_leads(sandbox_admin, 7, created_time=start + 1)
    leads = await facebook.list_leads(
        accepted["form_id"],
        since=datetime.fromtimestamp(start, tz=UTC),
        until=datetime.fromtimestamp(start + 2, tz=UTC),
        limit=3,  # three pages
    )
    assert len(leads) == 7
    assert {lead.id for lead in leads} == {str(item["id"]) for item in submitted}
    one = await facebook.get_lead(leads[0].id)
    assert one.id == leads[0].id
    assert one.answers()  # field_data came back


async def test_a_wrong_page_token_is_an_authentication_error(
    credentials: FacebookLeadAdsCredentials, policy: HttpPolicy
) -> None:
    wrong = credentials.model_copy(update={"page_access_token": SecretStr("EAAwrong")})
    async with wrong.get_client(policy=policy) as client:
        with pytest.raises(AuthenticationError):
            await client.list_forms()


async def test_reads_are_retried_through_server_errors_and_dropped_connections(
    sandbox_admin: SandboxAdmin,
    accepted: dict[str, str],
    credentials: FacebookLeadAdsCredentials,
    policy: HttpPolicy,
) -> None:
    """Half the calls fail; with 30 attempts a read fails only with p = 0.5**30."""
    sandbox_admin.fault(
        "facebook",
        "GET /{version}/{page_id}/leadgen_forms",
        error_rate=0.25,
        timeout_rate=0.25,
        timeout_seconds=0.01,
    )
    async with credentials.get_client(policy=replace(policy, max_attempts=30)) as client:
        for _ in range(5):
            assert accepted["form_id"] in {form.id for form in await client.list_forms()}


async def test_a_read_that_keeps_dropping_gives_up_as_transient(
    sandbox_admin: SandboxAdmin, facebook: FacebookLeadAdsClient
) -> None:
    sandbox_admin.fault(
        "facebook", "GET /{version}/{page_id}/leadgen_forms", timeout_rate=1.0, timeout_seconds=0
    )
    with pytest.raises(TransientError) as caught:
        await facebook.list_forms()
    assert not isinstance(caught.value, UnknownOutcomeError)  # a read has no outcome to lose
