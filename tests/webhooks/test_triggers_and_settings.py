"""Triggers (deployment, in-process, none), the verifiers on hostile input, and settings."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from blocks.webhook_signatures import (
    meta_handshake,
    verify_asaas_token,
    verify_basic_auth,
    verify_docusign_signatures,
    verify_hub_signature,
)
from ledger import Ledger
from tests.webhooks.conftest import delivery, serving, signed, webhook_settings
from webhooks.settings import TriggerMode, WebhookSettings
from webhooks.trigger import DeploymentTrigger, InProcessTrigger, NewDelivery


class RecordingStarter:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def __call__(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name, kwargs))
        if self.fail:
            raise ConnectionError("no Prefect server")


async def test_deployment_mode_runs_the_deployment_keyed_by_the_delivery(ledger: Ledger) -> None:
    starter = RecordingStarter()
    trigger = DeploymentTrigger("handle-deliveries/handle-deliveries", starter=starter)
    body = delivery("asaas", 1)
    async with serving(ledger, trigger=trigger) as http:
        for _ in range(2):  # the redelivery triggers nothing
            await http.post("/webhooks/asaas", content=body, headers=signed("asaas", body))
    ((name, kwargs),) = starter.calls
    (inbox_id,) = kwargs["parameters"]["inbox_ids"]
    assert name == "handle-deliveries/handle-deliveries"
    assert kwargs["idempotency_key"] == f"inbox-asaas-evt_{1:032x}&1"
    assert kwargs["timeout"] == 0
    assert isinstance(inbox_id, int)


async def test_a_failing_trigger_never_fails_the_delivery(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = DeploymentTrigger("d/d", starter=RecordingStarter(fail=True))

    async def broken_runner(inbox_ids: list[int]) -> None:
        raise RuntimeError("flow crashed")

    body = delivery("whatsapp", 1)
    for kwargs in ({"trigger": trigger}, {"runner": broken_runner}):
        async with serving(ledger, **kwargs) as http:
            response = await http.post(
                "/webhooks/whatsapp", content=body, headers=signed("whatsapp", body)
            )
        assert response.status_code == 200
        body = delivery("whatsapp", 2)
    assert "reconciler" in caplog.text
    assert len(ledger.claim_inbox(10, "reconciler")) == 2  # both left for the reconciler


async def test_in_process_batches_what_arrives_while_the_runner_works() -> None:
    seen: list[list[int]] = []

    def sync_runner(inbox_ids: list[int]) -> None:  # a sync runner runs in a thread
        seen.append(inbox_ids)

    trigger = InProcessTrigger(sync_runner)
    await trigger.start()
    for n in range(5):
        trigger.submit(NewDelivery("asaas", f"e{n}", n))
    trigger.submit(NewDelivery("asaas", "no-id", None))  # nothing to hand over
    await trigger.stop()
    assert sorted(i for batch in seen for i in batch) == [0, 1, 2, 3, 4]
    assert len(seen) < 5


def test_verifiers_refuse_hostile_input_without_raising() -> None:
    body = b"{}"
    assert not verify_hub_signature("secret", body, "sha256=zz")
    assert not verify_hub_signature("secret", body, "sha1=" + "0" * 40)
    assert not verify_hub_signature("", body, "sha256=")
    assert not verify_docusign_signatures(["k"], body, {"X-DocuSign-Signature-1": "%%%"})
    assert not verify_docusign_signatures([], body, {})
    assert not verify_basic_auth("u", "p", "Basic %%%")
    assert not verify_basic_auth("u", "p", "Bearer abc")
    no_colon = base64.b64encode(b"up").decode()
    assert not verify_basic_auth("u", "p", f"Basic {no_colon}")
    assert verify_basic_auth("u", "p:x", "Basic " + base64.b64encode(b"u:p:x").decode())
    assert not verify_asaas_token("", "")
    assert not verify_asaas_token("t", None)
    assert meta_handshake("tok", "subscribe", "tok", "42") == "42"
    assert meta_handshake("", "subscribe", "", "42") is None


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_WEBHOOK_DOCUSIGN_HMAC_KEYS", " old-key , new-key ,")
    monkeypatch.setenv("LEADFLOW_WEBHOOKS_TRIGGER", "deployment")
    monkeypatch.setenv("LEADFLOW_WEBHOOK_ASAAS_TOKEN", "asaas-t0ken-value")
    monkeypatch.setenv("LEADFLOW_WEBHOOK_FACEBOOK_VERIFY_TOKEN", "fb")
    settings = WebhookSettings()
    assert settings.docusign_keys() == ["old-key", "new-key"]
    assert settings.trigger is TriggerMode.DEPLOYMENT
    assert "asaas-t0ken-value" not in repr(settings)
    assert "old-key" not in repr(settings)
    assert settings.meta_verify_token("whatsapp") == "fb"  # falls back to Facebook's
    assert settings.max_body_bytes == 1024 * 1024
    assert webhook_settings(trigger="none").trigger is TriggerMode.NONE
