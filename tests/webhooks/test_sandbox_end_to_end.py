"""The sandbox's own webhooks, sent as its simulated people act, through this service over real
HTTP: subscribed with `register` (Pipedrive webhook, Facebook page subscription) and Meta's
handshake, with the sandbox duplicating, delaying and dropping deliveries. Every delivery that
was sent is stored exactly once and triggered exactly once; a dropped one is not there (the
reconciler's poll finds it, not this service)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from benchmarks.bench_sandbox import _cpf
from leadflow.sandbox_blocks import sandbox_credentials
from ledger import Ledger
from sandbox.server import RunningSandbox, bind_socket, running_sandbox
from tests.webhooks.conftest import (
    create_pix_payment,
    inbox_rows,
    sandbox_asaas,
    webhook_settings,
)
from webhooks.app import create_app
from webhooks.events import EventKind, parse_delivery
from webhooks.registration import Outcome, register_all

pytestmark = pytest.mark.integration

FAULTS = {"duplicate_rate": 0.4, "delay_rate": 0.3, "delay_seconds": 0.2, "drop_rate": 0.15}


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` on a free loopback port in a thread (lifespan on) until the block exits."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the webhook service did not start"
            thread.join(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _settings_for(sandbox: RunningSandbox) -> Any:
    credentials = sandbox.credentials
    return webhook_settings(
        facebook_app_secret=SecretStr(credentials["facebook"]["app_secret"]),
        facebook_verify_token=SecretStr(credentials["facebook"]["verify_token"]),
        whatsapp_app_secret=SecretStr(credentials["whatsapp"]["app_secret"]),
        whatsapp_verify_token=SecretStr(credentials["whatsapp"]["verify_token"]),
        docusign_hmac_keys=[
            SecretStr("retired-key"),
            SecretStr(credentials["docusign"]["connect_hmac_key"]),
        ],
        asaas_token=SecretStr(credentials["asaas"]["webhook_auth_token"]),
        pipedrive_user="leadflow-e2e",
        pipedrive_password=SecretStr("e2e-basic-password"),
    )


def test_the_sandbox_people_drive_deliveries_through_the_service(ledger: Ledger) -> None:
    triggered: list[int] = []

    async def runner(inbox_ids: list[int]) -> None:
        triggered.extend(inbox_ids)

    with running_sandbox(seed=11) as sandbox:
        settings = _settings_for(sandbox)
        app = create_app(settings, ledger=ledger, runner=runner)
        admin = httpx.Client(base_url=sandbox.admin_url, timeout=10)
        with served(app) as service_url:
            every = sandbox_credentials(sandbox.url)
            blocks = {vendor: every[vendor] for vendor in ("facebook", "pipedrive")}
            results = asyncio.run(register_all(service_url, blocks, settings))
            outcomes = {r.vendor: r.outcome for r in results}
            assert outcomes["pipedrive"] is Outcome.SUBSCRIBED
            assert outcomes["facebook"] is Outcome.SUBSCRIBED
            again = asyncio.run(register_all(service_url, blocks, settings))
            assert {r.vendor: r.outcome for r in again}["pipedrive"] is Outcome.ALREADY

            # Meta's handshake against this service, then the target is set (as in Meta's UI)
            for vendor in ("facebook", "whatsapp"):
                admin.post(
                    f"/{vendor}/subscription",
                    json={"callback_url": f"{service_url}/webhooks/{vendor}"},
                ).raise_for_status()
            for vendor in ("asaas", "docusign"):
                admin.put(
                    f"/webhook-targets/{vendor}", json={"url": f"{service_url}/webhooks/{vendor}"}
                ).raise_for_status()
            # the lead volume gets the faults; the one deal and one payment arrive cleanly
            admin.put("/faults/facebook/webhooks", json=FAULTS).raise_for_status()

            # people act: 30 leads fill the form, a salesperson wins a deal, a client pays
            admin.post("/facebook/leads", json={"count": 30, "bad_share": 0}).raise_for_status()
            pipedrive = httpx.Client(
                base_url=sandbox.base_urls["pipedrive"],
                headers={"x-api-token": sandbox.credentials["pipedrive"]["api_token"]},
                timeout=10,
            )
            deal = pipedrive.post("/api/v2/deals", json={"title": "Site"}).json()["data"]
            pipedrive.patch(f"/api/v2/deals/{deal['id']}", json={"status": "won"})
            asaas = sandbox_asaas(sandbox)
            payment = create_pix_payment(asaas, _cpf(123_456_789), externalReference="lead:1")
            asaas.post(f"/v3/sandbox/payment/{payment['id']}/confirm").raise_for_status()
            assert sandbox.sandbox.webhooks.wait_idle(timeout=30)
            log = admin.get("/webhooks").json()
        # the service stopped: its trigger drained

    sent = {"facebook": 0, "pipedrive": 0, "asaas": 0}
    records = log if isinstance(log, list) else log.get("deliveries", log)
    for record in records:
        vendor = record["vendor"]
        if vendor in sent and record["duplicate_of"] is None and record["outcome"] != "dropped":
            assert record["outcome"] == "delivered", record
            sent[vendor] += 1
    rows = inbox_rows(ledger)
    for vendor, count in sent.items():
        assert sum(1 for v, _ in rows if v == vendor) == count, vendor
    assert sent["facebook"] < 30  # the sandbox dropped some: this run tests that too
    assert sorted(triggered) == sorted(set(triggered))
    assert len(triggered) == len(rows)

    events = [
        event
        for view in ledger.claim_inbox(1000, "e2e")
        for event in parse_delivery(view.vendor, view.body)
    ]
    kinds = {event.kind for event in events}
    paid = [e for e in events if e.kind is EventKind.PAYMENT_RECEIVED]
    assert [e.reference for e in paid] == ["lead:1"]
    assert {
        EventKind.LEAD_CREATED,
        EventKind.DEAL_WON,
        EventKind.PAYMENT_RECEIVED,
    } <= kinds
    duplicates = [r for r in records if r["duplicate_of"] is not None]
    assert any(r["outcome"] == "delivered" for r in duplicates)  # and were stored once
