"""The vendor clients' subscription operations against respx: what each sends, what it reads.

`leadflow webhooks register` (webhooks/registration.py) subscribes the webhook service through
these: Pipedrive's v1 webhooks, Asaas's webhook configurations, the Facebook Page's `leadgen`
subscription and DocuSign's account-level Connect configurations. A success answer that cannot
be read is covered with every other method in test_unreadable_answers.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from blocks import (
    AsaasClient,
    AsaasCredentials,
    DocuSignClient,
    DocuSignCredentials,
    FacebookLeadAdsClient,
    FacebookLeadAdsCredentials,
    NewAsaasWebhook,
    NewConnectConfiguration,
    PipedriveClient,
    PipedriveCredentials,
    WebhookCreate,
)
from blocks.http import HttpPolicy, RateLimit
from tests.blocks.conftest import docusign_token_granted, new_signing_key

PIPEDRIVE = "https://acme.pipedrive.com"
ASAAS = "https://api.asaas.com"
GRAPH = "https://graph.facebook.com"
DOCUSIGN = "https://demo.docusign.net"
DOCUSIGN_AUTH = "https://account-d.docusign.com"
ACCOUNT = "a1b2c3d4-e5f6-4789-8abc-def012345678"
PAGE_ID = "104857600000001"
HOOK_URL = "https://hooks.example.com.br/webhooks"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with docusign_token_granted(DOCUSIGN_AUTH) as router:
        yield router


def _fast(policy: HttpPolicy) -> dict[str, Any]:
    return {"policy": policy, "rate_limit": RateLimit(1000, 1, 1000)}


@pytest.fixture
async def pipedrive(policy: HttpPolicy) -> AsyncIterator[PipedriveClient]:
    block = PipedriveCredentials(base_url=PIPEDRIVE, api_token=SecretStr("pd-token"))
    async with block.get_client(**_fast(policy)) as client:
        yield client


@pytest.fixture
async def asaas(policy: HttpPolicy) -> AsyncIterator[AsaasClient]:
    block = AsaasCredentials(
        base_url=ASAAS, api_key=SecretStr("$aact_prod_fake"), user_agent="leadflow/test"
    )
    async with block.get_client(**_fast(policy)) as client:
        yield client


@pytest.fixture
async def facebook(policy: HttpPolicy) -> AsyncIterator[FacebookLeadAdsClient]:
    block = FacebookLeadAdsCredentials(
        base_url=GRAPH, page_id=PAGE_ID, page_access_token=SecretStr("EAApage")
    )
    async with block.get_client(**_fast(policy)) as client:
        yield client


@pytest.fixture(scope="module")
def private_key() -> str:
    return new_signing_key()[0]


@pytest.fixture
async def docusign(policy: HttpPolicy, private_key: str) -> AsyncIterator[DocuSignClient]:
    block = DocuSignCredentials(
        base_url=DOCUSIGN,
        auth_server=DOCUSIGN_AUTH,
        integration_key="ik",
        user_id="uid",
        account_id=ACCOUNT,
        private_key=SecretStr(private_key),
    )
    async with block.get_client(**_fast(policy)) as client:
        yield client


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


# -- Pipedrive ------------------------------------------------------------------------------


def pipedrive_hook(**overrides: Any) -> dict[str, Any]:
    hook = {
        "id": 7,
        "company_id": 1,
        "owner_id": 1,
        "user_id": 1,
        "event_action": "*",
        "event_object": "deal",
        "subscription_url": f"{HOOK_URL}/pipedrive",
        "version": "2.0",
        "is_active": 1,
        "add_time": "2026-12-01T10:00:00.000Z",
        "type": "general",
        "http_auth_user": "leadflow",
        "http_auth_password": "s3cret",
        "name": "leadflow",
    }
    return {**hook, **overrides}


async def test_pipedrive_lists_the_webhooks_with_their_state_as_booleans(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    mock.get(f"{PIPEDRIVE}/api/v1/webhooks").respond(
        200, json={"success": True, "data": [pipedrive_hook(), pipedrive_hook(id=8, is_active=0)]}
    )
    hooks = await pipedrive.list_webhooks()
    assert [(h.id, h.is_active) for h in hooks] == [(7, True), (8, False)]
    assert hooks[0].subscription_url == f"{HOOK_URL}/pipedrive"


async def test_pipedrive_creates_a_webhook_sending_its_basic_auth_password(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    route = mock.post(f"{PIPEDRIVE}/api/v1/webhooks").respond(
        201, json={"success": True, "data": pipedrive_hook()}
    )
    created = await pipedrive.create_webhook(
        WebhookCreate(
            subscription_url=f"{HOOK_URL}/pipedrive",
            event_action="*",
            event_object="deal",
            name="leadflow",
            version="2.0",
            http_auth_user="leadflow",
            http_auth_password=SecretStr("s3cret"),
        )
    )
    assert created.id == 7
    assert sent_json(route) == {
        "subscription_url": f"{HOOK_URL}/pipedrive",
        "event_action": "*",
        "event_object": "deal",
        "name": "leadflow",
        "version": "2.0",
        "http_auth_user": "leadflow",
        "http_auth_password": "s3cret",
    }


def test_a_pipedrive_webhook_to_create_never_shows_its_password() -> None:
    webhook = WebhookCreate(
        subscription_url=f"{HOOK_URL}/pipedrive",
        event_action="*",
        event_object="deal",
        name="leadflow",
        http_auth_password=SecretStr("s3cret"),
    )
    assert "s3cret" not in repr(webhook)


def test_pipedrive_refuses_an_event_object_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="event_object"):
        WebhookCreate(
            subscription_url=f"{HOOK_URL}/pipedrive",
            event_action="*",
            event_object="invoice",
            name="leadflow",
        )


# -- Asaas ----------------------------------------------------------------------------------


def asaas_hook(**overrides: Any) -> dict[str, Any]:
    hook = {
        "id": "wh_01",
        "name": "leadflow",
        "url": f"{HOOK_URL}/asaas",
        "email": None,
        "enabled": True,
        "interrupted": False,
        "apiVersion": 3,
        "hasAuthToken": True,
        "sendType": "SEQUENTIALLY",
        "events": ["PAYMENT_RECEIVED"],
    }
    return {**hook, **overrides}


def asaas_page(items: list[dict[str, Any]], *, has_more: bool, offset: int) -> dict[str, Any]:
    return {
        "object": "list",
        "hasMore": has_more,
        "totalCount": 2,
        "limit": 100,
        "offset": offset,
        "data": items,
    }


async def test_asaas_lists_every_webhook_configuration_page_after_page(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.get(f"{ASAAS}/v3/webhooks").mock(
        side_effect=[
            httpx.Response(200, json=asaas_page([asaas_hook()], has_more=True, offset=0)),
            httpx.Response(
                200,
                json=asaas_page([asaas_hook(id="wh_02", enabled=False)], has_more=False, offset=1),
            ),
        ]
    )
    hooks = await asaas.list_webhooks()
    assert [(h.id, h.delivering) for h in hooks] == [("wh_01", True), ("wh_02", False)]
    assert route.calls.last.request.url.params["offset"] == "1"


async def test_asaas_creates_a_webhook_with_its_token_and_events(
    mock: respx.MockRouter, asaas: AsaasClient
) -> None:
    route = mock.post(f"{ASAAS}/v3/webhooks").respond(200, json=asaas_hook())
    created = await asaas.create_webhook(
        NewAsaasWebhook(
            name="leadflow",
            url=f"{HOOK_URL}/asaas",
            events=["PAYMENT_RECEIVED"],
            auth_token=SecretStr("asaas-token"),
        )
    )
    assert created.id == "wh_01"
    assert created.has_auth_token is True
    assert sent_json(route) == {
        "name": "leadflow",
        "url": f"{HOOK_URL}/asaas",
        "events": ["PAYMENT_RECEIVED"],
        "enabled": True,
        "interrupted": False,
        "apiVersion": 3,
        "authToken": "asaas-token",
        "sendType": "SEQUENTIALLY",
    }


def test_an_asaas_webhook_needs_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="events"):
        NewAsaasWebhook(name="leadflow", url=f"{HOOK_URL}/asaas", events=[])


# -- Facebook -------------------------------------------------------------------------------


async def test_facebook_subscribes_the_page_to_leadgen_with_the_token_in_the_header(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    route = mock.post(f"{GRAPH}/v23.0/{PAGE_ID}/subscribed_apps").respond(
        200, json={"success": True}
    )
    assert await facebook.subscribe_page_to_leadgen() is True
    request = route.calls.last.request
    assert dict(request.url.params) == {"subscribed_fields": "leadgen"}
    assert request.headers["Authorization"] == "Bearer EAApage"


async def test_facebook_reports_a_subscription_graph_did_not_make(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    mock.post(f"{GRAPH}/v23.0/{PAGE_ID}/subscribed_apps").respond(200, json={"success": False})
    assert await facebook.subscribe_page_to_leadgen() is False


# -- DocuSign -------------------------------------------------------------------------------

CONNECT = f"{DOCUSIGN}/restapi/v2.1/accounts/{ACCOUNT}/connect"


def connect_configuration(**overrides: Any) -> dict[str, Any]:
    configuration = {
        "connectId": "10000002",
        "configurationType": "custom",
        "name": "leadflow",
        "urlToPublishTo": f"{HOOK_URL}/docusign",
        "allowEnvelopePublish": "true",
        "includeHMAC": "true",
        "events": ["envelope-completed"],
    }
    return {**configuration, **overrides}


async def test_docusign_lists_the_connect_configurations(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    mock.get(CONNECT).respond(
        200,
        json={
            "configurations": [connect_configuration(), connect_configuration(connectId=3)],
            "totalRecords": "2",
        },
    )
    found = await docusign.list_connect_configurations()
    assert [(c.connect_id, c.include_hmac) for c in found] == [("10000002", True), ("3", True)]


async def test_docusign_reads_an_account_without_connect_as_none(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    mock.get(CONNECT).respond(200, json={"totalRecords": "0"})
    assert await docusign.list_connect_configurations() == []


async def test_docusign_creates_a_signed_json_sim_configuration_with_the_custom_fields(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    route = mock.post(CONNECT).respond(201, json=connect_configuration())
    created = await docusign.create_connect_configuration(
        NewConnectConfiguration(
            name="leadflow",
            url_to_publish_to=f"{HOOK_URL}/docusign",
            events=["envelope-completed"],
        )
    )
    assert created.connect_id == "10000002"
    sent = sent_json(route)
    assert sent["urlToPublishTo"] == f"{HOOK_URL}/docusign"
    assert sent["includeHMAC"] == "true"
    assert sent["allowEnvelopePublish"] == "true"
    assert sent["events"] == ["envelope-completed"]
    assert sent["eventData"] == {
        "version": "restv2.1",
        "format": "json",
        "includeData": ["custom_fields"],
    }
    assert route.calls.last.request.headers["Authorization"] == "Bearer t"
