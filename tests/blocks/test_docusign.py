"""The DocuSign client against respx: the JWT grant, the token cache, envelopes, and errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx

from blocks.docusign import (
    DocuSignClient,
    DocuSignCredentials,
    EnvelopeFromTemplate,
    TemplateRole,
    TextCustomField,
    TokenStore,
    docusign_error,
    forget_access_tokens,
)
from blocks.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    UnknownOutcomeError,
)
from blocks.http import HttpPolicy, RateLimit
from tests.blocks.conftest import RecordedSleeps, new_signing_key
from tests.contracts import assert_matches

AUTH = "https://account-d.docusign.com"
BASE = "https://demo.docusign.net"
ACCOUNT = "a1b2c3d4-e5f6-4789-8abc-def012345678"
INTEGRATION_KEY = "5c3d9f0a-7b1e-4a55-9c02-2f6f0e7d1a11"
USER = "8f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TEMPLATE = "2e4f6a8c-0b1d-4e3f-a5b7-c9d1e3f5a7b9"
ENVELOPE_ID = "4b7a5d3c-1e2f-4a6b-9c8d-7e6f5a4b3c2d"
ENVELOPES = f"/restapi/v2.1/accounts/{ACCOUNT}/envelopes"
NOW = 1_790_000_000.0
TOKEN_PREFIX = "eyJ0eXAiOiJNVCJ9.access-token-"


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, Any]:
    return new_signing_key()


@pytest.fixture(autouse=True)
def no_cached_tokens() -> Iterator[None]:
    forget_access_tokens()
    yield
    forget_access_tokens()


class WallClock:
    """The token cache's clock (epoch seconds), moved by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
def credentials(key_pair: tuple[str, Any]) -> DocuSignCredentials:
    return DocuSignCredentials(
        integration_key=INTEGRATION_KEY,
        user_id=USER,
        account_id=ACCOUNT,
        private_key=key_pair[0],
        base_url=BASE,
        auth_server=AUTH,
        template_id=TEMPLATE,
    )


@pytest.fixture
def token_route(mock: respx.MockRouter) -> respx.Route:
    tokens = iter(f"{TOKEN_PREFIX}{n}" for n in range(1, 100))

    def mint(request: httpx.Request) -> httpx.Response:
        body = {"access_token": next(tokens), "token_type": "Bearer", "expires_in": 3600}
        assert_matches(body, "docusign", "oauth_token_response")
        return httpx.Response(200, json=body)

    return mock.post(f"{AUTH}/oauth/token").mock(side_effect=mint)


@pytest.fixture
async def docusign(
    credentials: DocuSignCredentials,
    policy: HttpPolicy,
    sleeps: RecordedSleeps,
    wall_clock: WallClock,
) -> AsyncIterator[DocuSignClient]:
    bucket = RateLimit(3000, 3600, 100, clock=sleeps.clock, sleep=sleeps.sleep)
    async with credentials.get_client(
        policy=policy, rate_limit=bucket, token_store=TokenStore(), clock=wall_clock
    ) as client:
        yield client


def changed(credentials: DocuSignCredentials, **changes: Any) -> DocuSignCredentials:
    """A copy with some fields changed, validated like a Block loaded from Prefect."""
    values = {name: getattr(credentials, name) for name in DocuSignCredentials.model_fields}
    return DocuSignCredentials(**{**values, **changes})


def summary(status: str = "sent") -> dict[str, Any]:
    body = {
        "envelopeId": ENVELOPE_ID,
        "uri": f"/envelopes/{ENVELOPE_ID}",
        "statusDateTime": "2026-11-28T12:00:00.0000000Z",
        "status": status,
    }
    assert_matches(body, "docusign", "envelope_summary")
    return body


def envelope(
    status: str = "sent",
    journey: str = "j_123",
    *,
    envelope_id: str = ENVELOPE_ID,
    created: str = "2026-11-28T11:59:00.0000000Z",
) -> dict[str, Any]:
    body = {
        "envelopeId": envelope_id,
        "status": status,
        "createdDateTime": created,
        "statusChangedDateTime": "2026-11-28T12:00:00.0000000Z",
        "sentDateTime": "2026-11-28T12:00:00.0000000Z",
        "emailSubject": "Contrato de prestação de serviços",
        "transactionId": f"{journey}:contract",
        "customFields": {
            "textCustomFields": [
                {"fieldId": "1", "name": "leadflow_journey_id", "value": journey, "show": "false"}
            ]
        },
    }
    assert_matches(body, "docusign", "envelope")
    return body


def listing(*envelopes: dict[str, Any], next_uri: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resultSetSize": str(len(envelopes)),
        "totalSetSize": str(len(envelopes)),
        "startPosition": "0",
        "endPosition": str(max(len(envelopes) - 1, 0)),
        "envelopes": list(envelopes),
    }
    if next_uri:
        body["nextUri"] = next_uri
    assert_matches(body, "docusign", "envelopes_information")
    return body


def ds_error(status: int, code: str, message: str) -> httpx.Response:
    body = {"errorCode": code, "message": message}
    assert_matches(body, "docusign", "error_details")
    return httpx.Response(status, json=body)


def contract() -> EnvelopeFromTemplate:
    return EnvelopeFromTemplate(
        template_id=TEMPLATE,
        template_roles=[
            TemplateRole(role_name="Cliente", name="Maria Silva", email="maria@example.com")
        ],
        custom_fields=[TextCustomField(name="leadflow_journey_id", value="j_123")],
        transaction_id="j_123:contract",
        email_subject="Contrato de prestação de serviços",
    )


# ------------------------------------------------------------------------------ the JWT grant


async def test_the_token_request_is_a_jwt_bearer_grant_with_an_rs256_assertion(
    mock: respx.MockRouter,
    token_route: respx.Route,
    docusign: DocuSignClient,
    key_pair: tuple[str, Any],
) -> None:
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope())
    await docusign.get_envelope(ENVELOPE_ID)
    request = token_route.calls.last.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert_matches(form, "docusign", "client_token_request")
    header = jwt.get_unverified_header(form["assertion"])
    claims = jwt.decode(
        form["assertion"],
        key_pair[1],
        algorithms=["RS256"],
        audience="account-d.docusign.com",
        options={"verify_exp": False},  # the fake clock is not today
    )
    assert_matches({"header": header, "claims": claims}, "docusign", "client_jwt_assertion")
    assert claims["iss"] == INTEGRATION_KEY
    assert claims["sub"] == USER
    assert claims["aud"] == "account-d.docusign.com"
    assert claims["iat"] == int(NOW)
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    assert claims["scope"] == "signature impersonation"


async def test_rest_calls_carry_the_minted_token_as_bearer(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope())
    await docusign.get_envelope(ENVELOPE_ID)
    assert (
        route.calls.last.request.headers["authorization"]
        == "Bearer eyJ0eXAiOiJNVCJ9.access-token-1"
    )


async def test_the_token_is_reused_until_shortly_before_it_expires(
    mock: respx.MockRouter,
    token_route: respx.Route,
    docusign: DocuSignClient,
    wall_clock: WallClock,
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope())
    await docusign.get_envelope(ENVELOPE_ID)
    wall_clock.now += 3600 - 301  # still more than the 5-minute margin left
    await docusign.get_envelope(ENVELOPE_ID)
    assert token_route.call_count == 1
    wall_clock.now += 2  # now inside the margin: mint before it can expire mid-call
    await docusign.get_envelope(ENVELOPE_ID)
    assert token_route.call_count == 2
    assert (
        route.calls.last.request.headers["authorization"]
        == "Bearer eyJ0eXAiOiJNVCJ9.access-token-2"
    )


async def test_concurrent_calls_without_a_token_wait_for_a_single_mint(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    async def slow_mint(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # the other calls arrive while this token is being minted
        body = {"access_token": f"{TOKEN_PREFIX}slow", "token_type": "Bearer", "expires_in": 3600}
        return httpx.Response(200, json=body)

    minting = mock.post(f"{AUTH}/oauth/token").mock(side_effect=slow_mint)
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope())
    await asyncio.gather(*(docusign.get_envelope(ENVELOPE_ID) for _ in range(10)))
    assert route.call_count == 10
    assert minting.call_count == 1


async def test_concurrent_clients_of_one_credential_share_a_single_mint(
    mock: respx.MockRouter, credentials: DocuSignCredentials, policy: HttpPolicy
) -> None:
    async def slow_mint(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        body = {"access_token": f"{TOKEN_PREFIX}shared", "token_type": "Bearer", "expires_in": 3600}
        return httpx.Response(200, json=body)

    minting = mock.post(f"{AUTH}/oauth/token").mock(side_effect=slow_mint)
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope())
    store = TokenStore()
    clients = [credentials.get_client(policy=policy, token_store=store) for _ in range(5)]
    try:
        await asyncio.gather(*(client.get_envelope(ENVELOPE_ID) for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    assert minting.call_count == 1


async def test_concurrent_calls_refused_with_401_share_one_refresh(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    revoked = "Bearer eyJ0eXAiOiJNVCJ9.access-token-1"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == revoked:
            return ds_error(401, "USER_AUTHENTICATION_FAILED", "The access token is invalid.")
        return httpx.Response(200, json=envelope())

    await docusign.tokens.access_token()  # token 1, revoked at DocuSign from now on
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(side_effect=answer)
    await asyncio.gather(*(docusign.get_envelope(ENVELOPE_ID) for _ in range(8)))
    assert token_route.call_count == 2
    retried = [c for c in route.calls if c.request.headers["authorization"] != revoked]
    assert len(retried) == 8


async def test_a_401_mints_a_new_token_and_retries_once(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.post(f"{BASE}{ENVELOPES}").mock(
        side_effect=[
            ds_error(401, "USER_AUTHENTICATION_FAILED", "The access token is invalid."),
            httpx.Response(201, json=summary()),
        ]
    )
    created = await docusign.create_envelope_from_template(contract())
    assert created.envelope_id == ENVELOPE_ID
    assert token_route.call_count == 2
    assert [c.request.headers["authorization"] for c in route.calls] == [
        "Bearer eyJ0eXAiOiJNVCJ9.access-token-1",
        "Bearer eyJ0eXAiOiJNVCJ9.access-token-2",
    ]


async def test_a_second_401_after_a_fresh_token_raises_authentication_error(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=ds_error(401, "USER_AUTHENTICATION_FAILED", "The access token is invalid.")
    )
    with pytest.raises(AuthenticationError) as raised:
        await docusign.get_envelope(ENVELOPE_ID)
    assert raised.value.code == "USER_AUTHENTICATION_FAILED"
    assert route.call_count == 2
    assert token_route.call_count == 2


async def test_a_refused_grant_raises_authentication_error_with_the_oauth_code(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    refused = {"error": "consent_required"}
    assert_matches(refused, "docusign", "oauth_error")
    mock.post(f"{AUTH}/oauth/token").respond(400, json=refused)
    rest = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}")
    with pytest.raises(AuthenticationError) as raised:
        await docusign.get_envelope(ENVELOPE_ID)
    assert raised.value.code == "consent_required"
    assert not rest.called


async def test_an_unreadable_private_key_raises_authentication_error_without_the_key(
    credentials: DocuSignCredentials, policy: HttpPolicy
) -> None:
    broken = changed(credentials, private_key="-----BEGIN PRIVATE KEY-----\nnope")
    async with broken.get_client(policy=policy, token_store=TokenStore()) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.tokens.access_token()
    assert raised.value.code == "invalid_private_key"
    assert "nope" not in str(raised.value)


async def test_the_private_key_assertion_and_tokens_never_reach_logs_or_errors(
    mock: respx.MockRouter,
    credentials: DocuSignCredentials,
    policy: HttpPolicy,
    key_pair: tuple[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assertions: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        assertions.append(parse_qs(request.content.decode())["assertion"][0])
        if len(assertions) == 1:
            body = {"access_token": f"{TOKEN_PREFIX}1", "token_type": "Bearer", "expires_in": 3600}
            return httpx.Response(200, json=body)
        return httpx.Response(400, json={"error": "invalid_grant"})

    mock.post(f"{AUTH}/oauth/token").mock(side_effect=refuse)
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=ds_error(401, "USER_AUTHENTICATION_FAILED", "The access token is invalid.")
    )
    caplog.set_level(logging.DEBUG)
    async with credentials.get_client(policy=policy, token_store=TokenStore()) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.get_envelope(ENVELOPE_ID)  # mint, 401, mint refused
    assert raised.value.code == "invalid_grant"
    assert len(assertions) == 2
    key_body = "".join(key_pair[0].splitlines()[1:-1])
    shown = caplog.text + str(raised.value) + repr(raised.value) + repr(credentials)
    assert caplog.records  # the calls were logged, without their secrets
    for secret in (key_body[:40], key_body[-40:], "PRIVATE KEY", *assertions, TOKEN_PREFIX):
        assert secret not in shown


async def test_a_token_server_outage_is_retried(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    mock.post(f"{AUTH}/oauth/token").mock(
        side_effect=[
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(
                200,
                json={
                    "access_token": "eyJ0eXAiOiJNVCJ9.after-outage",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
            ),
        ]
    )
    assert await docusign.tokens.access_token() == "eyJ0eXAiOiJNVCJ9.after-outage"


async def test_clients_of_one_credential_share_the_token(
    mock: respx.MockRouter, token_route: respx.Route, credentials: DocuSignCredentials
) -> None:
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope())
    for _ in range(2):
        async with credentials.get_client() as client:
            await client.get_envelope(ENVELOPE_ID)
    assert token_route.call_count == 1


def test_the_audience_is_the_auth_host_without_scheme(credentials: DocuSignCredentials) -> None:
    assert credentials.audience() == "account-d.docusign.com"
    local = changed(credentials, auth_server="http://127.0.0.1:8765/docusign")
    assert local.audience() == "127.0.0.1:8765"


# -------------------------------------------------------------------------------- envelopes


async def test_create_envelope_from_template_posts_roles_custom_fields_and_transaction_id(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.post(f"{BASE}{ENVELOPES}").respond(201, json=summary())
    created = await docusign.create_envelope_from_template(contract())
    body = json.loads(route.calls.last.request.content)
    assert_matches(body, "docusign", "envelope_definition")
    assert_matches(body, "docusign", "client_envelope_definition")
    assert body == {
        "templateId": TEMPLATE,
        "templateRoles": [
            {"roleName": "Cliente", "name": "Maria Silva", "email": "maria@example.com"}
        ],
        "status": "sent",
        "customFields": {
            "textCustomFields": [
                {
                    "name": "leadflow_journey_id",
                    "value": "j_123",
                    "show": "false",
                    "required": "false",
                }
            ]
        },
        "transactionId": "j_123:contract",
        "emailSubject": "Contrato de prestação de serviços",
    }
    assert created.envelope_id == ENVELOPE_ID
    assert created.status == "sent"


def test_an_embedded_signer_carries_its_client_user_id_and_routing_order_as_text() -> None:
    role = TemplateRole(
        role_name="Cliente",
        name="Maria Silva",
        email="maria@example.com",
        client_user_id="lead_42",
        routing_order=1,
    )
    assert role.to_json() == {
        "roleName": "Cliente",
        "name": "Maria Silva",
        "email": "maria@example.com",
        "clientUserId": "lead_42",
        "routingOrder": "1",
    }


def test_every_optional_envelope_field_is_sent_under_docusigns_own_names() -> None:
    draft = EnvelopeFromTemplate(
        template_id=TEMPLATE,
        template_roles=[
            TemplateRole(
                role_name="Cliente",
                name="Maria Silva",
                email="maria@example.com",
                client_user_id="lead_42",
                routing_order=2,
            )
        ],
        custom_fields=[TextCustomField(name="leadflow_journey_id", value="j_1", show=True)],
        transaction_id="j_1:contract",
        email_subject="Contrato",
        email_blurb="Olá Maria, segue o contrato.",
        status="created",
    )
    assert_matches(draft.to_json(), "docusign", "client_envelope_definition")
    assert_matches(draft.to_json(), "docusign", "envelope_definition")


def test_custom_field_values_are_limited_to_100_characters() -> None:
    with pytest.raises(ValueError, match="100"):
        TextCustomField(name="leadflow_journey_id", value="x" * 101)


async def test_get_envelope_returns_status_and_custom_fields(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope("completed"))
    found = await docusign.get_envelope(ENVELOPE_ID)
    assert route.calls.last.request.url.params["include"] == "custom_fields"
    assert found.status == "completed"
    assert found.is_final
    assert found.text_custom_fields == {"leadflow_journey_id": "j_123"}
    assert found.transaction_id == "j_123:contract"


async def test_list_envelopes_sends_from_date_and_the_custom_field_filter(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}").respond(200, json=listing(envelope()))
    page = await docusign.list_envelopes(
        from_date=datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        custom_field=("leadflow_journey_id", "j_123"),
    )
    params = route.calls.last.request.url.params
    assert_matches(dict(params), "docusign", "client_envelopes_query")
    assert params["from_date"] == "2026-11-28T09:00:00Z"
    assert params["custom_field"] == "leadflow_journey_id=j_123"
    assert params["include"] == "custom_fields"
    assert page.result_set_size == 1
    assert [e.envelope_id for e in page.envelopes] == [ENVELOPE_ID]


async def test_list_envelopes_refuses_a_search_without_from_date_or_transaction_id(
    mock: respx.MockRouter, docusign: DocuSignClient
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}")
    with pytest.raises(ValueError, match="from_date"):
        await docusign.list_envelopes(custom_field=("leadflow_journey_id", "j_123"))
    assert not route.called


async def test_find_envelope_by_custom_field_follows_pages_and_returns_the_latest(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    older = envelope(
        envelope_id="11111111-1111-4111-8111-111111111111",
        created="2026-11-28T09:00:00.0000000Z",
    )
    route = mock.get(f"{BASE}{ENVELOPES}").mock(
        side_effect=[
            httpx.Response(200, json=listing(envelope(), next_uri="/envelopes?start_position=1")),
            httpx.Response(200, json=listing(older)),
        ]
    )
    found = await docusign.find_envelope_by_custom_field(
        "leadflow_journey_id", "j_123", from_date=datetime(2026, 11, 28, tzinfo=UTC)
    )
    assert found is not None
    assert found.envelope_id == ENVELOPE_ID
    assert [c.request.url.params["start_position"] for c in route.calls] == ["0", "1"]


async def test_find_envelope_by_custom_field_returns_none_when_nothing_matches(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.get(f"{BASE}{ENVELOPES}").respond(200, json=listing())
    found = await docusign.find_envelope_by_custom_field(
        "leadflow_journey_id", "j_404", from_date=datetime(2026, 11, 28, tzinfo=UTC)
    )
    assert found is None


async def test_find_envelope_by_custom_field_ignores_envelopes_of_other_journeys(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    # a filter DocuSign ignored lists every envelope: none of them is this journey's contract
    bare = {k: v for k, v in envelope().items() if k != "customFields"}
    route = mock.get(f"{BASE}{ENVELOPES}").respond(
        200, json=listing(envelope(journey="j_999"), bare)
    )
    found = await docusign.find_envelope_by_custom_field(
        "leadflow_journey_id", "j_123", from_date=datetime(2026, 11, 28, tzinfo=UTC)
    )
    assert found is None
    assert route.calls.last.request.url.params["include"] == "custom_fields"


async def test_find_envelope_by_transaction_id_never_returns_another_transaction(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.get(f"{BASE}{ENVELOPES}").respond(200, json=listing(envelope(journey="j_999")))
    assert await docusign.find_envelope_by_transaction_id("j_123:contract") is None


async def test_find_envelope_by_transaction_id_needs_no_from_date(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}").respond(200, json=listing(envelope()))
    found = await docusign.find_envelope_by_transaction_id("j_123:contract")
    assert found is not None
    assert found.envelope_id == ENVELOPE_ID
    params = route.calls.last.request.url.params
    assert_matches(dict(params), "docusign", "client_envelopes_query")
    assert params["transaction_ids"] == "j_123:contract"
    assert "from_date" not in params


async def test_void_envelope_puts_status_voided_with_the_reason(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.put(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json={})
    await docusign.void_envelope(ENVELOPE_ID, "Negócio perdido")
    assert json.loads(route.calls.last.request.content) == {
        "status": "voided",
        "voidedReason": "Negócio perdido",
    }


async def test_voiding_an_envelope_already_voided_by_a_lost_attempt_succeeds(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.put(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=ds_error(
            400, "ENVELOPE_CANNOT_VOID_INVALID_STATE", "Only sent or delivered envelopes."
        )
    )
    read = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope(status="voided"))
    await docusign.void_envelope(ENVELOPE_ID, "Negócio perdido")
    assert read.call_count == 1


async def test_voiding_a_completed_envelope_is_a_permanent_error(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.put(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=ds_error(
            400, "ENVELOPE_CANNOT_VOID_INVALID_STATE", "Only sent or delivered envelopes."
        )
    )
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope(status="completed"))
    with pytest.raises(PermanentError) as raised:
        await docusign.void_envelope(ENVELOPE_ID, "Negócio perdido")
    assert raised.value.code == "ENVELOPE_CANNOT_VOID_INVALID_STATE"


# -------------------------------------------------------------------------------- the errors


async def test_a_bad_template_role_is_a_permanent_error_with_docusigns_code(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.post(f"{BASE}{ENVELOPES}").mock(
        return_value=ds_error(400, "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT", "Invalid e-mail.")
    )
    with pytest.raises(PermanentError) as raised:
        await docusign.create_envelope_from_template(contract())
    assert type(raised.value) is PermanentError
    assert raised.value.code == "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT"
    assert raised.value.path == "/restapi/v2.1/accounts/{account_id}/envelopes"


async def test_an_unknown_envelope_raises_not_found(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=ds_error(404, "ENVELOPE_DOES_NOT_EXIST", "The envelope does not exist.")
    )
    with pytest.raises(NotFoundError):
        await docusign.get_envelope(ENVELOPE_ID)


async def test_a_lost_answer_to_a_create_is_an_unknown_outcome_sent_once(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    route = mock.post(f"{BASE}{ENVELOPES}").mock(side_effect=httpx.RemoteProtocolError("closed"))
    with pytest.raises(UnknownOutcomeError):
        await docusign.create_envelope_from_template(contract())
    assert route.call_count == 1


async def test_the_hourly_limit_raises_rate_limited_without_waiting_the_hour(
    mock: respx.MockRouter,
    token_route: respx.Route,
    docusign: DocuSignClient,
    sleeps: RecordedSleeps,
) -> None:
    route = mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=httpx.Response(
            429,
            headers={"Retry-After": "1800", "X-RateLimit-Remaining": "0"},
            json={
                "errorCode": "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
                "message": "The maximum number of hourly API invocations has been exceeded.",
            },
        )
    )
    with pytest.raises(RateLimitedError) as raised:
        await docusign.get_envelope(ENVELOPE_ID)
    assert raised.value.retry_after == 120  # the vendor's 1800, capped (a setting)
    assert route.call_count == 1
    assert 1800 not in sleeps.waits


async def test_a_spent_burst_budget_holds_the_next_call_for_the_burst_window(
    mock: respx.MockRouter,
    token_route: respx.Route,
    docusign: DocuSignClient,
    sleeps: RecordedSleeps,
) -> None:
    spent = {"X-BurstLimit-Limit": "200", "X-BurstLimit-Remaining": "0"}
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").respond(200, json=envelope(), headers=spent)
    await docusign.get_envelope(ENVELOPE_ID)
    assert not [w for w in sleeps.waits if w >= 29]
    await docusign.get_envelope(ENVELOPE_ID)
    assert [w for w in sleeps.waits if w >= 29]


async def test_the_envelope_polling_limit_is_rate_limited_not_permanent(
    mock: respx.MockRouter, token_route: respx.Route, docusign: DocuSignClient
) -> None:
    mock.get(f"{BASE}{ENVELOPES}/{ENVELOPE_ID}").mock(
        return_value=ds_error(
            400, "HOURLY_ENVELOPE_POLLING_LIMIT_EXCEEDED", "Use Connect instead of polling."
        )
    )
    with pytest.raises(RateLimitedError):
        await docusign.get_envelope(ENVELOPE_ID)


def test_the_error_parser_reads_rest_and_oauth_envelopes() -> None:
    assert docusign_error(ds_error(400, "INVALID_REQUEST_BODY", "Bad body.")) == (
        "INVALID_REQUEST_BODY",
        "Bad body.",
    )
    oauth = httpx.Response(400, json={"error": "invalid_grant", "error_description": "no_key"})
    assert docusign_error(oauth) == ("invalid_grant", "no_key")
    assert docusign_error(httpx.Response(502, text="502 Bad Gateway")) == (None, "Bad Gateway")


# --------------------------------------------------------------------------------- the Block


def test_the_block_keeps_the_private_key_and_hmac_key_secret(
    credentials: DocuSignCredentials, key_pair: tuple[str, Any]
) -> None:
    block = changed(credentials, connect_hmac_key="connect-hmac-0123456789")
    shown = repr(block) + str(block.model_dump())
    assert "PRIVATE KEY" not in shown
    assert "connect-hmac-0123456789" not in shown
    assert DocuSignCredentials.model_fields["base_url"].default == "https://www.docusign.net"


def test_the_block_refuses_a_base_url_without_a_scheme(key_pair: tuple[str, Any]) -> None:
    with pytest.raises(ValueError, match="absolute"):
        DocuSignCredentials(
            integration_key=INTEGRATION_KEY,
            user_id=USER,
            account_id=ACCOUNT,
            private_key=key_pair[0],
            base_url="demo.docusign.net",
        )
