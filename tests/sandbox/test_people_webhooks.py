"""Every simulated person's action reaches the configured target as a signed webhook, and the
webhook faults (duplicated, delayed, dropped) are set through the admin API (issue 11.6).

Driven the way the demo and the journey tests drive it: over a real socket, objects created
through the vendors' APIs, people made to act with `POST /__sandbox__/people/{role}/{outcome}/{id}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox.server import RunningSandbox
from sandbox.vendors import asaas, docusign, pipedrive, whatsapp
from tests.sandbox.conftest import ReceivedRequest, WebhookReceiver
from tests.sandbox.test_docusign import _assertion, _definition, _grant

HOOK_USER, HOOK_PASSWORD = "leadflow", "hook-password"


@dataclass
class Journey:
    """One object waiting for each person, in a served sandbox whose webhooks go to `receiver`."""

    served: RunningSandbox
    receiver: WebhookReceiver
    http: httpx.Client
    deal_id: str
    envelope_id: str
    payment_id: str

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, f"{self.served.admin_url}{path}", **kwargs)
        assert response.is_success, response.text
        return response

    def act(self, role: str, outcome: str, object_id: str) -> None:
        self.admin("POST", f"/people/{role}/{outcome}/{object_id}")

    def received(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.receiver.posts() if r.path == f"/hook/{path}"]


@pytest.fixture
def journey(served: RunningSandbox, receiver: WebhookReceiver) -> Iterator[Journey]:
    urls = served.base_urls
    with httpx.Client(timeout=10) as http:
        for vendor in ("asaas", "docusign", "whatsapp"):
            response = http.put(
                f"{served.admin_url}/webhook-targets/{vendor}",
                json={"url": f"{receiver.url}/{vendor}"},
            )
            assert response.status_code == 200
        pd = {"x-api-token": pipedrive.DEFAULT_CREDENTIALS["api_token"]}
        subscription = {
            "subscription_url": f"{receiver.url}/pipedrive",
            "event_action": "change",
            "event_object": "deal",
            "name": "leadflow",
            "http_auth_user": HOOK_USER,
            "http_auth_password": HOOK_PASSWORD,
        }
        assert http.post(
            f"{urls['pipedrive']}/api/v1/webhooks", json=subscription, headers=pd
        ).is_success
        deal = http.post(f"{urls['pipedrive']}/api/v2/deals", json={"title": "Site"}, headers=pd)
        token = http.post(f"{urls['docusign']}/oauth/token", data=_grant(_assertion()))
        ds = {"Authorization": f"Bearer {token.json()['access_token']}"}
        account = docusign.DEFAULT_CREDENTIALS["account_id"]
        envelope = http.post(
            f"{urls['docusign']}/restapi/v2.1/accounts/{account}/envelopes",
            json=_definition(),
            headers=ds,
        )
        aa = {"access_token": asaas.DEFAULT_CREDENTIALS["api_key"]}
        customer = http.post(
            f"{urls['asaas']}/v3/customers",
            json={"name": "Maria Silva", "cpfCnpj": "12345678909", "externalReference": "l1"},
            headers=aa,
        )
        payment = http.post(
            f"{urls['asaas']}/v3/payments",
            json={
                "customer": customer.json()["id"],
                "billingType": "PIX",
                "value": 129.9,
                "dueDate": "2099-01-15",
                "externalReference": "l1:charge",
            },
            headers=aa,
        )
        assert payment.is_success, payment.text
        yield Journey(
            served,
            receiver,
            http,
            str(deal.json()["data"]["id"]),
            envelope.json()["envelopeId"],
            payment.json()["id"],
        )


def _hub_signature_ok(request: ReceivedRequest, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected)


def _connect_signature_ok(request: ReceivedRequest) -> bool:
    key = docusign.DEFAULT_CREDENTIALS["connect_hmac_key"].encode()
    expected = base64.b64encode(hmac.new(key, request.body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(request.headers.get("X-DocuSign-Signature-1", ""), expected)


@pytest.mark.parametrize("outcome", ["accept", "refuse"])
def test_every_person_action_sends_its_signed_webhook(journey: Journey, outcome: str) -> None:
    journey.act("salesperson", outcome, journey.deal_id)
    journey.act("signer", outcome, journey.envelope_id)
    journey.act("payer", outcome, journey.payment_id)
    wa = whatsapp.DEFAULT_CREDENTIALS
    sent = journey.http.post(
        f"{journey.served.base_urls['whatsapp']}/v23.0/{wa['phone_number_id']}/messages",
        json={
            "messaging_product": "whatsapp",
            "to": "5511987654321",
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        },
        headers={"Authorization": f"Bearer {wa['access_token']}"},
    )
    assert sent.is_success, sent.text
    assert journey.admin("POST", "/webhooks/wait", json={"timeout_seconds": 10}).json()["idle"]

    (deal_change,) = journey.received("pipedrive")
    auth = base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    assert deal_change.headers["Authorization"] == f"Basic {auth}"
    status = "won" if outcome == "accept" else "lost"
    assert f'"status":"{status}"'.encode() in deal_change.body

    connect = journey.received("docusign")
    event = "envelope-completed" if outcome == "accept" else "envelope-declined"
    assert any(event.encode() in r.body for r in connect)
    assert all(_connect_signature_ok(r) for r in connect)

    payments = journey.received("asaas")
    wanted = b"PAYMENT_RECEIVED" if outcome == "accept" else b"PAYMENT_OVERDUE"
    assert any(wanted in r.body for r in payments)
    token = asaas.DEFAULT_CREDENTIALS["webhook_auth_token"]
    assert all(r.headers["asaas-access-token"] == token for r in payments)

    statuses = journey.received("whatsapp")
    assert statuses
    assert all(_hub_signature_ok(r, wa["app_secret"]) for r in statuses)


def test_webhook_faults_are_set_through_the_admin_api(journey: Journey) -> None:
    journey.admin("PUT", "/faults/pipedrive/webhooks", json={"duplicate_rate": 1.0})
    journey.admin("PUT", "/faults/docusign/webhooks", json={"drop_rate": 1.0})
    journey.admin("PUT", "/faults/asaas/webhooks", json={"delay_rate": 1.0, "delay_seconds": 0.3})
    journey.admin("POST", "/webhooks/wait", json={"timeout_seconds": 10})
    journey.admin("DELETE", "/webhooks")  # start the log from the actions below
    journey.act("salesperson", "accept", journey.deal_id)
    journey.act("signer", "accept", journey.envelope_id)
    journey.act("payer", "accept", journey.payment_id)
    assert journey.admin("POST", "/webhooks/wait", json={"timeout_seconds": 10}).json()["idle"]
    log = journey.admin("GET", "/webhooks").json()
    pipedrive_log = [r for r in log if r["vendor"] == "pipedrive"]
    assert len(pipedrive_log) == 2
    assert pipedrive_log[1]["duplicate_of"] == pipedrive_log[0]["id"]
    assert {r["outcome"] for r in log if r["vendor"] == "docusign"} == {"dropped"}
    asaas_log = [r for r in log if r["vendor"] == "asaas"]
    assert asaas_log
    assert all(r["delayed_seconds"] == 0.3 for r in asaas_log)
    assert all(r["outcome"] == "delivered" for r in asaas_log)
    assert len(journey.received("pipedrive")) == 2
    faults = journey.admin("GET", "/faults").json()
    assert faults["injected"]["docusign"]["webhook"]["dropped"] >= 1
