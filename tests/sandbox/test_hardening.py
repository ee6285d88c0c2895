"""The admin API and the vendor routes hold against hostile input (issue 8.11).

Bodies are capped (413), every number is bounded and finite, a 422 names the field and never
echoes what was sent, deeply nested JSON gets the vendor's own 400 (not a 500), and webhooks go
to loopback only unless the operator allowed other targets.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sandbox.core import Sandbox, is_loopback_url
from sandbox.server import RunningSandbox
from sandbox.vendors import asaas, docusign, hostinger, pipedrive, whatsapp
from tests.sandbox.test_docusign import _assertion, _grant

ADMIN = "/__sandbox__"
DEEP = "[" * 100_000 + "]" * 100_000
MARKER = "do-not-echo-this-value"


async def test_a_body_over_the_cap_is_413_before_it_is_read(app_client: httpx.AsyncClient) -> None:
    huge = b'{"error_rate": 0.1, "x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await app_client.put(
        f"{ADMIN}/faults/whatsapp", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert len(response.content) < 200


async def test_a_chunked_body_over_the_cap_is_413(app_client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        yield b'{"error_rate": 0.1, "x": "'
        for _ in range(40):
            yield b"a" * 65_536
        yield b'"}'

    response = await app_client.put(
        f"{ADMIN}/faults/whatsapp", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_a_422_names_the_field_and_does_not_echo_the_body(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.put(f"{ADMIN}/faults/whatsapp", json={"error_rate": MARKER * 1000})
    assert response.status_code == 422
    assert MARKER not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "error_rate"]


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/faults/whatsapp", "latency_ms", {}),
        ("/faults/whatsapp", "error_rate", {}),
        ("/faults/whatsapp/webhooks", "delay_seconds", {}),
        ("/people/salesperson", "delay_seconds", {}),
        ("/webhooks/wait", "timeout_seconds", {}),
        ("/asaas/limits", "window_seconds", {}),
        ("/hostinger/settings", "activation_delay_seconds", {}),
        ("/whatsapp/limits", "pair_interval_seconds", {}),
    ],
)
async def test_non_finite_numbers_are_a_422_naming_the_field(
    app_client: httpx.AsyncClient, path: str, field: str, body: dict[str, Any]
) -> None:
    method = "POST" if path == "/webhooks/wait" else "PUT"
    for value in ("NaN", "Infinity", "-Infinity", "1e999"):
        raw = json.dumps(body)[:-1] + ("" if not body else ", ") + f'"{field}": {value}}}'
        response = await app_client.request(
            method, ADMIN + path, content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (value, response.text)
        assert response.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", 1e9),
        ("hang_seconds", 1e6),
        ("gateway_timeout_seconds", 1e6),
        ("retry_after_seconds", 10**9),
        ("error_rate", 1.5),
        ("drop_rate", -0.1),
    ],
)
async def test_fault_numbers_are_bounded(
    app_client: httpx.AsyncClient, field: str, value: float
) -> None:
    response = await app_client.put(f"{ADMIN}/faults/whatsapp", json={field: value})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


async def _vendor_headers(app_client: httpx.AsyncClient, vendor: str) -> dict[str, str]:
    if vendor == "docusign":
        token = await app_client.post("/docusign/oauth/token", data=_grant(_assertion()))
        return {"Authorization": f"Bearer {token.json()['access_token']}"}
    return {
        "pipedrive": {"x-api-token": pipedrive.DEFAULT_CREDENTIALS["api_token"]},
        "asaas": {"access_token": asaas.DEFAULT_CREDENTIALS["api_key"]},
        "hostinger": {"Authorization": f"Bearer {hostinger.DEFAULT_CREDENTIALS['api_token']}"},
        "whatsapp": {"Authorization": f"Bearer {whatsapp.DEFAULT_CREDENTIALS['access_token']}"},
    }[vendor]


ACCOUNT = docusign.DEFAULT_CREDENTIALS["account_id"]


@pytest.mark.parametrize(
    ("vendor", "path", "error_key"),
    [
        ("pipedrive", "/pipedrive/api/v2/deals", "success"),
        ("pipedrive", "/pipedrive/api/v2/persons", "success"),
        ("asaas", "/asaas/v3/customers", "errors"),
        ("asaas", "/asaas/v3/payments", "errors"),
        ("hostinger", "/hostinger/api/hosting/v1/websites", "message"),
        ("hostinger", "/hostinger/api/billing/v1/orders", "message"),
        (
            "whatsapp",
            f"/whatsapp/v23.0/{whatsapp.DEFAULT_CREDENTIALS['phone_number_id']}/messages",
            "error",
        ),
        ("docusign", f"/docusign/restapi/v2.1/accounts/{ACCOUNT}/envelopes", "errorCode"),
    ],
)
async def test_deeply_nested_json_gets_the_vendors_own_4xx_not_a_500(
    app_client: httpx.AsyncClient, vendor: str, path: str, error_key: str
) -> None:
    headers = {**await _vendor_headers(app_client, vendor), "Content-Type": "application/json"}
    response = await app_client.post(path, content=DEEP, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert error_key in response.json()


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:9000/hook", True),
        ("http://127.5.5.5/hook", True),
        ("http://[::1]:9000/hook", True),
        ("http://localhost:9000/hook", True),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://10.0.0.1/hook", False),
        ("http://example.com/hook", False),
        ("http://localhost.example.com/hook", False),
        ("not a url", False),
    ],
)
def test_only_loopback_urls_count_as_loopback(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


async def test_a_webhook_target_outside_loopback_is_refused_by_default(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.put(
        f"{ADMIN}/webhook-targets/asaas", json={"url": "http://169.254.169.254/latest"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "url"]
    assert (await app_client.get(f"{ADMIN}/webhook-targets")).json() == {}


async def test_the_flag_allows_an_external_webhook_target(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.allow_external_webhook_targets = True
    response = await app_client.put(
        f"{ADMIN}/webhook-targets/asaas", json={"url": "http://10.0.0.1/hooks/asaas"}
    )
    assert response.status_code == 200
    assert response.json() == {"asaas": "http://10.0.0.1/hooks/asaas"}


def test_a_url_registered_at_a_vendor_outside_loopback_is_never_contacted(
    served: RunningSandbox,
) -> None:
    """A client-registered URL (Pipedrive webhook, DocuSign listener...) is guarded the same way."""
    sender = served.sandbox.webhooks
    ids = sender.deliver("pipedrive", "http://169.254.169.254/hook", b"{}", {})
    assert sender.wait_idle(5)
    (record,) = [r for r in sender.log("pipedrive") if r["id"] in ids]
    assert record["outcome"] == "refused"
    assert record["attempts"] == 0
