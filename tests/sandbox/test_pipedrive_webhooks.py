"""Pipedrive webhooks as strict as the vendor's (issue 11.6).

A retry of a failed delivery counts `meta.attempt` up (v2) or `retry` (v1); a subscription made
with `version: "1.0"` gets the legacy v1 body instead of being silently never called; the v1
spec's server form (`https://api.pipedrive.com/v1`, so `/v1/webhooks`) is served beside
`/api/v1/webhooks`.
"""

from __future__ import annotations

import httpx

from sandbox.core import Sandbox
from sandbox.vendors import pipedrive
from tests.contracts import assert_matches
from tests.sandbox import test_pipedrive
from tests.sandbox.conftest import WebhookReceiver
from tests.sandbox.test_pipedrive import _basic_auth_ok, _deal, _payload, _subscription

client = test_pipedrive.client  # the authenticated in-process Pipedrive client, shared


async def test_a_retried_v2_delivery_counts_meta_attempt_up(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await client.post("/api/v1/webhooks", json=_subscription(receiver.url))
    receiver.fail_first = 2
    deal = await _deal(client)
    sandbox.roles["salesperson"].accept(str(deal["id"]))
    deliveries = receiver.wait_for(3, timeout=15)
    payloads = [_payload(d) for d in deliveries]
    assert [p["meta"]["attempt"] for p in payloads] == [1, 2, 3]
    assert len({p["meta"]["id"] for p in payloads}) == 1  # one event, sent three times
    assert all(_basic_auth_ok(d) for d in deliveries)
    assert_matches(payloads[-1], "pipedrive", "webhook_v2_payload")


async def test_a_version_1_subscription_gets_the_v1_payload(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    created = await client.post("/api/v1/webhooks", json=_subscription(receiver.url, version="1.0"))
    assert created.json()["data"]["version"] == "1.0"
    deal = await _deal(client)
    sandbox.roles["salesperson"].accept(str(deal["id"]))
    (delivery,) = receiver.wait_for(1)
    payload = _payload(delivery)
    assert _basic_auth_ok(delivery)
    assert set(payload) == {
        "v", "matches_filters", "meta", "current", "previous", "retry", "event"
    }  # fmt: skip
    assert (payload["v"], payload["event"], payload["retry"]) == (1, "updated.deal", 0)
    meta = payload["meta"]
    assert (meta["action"], meta["object"], meta["id"]) == ("updated", "deal", deal["id"])
    assert meta["host"] == "leadflow-sandbox.pipedrive.com"
    assert payload["current"]["status"] == "won"
    assert payload["previous"]["status"] == "open"


async def test_a_retried_v1_delivery_counts_retry_up(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await client.post(
        "/api/v1/webhooks", json=_subscription(receiver.url, version="1.0", event_action="*")
    )
    receiver.fail_first = 1
    await _deal(client)
    deliveries = receiver.wait_for(2, timeout=15)
    assert [_payload(d)["retry"] for d in deliveries] == [0, 1]
    assert _payload(deliveries[0])["event"] == "added.deal"


async def test_the_v1_server_form_serves_webhooks_too(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    created = await client.post("/v1/webhooks", json=_subscription("http://127.0.0.1:9/hook"))
    assert created.status_code == 201, created.text
    hook_id = created.json()["data"]["id"]
    listed = await client.get("/v1/webhooks")
    assert [h["id"] for h in listed.json()["data"]] == [hook_id]
    assert (await client.get("/api/v1/webhooks")).json() == listed.json()
    assert (await client.delete(f"/v1/webhooks/{hook_id}")).json()["success"] is True
    assert sandbox.state.counters()["pipedrive"]["webhook"] == 1


async def test_the_v1_server_form_costs_what_api_v1_costs(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    limiter = sandbox.emulators["pipedrive"].limiter
    before = limiter.tokens_spent
    await client.get("/v1/webhooks")
    assert limiter.tokens_spent - before == pipedrive.TOKEN_COSTS[("GET", "/api/v1/webhooks")]
