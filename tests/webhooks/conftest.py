"""Fixtures of the webhook service's tests: a migrated ledger (SQLite, and PostgreSQL when CI
has one), the service with known secrets and a recording trigger, and signers that compute each
vendor's signature from its documented scheme (../shared/contracts/README.md), independently of
both the service and the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from ledger import Ledger
from sandbox.server import RunningSandbox
from tests.ledger.conftest import fresh_postgres_database, ledger_at
from webhooks.app import create_app
from webhooks.settings import WebhookSettings

FACEBOOK_SECRET = "fb-app-secret-for-tests"
WHATSAPP_SECRET = "wa-app-secret-for-tests"
VERIFY_TOKEN = "verify-me-please"
PIPEDRIVE_USER, PIPEDRIVE_PASSWORD = "leadflow", "pipedrive-hook-password"
DOCUSIGN_KEYS = ["docusign-old-key", "docusign-new-key"]
ASAAS_TOKEN = "asaas-webhook-token-for-tests"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def webhook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "facebook_app_secret": SecretStr(FACEBOOK_SECRET),
        "facebook_verify_token": SecretStr(VERIFY_TOKEN),
        "whatsapp_app_secret": SecretStr(WHATSAPP_SECRET),
        "pipedrive_user": PIPEDRIVE_USER,
        "pipedrive_password": SecretStr(PIPEDRIVE_PASSWORD),
        "docusign_hmac_keys": [SecretStr(k) for k in DOCUSIGN_KEYS],
        "asaas_token": SecretStr(ASAAS_TOKEN),
        "trigger": "in-process",
    }
    values.update(overrides)
    return WebhookSettings(**values)


# -- each vendor's delivery, signed as the vendor signs it -----------------------------------


def meta_json(payload: Any) -> bytes:
    """Meta escapes non-ASCII (\\u00e9) and '@' (\\u0040): sign exactly these bytes."""
    return json.dumps(payload, separators=(",", ":")).replace("@", "\\u0040").encode()


def facebook_payload(leadgen_ids: list[str], page_id: str = "1100200300400500") -> bytes:
    changes = [
        {
            "field": "leadgen",
            "value": {
                "leadgen_id": int(leadgen_id) if leadgen_id.isdigit() else leadgen_id,
                "page_id": page_id,
                "form_id": "777",
                "adgroup_id": 0,
                "ad_id": 0,
                "created_time": 1447342026,
            },
        }
        for leadgen_id in leadgen_ids
    ]
    return meta_json({"object": "page", "entry": [{"id": page_id, "time": 1, "changes": changes}]})


def whatsapp_payload(wamid: str, status: str = "delivered", code: int | None = None) -> bytes:
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": "1750263773",
        "recipient_id": "5511999998888",
    }
    if code is not None:
        entry["errors"] = [{"code": code, "title": "Re-engagement message"}]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1065"},
        "statuses": [entry],
    }
    return meta_json(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
        }
    )


def pipedrive_payload(
    event_id: str, deal_id: int = 7, status: str = "won", previous_status: str | None = "open"
) -> bytes:
    previous = {"status": previous_status} if previous_status else None
    return json.dumps(
        {
            "meta": {
                "action": "change",
                "entity": "deal",
                "version": "2.0",
                "id": event_id,
                "entity_id": str(deal_id),
                "attempt": 1,
                "timestamp": "2026-01-01T00:00:00Z",
            },
            "data": {
                "id": deal_id,
                "title": "Site",
                "status": status,
                "value": 1500,
                "currency": "BRL",
                "custom_fields": {},
            },
            "previous": previous,
        }
    ).encode()


def docusign_payload(
    envelope_id: str,
    event: str = "envelope-completed",
    when: str = "2026-01-01T00:00:00.0000000Z",
    lead_id: str = "42",
) -> bytes:
    return json.dumps(
        {
            "event": event,
            "apiVersion": "v2.1",
            "uri": f"/envelopes/{envelope_id}",
            "retryCount": 0,
            "configurationId": 1,
            "generatedDateTime": when,
            "data": {
                "accountId": "acc",
                "userId": "u",
                "envelopeId": envelope_id,
                "envelopeSummary": {
                    "status": event.removeprefix("envelope-"),
                    "customFields": {
                        "textCustomFields": [{"name": "leadflow_lead_id", "value": lead_id}]
                    },
                },
            },
        }
    ).encode()


def asaas_payload(
    event_id: str, event: str = "PAYMENT_RECEIVED", reference: str = "lead:42"
) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "event": event,
            "dateCreated": "2024-06-12 16:45:03",
            "payment": {
                "object": "payment",
                "id": f"pay_{event_id[-6:]}",
                "status": "RECEIVED",
                "value": 100.0,
                "billingType": "PIX",
                "externalReference": reference,
            },
        },
        ensure_ascii=False,
    ).encode()


def hub_headers(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def docusign_headers(keys: list[str], body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Authorization-Digest": "HMACSHA256"}
    for n, key in enumerate(keys, start=1):
        digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
        headers[f"X-DocuSign-Signature-{n}"] = base64.b64encode(digest).decode()
    return headers


def basic_headers(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def signed(vendor: str, body: bytes) -> dict[str, str]:
    """Headers exactly as `vendor` sends them for `body`."""
    if vendor == "facebook":
        return hub_headers(FACEBOOK_SECRET, body)
    if vendor == "whatsapp":
        return hub_headers(WHATSAPP_SECRET, body)
    if vendor == "docusign":
        return docusign_headers([DOCUSIGN_KEYS[1]], body)
    if vendor == "pipedrive":
        return basic_headers(PIPEDRIVE_USER, PIPEDRIVE_PASSWORD)
    if vendor == "asaas":
        return {"asaas-access-token": ASAAS_TOKEN, "Content-Type": "application/json"}
    raise AssertionError(vendor)


def delivery(vendor: str, n: int | str) -> bytes:
    """The n-th distinct delivery of `vendor` (same n, same bytes: a redelivery)."""
    if vendor == "facebook":
        return facebook_payload([f"55597170456{int(n):04d}"])
    if vendor == "whatsapp":
        return whatsapp_payload(f"wamid.HBgL{n}")
    if vendor == "pipedrive":
        return pipedrive_payload(str(uuid.UUID(int=int(n))))
    if vendor == "docusign":
        return docusign_payload(f"env-{n}")
    if vendor == "asaas":
        return asaas_payload(f"evt_{int(n):032x}&{n}")
    raise AssertionError(vendor)


def sandbox_asaas(sandbox: RunningSandbox) -> httpx.Client:
    """The sandbox's Asaas API as a person at the vendor uses it (the caller closes it)."""
    headers = {
        "access_token": sandbox.credentials["asaas"]["api_key"],
        "User-Agent": "leadflow-tests",
    }
    return httpx.Client(base_url=sandbox.base_urls["asaas"], headers=headers, timeout=10)


def create_pix_payment(asaas: httpx.Client, cpf: str, **extra: str) -> dict[str, Any]:
    """A new customer with that CPF and a PIX payment of R$ 100 for them, as Asaas answered it;
    creating it makes the sandbox post PAYMENT_CREATED to the registered webhook."""
    customer = asaas.post("/v3/customers", json={"name": "Maria", "cpfCnpj": cpf}).json()
    payment = {
        "customer": customer["id"],
        "billingType": "PIX",
        "value": 100.0,
        "dueDate": "2030-01-01",
        **extra,
    }
    answer: dict[str, Any] = asaas.post("/v3/payments", json=payment).json()
    return answer


VENDORS = ["facebook", "pipedrive", "docusign", "asaas", "whatsapp"]


# -- ledger and service ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def ledger_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('webhooks')}/ledger.db"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="module")
def migrated_ledger(ledger_url: str) -> Iterator[Ledger]:
    with ledger_at(ledger_url) as ledger:
        yield ledger


@pytest.fixture
def ledger(migrated_ledger: Ledger) -> Ledger:
    """The module's ledger with an empty inbox."""
    with migrated_ledger.engine.begin() as connection:
        connection.execute(text("DELETE FROM inbox"))
    return migrated_ledger


def inbox_rows(ledger: Ledger) -> list[tuple[str, str]]:
    with ledger.engine.connect() as connection:
        rows = connection.execute(text("SELECT vendor, event_id FROM inbox ORDER BY id"))
        return [(row[0], row[1]) for row in rows]


class RecordingRunner:
    """The in-process runner tests inject: records every batch of inbox ids it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, inbox_ids: list[int]) -> None:
        self.batches.append(list(inbox_ids))

    @property
    def ids(self) -> list[int]:
        return [i for batch in self.batches for i in batch]


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@asynccontextmanager
async def serving(ledger: Ledger, **create: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The service on `ledger`, lifespan running: leaving the block drains the trigger."""
    settings = create.pop("settings", None) or webhook_settings()
    app = create_app(settings, ledger=ledger, **create)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as http:
            yield http


@pytest.fixture
async def client(ledger: Ledger, runner: RecordingRunner) -> AsyncIterator[httpx.AsyncClient]:
    """The service on `ledger` with the recording runner."""
    async with serving(ledger, runner=runner) as http:
        yield http
