"""`leadflow webhooks register`: subscribe leadflow's webhook service at each vendor, idempotently.

Run it again and nothing is created twice: each vendor's existing subscriptions are read first.
What no API can do (Meta's callback URL lives in the app dashboard; DocuSign's account-level
Connect needs an admin) is printed as steps for a person. The calls go through each vendor
Block's own client (its credentials, base URL, retries and rate limit); the subscription
endpoints are not client methods yet, so they are made here on the client's HTTP policy.

| vendor    | what is made                                                                      |
|-----------|-----------------------------------------------------------------------------------|
| pipedrive | `POST /api/v1/webhooks` deal `*`, version 2.0, basic auth (unless one exists)      |
| asaas     | `POST /v3/webhooks` with the payment events and the authToken (unless one exists)  |
| facebook  | `POST /{page}/subscribed_apps?subscribed_fields=leadgen` (idempotent at Meta)       |
| docusign  | nothing: per-envelope `eventNotification` (the journey sets it) or Connect by hand |
| whatsapp  | nothing: the app's webhook is set in the Meta dashboard, by hand                  |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from blocks.errors import VendorError
from leadflow.privacy import mask_text
from webhooks.app import PREFIX
from webhooks.settings import WebhookSettings

#: Asaas events leadflow reacts to (the journey waits for the payment; others are context).
ASAAS_EVENTS = (
    "PAYMENT_CREATED",
    "PAYMENT_CONFIRMED",
    "PAYMENT_RECEIVED",
    "PAYMENT_OVERDUE",
    "PAYMENT_DELETED",
    "PAYMENT_REFUNDED",
)
SUBSCRIPTION_NAME = "leadflow"


class Outcome(StrEnum):
    SUBSCRIBED = "subscribed"
    ALREADY = "already subscribed"
    MANUAL = "by hand"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Registration:
    """What happened at one vendor, and what a person must still do there."""

    vendor: str
    outcome: Outcome
    detail: str
    manual_steps: list[str] = field(default_factory=list)


def endpoint(public_url: str, vendor: str) -> str:
    return f"{public_url.rstrip('/')}{PREFIX}/{vendor}"


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


async def register_pipedrive(
    block: Any, public_url: str, settings: WebhookSettings
) -> Registration:
    url = endpoint(public_url, "pipedrive")
    user, password = settings.pipedrive_user, _secret(settings.pipedrive_password)
    if not user or not password:
        return Registration(
            "pipedrive",
            Outcome.SKIPPED,
            "set LEADFLOW_WEBHOOK_PIPEDRIVE_USER and _PASSWORD first: Pipedrive webhooks are "
            "authenticated only by the basic auth given when subscribing",
        )
    async with block.get_client() as client:
        http = client._http
        listed = await http.request_json("GET", "/api/v1/webhooks")
        for hook in listed.get("data") or []:
            if (
                hook.get("subscription_url") == url
                and hook.get("event_object") in ("deal", "*")
                and str(hook.get("version")) == "2.0"
                and hook.get("http_auth_user") == user
                and hook.get("is_active") in (1, True, None)
            ):
                return Registration("pipedrive", Outcome.ALREADY, f"webhook {hook.get('id')}")
        created = await http.request_json(
            "POST",
            "/api/v1/webhooks",
            json={
                "subscription_url": url,
                "event_action": "*",
                "event_object": "deal",
                "name": SUBSCRIPTION_NAME,
                "version": "2.0",
                "http_auth_user": user,
                "http_auth_password": password,
            },
            idempotent=False,
        )
    hook_id = (created.get("data") or {}).get("id")
    return Registration("pipedrive", Outcome.SUBSCRIBED, f"webhook {hook_id} on deal changes")


async def register_asaas(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    url = endpoint(public_url, "asaas")
    token = _secret(settings.asaas_token)
    manual = [
        f"Asaas > Integrações > Webhooks: URL {url}, token = LEADFLOW_WEBHOOK_ASAAS_TOKEN, "
        f"API v3, envio sequencial, events {', '.join(ASAAS_EVENTS)}",
    ]
    if not token:
        return Registration(
            "asaas", Outcome.SKIPPED, "set LEADFLOW_WEBHOOK_ASAAS_TOKEN first", manual
        )
    async with block.get_client() as client:
        http = client._http
        try:
            listed = await http.request_json("GET", "/v3/webhooks")
        except VendorError as exc:
            if getattr(exc, "status", None) == 404:
                return Registration(
                    "asaas", Outcome.MANUAL, "this Asaas has no /v3/webhooks API", manual
                )
            raise
        for hook in listed.get("data") or []:
            if hook.get("url") == url and hook.get("enabled", True):
                return Registration("asaas", Outcome.ALREADY, f"webhook {hook.get('id')}")
        created = await http.request_json(
            "POST",
            "/v3/webhooks",
            json={
                "name": SUBSCRIPTION_NAME,
                "url": url,
                "enabled": True,
                "interrupted": False,
                "apiVersion": 3,
                "authToken": token,
                "sendType": "SEQUENTIALLY",
                "events": list(ASAAS_EVENTS),
            },
            idempotent=False,
        )
    return Registration("asaas", Outcome.SUBSCRIBED, f"webhook {created.get('id')}")


async def register_facebook(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    url = endpoint(public_url, "facebook")
    manual = [
        f"Meta app dashboard > Webhooks > Page: callback URL {url}, verify token = "
        "LEADFLOW_WEBHOOK_FACEBOOK_VERIFY_TOKEN, subscribe to the field `leadgen`",
        "Meta app settings: the App Secret goes in LEADFLOW_WEBHOOK_FACEBOOK_APP_SECRET",
    ]
    async with block.get_client() as client:
        http = client._http
        answer = await http.request_json(
            "POST",
            "/{version}/{page_id}/subscribed_apps",
            path_params={"version": block.graph_version, "page_id": block.page_id},
            params={"subscribed_fields": "leadgen"},
            idempotent=True,
        )
    if not answer.get("success"):
        return Registration("facebook", Outcome.FAILED, "Meta did not answer success", manual)
    return Registration(
        "facebook", Outcome.SUBSCRIBED, f"page {block.page_id} sends leadgen to the app", manual
    )


async def register_docusign(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    url = endpoint(public_url, "docusign")
    return Registration(
        "docusign",
        Outcome.MANUAL,
        "envelopes sent by leadflow carry their own eventNotification; or set account Connect",
        [
            f"DocuSign eSignature Admin > Connect > Add configuration (Custom): URL {url}, "
            "JSON SIM, events envelope-sent/-delivered/-completed/-declined/-voided, "
            "Include HMAC Signature, Include Custom Fields; put the secret keys in "
            "LEADFLOW_WEBHOOK_DOCUSIGN_HMAC_KEYS (comma-separated during a rotation)",
        ],
    )


async def register_whatsapp(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    url = endpoint(public_url, "whatsapp")
    return Registration(
        "whatsapp",
        Outcome.MANUAL,
        "the WhatsApp app's webhook is configured in the Meta dashboard",
        [
            f"Meta app dashboard > WhatsApp > Configuration: callback URL {url}, verify "
            "token = LEADFLOW_WEBHOOK_WHATSAPP_VERIFY_TOKEN (or the Facebook one), subscribe "
            "to `messages`; the app secret goes in LEADFLOW_WEBHOOK_WHATSAPP_APP_SECRET",
        ],
    )


REGISTRARS = {
    "facebook": register_facebook,
    "pipedrive": register_pipedrive,
    "docusign": register_docusign,
    "asaas": register_asaas,
    "whatsapp": register_whatsapp,
}


async def register_all(
    public_url: str, blocks: Mapping[str, Any], settings: WebhookSettings
) -> list[Registration]:
    """Subscribe at every vendor that has a Block; a failure at one does not stop the others."""
    if not public_url.startswith(("https://", "http://")):
        raise ValueError("the public URL must start with https:// (or http:// for the sandbox)")
    results: list[Registration] = []
    for vendor, registrar in REGISTRARS.items():
        block = blocks.get(vendor)
        if block is None and vendor in ("facebook", "pipedrive", "asaas"):
            results.append(Registration(vendor, Outcome.SKIPPED, "no Block saved for it"))
            continue
        try:
            results.append(await registrar(block, public_url, settings))
        except VendorError as exc:
            results.append(Registration(vendor, Outcome.FAILED, mask_text(str(exc))))
    return results
