"""WhatsApp Cloud API: the credentials Block and the async client that sends text and templates.

Where it sits: the journey speaks to the client on WhatsApp twice — the PIX code after the Asaas
charge, the welcome after Hostinger activation — through tasks that record each `wamid` in the
ledger. Outside the 24-hour customer-service window only approved templates may be sent; a text
sent there fails with code 131047, raised as a PermanentError carrying that code so the task can
fall back to a template.

Contract (contracts README §6): `POST /{version}/{phone-number-id}/messages` with a `Message`
(`type: text` or `type: template`), answered by `MessageResponsePayload` (`messages[0].id` is
the wamid; `accepted` is not `delivered` — the status webhook says that). There is no
idempotency key: a send whose answer never came raises UnknownOutcomeError and is never
retried, because retrying could message the client twice; the task reconciles through the
status webhook instead. Sends refused for rate (429, codes 130429, 131056, 80007, 4) did
nothing and are retried by the HTTP policy, then raised as RateLimitedError. Two sends to the
same person are spaced by `pair_interval_seconds` (6 s, Meta's pair rate) before they leave.

How to use it::

    from blocks import PermanentError, WhatsAppCredentials
    from blocks.whatsapp import REENGAGEMENT_REQUIRED, TemplateComponent, TemplateParameter

    whatsapp = await WhatsAppCredentials.load("default")
    async with whatsapp.get_client() as client:
        try:
            sent = await client.send_text("5511999998888", "Seu código PIX: ...")
        except PermanentError as error:
            if error.code != REENGAGEMENT_REQUIRED:
                raise
            sent = await client.send_template(
                "5511999998888",
                "pix_cobranca",
                components=[TemplateComponent(type="body", parameters=[
                    TemplateParameter.of_text("00020126580014br.gov.bcb.pix..."),
                ])],
            )
        # store sent.wamid in the ledger before anything else
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal, Unpack

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from blocks.credentials import ClientOptions
from blocks.errors import RateLimitedError
from blocks.facebook import GRAPH_VERSION, GraphCredentials
from blocks.http import RateLimit, VendorClient, VendorHTTP

__all__ = [
    "WHATSAPP_AUTH_CODES",
    "WHATSAPP_RATE_LIMIT_CODES",
    "CurrencyParameter",
    "PhoneNumber",
    "SendResult",
    "TemplateComponent",
    "TemplateParameter",
    "WhatsAppClient",
    "WhatsAppCredentials",
]

VENDOR = "whatsapp"
PRODUCTION_URL = "https://graph.facebook.com"
#: throughput (130429), pair rate (131056), WABA rate (80007), app rate (4)
WHATSAPP_RATE_LIMIT_CODES: frozenset[str] = frozenset({"130429", "131056", "80007", "4"})
WHATSAPP_AUTH_CODES: frozenset[str] = frozenset({"190"})
#: the send outside the 24 h window; the task falls back to a template
REENGAGEMENT_REQUIRED = "131047"
#: the number is not on WhatsApp, blocked the business, or runs an old app
UNDELIVERABLE = "131026"
#: too many messages to the same person in a short time (Meta's pair rate)
PAIR_RATE_LIMITED = "131056"
SEND_PATH = "/{version}/{phone_number_id}/messages"


# ------------------------------------------------------------------------------------ models


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CurrencyParameter(_Out):
    fallback_value: str
    code: str = Field(pattern=r"^[A-Z]{3}$")
    amount_1000: int


class TemplateParameter(_Out):
    """One parameter of a template component (text, currency or a button payload)."""

    type: Literal["text", "currency", "payload"]
    text: str | None = None
    currency: CurrencyParameter | None = None
    payload: str | None = None

    @classmethod
    def of_text(cls, text: str) -> TemplateParameter:
        return cls(type="text", text=text)


class TemplateComponent(_Out):
    """A template's header, body or button, with its parameters (TemplateComponent)."""

    type: Literal["header", "body", "button"]
    #: what the spec we ship lists (TemplateComponent.sub_type): quick_reply, url, catalog.
    #: Meta documents `copy_code` for coupon buttons elsewhere, but the v23.0 spec in
    #: contracts/whatsapp does not list it, and the sandbox checks against that spec.
    sub_type: Literal["quick_reply", "url", "catalog"] | None = None
    index: str | None = Field(default=None, pattern=r"^[0-9]$")
    parameters: list[TemplateParameter] = Field(default_factory=list)


class SendResult(BaseModel):
    """What WhatsApp answered: the wamid to store, and the recipient's WhatsApp id."""

    model_config = ConfigDict(extra="ignore")

    wamid: str
    message_status: str | None = None
    wa_id: str | None = None

    @classmethod
    def from_payload(cls, payload: Any) -> SendResult:
        message = (payload.get("messages") or [{}])[0]
        contact = (payload.get("contacts") or [{}])[0]
        return cls(
            wamid=message["id"],
            message_status=message.get("message_status"),
            wa_id=contact.get("wa_id"),
        )


class PhoneNumber(BaseModel):
    """The business phone number's Graph node (`GET /{version}/{phone-number-id}`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    quality_rating: str | None = None


def _recipient(to: str) -> str:
    """Cloud API takes the number in international format; digits only is the safe form."""
    digits = "".join(ch for ch in to if ch.isdigit())
    if not 8 <= len(digits) <= 15:
        raise ValueError("the recipient must be a phone number in international format")
    return digits


# ------------------------------------------------------------------------------------ client

_pair_lock = threading.Lock()
_next_send_at: dict[tuple[str, str], float] = {}


def forget_pair_rates() -> None:
    """Forget when each person was last messaged (tests start each case afresh)."""
    with _pair_lock:
        _next_send_at.clear()


class WhatsAppClient(VendorClient):
    """Sends WhatsApp messages from one business phone number. Build it with the Block."""

    def __init__(
        self,
        http: VendorHTTP,
        *,
        phone_number_id: str,
        graph_version: str = GRAPH_VERSION,
        pair_interval: float = 0.0,
    ) -> None:
        super().__init__(http)
        self.phone_number_id = phone_number_id
        self.graph_version = graph_version
        self.pair_interval = pair_interval

    async def _respect_pair_rate(self, recipient: str) -> None:
        """Space two sends to the same person by `pair_interval` (Meta: ~1 per 6 s, 131056).

        Shared by every client of this business number in the process, like the RateLimit.
        """
        if self.pair_interval <= 0:
            return
        policy = self._http.policy
        key = (self.phone_number_id, recipient)
        with _pair_lock:
            now = policy.clock()
            due = max(now, _next_send_at.get(key, now))
            if due - now > policy.total_timeout:
                # a queue of sends to one person: the task retries later rather than sleeping
                raise RateLimitedError(
                    VENDOR,
                    f"the pair rate to this recipient allows the next message in {due - now:.0f}s",
                    retry_after=due - now,
                    method="POST",
                    path=SEND_PATH,
                    code=PAIR_RATE_LIMITED,
                )
            _next_send_at[key] = due + self.pair_interval
        if due > now:
            await policy.sleep(due - now)

    async def get_phone_number(self) -> PhoneNumber:
        """The business number's node: display number, verified name, quality rating."""
        return await self._get(
            "/{version}/{phone_number_id}",
            PhoneNumber.model_validate,
            path_params={"version": self.graph_version, "phone_number_id": self.phone_number_id},
            params={"fields": "id,display_phone_number,verified_name,quality_rating"},
        )

    async def check_access(self) -> str:
        """A cheap read proving the token works (`leadflow blocks check`): the number's node."""
        number = await self.get_phone_number()
        return f"number {number.id} ({number.verified_name or 'unverified name'})"

    async def _send(self, message: dict[str, Any]) -> SendResult:
        await self._respect_pair_rate(message["to"])
        # a 2xx without a wamid is an UnknownOutcomeError: the message may well have gone out
        return await self._create(  # no idempotency key: at most once
            SEND_PATH,
            SendResult.from_payload,
            {"messaging_product": "whatsapp", "recipient_type": "individual", **message},
            path_params={"version": self.graph_version, "phone_number_id": self.phone_number_id},
        )

    async def send_text(self, to: str, body: str, *, preview_url: bool = False) -> SendResult:
        """A free-form text (only inside the 24 h window, else PermanentError code 131047)."""
        if not body:
            raise ValueError("a text message needs a body")
        return await self._send(
            {
                "to": _recipient(to),
                "type": "text",
                "text": {"body": body, "preview_url": preview_url},
            }
        )

    async def send_template(
        self,
        to: str,
        name: str,
        *,
        language: str = "pt_BR",
        components: list[TemplateComponent] | None = None,
    ) -> SendResult:
        """An approved template, e.g. `pix_cobranca` with the PIX copy-and-paste code."""
        template: dict[str, Any] = {
            "name": name,
            "language": {"policy": "deterministic", "code": language},
        }
        if components:
            template["components"] = [
                component.model_dump(mode="json", exclude_none=True) for component in components
            ]
        return await self._send({"to": _recipient(to), "type": "template", "template": template})


# ------------------------------------------------------------------------------------- Block


class WhatsAppCredentials(GraphCredentials):
    """WhatsApp Cloud API access for one business phone number, and its webhook secrets.

    `access_token` is a system-user token with whatsapp_business_messaging; `app_secret` checks
    the `X-Hub-Signature-256` of status webhooks and `verify_token` answers Meta's handshake.

    Example:
        ```python
        from blocks import WhatsAppCredentials

        whatsapp = await WhatsAppCredentials.load("default")
        async with whatsapp.get_client() as client:
            sent = await client.send_template("5511999998888", "boas_vindas")
        ```
    """

    _block_type_name: ClassVar[str] = "WhatsApp Credentials"
    _block_type_slug: ClassVar[str] = "leadflow-whatsapp-credentials"
    _description: ClassVar[str] = (
        "WhatsApp Cloud API system-user token and phone number id (text and template sends), "
        "with the app secret and verify token of the status webhook."
    )
    _logo_url = HttpUrl("https://static.whatsapp.net/rsrc.php/v3/yP/r/rYZqPCBaG70.png")
    _documentation_url = HttpUrl(
        "https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages"
    )
    vendor: ClassVar[str] = VENDOR

    access_token: SecretStr = Field(description="System-user access token.")
    phone_number_id: str = Field(description="The business phone number's id (not the number).")
    business_account_id: str | None = Field(
        default=None, description="WhatsApp Business Account id."
    )
    messages_per_second: int = Field(
        default=80, ge=1, description="Throughput of the number (80 by default, up to 1000)."
    )
    pair_interval_seconds: float = Field(
        default=6.0,
        ge=0,
        description="Least time between two messages to the same person (Meta's pair rate).",
    )

    @field_validator("phone_number_id")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError("phone_number_id is Meta's numeric id of the number")
        return value

    def _account_secrets(self) -> tuple[str | None, ...]:
        return (self.access_token.get_secret_value(), self.phone_number_id)

    def _published_rate_limit(self) -> RateLimit:
        return RateLimit(self.messages_per_second, per=1.0, burst=self.messages_per_second)

    def get_client(self, **options: Unpack[ClientOptions]) -> WhatsAppClient:
        """A client sending from this number, under the number's shared throughput limit.

        Throughput is counted per business number, not per route: a throttled send pauses the
        number (`rate_limit_scope="vendor"`); the pair rate is per recipient (`pair_interval`).
        """
        http = self.graph_http(
            options,
            self.access_token,
            rate_limited_codes=WHATSAPP_RATE_LIMIT_CODES,
            auth_codes=WHATSAPP_AUTH_CODES,
        )
        return WhatsAppClient(
            http,
            phone_number_id=self.phone_number_id,
            graph_version=self.graph_version,
            pair_interval=self.pair_interval_seconds,
        )
