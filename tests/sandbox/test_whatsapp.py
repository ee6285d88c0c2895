"""The WhatsApp Cloud API emulator enforces Meta's sending rules and reports outcomes as Meta does.

Requests and responses are checked against trimmed copies of Meta's official OpenAPI 3.1 file
(tests/contracts/whatsapp/); status webhooks are verified with X-Hub-Signature-256 computed here
with `hmac`, over the exact bytes received.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from sandbox.core import Sandbox
from sandbox.server import RunningSandbox
from sandbox.vendors import whatsapp
from tests.contracts import assert_matches
from tests.sandbox.conftest import WebhookReceiver, subscribe_receiver

CREDENTIALS = whatsapp.DEFAULT_CREDENTIALS
AUTH = {"Authorization": f"Bearer {CREDENTIALS['access_token']}"}
MESSAGES = f"/whatsapp/v23.0/{CREDENTIALS['phone_number_id']}/messages"
MARIA = "5511987654321"


def template(
    to: str = MARIA, name: str = "pix_cobranca", parameters: int = 2, language: str = "pt_BR"
) -> dict[str, Any]:
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"policy": "deterministic", "code": language},
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": f"p{i}"} for i in range(parameters)],
                }
            ],
        },
    }
    assert_matches(body, "whatsapp", "template_message_request")
    return body


def text(to: str = MARIA, message: str = "Seu site está no ar!") -> dict[str, Any]:
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": message},
    }
    assert_matches(body, "whatsapp", "text_message_request")
    return body


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert_matches(response.json(), "whatsapp", "graph_error")
    return response.json()["error"]


def emulator_of(sandbox: Sandbox) -> whatsapp.WhatsAppEmulator:
    return sandbox.emulators["whatsapp"]


async def test_a_template_is_accepted_with_a_wamid(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(MESSAGES, json=template(), headers=AUTH)
    assert response.status_code == 200
    assert_matches(response.json(), "whatsapp", "message_response")
    (message,) = response.json()["messages"]
    assert message["id"].startswith("wamid.")
    assert message["message_status"] == "accepted"
    assert response.json()["contacts"] == [{"input": MARIA, "wa_id": MARIA}]


async def test_a_missing_token_is_oauth_exception_190(app_client: httpx.AsyncClient) -> None:
    assert error_of(await app_client.post(MESSAGES, json=template()))["code"] == 190


async def test_a_wrong_token_is_oauth_exception_190(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        MESSAGES, json=template(), headers={"Authorization": "Bearer EAAnope"}
    )
    assert error_of(response)["code"] == 190


async def test_an_unknown_phone_number_id_is_error_100_subcode_33(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post("/whatsapp/v23.0/1/messages", json=template(), headers=AUTH)
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)


async def test_free_text_outside_the_24_hour_window_is_refused_with_131047(
    app_client: httpx.AsyncClient,
) -> None:
    error = error_of(await app_client.post(MESSAGES, json=text(), headers=AUTH))
    assert error["code"] == 131047
    assert "24 hours" in error["error_data"]["details"]


async def test_an_inbound_message_opens_the_window_for_free_text(
    app_client: httpx.AsyncClient,
) -> None:
    opened = await app_client.post(
        "/__sandbox__/whatsapp/inbound", json={"from": f"+{MARIA}", "text": "Oi"}
    )
    assert opened.status_code == 200
    response = await app_client.post(MESSAGES, json=text(), headers=AUTH)
    assert response.status_code == 200
    assert "message_status" not in response.json()["messages"][0]


async def test_a_window_older_than_24_hours_is_closed(app_client: httpx.AsyncClient) -> None:
    long_ago = 1_700_000_000
    await app_client.post(
        "/__sandbox__/whatsapp/inbound", json={"from": MARIA, "timestamp": long_ago}
    )
    assert error_of(await app_client.post(MESSAGES, json=text(), headers=AUTH))["code"] == 131047


async def test_an_unknown_template_is_132001(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(MESSAGES, json=template(name="promo_black"), headers=AUTH)
    error = error_of(response)
    assert error["code"] == 132001
    assert "promo_black" in error["error_data"]["details"]


async def test_a_template_in_a_missing_language_is_132001(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(MESSAGES, json=template(language="es"), headers=AUTH)
    assert error_of(response)["code"] == 132001


async def test_a_wrong_parameter_count_is_132000(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(MESSAGES, json=template(parameters=1), headers=AUTH)
    assert error_of(response)["code"] == 132000


async def test_templates_are_configurable_through_the_admin_api(
    app_client: httpx.AsyncClient,
) -> None:
    await app_client.put(
        "/__sandbox__/whatsapp/templates",
        json=[{"name": "lembrete", "language": "pt_BR", "body_parameters": 1}],
    )
    ok = await app_client.post(MESSAGES, json=template(name="lembrete", parameters=1), headers=AUTH)
    gone = await app_client.post(MESSAGES, json=template(), headers=AUTH)
    assert ok.status_code == 200
    assert error_of(gone)["code"] == 132001


async def test_a_body_missing_messaging_product_is_invalid_parameter_100(
    app_client: httpx.AsyncClient,
) -> None:
    body = template()
    del body["messaging_product"]
    error = error_of(await app_client.post(MESSAGES, json=body, headers=AUTH))
    assert error["code"] == 100
    assert "messaging_product" in error["error_data"]["details"]


async def test_a_body_that_is_not_json_is_invalid_parameter_100(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post(MESSAGES, content=b"to=55", headers=AUTH)
    assert error_of(response)["code"] == 100


async def test_exceeding_the_throughput_is_130429(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    await app_client.put("/__sandbox__/whatsapp/limits", json={"messages_per_second": 2})
    responses = [
        await app_client.post(MESSAGES, json=template(to=f"55119876543{i:02d}"), headers=AUTH)
        for i in range(3)
    ]
    assert [r.status_code for r in responses[:2]] == [200, 200]
    error = error_of(responses[2])
    assert (error["code"], error["is_transient"]) == (130429, True)


async def test_two_messages_to_one_person_inside_the_pair_interval_are_131056(
    app_client: httpx.AsyncClient,
) -> None:
    await app_client.put("/__sandbox__/whatsapp/limits", json={"pair_interval_seconds": 6})
    first = await app_client.post(MESSAGES, json=template(), headers=AUTH)
    second = await app_client.post(MESSAGES, json=template(), headers=AUTH)
    other = await app_client.post(MESSAGES, json=template(to="5521912345678"), headers=AUTH)
    assert first.status_code == other.status_code == 200
    assert error_of(second)["code"] == 131056


def _verified_statuses(receiver: WebhookReceiver, count: int) -> list[dict[str, Any]]:
    secret = CREDENTIALS["app_secret"].encode()
    statuses = []
    for delivery in receiver.wait_for(count):
        digest = hmac.new(secret, delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers["X-Hub-Signature-256"] == f"sha256={digest}"
        payload = json.loads(delivery.body)
        assert_matches(payload, "whatsapp", "status_webhook")
        statuses += payload["entry"][0]["changes"][0]["value"]["statuses"]
    return statuses


def test_a_delivered_message_reports_sent_then_delivered_then_read_signed(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["whatsapp"] = receiver.url
    httpx.put(served.admin_url + "/whatsapp/limits", json={"read_probability": 1.0})
    url = served.base_urls["whatsapp"] + MESSAGES.removeprefix("/whatsapp")
    wamid = httpx.post(url, json=template(), headers=AUTH).json()["messages"][0]["id"]
    statuses = _verified_statuses(receiver, 3)
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert {s["id"] for s in statuses} == {wamid}
    assert statuses[0]["pricing"]["category"] == "utility"


def test_a_landline_is_accepted_then_fails_with_131026(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["whatsapp"] = receiver.url
    url = served.base_urls["whatsapp"] + MESSAGES.removeprefix("/whatsapp")
    response = httpx.post(url, json=template(to="551133334444"), headers=AUTH)
    assert response.status_code == 200
    (status,) = _verified_statuses(receiver, 1)
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131026


def test_the_opaque_callback_data_is_echoed_in_statuses(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["whatsapp"] = receiver.url
    url = served.base_urls["whatsapp"] + MESSAGES.removeprefix("/whatsapp")
    body = {**template(), "biz_opaque_callback_data": "journey-42:pix"}
    httpx.post(url, json=body, headers=AUTH)
    statuses = _verified_statuses(receiver, 2)
    assert {s["biz_opaque_callback_data"] for s in statuses} == {"journey-42:pix"}


def test_an_inbound_message_fires_the_signed_messages_webhook(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["whatsapp"] = receiver.url
    httpx.post(served.admin_url + "/whatsapp/inbound", json={"from": MARIA, "text": "Paguei"})
    (delivery,) = receiver.wait_for(1)
    digest = hmac.new(CREDENTIALS["app_secret"].encode(), delivery.body, hashlib.sha256)
    assert delivery.headers["X-Hub-Signature-256"] == f"sha256={digest.hexdigest()}"
    value = json.loads(delivery.body)["entry"][0]["changes"][0]["value"]
    assert value["messages"][0]["from"] == MARIA
    assert value["messages"][0]["text"] == {"body": "Paguei"}


def test_the_subscription_handshake_guards_the_webhook_target(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    response = subscribe_receiver(served, "whatsapp", receiver.url)
    assert response.status_code == 200
    assert served.sandbox.webhook_targets["whatsapp"] == receiver.url


async def test_50_concurrent_sends_get_50_distinct_wamids_and_nothing_is_lost(
    served: RunningSandbox,
) -> None:
    url = served.base_urls["whatsapp"] + MESSAGES.removeprefix("/whatsapp")
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *[client.post(url, json=template(to=f"55119{i:08d}"), headers=AUTH) for i in range(50)],
            *[client.get(served.admin_url + "/counters") for _ in range(50)],
        )
    wamids = [r.json()["messages"][0]["id"] for r in responses[:50]]
    assert len(set(wamids)) == 50
    stored = whatsapp.WhatsAppEmulator.of(served.sandbox).bucket.messages
    assert set(stored) == set(wamids)
    assert served.sandbox.state.counters()["whatsapp"]["message"] == 50


async def test_metas_own_examples_without_policy_or_recipient_type_are_accepted(
    app_client: httpx.AsyncClient,
) -> None:
    """The contract README's template example omits both; the Cloud API accepts it."""
    body = template()
    del body["template"]["language"]["policy"]
    del body["recipient_type"]
    response = await app_client.post(MESSAGES, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["message_status"] == "accepted"


async def test_a_policy_other_than_deterministic_is_invalid_parameter_100(
    app_client: httpx.AsyncClient,
) -> None:
    body = template()
    body["template"]["language"]["policy"] = "fallback"
    error = error_of(await app_client.post(MESSAGES, json=body, headers=AUTH))
    assert error["code"] == 100
    assert "policy" in error["error_data"]["details"]


def _with_button(**button: Any) -> dict[str, Any]:
    body = template(name="hello_world", parameters=0, language="en_US")
    body["template"]["components"].append({"type": "button", **button})
    return body


async def test_a_button_the_spec_lists_is_accepted(app_client: httpx.AsyncClient) -> None:
    body = _with_button(
        sub_type="quick_reply", index="0", parameters=[{"type": "payload", "payload": "PAID"}]
    )
    response = await app_client.post(MESSAGES, json=body, headers=AUTH)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("button", "word"),
    [
        (
            {
                "sub_type": "copy_code",
                "index": "0",
                "parameters": [{"type": "payload", "payload": "x"}],
            },
            "sub_type",
        ),
        (
            {"sub_type": "url", "index": "12", "parameters": [{"type": "text", "text": "x"}]},
            "index",
        ),
        ({"sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "x"}]}, "index"),
        (
            {
                "sub_type": "url",
                "index": "0",
                "parameters": [{"type": "coupon_code", "coupon_code": "x"}],
            },
            "coupon_code",
        ),
        ({"index": "0", "parameters": [{"type": "payload", "payload": "x"}]}, "sub_type"),
        ({"sub_type": "quick_reply", "index": "0", "parameters": []}, "parameter"),
        ({"sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload"}]}, "payload"),
    ],
)
async def test_a_button_outside_the_spec_is_invalid_parameter_100(
    app_client: httpx.AsyncClient, button: dict[str, Any], word: str
) -> None:
    error = error_of(await app_client.post(MESSAGES, json=_with_button(**button), headers=AUTH))
    assert error["code"] == 100
    assert word in error["error_data"]["details"]


@pytest.mark.parametrize(
    ("component", "kind"),
    [("body", "image"), ("body", "payload"), ("header", "currency"), ("body", "location")],
)
async def test_a_parameter_type_the_component_does_not_take_is_invalid_parameter_100(
    app_client: httpx.AsyncClient, component: str, kind: str
) -> None:
    body = template(name="hello_world", parameters=0, language="en_US")
    body["template"]["components"] = [
        {"type": component, "parameters": [{"type": kind, kind: {"link": "https://x.example"}}]}
    ]
    error = error_of(await app_client.post(MESSAGES, json=body, headers=AUTH))
    assert error["code"] == 100
    assert kind in error["error_data"]["details"]


@pytest.mark.parametrize("version", ["v99.0", "v22.0", "latest"])
async def test_only_the_graph_version_the_contract_names_is_served(
    app_client: httpx.AsyncClient, version: str
) -> None:
    path = MESSAGES.replace("/v23.0/", f"/{version}/")
    error = error_of(await app_client.post(path, json=template(), headers=AUTH))
    assert error["code"] == 2500
    assert version in error["message"]
    node = error_of(await app_client.get(path.removesuffix("/messages"), headers=AUTH))
    assert node["code"] == 2500


NUMBER = f"/whatsapp/v23.0/{CREDENTIALS['phone_number_id']}"


async def test_the_business_number_node_answers_with_the_requested_fields(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get(
        NUMBER, params={"fields": "id,display_phone_number,verified_name"}, headers=AUTH
    )
    assert response.status_code == 200
    assert_matches(response.json(), "whatsapp", "phone_number")
    assert set(response.json()) == {"id", "display_phone_number", "verified_name"}
    assert response.json()["id"] == CREDENTIALS["phone_number_id"]


async def test_the_business_number_node_needs_the_token(app_client: httpx.AsyncClient) -> None:
    assert error_of(await app_client.get(NUMBER))["code"] == 190


async def test_another_number_node_is_error_100_subcode_33(app_client: httpx.AsyncClient) -> None:
    error = error_of(await app_client.get("/whatsapp/v23.0/1", headers=AUTH))
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith("Unsupported get request.")
