"""The WhatsApp client against respx: text and template sends, the answer, Graph error codes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx

from blocks.errors import (
    AuthenticationError,
    PermanentError,
    RateLimitedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from blocks.http import HttpPolicy
from blocks.whatsapp import (
    CurrencyParameter,
    SendResult,
    TemplateComponent,
    TemplateParameter,
    WhatsAppClient,
    WhatsAppCredentials,
)
from tests.blocks.conftest import RecordedSleeps
from tests.contracts import assert_matches

BASE = "https://graph.facebook.com"
TOKEN = "EAAtestSystemUserToken0123456789"
NUMBER_ID = "106540352242922"
SEND = f"/v23.0/{NUMBER_ID}/messages"
ACCEPTED = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "5511999998888", "wa_id": "5511999998888"}],
    "messages": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3", "message_status": "accepted"}],
}


@pytest.fixture
async def whatsapp(policy: HttpPolicy) -> WhatsAppClient:
    credentials = WhatsAppCredentials(access_token=TOKEN, phone_number_id=NUMBER_ID)
    async with credentials.get_client(policy=policy) as client:
        yield client


def sent(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


def graph_error(code: int, message: str, status: int = 400) -> httpx.Response:
    body = {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbC",
        }
    }
    assert_matches(body, "whatsapp", "client_graph_error")
    return httpx.Response(status, json=body)


async def test_send_text_posts_a_text_message_and_returns_the_wamid(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    assert_matches(ACCEPTED, "whatsapp", "client_message_response")
    route = mock.post(SEND).mock(return_value=httpx.Response(200, json=ACCEPTED))
    result = await whatsapp.send_text("+55 (11) 99999-8888", "Olá, Maria!")
    body = sent(route)
    assert_matches(body, "whatsapp", "client_text_message")
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511999998888",
        "type": "text",
        "text": {"body": "Olá, Maria!", "preview_url": False},
    }
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"
    assert (result.wamid, result.message_status, result.wa_id) == (
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3",
        "accepted",
        "5511999998888",
    )


async def test_send_template_posts_name_language_and_components(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    route = mock.post(SEND).mock(return_value=httpx.Response(200, json=ACCEPTED))
    await whatsapp.send_template(
        "5511999998888",
        "pix_cobranca",
        components=[
            TemplateComponent(
                type="body",
                parameters=[
                    TemplateParameter.of_text("Maria"),
                    TemplateParameter(
                        type="currency",
                        currency=CurrencyParameter(
                            fallback_value="R$ 1.990,00", code="BRL", amount_1000=1990000
                        ),
                    ),
                    TemplateParameter.of_text("00020126580014br.gov.bcb.pix"),
                ],
            ),
            TemplateComponent(
                type="button",
                sub_type="quick_reply",
                index="0",
                parameters=[TemplateParameter(type="payload", payload="PAID")],
            ),
        ],
    )
    body = sent(route)
    assert_matches(body, "whatsapp", "client_template_message")
    assert body["type"] == "template"
    assert body["template"]["name"] == "pix_cobranca"
    assert body["template"]["language"]["code"] == "pt_BR"
    assert body["template"]["components"][0]["parameters"][0] == {"type": "text", "text": "Maria"}
    assert body["template"]["components"][1]["sub_type"] == "quick_reply"


async def test_a_text_outside_the_24h_window_is_permanent_with_code_131047(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    route = mock.post(SEND).mock(return_value=graph_error(131047, "Re-engagement message"))
    with pytest.raises(PermanentError) as caught:
        await whatsapp.send_text("5511999998888", "Olá")
    assert type(caught.value) is PermanentError
    assert caught.value.code == "131047"
    assert route.call_count == 1


async def test_an_undeliverable_number_is_permanent(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    mock.post(SEND).mock(return_value=graph_error(131026, "Message undeliverable"))
    with pytest.raises(PermanentError) as caught:
        await whatsapp.send_template("5511999998888", "boas_vindas")
    assert caught.value.code == "131026"


@pytest.mark.parametrize("code", [130429, 131056, 80007, 4])
async def test_rate_codes_are_retried_then_raised_as_rate_limited(
    mock: respx.MockRouter, whatsapp: WhatsAppClient, policy: HttpPolicy, code: int
) -> None:
    route = mock.post(SEND).mock(return_value=graph_error(code, "Rate limit hit"))
    with pytest.raises(RateLimitedError) as caught:
        await whatsapp.send_template("5511999998888", "boas_vindas")
    assert caught.value.code == str(code)
    assert route.call_count == policy.max_attempts  # refused, so resending is safe


async def test_a_throttled_send_succeeds_when_the_vendor_recovers(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    route = mock.post(SEND).mock(
        side_effect=[graph_error(130429, "Rate limit hit"), httpx.Response(200, json=ACCEPTED)]
    )
    result = await whatsapp.send_template("5511999998888", "boas_vindas")
    assert result.wamid.startswith("wamid.")
    assert route.call_count == 2


async def test_an_expired_token_is_an_authentication_error(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    mock.post(SEND).mock(return_value=graph_error(190, "Access token has expired", status=401))
    with pytest.raises(AuthenticationError):
        await whatsapp.send_text("5511999998888", "Olá")


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")]
)
async def test_a_send_without_an_answer_is_never_resent(
    mock: respx.MockRouter, whatsapp: WhatsAppClient, failure: Exception
) -> None:
    route = mock.post(SEND).mock(side_effect=[failure, httpx.Response(200, json=ACCEPTED)])
    with pytest.raises(UnknownOutcomeError):
        await whatsapp.send_template("5511999998888", "boas_vindas")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("answer", "send"),
    [
        pytest.param(
            httpx.Response(500),
            lambda whatsapp: whatsapp.send_text("5511999998888", "Olá"),
            id="a server error",
        ),
        pytest.param(
            httpx.Response(200, text="<html>proxy</html>"),
            lambda whatsapp: whatsapp.send_template("5511999998888", "boas_vindas"),
            id="a success without a message id",
        ),
    ],
)
async def test_a_send_answered_without_a_message_id_is_an_unknown_outcome_never_resent(
    mock: respx.MockRouter,
    whatsapp: WhatsAppClient,
    answer: httpx.Response,
    send: Callable[[WhatsAppClient], Awaitable[SendResult]],
) -> None:
    route = mock.post(SEND).mock(return_value=answer)
    with pytest.raises(UnknownOutcomeError):
        await send(whatsapp)
    assert route.call_count == 1


def test_a_recipient_that_is_not_a_phone_number_is_refused_before_sending() -> None:
    from blocks.whatsapp import _recipient

    with pytest.raises(ValueError, match="phone number"):
        _recipient("maria@example.com")


async def test_two_sends_to_the_same_person_are_spaced_by_the_pair_interval(
    mock: respx.MockRouter, policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    credentials = WhatsAppCredentials(
        access_token=TOKEN, phone_number_id=NUMBER_ID, pair_interval_seconds=6.0
    )
    mock.post(SEND).mock(return_value=httpx.Response(200, json=ACCEPTED))
    async with credentials.get_client(policy=policy) as client:
        await client.send_template("5511999990001", "boas_vindas")
        await client.send_template("5511999990002", "boas_vindas")  # someone else: no wait
        assert sleeps.waits == []
        await client.send_template("5511999990001", "boas_vindas")
    assert sleeps.waits == [6.0]


async def test_get_phone_number_reads_the_numbers_node_with_the_token(
    mock: respx.MockRouter, whatsapp: WhatsAppClient
) -> None:
    node = {
        "id": NUMBER_ID,
        "display_phone_number": "+55 11 3000-0000",
        "verified_name": "Agência Exemplo",
        "quality_rating": "GREEN",
    }
    route = mock.get(f"/v23.0/{NUMBER_ID}").mock(return_value=httpx.Response(200, json=node))
    number = await whatsapp.get_phone_number()
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert set(request.url.params["fields"].split(",")) == {
        "id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
    }
    assert (number.id, number.verified_name, number.quality_rating) == (
        NUMBER_ID,
        "Agência Exemplo",
        "GREEN",
    )
    assert await whatsapp.check_access() == f"number {NUMBER_ID} (Agência Exemplo)"


# ------------------------------------------------------- every operation: request and failures

CALLS: dict[str, Callable[[WhatsAppClient], Awaitable[Any]]] = {
    "send_text": lambda c: c.send_text("5511999998888", "Olá"),
    "send_template": lambda c: c.send_template("5511999998888", "boas_vindas"),
    "get_phone_number": lambda c: c.get_phone_number(),
}
#: operation -> (method, path sent, path template carried by errors and logs)
ROUTES = {
    "send_text": ("POST", SEND, "/{version}/{phone_number_id}/messages"),
    "send_template": ("POST", SEND, "/{version}/{phone_number_id}/messages"),
    "get_phone_number": ("GET", f"/v23.0/{NUMBER_ID}", "/{version}/{phone_number_id}"),
}

GRAPH_FAILURES = [
    pytest.param(400, 131047, PermanentError, False, id="131047-reengagement"),
    pytest.param(400, 131026, PermanentError, False, id="131026-undeliverable"),
    pytest.param(400, 100, PermanentError, False, id="100-invalid-parameter"),
    pytest.param(401, 190, AuthenticationError, False, id="190-expired-token"),
    pytest.param(400, 130429, RateLimitedError, True, id="130429-throughput"),
    pytest.param(400, 131056, RateLimitedError, True, id="131056-pair-rate"),
    pytest.param(400, 80007, RateLimitedError, True, id="80007-waba-rate"),
    pytest.param(400, 4, RateLimitedError, True, id="4-app-rate"),
    pytest.param(429, 130429, RateLimitedError, True, id="429"),
    pytest.param(503, 131000, TransientError, True, id="503"),
]


@pytest.mark.parametrize(("status", "code", "expected", "retried"), GRAPH_FAILURES)
@pytest.mark.parametrize("operation", CALLS)
async def test_every_operation_raises_the_error_class_of_each_graph_failure(
    mock: respx.MockRouter,
    whatsapp: WhatsAppClient,
    policy: HttpPolicy,
    operation: str,
    status: int,
    code: int,
    expected: type[Exception],
    retried: bool,
) -> None:
    method, path, template = ROUTES[operation]
    route = mock.route(method=method, path=path).mock(
        return_value=graph_error(code, "Graph says no", status=status)
    )
    if status >= 500 and method == "POST":
        expected, retried = UnknownOutcomeError, False  # the message may have gone out
    with pytest.raises(VendorError) as caught:
        await CALLS[operation](whatsapp)
    error = caught.value
    assert type(error) is expected
    assert (error.vendor, error.method, error.path, error.status, error.code) == (
        "whatsapp",
        method,
        template,
        status,
        str(code),
    )
    assert error.message.startswith("Graph says no")
    assert route.call_count == (policy.max_attempts if retried else 1)


async def test_a_pair_rate_queue_longer_than_the_budget_is_rate_limited_not_slept(
    mock: respx.MockRouter, policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    from dataclasses import replace

    credentials = WhatsAppCredentials(
        access_token=TOKEN, phone_number_id=NUMBER_ID, pair_interval_seconds=6.0
    )
    route = mock.post(SEND).mock(return_value=httpx.Response(200, json=ACCEPTED))
    async with credentials.get_client(policy=replace(policy, total_timeout=10.0)) as client:
        await client.send_template("5511999990001", "boas_vindas")
        await client.send_template("5511999990001", "boas_vindas")  # waits 6 s
        sleeps.now -= 6.0  # the third is asked for at once: it would wait 12 s, over 10
        with pytest.raises(RateLimitedError) as caught:
            await client.send_template("5511999990001", "boas_vindas")
    assert caught.value.code == "131056"
    assert caught.value.retry_after == 12.0
    assert sleeps.waits == [6.0]
    assert route.call_count == 2
