"""The WhatsApp client against the in-process sandbox: the 24 h window, templates, faults."""

from __future__ import annotations

import random

import pytest

from blocks.errors import PermanentError, RateLimitedError, UnknownOutcomeError
from blocks.http import HttpPolicy
from blocks.whatsapp import (
    REENGAGEMENT_REQUIRED,
    TemplateComponent,
    TemplateParameter,
    WhatsAppClient,
    WhatsAppCredentials,
)
from tests.blocks.conftest import RecordedSleeps, SandboxAdmin

SEND_ROUTE = "POST /{version}/{phone_number_id}/messages"


@pytest.fixture
async def whatsapp(sandbox_admin: SandboxAdmin, policy: HttpPolicy) -> WhatsAppClient:
    accepted = sandbox_admin.credentials("whatsapp")
    credentials = WhatsAppCredentials(
        base_url=sandbox_admin.base_urls["whatsapp"],
        access_token=accepted["access_token"],
        phone_number_id=accepted["phone_number_id"],
    )
    async with credentials.get_client(policy=policy) as client:
        yield client


def new_number() -> str:
    return f"55119{random.randrange(10**7, 10**8)}"


def welcome() -> list[TemplateComponent]:
    return [TemplateComponent(type="body", parameters=[TemplateParameter.of_text("Maria")])]


async def test_a_template_opens_the_conversation_and_returns_a_wamid(
    whatsapp: WhatsAppClient,
) -> None:
    result = await whatsapp.send_template(new_number(), "boas_vindas", components=welcome())
    assert result.wamid.startswith("wamid.")
    assert result.message_status == "accepted"


async def test_a_text_outside_the_window_is_refused_with_131047_and_accepted_inside(
    sandbox_admin: SandboxAdmin, whatsapp: WhatsAppClient
) -> None:
    number = new_number()
    with pytest.raises(PermanentError) as caught:
        await whatsapp.send_text(number, "Olá!")
    assert caught.value.code == REENGAGEMENT_REQUIRED
    sandbox_admin.client.post("/whatsapp/inbound", json={"from": number}).raise_for_status()
    assert (await whatsapp.send_text(number, "Olá!")).wamid.startswith("wamid.")


async def test_a_template_with_the_wrong_parameter_count_is_permanent(
    whatsapp: WhatsAppClient,
) -> None:
    with pytest.raises(PermanentError) as caught:
        await whatsapp.send_template(new_number(), "boas_vindas")  # needs one body parameter
    assert caught.value.status == 400


async def test_a_lost_answer_is_an_unknown_outcome_and_the_message_is_not_sent_twice(
    sandbox_admin: SandboxAdmin, whatsapp: WhatsAppClient
) -> None:
    before = sandbox_admin.counters("whatsapp").get("message", 0)
    sandbox_admin.fault("whatsapp", SEND_ROUTE, lost_answer_rate=1.0)
    with pytest.raises(UnknownOutcomeError):
        await whatsapp.send_template(new_number(), "boas_vindas", components=welcome())
    assert sandbox_admin.counters("whatsapp").get("message", 0) == before + 1


async def test_a_send_that_is_always_throttled_ends_rate_limited_with_nothing_sent(
    sandbox_admin: SandboxAdmin, whatsapp: WhatsAppClient, sleeps: RecordedSleeps
) -> None:
    before = sandbox_admin.counters("whatsapp").get("message", 0)
    sandbox_admin.fault("whatsapp", SEND_ROUTE, throttle_rate=1.0, retry_after_seconds=3)
    with pytest.raises(RateLimitedError) as caught:
        await whatsapp.send_template(new_number(), "boas_vindas", components=welcome())
    assert caught.value.retry_after == 3.0
    # each of the 4 retries waited the sandbox's Retry-After, not the (shorter) backoff
    assert sleeps.waits.count(3.0) >= 4
    assert sandbox_admin.counters("whatsapp").get("message", 0) == before
