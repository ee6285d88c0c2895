"""DocuSign for the journey: the signed envelope's form data (with the CPF the client typed),
Connect messages holding only what the listener asked for, and retries that count up.

`GET …/envelopes/{id}/form_data` (operation FormData_GetFormData) returns `envelopeFormData`:
every tab's value overall (`formData`) and per recipient (`recipientFormData`). The template's
CPF tab is prefilled when the sender gave a CPF; otherwise the simulated client fills it when
signing, occasionally with a mistyped (invalid) CPF at the seeded `invalid_cpf_rate`.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import httpx
import pytest

from sandbox.core import Sandbox
from sandbox.vendors import docusign
from tests.sandbox import test_docusign
from tests.sandbox.conftest import WebhookReceiver
from tests.sandbox.test_docusign import (
    ENVELOPES,
    _definition,
    _envelope,
    _payload,
    _signature_valid,
)

# the authenticated in-process client of the DocuSign tests, shared
anonymous = test_docusign.anonymous
client = test_docusign.client

ADMIN = "http://sandbox/__sandbox__/docusign"
#: envelopeFormData's and recipientFormData's properties in the v2.1 swagger definitions
FORM_DATA_KEYS = {
    "emailSubject", "envelopeId", "formData", "prefillFormData", "recipientFormData",
    "sentDateTime", "status",
}  # fmt: skip
RECIPIENT_FORM_DATA_KEYS = {
    "DeclinedTime", "DeliveredTime", "email", "formData", "name", "recipientId", "SentTime",
    "SignedTime",
}  # fmt: skip
FORM_DATA_ITEM_KEYS = {
    "errorDetails", "listSelectedValue", "name", "numericalValue", "originalValue", "value"
}  # fmt: skip


def cpf_is_valid(text: str) -> bool:
    """The CPF check digits, computed here independently of the sandbox."""
    digits = [int(c) for c in re.sub(r"\D", "", text)]
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    for size in (9, 10):
        total = sum(d * w for d, w in zip(digits[:size], range(size + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != digits[size]:
            return False
    return True


def _without_cpf(journey: str = "j_1") -> dict[str, Any]:
    definition = _definition(journey)
    del definition["templateRoles"][0]["tabs"]
    return definition


async def _form_data(client: httpx.AsyncClient, envelope_id: str) -> dict[str, Any]:
    response = await client.get(f"{ENVELOPES}/{envelope_id}/form_data")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) <= FORM_DATA_KEYS
    for recipient in body["recipientFormData"]:
        assert set(recipient) <= RECIPIENT_FORM_DATA_KEYS
        for item in recipient["formData"]:
            assert set(item) <= FORM_DATA_ITEM_KEYS
    return body


def _cpf_of(form: dict[str, Any]) -> str:
    (value,) = [item["value"] for item in form["formData"] if item["name"] == "cpf"]
    return str(value)


def test_generated_cpfs_are_valid_or_invalid_as_asked() -> None:
    rng = random.Random(3)
    assert all(cpf_is_valid(docusign.generate_cpf(rng)) for _ in range(200))
    assert not any(cpf_is_valid(docusign.generate_cpf(rng, valid=False)) for _ in range(200))


async def test_a_prefilled_cpf_is_the_form_datas_cpf(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    envelope_id = await _envelope(client)
    sandbox.roles["signer"].accept(envelope_id)
    form = await _form_data(client, envelope_id)
    assert form["status"] == "completed"
    assert _cpf_of(form) == "123.456.789-09"
    (recipient,) = form["recipientFormData"]
    assert recipient["email"] == "maria@example.com.br"
    assert "SignedTime" in recipient


async def test_the_client_fills_the_cpf_tab_left_empty_when_signing(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    response = await client.post(ENVELOPES, json=_without_cpf())
    envelope_id = response.json()["envelopeId"]
    assert _cpf_of(await _form_data(client, envelope_id)) == ""
    sandbox.roles["signer"].accept(envelope_id)
    cpf = _cpf_of(await _form_data(client, envelope_id))
    assert re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", cpf)


async def test_the_share_of_invalid_cpfs_follows_the_admin_setting(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    response = await client.put(f"{ADMIN}/signer", json={"invalid_cpf_rate": 1.0})
    assert response.json() == {"invalid_cpf_rate": 1.0}
    invalid = (await client.post(ENVELOPES, json=_without_cpf("j_1"))).json()["envelopeId"]
    sandbox.roles["signer"].accept(invalid)
    await client.put(f"{ADMIN}/signer", json={"invalid_cpf_rate": 0.0})
    valid = (await client.post(ENVELOPES, json=_without_cpf("j_2"))).json()["envelopeId"]
    sandbox.roles["signer"].accept(valid)
    assert not cpf_is_valid(_cpf_of(await _form_data(client, invalid)))
    assert cpf_is_valid(_cpf_of(await _form_data(client, valid)))


async def test_an_occasional_invalid_share_is_drawn_from_the_seed(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await client.put(f"{ADMIN}/signer", json={"invalid_cpf_rate": 0.25})
    ids = [
        (await client.post(ENVELOPES, json=_without_cpf(f"j_{n}"))).json()["envelopeId"]
        for n in range(40)
    ]
    for envelope_id in ids:
        sandbox.roles["signer"].accept(envelope_id)
    cpfs = [_cpf_of(await _form_data(client, envelope_id)) for envelope_id in ids]
    bad = sum(not cpf_is_valid(cpf) for cpf in cpfs)
    assert 2 <= bad <= 20


@pytest.mark.parametrize("rate", [1.5, -0.1, "NaN"])
async def test_the_invalid_cpf_rate_is_bounded(client: httpx.AsyncClient, rate: Any) -> None:
    raw = f'{{"invalid_cpf_rate": {rate}}}'
    response = await client.put(
        f"{ADMIN}/signer", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_form_data_of_an_unknown_envelope_is_docusigns_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ENVELOPES}/00000000-0000-4000-8000-000000000000/form_data")
    assert response.status_code == 404
    assert response.json()["errorCode"] == "ENVELOPE_DOES_NOT_EXIST"


# -- Connect: only what was asked for, retries counted ----------------------------------------


async def test_by_default_connect_sends_only_the_events_data(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["docusign"] = receiver.url
    envelope_id = await _envelope(client)
    sandbox.roles["signer"].accept(envelope_id)
    completed = _payload(receiver.wait_for(2)[-1])
    assert completed["event"] == "envelope-completed"
    summary = completed["data"]["envelopeSummary"]
    assert summary["status"] == "completed"
    assert "customFields" not in summary
    assert "recipients" not in summary
    assert "leadflow_journey_id" not in json.dumps(completed)
    assert "maria@example.com.br" not in json.dumps(completed)


async def test_include_data_on_the_envelope_adds_exactly_what_it_names(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    notification = {
        "url": f"{receiver.url}/listener",
        "includeHMAC": "true",
        "envelopeEvents": [{"envelopeEventStatusCode": "completed"}],
        "eventData": {"version": "restv2.1", "format": "json", "includeData": ["custom_fields"]},
    }
    envelope_id = await _envelope(client, eventNotification=notification)
    sandbox.roles["signer"].accept(envelope_id)
    summary = _payload(receiver.wait_for(1)[0])["data"]["envelopeSummary"]
    assert summary["customFields"]["textCustomFields"][0]["value"] == "j_123"
    assert "recipients" not in summary


async def test_include_data_tabs_carries_the_cpf_the_client_typed(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await client.put(f"{ADMIN}/connect", json={"include_data": ["tabs"]})
    sandbox.webhook_targets["docusign"] = receiver.url
    envelope_id = await _envelope(client)
    sandbox.roles["signer"].accept(envelope_id)
    (signer,) = _payload(receiver.wait_for(2)[-1])["data"]["envelopeSummary"]["recipients"][
        "signers"
    ]
    assert signer["tabs"]["textTabs"][0]["value"] == "123.456.789-09"


async def test_unknown_include_data_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{ADMIN}/connect", json={"include_data": ["everything"]})
    assert response.status_code == 422
    definition = _definition(
        eventNotification={"url": "http://127.0.0.1:1/x", "eventData": {"includeData": ["all"]}}
    )
    assert (await client.post(ENVELOPES, json=definition)).status_code == 400


async def test_a_retried_connect_message_counts_retry_count_up_and_is_signed_again(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    sandbox.webhook_targets["docusign"] = receiver.url
    receiver.fail_first = 2
    await _envelope(client)
    deliveries = receiver.wait_for(3, timeout=15)
    assert [_payload(d)["retryCount"] for d in deliveries] == [0, 1, 2]
    assert all(_signature_valid(d) for d in deliveries)
    assert len({_payload(d)["generatedDateTime"] for d in deliveries}) == 1
