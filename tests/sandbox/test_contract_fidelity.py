"""Every answer and webhook of the sandbox carries only keys its vendor's schema declares.

`assert_matches` proves an answer has what the vendor promises; it cannot see an invented key,
because the vendors' schemas allow unknown keys. These tests walk one journey through each
emulator (in-process) and check every answer and webhook body both ways: it matches the trimmed
schema and declares nothing the schema does not (tests/sandbox/contract_keys.py). Webhook bodies
are captured at the sandbox's delivery point, before any network, so the test sees exactly the
bytes a receiver would.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.vendors import docusign, facebook, pipedrive, whatsapp
from tests.sandbox.conftest import Delivery, capture_deliveries, in_process
from tests.sandbox.contract_keys import assert_exactly_declared as check
from tests.sandbox.contract_keys import undeclared_keys

HOOK = "http://127.0.0.1:9/never-called"


@pytest.fixture
def deliveries(sandbox: Sandbox) -> list[Delivery]:
    """Webhook bodies as the sandbox hands them to its sender (nothing goes on the wire)."""
    captured = capture_deliveries(sandbox)
    for vendor in ("facebook", "whatsapp", "docusign"):
        sandbox.webhook_targets[vendor] = HOOK
    return captured


@pytest.fixture
async def client(sandbox: Sandbox, deliveries: list[Delivery]) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(create_app(sandbox)) as client:
        yield client


def test_the_key_check_catches_an_invented_key_at_any_depth_and_allows_open_maps() -> None:
    """The check itself can fail: a key no schema declares is named with its path."""
    deal = {"id": 1, "title": "Site", "creator_user_id": 7, "custom_fields": {"a" * 40: "x"}}
    envelope = {"envelopeId": "e", "status": "sent", "statusChangedDateTime": "t",
                "sender": {"userId": "u", "nickname": "n"}}  # fmt: skip
    assert undeclared_keys({"success": True, "data": deal}, "pipedrive", "deal_response") == [
        "/data/creator_user_id"
    ]
    assert undeclared_keys(envelope, "docusign", "envelope") == ["/sender/nickname"]


# -- Pipedrive ---------------------------------------------------------------------------------

PD = {"x-api-token": pipedrive.DEFAULT_CREDENTIALS["api_token"]}
#: A v2 subscription to every deal event, with Basic auth: every optional part of a delivery.
DEAL_HOOK = {
    "subscription_url": HOOK,
    "event_action": "*",
    "event_object": "deal",
    "name": "leadflow",
    "http_auth_user": "u",
    "http_auth_password": "p",
    "version": "2.0",
}


async def pipedrive(
    client: httpx.AsyncClient, method: str, path: str, schema: str, **options: Any
) -> httpx.Response:
    """One Pipedrive call whose answer must carry exactly what `schema` declares."""
    response = await client.request(method, f"/pipedrive{path}", headers=PD, **options)
    check(response.json(), "pipedrive", schema)
    return response


async def first_found(client: httpx.AsyncClient, entity: str, term: str, fields: str) -> int:
    """The id of the first hit of an exact v2 search, whose answer is checked too."""
    found = await pipedrive(
        client,
        "GET",
        f"/api/v2/{entity}s/search",
        f"{entity}_search_response",
        params={"term": term, "fields": fields, "exact_match": "true"},
    )
    first: int = found.json()["data"]["items"][0]["item"]["id"]
    return first


async def test_pipedrive_answers_declare_only_spec_keys(client: httpx.AsyncClient) -> None:
    field = await pipedrive(
        client,
        "POST",
        "/api/v1/dealFields",
        "deal_field_response",
        json={"name": "leadflow_id", "field_type": "varchar"},
    )
    key = field.json()["data"]["key"]
    await pipedrive(client, "GET", "/api/v2/dealFields", "field_v2_list_response")
    person = await pipedrive(
        client,
        "POST",
        "/api/v2/persons",
        "person_response",
        json={
            "name": "Maria Souza",
            "emails": [{"value": "maria@example.com.br", "primary": True, "label": "work"}],
            "phones": [{"value": "+5511987654321", "primary": True, "label": "mobile"}],
        },
    )
    person_id = person.json()["data"]["id"]
    assert await first_found(client, "person", "maria@example.com.br", "email") == person_id
    await pipedrive(client, "GET", "/api/v2/persons", "person_list_response")
    deal = await pipedrive(
        client,
        "POST",
        "/api/v2/deals",
        "deal_response",
        json={
            "title": "Site",
            "person_id": person_id,
            "value": 990,
            "currency": "BRL",
            "custom_fields": {key: "lead-1"},
        },
    )
    deal_id = deal.json()["data"]["id"]
    await pipedrive(
        client, "PATCH", f"/api/v2/deals/{deal_id}", "deal_response", json={"status": "won"}
    )
    await pipedrive(client, "GET", f"/api/v2/deals/{deal_id}", "deal_response")
    assert await first_found(client, "deal", "lead-1", "custom_fields") == deal_id
    await pipedrive(client, "GET", "/api/v2/deals", "deal_list_response")
    await pipedrive(
        client,
        "POST",
        "/api/v1/notes",
        "note_response",
        json={"content": "leadflow", "deal_id": deal_id},
    )
    await pipedrive(
        client, "GET", "/api/v1/notes", "note_list_response", params={"deal_id": deal_id}
    )
    hook = await pipedrive(
        client,
        "POST",
        "/api/v1/webhooks",
        "webhook_response",
        json=DEAL_HOOK,
    )
    hooks = await pipedrive(client, "GET", "/api/v1/webhooks", "webhook_list_response")
    assert [h["id"] for h in hooks.json()["data"]] == [hook.json()["data"]["id"]]
    await pipedrive(
        client,
        "DELETE",
        f"/api/v1/webhooks/{hook.json()['data']['id']}",
        "webhook_delete_response",
    )
    refused = await pipedrive(
        client, "POST", "/api/v2/persons", "error_response", json={"name": ""}
    )
    assert refused.status_code == 400
    missing = await pipedrive(client, "GET", "/api/v2/deals/999999", "error_response")
    assert missing.status_code == 404


async def test_pipedrive_webhook_declares_only_spec_keys(
    sandbox: Sandbox, client: httpx.AsyncClient, deliveries: list[Delivery]
) -> None:
    await client.post(
        "/pipedrive/api/v1/webhooks",
        json=DEAL_HOOK,
        headers=PD,
    )
    deal = await client.post("/pipedrive/api/v2/deals", json={"title": "Site"}, headers=PD)
    await client.patch(
        f"/pipedrive/api/v2/deals/{deal.json()['data']['id']}",
        json={"status": "lost", "lost_reason": "Preço"},
        headers=PD,
    )
    payloads = [d.json() for d in deliveries if d.vendor == "pipedrive"]
    assert [p["meta"]["action"] for p in payloads] == ["create", "change"]
    for payload in payloads:
        check(payload, "pipedrive", "webhook_v2_payload")


# -- DocuSign ----------------------------------------------------------------------------------

DS = docusign.DEFAULT_CREDENTIALS
ENVELOPES = f"/docusign/restapi/v2.1/accounts/{DS['account_id']}/envelopes"


async def docusign_token(client: httpx.AsyncClient) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": DS["integration_key"],
        "sub": DS["user_id"],
        "aud": docusign.DEMO_AUTH_HOST,
        "iat": now,
        "exp": now + 3600,
        "scope": "signature impersonation",
    }
    assertion = jwt.encode(claims, DS["private_key_pem"], algorithm="RS256")
    token = await client.post(
        "/docusign/oauth/token",
        data={"grant_type": docusign.JWT_BEARER_GRANT, "assertion": assertion},
    )
    check(token.json(), "docusign", "oauth_token_response")
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def definition() -> dict[str, Any]:
    body = {
        "templateId": DS["template_id"],
        "templateRoles": [
            {"roleName": "Cliente", "name": "Maria Souza", "email": "maria@example.com.br"}
        ],
        "emailSubject": "Contrato",
        "status": "sent",
        "customFields": {"textCustomFields": [{"name": "leadflow_journey_id", "value": "j_9"}]},
        "transactionId": "j_9:contract",
    }
    check(body, "docusign", "envelope_definition")
    return body


async def test_docusign_answers_declare_only_spec_keys(client: httpx.AsyncClient) -> None:
    auth = await docusign_token(client)
    created = await client.post(ENVELOPES, json=definition(), headers=auth)
    assert created.status_code == 201
    check(created.json(), "docusign", "envelope_summary")
    envelope_id = created.json()["envelopeId"]
    for include in ("", "custom_fields,recipients"):
        read = await client.get(
            f"{ENVELOPES}/{envelope_id}", params={"include": include}, headers=auth
        )
        check(read.json(), "docusign", "envelope")
    listed = await client.get(
        ENVELOPES,
        params={
            "from_date": "2020-01-01",
            "custom_field": "leadflow_journey_id=j_9",
            "include": "custom_fields",
        },
        headers=auth,
    )
    check(listed.json(), "docusign", "envelopes_information")
    assert [e["envelopeId"] for e in listed.json()["envelopes"]] == [envelope_id]
    missing = await client.get(f"{ENVELOPES}/00000000-0000-0000-0000-000000000000", headers=auth)
    assert missing.status_code == 404
    check(missing.json(), "docusign", "error_details")


@pytest.mark.parametrize("accept", [True, False], ids=["completed", "declined"])
async def test_docusign_connect_message_declares_only_spec_keys(
    sandbox: Sandbox, client: httpx.AsyncClient, deliveries: list[Delivery], accept: bool
) -> None:
    auth = await docusign_token(client)
    # every optional part the trimmed schema declares: the listener asks for them
    await client.put(
        "/__sandbox__/docusign/connect", json={"include_data": ["custom_fields", "recipients"]}
    )
    created = await client.post(ENVELOPES, json=definition(), headers=auth)
    role = sandbox.roles["signer"]
    (role.accept if accept else role.refuse)(created.json()["envelopeId"])  # type: ignore[misc]
    messages = [d.json() for d in deliveries if d.vendor == "docusign"]
    expected = "envelope-completed" if accept else "envelope-declined"
    assert expected in [m["event"] for m in messages]
    for message in messages:
        check(message, "docusign", "connect_message")


# -- Facebook ----------------------------------------------------------------------------------

FB = facebook.DEFAULT_CREDENTIALS


async def test_facebook_answers_and_leadgen_webhook_declare_only_spec_keys(
    sandbox: Sandbox, client: httpx.AsyncClient, deliveries: list[Delivery]
) -> None:
    token = {"access_token": FB["page_access_token"]}
    forms = await client.get(
        f"/facebook/v23.0/{FB['page_id']}/leadgen_forms",
        params={**token, "fields": "id,name,status,locale,questions,leads_count,page_id"},
    )
    check(forms.json(), "facebook", "leadgen_form_list_response")
    emulator: facebook.FacebookEmulator = sandbox.emulators["facebook"]
    subscribed = await client.post(
        f"/facebook/v23.0/{FB['page_id']}/subscribed_apps",
        params={**token, "subscribed_fields": "leadgen"},
    )
    assert subscribed.json() == {"success": True}
    emulator.submit_leads(facebook.LeadSubmission(count=3, bad_share=0.0))
    leads = await client.get(
        f"/facebook/v23.0/{FB['form_id']}/leads",
        params={
            **token,
            "limit": "2",
            "fields": "id,created_time,field_data,form_id,ad_id,campaign_id,is_organic",
        },
    )
    check(leads.json(), "facebook", "lead_list_response")
    lead_id = leads.json()["data"][0]["id"]
    lead = await client.get(f"/facebook/v23.0/{lead_id}", params=token)
    check(lead.json(), "facebook", "lead")
    bad = await client.get(f"/facebook/v23.0/{lead_id}", params={"access_token": "EAAwrong"})
    check(bad.json(), "facebook", "graph_error")
    webhooks = [d.json() for d in deliveries if d.vendor == "facebook"]
    assert len(webhooks) == 3
    for payload in webhooks:
        check(payload, "facebook", "leadgen_webhook")


# -- WhatsApp ----------------------------------------------------------------------------------

WA = whatsapp.DEFAULT_CREDENTIALS
MESSAGES = f"/whatsapp/v23.0/{WA['phone_number_id']}/messages"


async def test_whatsapp_answers_and_status_webhooks_declare_only_spec_keys(
    client: httpx.AsyncClient, deliveries: list[Delivery]
) -> None:
    auth = {"Authorization": f"Bearer {WA['access_token']}"}
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "type": "template",
        "template": {
            "name": "pix_cobranca",
            "language": {"policy": "deterministic", "code": "pt_BR"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Maria"},
                        {"type": "text", "text": "000201"},
                    ],
                }
            ],
        },
    }
    check(body, "whatsapp", "template_message_request")
    sent = await client.post(MESSAGES, json=body, headers=auth)
    assert sent.status_code == 200, sent.text
    check(sent.json(), "whatsapp", "message_response")
    refused = await client.post(
        MESSAGES,
        json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511912345678",
            "type": "text",
            "text": {"body": "Oi"},
        },
        headers=auth,
    )
    assert refused.status_code == 400
    check(refused.json(), "whatsapp", "graph_error")
    statuses = [d.json() for d in deliveries if d.vendor == "whatsapp"]
    assert statuses, "a template send reports its statuses"
    for payload in statuses:
        check(payload, "whatsapp", "status_webhook")
