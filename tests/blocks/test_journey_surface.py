"""What the journey's tasks call on each client, beyond the vendor's bare operations.

The look-ups by leadflow's own reference (`find_by_reference`, named alike on every client that
creates), the small compositions a task would otherwise write again (find a person by e-mail or
phone, find or create the lead-id deal field), what a contract carries in and out (prefilled
signer tabs, the filled-in form data), the Asaas quota as Asaas publishes it, and what the
WhatsApp spec we ship allows in a template button.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr, ValidationError

from blocks import (
    AsaasCredentials,
    DealFieldCreate,
    EnvelopeFromTemplate,
    PipedriveCredentials,
    TemplateComponent,
    TemplateParameter,
    TemplateRole,
)
from blocks.asaas import MAX_CONCURRENT_GETS, QUOTA_REQUESTS, QUOTA_WINDOW_SECONDS
from blocks.http import ConcurrencyCap, HttpPolicy, RollingWindow
from blocks.pipedrive import PipedriveClient
from leadflow.sandbox_blocks import SANDBOX_BLOCKS, sandbox_credentials
from tests.blocks.conftest import RecordedSleeps, new_signing_key

PIPEDRIVE = "https://acme.pipedrive.com"
ASAAS = "https://api.asaas.com"
LEAD_FIELD = "a" * 40


@pytest.fixture
async def pipedrive(policy: HttpPolicy) -> AsyncIterator[PipedriveClient]:
    credentials = PipedriveCredentials(base_url=PIPEDRIVE, api_token=SecretStr("t" * 40))
    async with credentials.get_client(policy=policy) as client:
        yield client


def ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "data": data})


def search_hit(item: dict[str, Any]) -> httpx.Response:
    return ok({"items": [{"result_score": 1.0, "item": item}]})


# ------------------------------------------------------------------------------- Pipedrive


async def test_find_person_tries_the_email_then_the_phone_exactly(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    route = mock.get(f"{PIPEDRIVE}/api/v2/persons/search").mock(
        side_effect=[ok({"items": []}), search_hit({"id": 7, "name": "Maria"})]
    )
    found = await pipedrive.find_person(email="maria@example.com", phone="+5511999998888")
    assert found is not None
    assert found.id == 7
    asked = [dict(call.request.url.params) for call in route.calls]
    assert [(q["fields"], q["term"], q["exact_match"]) for q in asked] == [
        ("email", "maria@example.com", "true"),
        ("phone", "+5511999998888", "true"),
    ]


async def test_find_person_needs_an_email_or_a_phone(pipedrive: PipedriveClient) -> None:
    with pytest.raises(ValueError, match="email or a phone"):
        await pipedrive.find_person()


async def test_find_by_reference_returns_the_deal_whose_lead_field_holds_the_id(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    mock.get(f"{PIPEDRIVE}/api/v2/deals/search").respond(
        200,
        json={
            "success": True,
            "data": {
                "items": [
                    {"item": {"id": 1, "custom_fields": ["42"]}},
                    {"item": {"id": 2, "custom_fields": ["42"]}},
                ]
            },
        },
    )
    mock.get(f"{PIPEDRIVE}/api/v2/deals/1").mock(
        return_value=ok({"id": 1, "custom_fields": {"b" * 40: "42", LEAD_FIELD: "41"}})
    )
    mock.get(f"{PIPEDRIVE}/api/v2/deals/2").mock(
        return_value=ok({"id": 2, "custom_fields": {LEAD_FIELD: "42"}})
    )
    deal = await pipedrive.find_by_reference("42", field_key=LEAD_FIELD)
    assert deal is not None
    assert deal.id == 2  # deal 1 only mentions 42 in another field


async def test_find_by_reference_is_none_when_no_deal_holds_the_id(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    mock.get(f"{PIPEDRIVE}/api/v2/deals/search").mock(return_value=ok({"items": []}))
    assert await pipedrive.find_by_reference("42", field_key=LEAD_FIELD) is None


async def test_ensure_deal_field_finds_it_by_name_or_creates_it_once(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    fields = mock.get(f"{PIPEDRIVE}/api/v1/dealFields").mock(
        return_value=ok([{"key": "title", "name": "Title", "field_type": "varchar"}])
    )
    created = mock.post(f"{PIPEDRIVE}/api/v1/dealFields").mock(
        return_value=ok({"key": LEAD_FIELD, "name": "leadflow lead id", "field_type": "varchar"})
    )
    wanted = DealFieldCreate(name="leadflow lead id", field_type="varchar")
    field = await pipedrive.ensure_deal_field(wanted)
    assert field.key == LEAD_FIELD
    assert created.call_count == 1
    fields.mock(
        return_value=ok([{"key": LEAD_FIELD, "name": "leadflow lead id", "field_type": "varchar"}])
    )
    assert (await pipedrive.ensure_deal_field(wanted)).key == LEAD_FIELD
    assert created.call_count == 1
    assert await pipedrive.find_deal_field("nowhere") is None


# -------------------------------------------------------------------------------- DocuSign


def test_a_signer_can_carry_prefilled_text_tabs() -> None:
    role = TemplateRole(
        role_name="Cliente",
        name="Maria Silva",
        email="maria@example.com",
        text_tabs={"cpf": "123.456.789-09"},
    )
    body = EnvelopeFromTemplate(template_id="t", template_roles=[role]).to_json()
    assert body["templateRoles"][0]["tabs"] == {
        "textTabs": [{"tabLabel": "cpf", "value": "123.456.789-09"}]
    }
    assert "textTabs" not in body["templateRoles"][0]
    plain = TemplateRole(role_name="Cliente", name="Maria", email="maria@example.com")
    assert "tabs" not in plain.to_json()


# ---------------------------------------------------------------------- Asaas, arithmetic


def test_the_asaas_block_models_the_published_quota_and_get_cap() -> None:
    credentials = AsaasCredentials(api_key=SecretStr("$aact_prod_quota"))
    client = credentials.get_client()
    quota = client._http.rate_limit
    assert isinstance(quota, RollingWindow)
    assert (quota.limit, quota.window) == (QUOTA_REQUESTS, QUOTA_WINDOW_SECONDS)
    assert (QUOTA_REQUESTS, QUOTA_WINDOW_SECONDS) == (25_000, 12 * 3600)
    cap = client._http.concurrency
    assert isinstance(cap, ConcurrencyCap)
    assert (cap.limit, cap.methods) == (MAX_CONCURRENT_GETS, frozenset({"GET", "HEAD", "OPTIONS"}))
    assert MAX_CONCURRENT_GETS == 50
    assert client._http.rate_limit_scope == "route"
    # one quota and one cap per account in the process
    again = AsaasCredentials(api_key=SecretStr("$aact_prod_quota")).get_client()
    assert again._http.rate_limit is quota
    assert again._http.concurrency is cap


async def test_a_thousand_asaas_calls_in_a_row_wait_on_nothing_but_the_vendor(
    mock: respx.MockRouter, policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    """25,000 per 12 h rolling: 1,000 calls are 4% of the window, so no call waits.

    The old token bucket (a burst of 500, then 25,000/43,200 s = one call per 1.73 s) made the
    501st call wait 1.7 s and the 1,000th about 14 minutes.
    """
    quota = RollingWindow(QUOTA_REQUESTS, QUOTA_WINDOW_SECONDS, clock=sleeps.clock)
    route = mock.get(f"{ASAAS}/v3/payments/pay_1").respond(
        200,
        json={
            "id": "pay_1",
            "customer": "cus_1",
            "value": 10.0,
            "billingType": "PIX",
            "status": "PENDING",
            "dueDate": "2026-12-01",
        },
        headers={"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "30"},
    )
    credentials = AsaasCredentials(api_key=SecretStr("$aact_prod_thousand"))
    async with credentials.get_client(policy=policy, rate_limit=quota) as asaas:
        for _ in range(1_000):
            await asaas.get_payment("pay_1")
    assert route.call_count == 1_000
    assert sleeps.waits == []


async def test_a_spent_asaas_endpoint_pauses_that_endpoint_only(
    mock: respx.MockRouter, policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    quota = RollingWindow(QUOTA_REQUESTS, QUOTA_WINDOW_SECONDS, clock=sleeps.clock)
    spent = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"}
    page = {"hasMore": False, "totalCount": 0, "limit": 10, "offset": 0, "data": []}
    mock.get(f"{ASAAS}/v3/payments").respond(200, json=page, headers=spent)
    mock.get(f"{ASAAS}/v3/customers").respond(200, json=page)
    credentials = AsaasCredentials(api_key=SecretStr("$aact_prod_spent"))
    async with credentials.get_client(policy=policy, rate_limit=quota) as asaas:
        await asaas.list_payments()
        await asaas.list_customers()  # another endpoint: no wait
        assert sleeps.waits == []
        await asaas.list_payments()  # the spent endpoint waits for its reset
    assert sleeps.waits == [30.0]


# -------------------------------------------------------------------------------- WhatsApp


@pytest.mark.parametrize("sub_type", ["quick_reply", "url", "catalog"])
def test_a_button_sub_type_the_spec_lists_is_accepted(sub_type: str) -> None:
    button = TemplateComponent(
        type="button",
        sub_type=sub_type,  # type: ignore[arg-type]
        index="0",
        parameters=[TemplateParameter(type="payload", payload="X")],
    )
    assert button.sub_type == sub_type


@pytest.mark.parametrize("sub_type", ["copy_code", "otp", "QUICK_REPLY"])
def test_a_button_sub_type_the_spec_does_not_list_is_refused(sub_type: str) -> None:
    with pytest.raises(ValidationError, match="sub_type"):
        TemplateComponent(type="button", sub_type=sub_type, index="0")  # type: ignore[arg-type]


def test_a_button_index_is_one_digit() -> None:
    with pytest.raises(ValidationError, match="index"):
        TemplateComponent(type="button", sub_type="quick_reply", index="10")


# ---------------------------------------------------------------------- sandbox Blocks


def test_sandbox_credentials_builds_every_vendors_block_from_the_admin_api(
    sandbox_urls: dict[str, str],
) -> None:
    root = next(iter(sandbox_urls.values())).rsplit("/", 1)[0]
    built = sandbox_credentials(root)
    assert list(built) == list(SANDBOX_BLOCKS) == list(sandbox_urls)
    for vendor, block in built.items():
        assert block.base_url == sandbox_urls[vendor]
        assert block.vendor == vendor
    assert sandbox_credentials(root + "/__sandbox__").keys() == built.keys()


async def test_a_sandbox_block_talks_to_the_sandbox(
    sandbox_urls: dict[str, str], policy: HttpPolicy
) -> None:
    root = next(iter(sandbox_urls.values())).rsplit("/", 1)[0]
    asaas = sandbox_credentials(root)["asaas"]
    async with asaas.get_client(policy=policy) as client:
        assert "customer" in await client.check_access()


def test_envelope_form_data_reads_envelope_and_signer_fields() -> None:
    from blocks import EnvelopeFormData

    data = EnvelopeFormData.model_validate(
        json.loads(
            '{"envelopeId": "e", "status": "completed",'
            ' "formData": [{"name": "plano", "value": "anual"}],'
            ' "recipientFormData": [{"recipientId": "1",'
            ' "formData": [{"name": "cpf", "value": "123.456.789-09"}]}]}'
        )
    )
    assert data.values() == {"plano": "anual", "cpf": "123.456.789-09"}


@pytest.fixture(scope="module")
def docusign_credentials() -> Any:
    from blocks import DocuSignCredentials

    pem, _ = new_signing_key()
    return DocuSignCredentials(
        base_url="https://demo.docusign.net",
        auth_server="https://account-d.docusign.com",
        integration_key="ik",
        user_id="uid",
        account_id="acc",
        private_key=SecretStr(pem),
    )


@pytest.fixture
def docusign_mock(mock: respx.MockRouter) -> Iterator[respx.MockRouter]:
    from blocks.docusign import forget_access_tokens

    forget_access_tokens()
    mock.post("https://account-d.docusign.com/oauth/token").respond(
        200, json={"access_token": "t", "expires_in": 3600}
    )
    yield mock
    forget_access_tokens()


ENVELOPES = "https://demo.docusign.net/restapi/v2.1/accounts/acc/envelopes"


async def test_get_envelope_form_data_asks_for_the_envelopes_form_data(
    docusign_mock: respx.MockRouter, docusign_credentials: Any, policy: HttpPolicy
) -> None:
    route = docusign_mock.get(f"{ENVELOPES}/env-1/form_data").respond(
        200, json={"envelopeId": "env-1", "formData": [{"name": "cpf", "value": "1"}]}
    )
    async with docusign_credentials.get_client(policy=policy) as docusign:
        data = await docusign.get_envelope_form_data("env-1")
    assert route.call_count == 1
    assert data.values() == {"cpf": "1"}


async def test_docusign_find_by_reference_searches_the_lead_id_custom_field(
    docusign_mock: respx.MockRouter, docusign_credentials: Any, policy: HttpPolicy
) -> None:
    ours = {
        "envelopeId": "env-2",
        "status": "sent",
        "customFields": {"textCustomFields": [{"name": "leadflow_lead_id", "value": "42"}]},
    }
    other = {**ours, "envelopeId": "env-3", "customFields": {"textCustomFields": []}}
    route = docusign_mock.get(ENVELOPES).respond(
        200,
        json={
            "envelopes": [other, ours],
            "resultSetSize": "2",
            "totalSetSize": "2",
            "startPosition": "0",
        },
    )
    since = datetime(2026, 11, 1, tzinfo=UTC)
    async with docusign_credentials.get_client(policy=policy) as docusign:
        found = await docusign.find_by_reference("42", since=since)
    assert found is not None
    assert found.envelope_id == "env-2"
    params = route.calls.last.request.url.params
    assert params["custom_field"] == "leadflow_lead_id=42"
    assert params["from_date"] == "2026-11-01T00:00:00Z"
