"""The DocuSign emulator behaves as DocuSign's eSignature v2.1, OAuth and Connect contracts say.

One behaviour per test: the JWT grant checks the assertion's RS256 signature and its iss, sub,
aud, exp and scope; envelopes are created from the template with transactionId idempotency,
read, and listed by custom field; errors use `{errorCode, message}`; the hourly, burst and
polling limits answer as DocuSign does; and the simulated signer's signature or refusal reaches
a real loopback listener as a Connect message whose X-DocuSign-Signature-1 is recomputed here
with hmac. Schemas are trimmed copies of DocuSign's Swagger (tests/contracts/docusign/). The
`sandbox` and `receiver` fixtures come from tests/sandbox/conftest.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.faults import RouteFaults
from sandbox.people import PersonBehaviour
from sandbox.server import running_sandbox
from sandbox.vendors import docusign
from tests.contracts import assert_matches
from tests.sandbox.conftest import in_process

if TYPE_CHECKING:
    from tests.sandbox.conftest import ReceivedRequest, WebhookReceiver

CREDENTIALS = docusign.DEFAULT_CREDENTIALS
ACCOUNT = CREDENTIALS["account_id"]
ENVELOPES = f"/restapi/v2.1/accounts/{ACCOUNT}/envelopes"


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


def _state(
    sandbox: Sandbox, limits: docusign.DocuSignLimits | None = None
) -> docusign.DocuSignState:
    """The account's state, laid out here (with `limits`) when the emulator has not yet."""
    layout = limits or docusign.DocuSignLimits()
    return sandbox.state.bucket(docusign.VENDOR, lambda: docusign.DocuSignState(limits=layout))


def _app(sandbox: Sandbox, limits: docusign.DocuSignLimits | None = None) -> FastAPI:
    """The whole sandbox app; `limits` are set the way an operator would, through the state."""
    if limits is not None:
        with sandbox.state.lock:
            _state(sandbox).limits = limits
    return create_app(sandbox)


@functools.cache
def _signing_key(private_key_pem: str) -> Any:
    """The key object of a PEM, loaded once: loading an RSA key takes ~25 ms per call."""
    return serialization.load_pem_private_key(private_key_pem.encode(), password=None)


def _assertion(private_key_pem: str | None = None, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": CREDENTIALS["integration_key"],
        "sub": CREDENTIALS["user_id"],
        "aud": "account-d.docusign.com",
        "iat": now,
        "exp": now + 3600,
        "scope": "signature impersonation",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    key = _signing_key(private_key_pem or CREDENTIALS["private_key_pem"])
    return jwt.encode(claims, key, algorithm="RS256")


def _grant(assertion: str) -> dict[str, str]:
    return {"grant_type": docusign.JWT_BEARER_GRANT, "assertion": assertion}


@pytest.fixture
async def anonymous(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(_app(sandbox), "/docusign") as client:
        yield client


@pytest.fixture
async def client(anonymous: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await anonymous.post("/oauth/token", data=_grant(_assertion()))
    assert response.status_code == 200, response.text
    anonymous.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return anonymous


def _definition(journey: str = "j_123", **overrides: Any) -> dict[str, Any]:
    return {
        "templateId": CREDENTIALS["template_id"],
        "templateRoles": [
            {
                "roleName": "Cliente",
                "name": "Maria Silva",
                "email": "maria@example.com.br",
                "tabs": {"textTabs": [{"tabLabel": "cpf", "value": "123.456.789-09"}]},
            }
        ],
        "emailSubject": "Contrato de prestação de serviços",
        "status": "sent",
        "customFields": {
            "textCustomFields": [
                {
                    "name": "leadflow_journey_id",
                    "value": journey,
                    "show": "false",
                    "required": "false",
                }
            ]
        },
        "transactionId": f"{journey}:contract",
        **overrides,
    }


async def _envelope(client: httpx.AsyncClient, journey: str = "j_123", **overrides: Any) -> str:
    response = await client.post(ENVELOPES, json=_definition(journey, **overrides))
    assert response.status_code == 201, response.text
    return response.json()["envelopeId"]


def _assert_docusign_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert_matches(response.json(), "docusign", "error_details")
    assert response.json()["errorCode"] == code


def _assert_oauth_error(response: httpx.Response, error: str) -> str:
    assert response.status_code == 400, response.text
    assert_matches(response.json(), "docusign", "oauth_error")
    assert response.json()["error"] == error
    return response.json().get("error_description", "")


def _payload(request: ReceivedRequest) -> Any:
    return json.loads(request.body)


def _header(request: ReceivedRequest, name: str) -> str | None:
    """A header of a received request, whatever case the sender wrote its name in."""
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)


@pytest.fixture
def connect(receiver: WebhookReceiver, sandbox: Sandbox) -> WebhookReceiver:
    """The account's Connect configuration points at the receiver and includes custom fields
    and recipients (the trimmed contract schema declares them)."""
    sandbox.webhook_targets[docusign.VENDOR] = f"{receiver.url}/connect"
    with sandbox.state.lock:
        _state(sandbox).connect = docusign.ConnectSettings(
            include_data=["custom_fields", "recipients"]
        )
    return receiver


def _signature_valid(delivery: ReceivedRequest, key: str = CREDENTIALS["connect_hmac_key"]) -> bool:
    """Connect's HMAC, recomputed here: base64(HMAC-SHA256(key, raw body))."""
    expected = base64.b64encode(
        hmac.new(key.encode(), delivery.body, hashlib.sha256).digest()
    ).decode()
    return hmac.compare_digest(_header(delivery, "x-docusign-signature-1") or "", expected)


# --------------------------------------------------------------------------------------------
# OAuth JWT grant
# --------------------------------------------------------------------------------------------


async def test_valid_assertion_gets_a_one_hour_bearer_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/oauth/token", data=_grant(_assertion()))
    assert response.status_code == 200
    assert_matches(response.json(), "docusign", "oauth_token_response")
    assert response.json()["expires_in"] == 3600


async def test_assertion_signed_with_another_key_is_an_invalid_grant(
    anonymous: httpx.AsyncClient,
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    response = await anonymous.post("/oauth/token", data=_grant(_assertion(pem)))
    assert _assert_oauth_error(response, "invalid_grant") == "no_valid_keys_or_signatures"


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"iss": "00000000-0000-4000-8000-000000000000"}, "issuer_not_found"),
        ({"sub": "00000000-0000-4000-8000-000000000000"}, "user_not_found"),
        ({"aud": "https://account-d.docusign.com"}, "audience"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "expired"),
        ({"exp": int(time.time()) + 7200}, "1 hour"),
        ({"exp": None}, "exp"),
    ],
)
async def test_assertion_with_a_bad_claim_is_an_invalid_grant(
    anonymous: httpx.AsyncClient, claims: dict[str, Any], description: str
) -> None:
    response = await anonymous.post("/oauth/token", data=_grant(_assertion(**claims)))
    assert description in _assert_oauth_error(response, "invalid_grant")


async def test_assertion_without_impersonation_scope_needs_consent(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post("/oauth/token", data=_grant(_assertion(scope="signature")))
    _assert_oauth_error(response, "consent_required")


async def test_other_grant_types_are_unsupported(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/oauth/token", data={"grant_type": "client_credentials", "assertion": _assertion()}
    )
    _assert_oauth_error(response, "unsupported_grant_type")


async def test_assertion_may_name_the_sandbox_host_as_audience(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post("/oauth/token", data=_grant(_assertion(aud="sandbox")))
    assert response.status_code == 200


async def test_configured_public_key_verifies_the_clients_own_key(sandbox: Sandbox) -> None:
    own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    own_pem = own.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        own.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sandbox.credentials[docusign.VENDOR] = {"public_key_pem": public_pem}
    async with in_process(_app(sandbox), "/docusign") as client:
        accepted = await client.post("/oauth/token", data=_grant(_assertion(own_pem)))
        refused = await client.post("/oauth/token", data=_grant(_assertion()))
    assert accepted.status_code == 200
    _assert_oauth_error(refused, "invalid_grant")


async def test_userinfo_names_the_account_and_its_base_uri(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    response = await client.get("/oauth/userinfo")
    assert response.status_code == 200
    [account] = response.json()["accounts"]
    assert account["account_id"] == ACCOUNT
    assert account["is_default"] is True
    assert account["base_uri"] == sandbox.base_url("docusign")


# --------------------------------------------------------------------------------------------
# REST authentication
# --------------------------------------------------------------------------------------------


async def test_api_call_without_token_is_401_authorization_invalid_token(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.post(ENVELOPES, json=_definition())
    _assert_docusign_error(response, 401, "AUTHORIZATION_INVALID_TOKEN")


async def test_api_call_with_an_unknown_token_is_refused(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(
        f"{ENVELOPES}/x", headers={"Authorization": "Bearer made-up-token"}
    )
    _assert_docusign_error(response, 401, "AUTHORIZATION_INVALID_TOKEN")


async def test_expired_access_token_is_refused(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    with sandbox.state.lock:
        for record in _state(sandbox).tokens.values():
            record["expires_at"] = time.time() - 1
    response = await client.get(ENVELOPES, params={"from_date": "2024-01-01"})
    _assert_docusign_error(response, 401, "AUTHORIZATION_INVALID_TOKEN")


async def test_state_keeps_no_live_access_token(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    token = client.headers["Authorization"].removeprefix("Bearer ")
    assert token not in json.dumps(sandbox.state.dump())


async def test_api_call_on_another_account_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/restapi/v2.1/accounts/00000000-0000-0000-0000-000000000000/envelopes",
        json=_definition(),
    )
    _assert_docusign_error(response, 400, "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT")


# --------------------------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------------------------


async def test_envelope_from_template_is_created_and_sent(client: httpx.AsyncClient) -> None:
    body = _definition()
    assert_matches(body, "docusign", "envelope_definition")
    response = await client.post(ENVELOPES, json=body)
    assert response.status_code == 201
    assert_matches(response.json(), "docusign", "envelope_summary")
    summary = response.json()
    assert summary["status"] == "sent"
    assert summary["uri"] == f"/envelopes/{summary['envelopeId']}"


async def test_same_transaction_id_returns_the_same_envelope_once(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    first = await client.post(ENVELOPES, json=_definition())
    second = await client.post(ENVELOPES, json=_definition())
    assert first.json() == second.json()
    assert sandbox.state.counters()["docusign"]["envelope"] == 1


async def test_transaction_id_older_than_seven_days_no_longer_deduplicates(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    first = await _envelope(client)
    with sandbox.state.lock:
        envelope = _state(sandbox).envelopes[first]
        eight_days_ago = datetime.now(UTC) - timedelta(days=8)
        envelope["createdDateTime"] = eight_days_ago.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    second = await _envelope(client)
    assert second != first


async def test_transaction_id_is_forgotten_with_a_state_reset(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    before = await _envelope(client)
    sandbox.state.reset()
    grant = await client.post("/oauth/token", data=_grant(_assertion()))
    client.headers["Authorization"] = f"Bearer {grant.json()['access_token']}"
    after = await _envelope(client)
    listed = await client.get(
        ENVELOPES, params={"from_date": "2024-01-01", "custom_field": "leadflow_journey_id=j_123"}
    )
    assert after != before
    assert [e["envelopeId"] for e in listed.json()["envelopes"]] == [after]


async def test_envelope_without_status_is_a_draft(client: httpx.AsyncClient) -> None:
    body = _definition()
    del body["status"]
    response = await client.post(ENVELOPES, json=body)
    assert response.json()["status"] == "created"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"templateId": "00000000-0000-4000-8000-000000000000"}, "TEMPLATE_ID_INVALID"),
        ({"templateRoles": [{"roleName": "Signer", "name": "M", "email": "m@ex.com"}]},
         "INVALID_ROLE_NAME"),
        ({"templateRoles": [{"roleName": "Cliente", "name": "M", "email": "not-an-email"}]},
         "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT"),
        ({"templateRoles": [{"roleName": "Cliente", "email": "m@ex.com"}]},
         "INVALID_USERNAME_FOR_RECIPIENT"),
        ({"templateRoles": []}, "ENVELOPE_IS_INCOMPLETE"),
        ({"emailSubject": "x" * 101}, "EMAIL_SUBJECT_TOO_LONG"),
        ({"customFields": {"textCustomFields": [{"name": "journey", "value": "v" * 101}]}},
         "CUSTOM_FIELD_VALUE_TOO_LONG"),
        ({"status": "completed"}, "INVALID_ENVELOPE_STATUS"),
        ({"templateId": 42}, "INVALID_REQUEST_BODY"),
        ({"customFields": {"textCustomFields": [{"name": "flag", "value": "x", "show": False}]}},
         "INVALID_REQUEST_BODY"),
    ],
)  # fmt: skip
async def test_invalid_envelope_definition_is_refused(
    client: httpx.AsyncClient, overrides: dict[str, Any], code: str
) -> None:
    response = await client.post(ENVELOPES, json=_definition(**overrides))
    _assert_docusign_error(response, 400, code)


async def test_body_that_is_not_json_is_invalid_request_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        ENVELOPES, content=b"<xml/>", headers={"content-type": "application/json"}
    )
    _assert_docusign_error(response, 400, "INVALID_REQUEST_BODY")


async def test_read_envelope_returns_status_and_transaction_id_and_only_a_custom_fields_uri(
    client: httpx.AsyncClient,
) -> None:
    envelope_id = await _envelope(client)
    response = await client.get(f"{ENVELOPES}/{envelope_id}")
    assert response.status_code == 200
    assert_matches(response.json(), "docusign", "envelope")
    envelope = response.json()
    assert envelope["status"] == "sent"
    assert envelope["transactionId"] == "j_123:contract"
    assert envelope["customFieldsUri"] == f"/envelopes/{envelope_id}/custom_fields"
    assert "customFields" not in envelope
    assert "recipients" not in envelope


async def test_read_envelope_including_custom_fields_returns_the_journey_id(
    client: httpx.AsyncClient,
) -> None:
    envelope_id = await _envelope(client)
    response = await client.get(
        f"{ENVELOPES}/{envelope_id}", params={"include": "custom_fields, recipients"}
    )
    assert response.status_code == 200
    assert_matches(response.json(), "docusign", "envelope")
    envelope = response.json()
    assert envelope["status"] == "sent"
    assert envelope["transactionId"] == "j_123:contract"
    assert envelope["customFields"]["textCustomFields"][0]["value"] == "j_123"
    assert "completedDateTime" not in envelope


async def test_read_envelope_with_recipients_lists_the_signer(client: httpx.AsyncClient) -> None:
    envelope_id = await _envelope(client)
    response = await client.get(f"{ENVELOPES}/{envelope_id}", params={"include": "recipients"})
    assert_matches(response.json(), "docusign", "envelope")
    [signer] = response.json()["recipients"]["signers"]
    assert (signer["roleName"], signer["email"], signer["status"]) == (
        "Cliente",
        "maria@example.com.br",
        "sent",
    )


async def test_reading_an_unknown_envelope_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ENVELOPES}/9c1f0000-0000-4000-8000-000000000000")
    _assert_docusign_error(response, 404, "ENVELOPE_DOES_NOT_EXIST")


async def test_updating_an_unknown_envelope_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{ENVELOPES}/9c1f0000-0000-4000-8000-000000000000",
        json={"status": "voided", "voidedReason": "duplicado"},
    )
    _assert_docusign_error(response, 404, "ENVELOPE_DOES_NOT_EXIST")


async def test_list_by_custom_field_finds_only_that_journeys_envelope(
    client: httpx.AsyncClient,
) -> None:
    wanted = await _envelope(client, "j_1")
    await _envelope(client, "j_10")
    response = await client.get(
        ENVELOPES,
        params={"from_date": "2024-01-01", "custom_field": "leadflow_journey_id=j_1"},
    )
    assert response.status_code == 200
    assert_matches(response.json(), "docusign", "envelopes_information")
    assert [e["envelopeId"] for e in response.json()["envelopes"]] == [wanted]
    assert response.json()["totalSetSize"] == "1"


async def test_list_by_transaction_ids_needs_no_from_date(client: httpx.AsyncClient) -> None:
    wanted = await _envelope(client, "j_7")
    await _envelope(client, "j_8")
    response = await client.get(ENVELOPES, params={"transaction_ids": "j_7:contract"})
    assert [e["envelopeId"] for e in response.json()["envelopes"]] == [wanted]


async def test_list_ignores_envelopes_changed_before_from_date(client: httpx.AsyncClient) -> None:
    await _envelope(client)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    response = await client.get(ENVELOPES, params={"from_date": tomorrow})
    assert response.json()["envelopes"] == []


async def test_list_without_from_date_or_ids_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(ENVELOPES, params={"custom_field": "leadflow_journey_id=j_1"})
    _assert_docusign_error(response, 400, "INVALID_REQUEST_PARAMETER")


async def test_list_with_a_malformed_custom_field_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(
        ENVELOPES, params={"from_date": "2024-01-01", "custom_field": "leadflow_journey_id"}
    )
    _assert_docusign_error(response, 400, "INVALID_REQUEST_PARAMETER")


async def test_list_pages_with_start_position_and_count(client: httpx.AsyncClient) -> None:
    created = [await _envelope(client, f"j_{index}") for index in range(5)]
    first = await client.get(ENVELOPES, params={"from_date": "2024-01-01", "count": "3"})
    second = await client.get(
        ENVELOPES, params={"from_date": "2024-01-01", "count": "3", "start_position": "3"}
    )
    assert "nextUri" in first.json()
    assert "nextUri" not in second.json()
    listed = [e["envelopeId"] for e in first.json()["envelopes"] + second.json()["envelopes"]]
    assert sorted(listed) == sorted(created)
    assert len(set(listed)) == 5


async def test_draft_is_sent_with_put(client: httpx.AsyncClient) -> None:
    envelope_id = await _envelope(client, status="created")
    response = await client.put(f"{ENVELOPES}/{envelope_id}", json={"status": "sent"})
    assert response.status_code == 200
    envelope = (await client.get(f"{ENVELOPES}/{envelope_id}")).json()
    assert envelope["status"] == "sent"
    assert "sentDateTime" in envelope


async def test_void_records_the_reason(client: httpx.AsyncClient) -> None:
    envelope_id = await _envelope(client)
    await client.put(
        f"{ENVELOPES}/{envelope_id}", json={"status": "voided", "voidedReason": "Duplicado"}
    )
    envelope = (await client.get(f"{ENVELOPES}/{envelope_id}")).json()
    assert (envelope["status"], envelope["voidedReason"]) == ("voided", "Duplicado")


async def test_void_of_a_completed_envelope_is_refused(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    envelope_id = await _envelope(client)
    sandbox.roles["signer"].accept(envelope_id)
    response = await client.put(
        f"{ENVELOPES}/{envelope_id}", json={"status": "voided", "voidedReason": "tarde"}
    )
    _assert_docusign_error(response, 400, "ENVELOPE_CANNOT_VOID_INVALID_STATE")


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


async def test_every_api_response_carries_hourly_and_burst_headers(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post(ENVELOPES, json=_definition())
    second = await client.get(f"{ENVELOPES}/{first.json()['envelopeId']}")
    limits = docusign.DocuSignLimits()
    assert first.headers["X-RateLimit-Limit"] == str(limits.hourly_limit)
    assert first.headers["X-BurstLimit-Limit"] == str(limits.burst_limit)
    assert (
        int(first.headers["X-RateLimit-Remaining"]) - int(second.headers["X-RateLimit-Remaining"])
        == 1
    )
    assert int(first.headers["X-RateLimit-Reset"]) % 3600 == 0
    assert int(first.headers["X-RateLimit-Reset"]) > time.time()


@contextlib.asynccontextmanager
async def _limited_client(
    sandbox: Sandbox, limits: docusign.DocuSignLimits
) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(_app(sandbox, limits), "/docusign") as client:
        grant = await client.post("/oauth/token", data=_grant(_assertion()))
        client.headers["Authorization"] = f"Bearer {grant.json()['access_token']}"
        yield client


async def test_hourly_limit_answers_429_hourly_apiinvocation_limit_exceeded(
    sandbox: Sandbox,
) -> None:
    async with _limited_client(sandbox, docusign.DocuSignLimits(hourly_limit=2)) as client:
        statuses = [
            (await client.get(ENVELOPES, params={"from_date": "2024-01-01"})).status_code
            for _ in range(2)
        ]
        over = await client.get(ENVELOPES, params={"from_date": "2024-01-01"})
    assert statuses == [200, 200]
    _assert_docusign_error(over, 429, "HOURLY_APIINVOCATION_LIMIT_EXCEEDED")
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert int(over.headers["Retry-After"]) <= 3600


async def test_burst_limit_answers_429_within_the_window(sandbox: Sandbox) -> None:
    async with _limited_client(sandbox, docusign.DocuSignLimits(burst_limit=1)) as client:
        await client.get(ENVELOPES, params={"from_date": "2024-01-01"})
        over = await client.get(ENVELOPES, params={"from_date": "2024-01-01"})
    _assert_docusign_error(over, 429, "BURST_APIINVOCATION_LIMIT_EXCEEDED")
    assert over.headers["X-BurstLimit-Remaining"] == "0"


async def test_polling_one_envelope_too_often_is_refused(sandbox: Sandbox) -> None:
    async with _limited_client(
        sandbox, docusign.DocuSignLimits(envelope_polls_per_hour=2)
    ) as client:
        envelope_id = await _envelope(client)
        for _ in range(2):
            assert (await client.get(f"{ENVELOPES}/{envelope_id}")).status_code == 200
        over = await client.get(f"{ENVELOPES}/{envelope_id}")
        other = await _envelope(client, "j_other")
        fine = await client.get(f"{ENVELOPES}/{other}")
    _assert_docusign_error(over, 400, "HOURLY_ENVELOPE_POLLING_LIMIT_EXCEEDED")
    assert fine.status_code == 200


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        ({"throttle_rate": 1.0}, 429, "BURST_APIINVOCATION_LIMIT_EXCEEDED"),
        ({"error_rate": 1.0, "error_statuses": [500]}, 500, "UNSPECIFIED_ERROR"),
    ],
)
async def test_injected_fault_answers_in_docusigns_body_and_writes_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient, rule: dict[str, Any], status: int, code: str
) -> None:
    route = "POST /restapi/v2.1/accounts/{account_id}/envelopes"
    sandbox.faults.configure(docusign.VENDOR, RouteFaults(**rule), route=route)
    response = await client.post(ENVELOPES, json=_definition())
    _assert_docusign_error(response, status, code)
    assert "envelope" not in sandbox.state.counters().get(docusign.VENDOR, {})


# --------------------------------------------------------------------------------------------
# The signer and Connect (delivered over loopback)
# --------------------------------------------------------------------------------------------


async def test_signer_pending_lists_sent_envelopes_only(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    sent = await _envelope(client, "j_sent")
    await _envelope(client, "j_draft", status="created")
    assert sandbox.roles["signer"].pending() == [sent]


async def test_signature_completes_the_envelope_and_sends_signed_connect_message(
    sandbox: Sandbox, client: httpx.AsyncClient, connect: WebhookReceiver
) -> None:
    envelope_id = await _envelope(client)
    connect.wait_for(1)  # envelope-sent
    sandbox.roles["signer"].accept(envelope_id)
    deliveries = connect.wait_for(2)
    completed = deliveries[-1]
    assert _signature_valid(completed)
    assert _header(completed, "x-authorization-digest") == "HMACSHA256"
    message = _payload(completed)
    assert_matches(message, "docusign", "connect_message")
    assert message["event"] == "envelope-completed"
    assert message["data"]["envelopeId"] == envelope_id
    summary = message["data"]["envelopeSummary"]
    assert summary["status"] == "completed"
    assert summary["customFields"]["textCustomFields"][0]["value"] == "j_123"
    stored = (await client.get(f"{ENVELOPES}/{envelope_id}")).json()
    assert stored["status"] == "completed"
    assert stored["completedDateTime"] == summary["completedDateTime"]


async def test_refusal_declines_the_envelope_with_a_reason(
    sandbox: Sandbox, client: httpx.AsyncClient, connect: WebhookReceiver
) -> None:
    envelope_id = await _envelope(client)
    assert sandbox.roles["signer"].refuse is not None
    sandbox.roles["signer"].refuse(envelope_id)
    declined = connect.wait_for(2)[-1]
    assert _signature_valid(declined)
    message = _payload(declined)
    assert_matches(message, "docusign", "connect_message")
    assert message["event"] == "envelope-declined"
    [signer] = message["data"]["envelopeSummary"]["recipients"]["signers"]
    assert signer["declinedReason"] in docusign.DECLINE_REASONS
    stored = (await client.get(f"{ENVELOPES}/{envelope_id}")).json()
    assert stored["status"] == "declined"
    assert "declinedDateTime" in stored


async def test_connect_signature_changes_with_the_key(
    sandbox: Sandbox, client: httpx.AsyncClient, connect: WebhookReceiver
) -> None:
    sandbox.credentials[docusign.VENDOR] = {"connect_hmac_key": "rotated-key"}
    await _envelope(client)
    [sent] = connect.wait_for(1)
    assert _signature_valid(sent, "rotated-key")
    assert not _signature_valid(sent)


async def test_envelope_event_notification_gets_only_the_events_it_asks_for(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    notification = {
        "url": f"{receiver.url}/envelope-listener",
        "includeHMAC": "true",
        "requireAcknowledgment": "true",
        "envelopeEvents": [{"envelopeEventStatusCode": "completed"}],
        "eventData": {"version": "restv2.1", "format": "json", "includeData": ["custom_fields"]},
    }
    envelope_id = await _envelope(client, eventNotification=notification)
    sandbox.roles["signer"].accept(envelope_id)
    [delivery] = receiver.wait_for(1)
    assert sandbox.webhooks.wait_idle()
    assert len(receiver.posts()) == 1
    assert delivery.path == "/hook/envelope-listener"
    assert _payload(delivery)["event"] == "envelope-completed"
    assert _signature_valid(delivery)


CONNECT = f"/restapi/v2.1/accounts/{CREDENTIALS['account_id']}/connect"


def _connect_configuration(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "configurationType": "custom",
        "name": "leadflow",
        "urlToPublishTo": url,
        "allowEnvelopePublish": "true",
        "allUsers": "true",
        "includeHMAC": "true",
        "requiresAcknowledgement": "true",
        "events": ["envelope-completed"],
        "eventData": {"version": "restv2.1", "format": "json", "includeData": ["custom_fields"]},
        **overrides,
    }


async def test_a_connect_configuration_is_created_and_listed(client: httpx.AsyncClient) -> None:
    created = await client.post(CONNECT, json=_connect_configuration("http://127.0.0.1:9/c"))
    assert created.status_code == 201, created.text
    listing = (await client.get(CONNECT)).json()
    assert listing["totalRecords"] == "1"
    assert listing["configurations"] == [created.json()]
    assert created.json()["connectId"].isdigit()


async def test_a_connect_configuration_without_a_url_is_refused(
    client: httpx.AsyncClient,
) -> None:
    body = _connect_configuration("http://127.0.0.1:9/c")
    del body["urlToPublishTo"]
    response = await client.post(CONNECT, json=body)
    assert response.status_code == 400, response.text
    assert_matches(response.json(), "docusign", "error_details")


async def test_a_rest_connect_configuration_gets_the_events_it_lists_signed_with_its_data(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    created = await client.post(CONNECT, json=_connect_configuration(receiver.url))
    envelope_id = await _envelope(client)
    sandbox.roles["signer"].accept(envelope_id)
    [delivery] = receiver.wait_for(1)
    assert sandbox.webhooks.wait_idle()
    assert len(receiver.posts()) == 1  # envelope-sent was not asked for
    message = _payload(delivery)
    assert message["event"] == "envelope-completed"
    assert message["configurationId"] == int(created.json()["connectId"])
    assert _signature_valid(delivery)
    summary = message["data"]["envelopeSummary"]
    assert summary["customFields"]["textCustomFields"][0]["value"] == "j_123"
    assert "recipients" not in summary


async def test_a_rest_connect_configuration_sends_no_signature_or_data_it_did_not_ask_for(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    bare = _connect_configuration(
        receiver.url,
        includeHMAC="false",
        events=["envelope-sent"],
        eventData={"version": "restv2.1"},
    )
    await client.post(CONNECT, json=bare)
    await _envelope(client)
    [delivery] = receiver.wait_for(1)
    assert _header(delivery, "x-docusign-signature-1") is None
    assert "customFields" not in _payload(delivery)["data"]["envelopeSummary"]


async def test_a_connect_configuration_that_does_not_publish_gets_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    quiet = _connect_configuration(
        receiver.url, allowEnvelopePublish="false", events=["envelope-sent"]
    )
    await client.post(CONNECT, json=quiet)
    await _envelope(client)
    assert sandbox.webhooks.wait_idle()
    assert receiver.posts() == []


async def test_the_console_target_is_not_sent_twice_when_a_rest_configuration_has_its_url(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets[docusign.VENDOR] = receiver.url
    await client.post(CONNECT, json=_connect_configuration(receiver.url, events=["envelope-sent"]))
    await _envelope(client)
    assert sandbox.webhooks.wait_idle()
    [delivery] = receiver.posts()
    assert _payload(delivery)["configurationId"] != docusign.CONSOLE_CONNECT_ID


async def test_people_engine_signer_declines_when_told_to(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    envelope_id = await _envelope(client)
    always_declines = PersonBehaviour(accept_probability=0, refuse_probability=1, delay_seconds=0)
    sandbox.people.configure("signer", always_declines)
    sandbox.people.tick()  # with no delay, the tick that plans also acts
    stored = (await client.get(f"{ENVELOPES}/{envelope_id}")).json()
    assert stored["status"] == "declined"
    assert sandbox.roles["signer"].pending() == []


async def test_signing_an_envelope_that_is_not_waiting_is_refused(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    envelope_id = await _envelope(client, status="created")
    with pytest.raises(docusign.DocuSignError, match="not waiting"):
        sandbox.roles["signer"].accept(envelope_id)


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------


async def test_50_concurrent_creates_and_searches_lose_and_duplicate_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    async def create_twice_and_find(index: int) -> tuple[str, str, list[str]]:
        first, second = await asyncio.gather(
            client.post(ENVELOPES, json=_definition(f"j_{index:03d}")),
            client.post(ENVELOPES, json=_definition(f"j_{index:03d}")),
        )
        found = await client.get(
            ENVELOPES,
            params={
                "from_date": "2024-01-01",
                "custom_field": f"leadflow_journey_id=j_{index:03d}",
            },
        )
        return (
            first.json()["envelopeId"],
            second.json()["envelopeId"],
            [e["envelopeId"] for e in found.json()["envelopes"]],
        )

    results = await asyncio.gather(*(create_twice_and_find(index) for index in range(50)))
    assert all(first == second for first, second, _ in results)
    assert all(found == [first] for first, _, found in results)
    assert len({first for first, _, _ in results}) == 50
    assert sandbox.state.counters()["docusign"]["envelope"] == 50
    listed = await client.get(ENVELOPES, params={"from_date": "2024-01-01"})
    assert listed.json()["totalSetSize"] == "50"


# --------------------------------------------------------------------------------------------
# Over real HTTP
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_contract_signed_over_loopback(sandbox: Sandbox, connect: WebhookReceiver) -> None:
    """Token, base-URI discovery, envelope and signature against the sandbox on a socket."""
    with running_sandbox(sandbox=sandbox) as running:
        credentials = running.credentials[docusign.VENDOR]
        base = running.base_urls[docusign.VENDOR]
        own_host = running.url.removeprefix("http://")
        async with httpx.AsyncClient() as http:
            grant = await http.post(
                f"{base}/oauth/token",
                data=_grant(_assertion(credentials["private_key_pem"], aud=own_host)),
            )
            http.headers["Authorization"] = f"Bearer {grant.json()['access_token']}"
            userinfo = (await http.get(f"{base}/oauth/userinfo")).json()
            [account] = userinfo["accounts"]
            api = f"{account['base_uri']}/restapi/v2.1/accounts/{account['account_id']}"
            created = await http.post(f"{api}/envelopes", json=_definition("j_loop"))
            envelope_id = created.json()["envelopeId"]
            await asyncio.to_thread(sandbox.roles["signer"].accept, envelope_id)
            listed = await http.get(
                f"{api}/envelopes",
                params={"from_date": "2024-01-01", "custom_field": "leadflow_journey_id=j_loop"},
            )
            deliveries = await asyncio.to_thread(connect.wait_for, 2)
    assert created.status_code == 201
    [envelope] = listed.json()["envelopes"]
    assert (envelope["envelopeId"], envelope["status"]) == (envelope_id, "completed")
    assert [_payload(d)["event"] for d in deliveries] == ["envelope-sent", "envelope-completed"]
    assert all(_signature_valid(d) for d in deliveries)


@pytest.mark.integration
async def test_shared_loopback_sandbox_serves_docusign(sandbox_urls: dict[str, str]) -> None:
    """The session's sandbox (tests/conftest.py) grants tokens and takes envelopes."""
    base = sandbox_urls[docusign.VENDOR]
    journey = f"j_{time.time_ns()}"
    async with httpx.AsyncClient(base_url=base) as http:
        grant = await http.post("/oauth/token", data=_grant(_assertion()))
        http.headers["Authorization"] = f"Bearer {grant.json()['access_token']}"
        created = await http.post(ENVELOPES, json=_definition(journey))
        again = await http.post(ENVELOPES, json=_definition(journey))
    assert created.status_code == 201
    assert again.json()["envelopeId"] == created.json()["envelopeId"]
