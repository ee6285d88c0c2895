"""`leadflow webhooks register`: subscribe leadflow's webhook service at each vendor, idempotently.

Run it again and nothing is created twice: each vendor's existing subscriptions are read first
and one already pointing at the service is kept. What no API can do (Meta's callback URL lives
in the app dashboard; DocuSign's Connect HMAC keys are made in its admin console) is printed as
steps for a person. Every call is a method of the vendor Block's own client (its credentials,
base URL, retries and rate limit).

| vendor    | what is made                                                                      |
|-----------|-----------------------------------------------------------------------------------|
| pipedrive | a v1 webhook on deal `*`, version 2.0, basic auth (unless one exists)              |
| asaas     | a webhook configuration with the payment events and the authToken (unless one)    |
| facebook  | the Page's `leadgen` subscription of the app (idempotent at Meta)                  |
| docusign  | an account Connect configuration, JSON SIM, HMAC, custom fields (unless one)      |
| whatsapp  | nothing: the app's webhook is set in the Meta dashboard, by hand                  |

DocuSign envelopes sent by leadflow carry no `eventNotification` of their own
(tasks/contracts.py sets none): the account's Connect configuration made here is what reports
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from blocks import (
    AuthenticationError,
    NewAsaasWebhook,
    NewConnectConfiguration,
    NotFoundError,
    PermanentError,
    VendorError,
    Webhook,
    WebhookCreate,
)
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
#: DocuSign Connect events the journey follows (the contract sent, opened, signed or not)
DOCUSIGN_EVENTS = (
    "envelope-sent",
    "envelope-delivered",
    "envelope-completed",
    "envelope-declined",
    "envelope-voided",
)
#: what a Connect message must carry beyond the event: the lead id is an envelope custom field
DOCUSIGN_INCLUDE_DATA = ("custom_fields",)
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


def _is_our_pipedrive_hook(hook: Webhook, url: str, user: str) -> bool:
    """A live v2.0 subscription of deal changes at our URL, with our basic-auth user."""
    return (
        hook.subscription_url == url
        and hook.event_object in ("deal", "*")
        and hook.version == "2.0"
        and hook.http_auth_user == user
        and hook.is_active
    )


async def register_pipedrive(
    block: Any, public_url: str, settings: WebhookSettings
) -> Registration:
    url = endpoint(public_url, "pipedrive")
    user, password = settings.pipedrive_user, settings.pipedrive_password
    if not user or password is None or not password.get_secret_value():
        return Registration(
            "pipedrive",
            Outcome.SKIPPED,
            "set LEADFLOW_WEBHOOK_PIPEDRIVE_USER and _PASSWORD first: Pipedrive webhooks are "
            "authenticated only by the basic auth given when subscribing",
        )
    async with block.get_client() as client:
        for hook in await client.list_webhooks():
            if _is_our_pipedrive_hook(hook, url, user):
                return Registration("pipedrive", Outcome.ALREADY, f"webhook {hook.id}")
        created = await client.create_webhook(
            WebhookCreate(
                subscription_url=url,
                event_action="*",
                event_object="deal",
                name=SUBSCRIPTION_NAME,
                version="2.0",
                http_auth_user=user,
                http_auth_password=password,
            )
        )
    return Registration("pipedrive", Outcome.SUBSCRIBED, f"webhook {created.id} on deal changes")


async def register_asaas(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    url = endpoint(public_url, "asaas")
    token = settings.asaas_token
    manual = [
        f"Asaas > Integrações > Webhooks: URL {url}, token = LEADFLOW_WEBHOOK_ASAAS_TOKEN, "
        f"API v3, envio sequencial, events {', '.join(ASAAS_EVENTS)}",
    ]
    if token is None or not token.get_secret_value():
        return Registration(
            "asaas", Outcome.SKIPPED, "set LEADFLOW_WEBHOOK_ASAAS_TOKEN first", manual
        )
    async with block.get_client() as client:
        try:
            hooks = await client.list_webhooks()
        except NotFoundError:
            return Registration(
                "asaas", Outcome.MANUAL, "this Asaas has no /v3/webhooks API", manual
            )
        for hook in hooks:
            if hook.url != url:
                continue
            if hook.delivering:
                return Registration("asaas", Outcome.ALREADY, f"webhook {hook.id}")
            # a second configuration would send every event twice once this one is back
            state = "interrupted (15 failures in a row)" if hook.interrupted else "disabled"
            return Registration(
                "asaas",
                Outcome.MANUAL,
                f"webhook {hook.id} exists but is {state}",
                [f"Asaas > Integrações > Webhooks: enable webhook {hook.id} ({url}) again"],
            )
        created = await client.create_webhook(
            NewAsaasWebhook(
                name=SUBSCRIPTION_NAME,
                url=url,
                events=list(ASAAS_EVENTS),
                auth_token=SecretStr(token.get_secret_value()),
                send_type="SEQUENTIALLY",
            )
        )
    return Registration("asaas", Outcome.SUBSCRIBED, f"webhook {created.id}")


async def register_facebook(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    url = endpoint(public_url, "facebook")
    manual = [
        f"Meta app dashboard > Webhooks > Page: callback URL {url}, verify token = "
        "LEADFLOW_WEBHOOK_FACEBOOK_VERIFY_TOKEN, subscribe to the field `leadgen`",
        "Meta app settings: the App Secret goes in LEADFLOW_WEBHOOK_FACEBOOK_APP_SECRET",
    ]
    async with block.get_client() as client:
        subscribed = await client.subscribe_page_to_leadgen()
    if not subscribed:
        return Registration("facebook", Outcome.FAILED, "Meta did not answer success", manual)
    return Registration(
        "facebook", Outcome.SUBSCRIBED, f"page {block.page_id} sends leadgen to the app", manual
    )


async def register_docusign(block: Any, public_url: str, settings: WebhookSettings) -> Registration:
    """The account's Connect configuration for the service, found by its URL or created.

    Connect signs with the account's HMAC keys, which only DocuSign's admin console makes and
    shows (once): that remains a step for a person, as does all of it when the Block's user
    may not manage Connect (an account admin's right).
    """
    url = endpoint(public_url, "docusign")
    keys_step = (
        "DocuSign eSignature Admin > Connect > Connect Keys: add a secret key and put it in "
        "LEADFLOW_WEBHOOK_DOCUSIGN_HMAC_KEYS (comma-separated while a rotation keeps two); "
        "Connect signs each message with every active key"
    )
    console_step = (
        f"DocuSign eSignature Admin > Connect > Add configuration (Custom): URL {url}, "
        f"JSON SIM, events {', '.join(DOCUSIGN_EVENTS)}, Include HMAC Signature, "
        "Include Custom Fields"
    )
    if block is None:
        return Registration(
            "docusign", Outcome.SKIPPED, "no Block saved for it", [console_step, keys_step]
        )
    async with block.get_client() as client:
        try:
            existing = await client.list_connect_configurations()
        except PermanentError as refused:
            # a 403 or a 400 such as USER_LACKS_PERMISSIONS: the user is no account admin;
            # a 401 (bad grant) or a 404 is a fault of the Block, reported as a failure
            lacks_rights = refused.status == 403 or not isinstance(
                refused, AuthenticationError | NotFoundError
            )
            if not lacks_rights:
                raise
            return Registration(
                "docusign",
                Outcome.MANUAL,
                mask_text(f"DocuSign refused to list Connect (an account admin may): {refused}"),
                [console_step, keys_step],
            )
        for configuration in existing:
            if configuration.url_to_publish_to == url:
                return Registration(
                    "docusign",
                    Outcome.ALREADY,
                    f"Connect configuration {configuration.connect_id}",
                    [keys_step],
                )
        created = await client.create_connect_configuration(
            NewConnectConfiguration(
                name=SUBSCRIPTION_NAME,
                url_to_publish_to=url,
                events=list(DOCUSIGN_EVENTS),
                include_hmac=True,
                include_data=list(DOCUSIGN_INCLUDE_DATA),
            )
        )
    return Registration(
        "docusign",
        Outcome.SUBSCRIBED,
        f"Connect configuration {created.connect_id}: {len(DOCUSIGN_EVENTS)} envelope events "
        f"to {url}",
        [keys_step],
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
