"""The service's promise per delivery: verified over the raw body, stored once, acknowledged,
then triggered; anything refused stores nothing and logs neither body nor personal data."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from ledger import Ledger
from tests.webhooks.conftest import (
    ASAAS_TOKEN,
    DOCUSIGN_KEYS,
    FACEBOOK_SECRET,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_USER,
    VENDORS,
    VERIFY_TOKEN,
    RecordingRunner,
    basic_headers,
    delivery,
    docusign_headers,
    facebook_payload,
    hub_headers,
    inbox_rows,
    serving,
    signed,
    webhook_settings,
)
from webhooks.app import create_app
from webhooks.trigger import NoTrigger


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_delivery_signed_as_the_vendor_signs_it_is_stored_and_triggered(
    vendor: str, ledger: Ledger, runner: RecordingRunner
) -> None:
    body = delivery(vendor, 1)
    async with serving(ledger, runner=runner) as http:
        response = await http.post(
            f"/webhooks/{vendor}", content=body, headers=signed(vendor, body)
        )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stored"
    rows = inbox_rows(ledger)
    assert [vendor for vendor, _ in rows] == [vendor]
    assert rows[0][1] == response.json()["event_id"]
    assert len(runner.ids) == 1


def _forgeries(vendor: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each way a delivery can be wrong, as (body, headers)."""
    body = delivery(vendor, 2)
    other = delivery(vendor, 3)
    good = signed(vendor, body)
    tampered = body.replace(b"2", b"9", 1)
    if vendor in ("facebook", "whatsapp"):
        wrong_key = hub_headers("not-the-app-secret", body)
        forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
        missing = {"Content-Type": "application/json"}
    elif vendor == "docusign":
        wrong_key = docusign_headers(["a-retired-key"], body)
        forged = {"X-DocuSign-Signature-1": "AAAA" * 11}
        missing = {"Content-Type": "application/json"}
    elif vendor == "pipedrive":
        wrong_key = basic_headers(PIPEDRIVE_USER, "wrong")
        forged = basic_headers("someone", PIPEDRIVE_PASSWORD)
        missing = {"Content-Type": "application/json"}
    else:
        wrong_key = {"asaas-access-token": ASAAS_TOKEN + "x"}
        forged = {"asaas-access-token": ""}
        missing = {"Content-Type": "application/json"}
    cases = {
        "forged": (body, forged),
        "missing": (body, missing),
        "wrong-key": (body, wrong_key),
    }
    if vendor not in ("pipedrive", "asaas"):
        # a static credential cannot tell bodies apart: only HMAC vendors refuse these
        cases["replayed-with-another-body"] = (other, good)
        cases["tampered"] = (tampered, good)
    return cases


@pytest.mark.parametrize("vendor", VENDORS)
async def test_forged_missing_wrong_key_replayed_and_tampered_are_refused_and_store_nothing(
    vendor: str, client: httpx.AsyncClient, ledger: Ledger
) -> None:
    for case, (body, headers) in _forgeries(vendor).items():
        response = await client.post(f"/webhooks/{vendor}", content=body, headers=headers)
        assert response.status_code == 401, (case, response.text)
    assert inbox_rows(ledger) == []


async def test_docusign_accepts_any_active_key_during_a_rotation(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    for n, keys in enumerate(
        [[DOCUSIGN_KEYS[0]], [DOCUSIGN_KEYS[1]], ["retired", DOCUSIGN_KEYS[0]]]
    ):
        body = delivery("docusign", 10 + n)
        response = await client.post(
            "/webhooks/docusign", content=body, headers=docusign_headers(keys, body)
        )
        assert response.status_code == 200, keys
    assert len(inbox_rows(ledger)) == 3


async def test_a_redelivery_answers_200_and_stores_and_triggers_nothing_new(
    ledger: Ledger, runner: RecordingRunner
) -> None:
    body = delivery("asaas", 5)
    async with serving(ledger, runner=runner) as http:
        first = await http.post("/webhooks/asaas", content=body, headers=signed("asaas", body))
        again = await http.post("/webhooks/asaas", content=body, headers=signed("asaas", body))
    assert (first.json()["status"], again.json()["status"]) == ("stored", "duplicate")
    assert again.status_code == 200
    assert len(inbox_rows(ledger)) == 1
    assert len(runner.ids) == 1


async def test_an_announced_body_over_the_limit_is_413_before_it_is_read(
    ledger: Ledger,
) -> None:
    received: list[int] = []

    async def body_stream():  # 8 KiB in 1 KiB chunks, without a Content-Length
        for _ in range(8):
            received.append(1)
            yield b"x" * 1024

    settings = webhook_settings(max_body_bytes=2048)
    async with serving(ledger, settings=settings) as http:
        announced = await http.post(
            "/webhooks/facebook",
            content=b"{}",
            headers={**hub_headers(FACEBOOK_SECRET, b"{}"), "Content-Length": str(4096)},
        )
        assert announced.status_code == 413
        # a header-authenticated vendor: refused on the announced size before its credentials
        asaas = await http.post(
            "/webhooks/asaas",
            content=b"{}",
            headers={"asaas-access-token": "wrong", "Content-Length": str(10 * 1024 * 1024)},
        )
        assert asaas.status_code == 413
        # a chunked body: refused once the running size passes the limit, not read to its end
        chunked = await http.post(
            "/webhooks/facebook", content=body_stream(), headers=hub_headers(FACEBOOK_SECRET, b"")
        )
        assert chunked.status_code == 413
    assert len(received) < 8
    assert inbox_rows(ledger) == []


async def test_the_default_limit_is_one_mebibyte(client: httpx.AsyncClient, ledger: Ledger) -> None:
    def padded(total: int) -> bytes:
        start = b'{"object":"page","entry":[{"id":"1","changes":[{"field":"leadgen","value":'
        start += b'{"leadgen_id":"777"}}]}],"pad":"'
        return start + b"x" * (total - len(start) - 2) + b'"}'

    over, under = padded(1024 * 1024 + 1), padded(1024 * 1024)
    response = await client.post(
        "/webhooks/facebook", content=over, headers=hub_headers(FACEBOOK_SECRET, over)
    )
    assert response.status_code == 413
    assert inbox_rows(ledger) == []
    response = await client.post(
        "/webhooks/facebook", content=under, headers=hub_headers(FACEBOOK_SECRET, under)
    )
    assert response.status_code == 200
    assert inbox_rows(ledger) == [("facebook", "777")]


@pytest.mark.parametrize(
    ("vendor", "body", "message"),
    [
        ("facebook", b"{not json", "not JSON"),
        ("facebook", b"[1, 2]", "not a JSON object"),
        ("facebook", b'{"object": "user", "entry": []}', "object"),
        (
            "facebook",
            b'{"object": "page", "entry": [{"id": "1", "changes": [{"field": "leadgen",'
            b' "value": {"page_id": "1"}}]}]}',
            "leadgen_id",
        ),
        ("pipedrive", b'{"data": {}}', "meta"),
        (
            "pipedrive",
            b'{"v": 1, "meta": {"action": "updated", "object": "deal", "id": 1},'
            b' "current": {}, "previous": {}}',
            "version 2.0",
        ),
        ("docusign", b'{"event": "envelope-completed", "data": {}}', "envelopeId"),
        ("asaas", b'{"event": "PAYMENT_RECEIVED", "payment": {"id": "pay_1"}}', "id"),
        ("asaas", b'{"id": "evt_1", "event": "PAYMENT_RECEIVED"}', "payment"),
        (
            "whatsapp",
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":'
            b' "messages", "value": {"statuses": [{"id": "wamid.1"}]}}]}]}',
            "status",
        ),
        (
            "whatsapp",
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":'
            b' "messages", "value": {}}]}]}',
            "no whatsapp event",
        ),
    ],
)
async def test_malformed_or_foreign_shaped_bodies_are_400_with_a_clear_message(
    vendor: str, body: bytes, message: str, client: httpx.AsyncClient, ledger: Ledger
) -> None:
    response = await client.post(f"/webhooks/{vendor}", content=body, headers=signed(vendor, body))
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert inbox_rows(ledger) == []


async def test_rejections_are_logged_without_body_or_personal_data(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    personal = {
        "object": "page",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "leadgen",
                        "value": {"email": "maria.silva@example.com", "phone": "+5511987654321"},
                    }
                ],
            }
        ],
    }
    body = json.dumps(personal).encode()
    with caplog.at_level(logging.WARNING, logger="leadflow.webhooks"):
        forged = await client.post(
            "/webhooks/facebook", content=body, headers=hub_headers("wrong", body)
        )
        malformed = await client.post(
            "/webhooks/facebook", content=body, headers=hub_headers(FACEBOOK_SECRET, body)
        )
        wrong_password = await client.post(
            "/webhooks/pipedrive",
            content=body,
            headers=basic_headers(PIPEDRIVE_USER, "hunter2-secret"),
        )
    assert (forged.status_code, malformed.status_code, wrong_password.status_code) == (
        401,
        400,
        401,
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("refused a") == 3
    for leak in ("maria", "example.com", "987654321", "hunter2", 'leadgen_id": ', FACEBOOK_SECRET):
        assert leak not in logged


async def test_meta_handshake_echoes_the_challenge_only_for_the_right_token(
    client: httpx.AsyncClient,
) -> None:
    for vendor in ("facebook", "whatsapp"):
        ok = await client.get(
            f"/webhooks/{vendor}",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444",
            },
        )
        assert (ok.status_code, ok.text) == (200, "1158201444")
        wrong = await client.get(
            f"/webhooks/{vendor}",
            params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
        )
        assert wrong.status_code == 403
        no_mode = await client.get(
            f"/webhooks/{vendor}", params={"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}
        )
        assert no_mode.status_code == 403


async def test_a_vendor_without_a_configured_secret_refuses_everything(ledger: Ledger) -> None:
    settings = webhook_settings(asaas_token=None, facebook_app_secret=None, docusign_hmac_keys=[])
    async with serving(ledger, settings=settings) as http:
        for vendor in ("asaas", "docusign"):
            body = delivery(vendor, 1)
            response = await http.post(
                f"/webhooks/{vendor}", content=body, headers=signed(vendor, body)
            )
            assert response.status_code == 401
        # an empty secret must not make an HMAC of the empty key acceptable
        body = facebook_payload(["1"])
        response = await http.post(
            "/webhooks/facebook", content=body, headers=hub_headers("", body)
        )
        assert response.status_code == 401
    assert inbox_rows(ledger) == []


async def test_health_ready_and_docs(client: httpx.AsyncClient, tmp_path) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    docs = await client.get("/openapi.json")
    paths = docs.json()["paths"]
    assert {f"/webhooks/{v}" for v in VENDORS} <= set(paths)
    assert "get" in paths["/webhooks/facebook"]
    assert "post" in paths["/webhooks/facebook"]
    assert (await client.get("/docs")).status_code == 200

    never_migrated = Ledger(f"sqlite:///{tmp_path}/empty.db")
    async with serving(never_migrated) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200
    never_migrated.dispose()


async def test_two_hundred_concurrent_deliveries_a_fifth_duplicates_store_and_trigger_each_once(
    ledger: Ledger, runner: RecordingRunner
) -> None:
    unique = 160
    plan = [(VENDORS[n % 5], n) for n in range(unique)]
    plan += [plan[(n * 7) % unique] for n in range(40)]  # 40 redeliveries, racing the originals
    async with serving(ledger, runner=runner) as http:

        async def send(vendor: str, n: int) -> httpx.Response:
            body = delivery(vendor, n)
            return await http.post(
                f"/webhooks/{vendor}", content=body, headers=signed(vendor, body)
            )

        responses = await asyncio.gather(*(send(v, n) for v, n in plan))
    assert all(r.status_code == 200 for r in responses)
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("stored") == unique
    assert statuses.count("duplicate") == 40
    rows = inbox_rows(ledger)
    assert len(rows) == len(set(rows)) == unique
    assert sorted(runner.ids) == sorted(set(runner.ids))
    assert len(runner.ids) == unique


async def test_a_delivery_whose_process_died_before_the_trigger_is_left_for_the_reconciler(
    ledger: Ledger,
) -> None:
    body = delivery("docusign", 77)
    async with serving(ledger, trigger=NoTrigger()) as http:  # stored, then nothing triggered
        response = await http.post(
            "/webhooks/docusign", content=body, headers=signed("docusign", body)
        )
    assert response.status_code == 200
    claimed = ledger.claim_inbox(10, "reconciler")
    assert [(c.vendor, c.event_id) for c in claimed] == inbox_rows(ledger)
    assert claimed[0].body == body
    assert ledger.claim_inbox(10, "another-reconciler") == []  # the claim holds


async def test_a_delivery_that_cannot_be_stored_is_not_acknowledged(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    never_migrated = Ledger(f"sqlite:///{tmp_path}/no-schema.db")
    body = delivery("asaas", 9)
    async with serving(never_migrated) as http:
        response = await http.post("/webhooks/asaas", content=body, headers=signed("asaas", body))
    never_migrated.dispose()
    assert response.status_code == 503  # the vendor retries; nothing was promised
    assert "could not store" in caplog.text
    assert ASAAS_TOKEN not in caplog.text


async def test_behind_a_proxy_path_prefix_a_delivery_is_still_received_and_stored(
    ledger: Ledger,
) -> None:
    app = create_app(webhook_settings(), ledger=ledger, trigger=NoTrigger())
    body = delivery("asaas", 5)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path="/hooks")
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            response = await http.post(
                "/hooks/webhooks/asaas", content=body, headers=signed("asaas", body)
            )
    assert response.status_code == 200
    assert response.json()["status"] == "stored"
    assert len(inbox_rows(ledger)) == 1
