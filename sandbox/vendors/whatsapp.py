"""WhatsApp Cloud API emulator: how leadflow sends the PIX code and the welcome message.

`POST /{version}/{phone_number_id}/messages` sends a text or a template message and answers
with a `wamid`; what happens next arrives as status webhooks (`sent`, `delivered`, `read`, or
`failed` with `errors[]`) signed with `X-Hub-Signature-256`, exactly as Meta sends them. The rules
that make a real integration fail are enforced:

- the 24-hour customer-service window: free-form text to a number that has not written in the
  last 24 hours is refused with 131047 (only templates may open a conversation);
- templates must exist in the requested language (132001) with the right number of body
  parameters (132000); the list is configurable through the admin API;
- throughput per phone number (130429) and the per-recipient pair rate (131056), both
  configurable and off-by-default-high so tests and benchmarks are not throttled unless asked;
- a landline or a number without WhatsApp is accepted, then fails with 131026 in a webhook.

The admin API (mounted at /__sandbox__/whatsapp) simulates an inbound message (which opens the
number's window and fires the inbound webhook), replaces the template list, and verifies a
receiver with Meta's `hub.*` handshake before making it the webhook target.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from typing_extensions import TypedDict

from sandbox.core import Sandbox, VendorEmulator
from sandbox.vendor_api import AdminBody
from sandbox.vendors.facebook import (
    GraphError,
    TraceIds,
    add_subscription_route,
    graph_fault_renderer,
    graph_route_class,
    graph_token,
    graph_unknown_route,
    invalid_token_error,
    send_meta_webhook,
)

VENDOR = "whatsapp"
WINDOW_SECONDS = 24 * 3600
ERROR_CODES_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

DEFAULT_CREDENTIALS: dict[str, str] = {
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "display_phone_number": "5511940000000",
    "access_token": "EAAsandboxWhatsAppSystemUserToken0leadflow00000000",
    "app_secret": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
    "verify_token": "leadflow-sandbox-verify-token",
}

#: The Graph API versions the contract names (business-messaging-api_v23.0.yaml); any other
#: `/vNN.N/` prefix is refused as Graph refuses a path it cannot route.
GRAPH_VERSIONS: frozenset[str] = frozenset({"v23.0"})


class Template(TypedDict):
    """An approved message template: its name and language, and how many body parameters."""

    name: str
    language: str
    category: str
    body_parameters: int


DEFAULT_TEMPLATES: list[Template] = [
    {"name": "hello_world", "language": "en_US", "category": "utility", "body_parameters": 0},
    {"name": "pix_cobranca", "language": "pt_BR", "category": "utility", "body_parameters": 2},
    {"name": "boas_vindas", "language": "pt_BR", "category": "utility", "body_parameters": 1},
]


@dataclass(frozen=True)
class WhatsAppLimits:
    """Throughput per phone number and the pair rate; 0 disables the pair rate."""

    messages_per_second: int = 100_000
    pair_interval_seconds: float = 0.0
    read_probability: float = 0.7


# -- the request body, as the contract's `Message` schema has it -------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextObject(_Body):
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = False


class Language(_Body):
    code: str = Field(min_length=2)
    # The spec's LanguageObject lists `policy` as required, yet Meta's own examples (the
    # contract README's template example among them) omit it and the Cloud API accepts that:
    # absent means the only policy there is. Present, it must be that one.
    policy: Literal["deterministic"] = "deterministic"


#: Parameter types per component, as the v23.0 spec lists them (HeaderComponent,
#: BodyComponent, ButtonParameterObject). Each parameter carries the property named by its type.
PARAMETER_TYPES: dict[str, frozenset[str]] = {
    "header": frozenset({"text", "image", "video", "document"}),
    "body": frozenset({"text", "currency", "date_time"}),
    "button": frozenset({"payload", "text"}),
}
#: TemplateComponent.sub_type's enum; `copy_code` and the others Meta documents elsewhere are not
#: in the spec the project ships, so the sandbox refuses them as the contract does.
BUTTON_SUB_TYPES = ("quick_reply", "url", "catalog")


class Parameter(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str


class Component(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["header", "body", "button"]
    sub_type: Literal["quick_reply", "url", "catalog"] | None = None
    # A string in the spec ("Position index of the button (0-9)"); its `pattern` is garbled
    # (`^[2-6, 11-14]$` refuses the spec's own example "0"), so the description rules.
    index: str | None = Field(None, pattern=r"^[0-9]$")
    parameters: list[Parameter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _as_the_spec_says(self) -> Component:
        if self.type == "button":
            if self.sub_type is None or self.index is None:
                raise ValueError("a button component needs sub_type and index")
            if not self.parameters:
                raise ValueError("a button component needs at least one parameter")
        elif self.sub_type is not None or self.index is not None:
            raise ValueError(f"sub_type and index are for buttons, not a {self.type} component")
        allowed = PARAMETER_TYPES[self.type]
        for parameter in self.parameters:
            if parameter.type not in allowed:
                raise ValueError(
                    f"parameter type '{parameter.type}' is not allowed in a {self.type} "
                    f"component (one of {', '.join(sorted(allowed))})"
                )
            if (parameter.model_extra or {}).get(parameter.type) is None:
                raise ValueError(f"a '{parameter.type}' parameter needs its '{parameter.type}'")
        return self


class TemplateObject(_Body):
    name: str = Field(min_length=1)
    language: Language
    components: list[Component] = Field(default_factory=list)


class Context(_Body):
    message_id: str


class MessageBody(_Body):
    messaging_product: Literal["whatsapp"]
    # required by the spec's BaseMessageProperties, omitted by Meta's own send examples
    recipient_type: Literal["individual", "group"] = "individual"
    to: str = Field(min_length=1)
    type: Literal["text", "template"]
    text: TextObject | None = None
    template: TemplateObject | None = None
    context: Context | None = None
    biz_opaque_callback_data: str | None = Field(None, max_length=512)


class InboundMessage(AdminBody):
    """Admin: a WhatsApp user writes to the business (opens the 24-hour window)."""

    from_: str = Field(alias="from", min_length=8)
    text: str = "Olá!"
    name: str = "Cliente"
    timestamp: int | None = Field(None, ge=0, le=2**33)


class TemplateDefinition(AdminBody):
    name: str = Field(min_length=1)
    language: str = "pt_BR"
    category: Literal["utility", "marketing", "authentication"] = "utility"
    body_parameters: int = Field(0, ge=0, le=100)


def _invalid_parameter(details: str) -> GraphError:
    return GraphError(
        "(#100) Invalid parameter",
        100,
        error_data={"messaging_product": "whatsapp", "details": details},
    )


def _require_version(version: str, rest: str) -> None:
    if version not in GRAPH_VERSIONS:
        raise GraphError(f"Unknown path components: /{version}{rest}", 2500)


def _validation_details(error: ValidationError) -> str:
    first = error.errors()[0]
    where = "".join(
        f"['{part}']" if isinstance(part, str) else f"[{part}]" for part in first["loc"][1:]
    )
    head = str(first["loc"][0]) if first["loc"] else "body"
    return f"Param {head}{where}: {first['msg']}"


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def is_brazilian_landline(wa_id: str) -> bool:
    """+55, a 2-digit area code, then 8 digits starting 2-5: a fixed line without WhatsApp."""
    return wa_id.startswith("55") and len(wa_id) == 12 and wa_id[4] in "2345"


@dataclass
class SentMessage:
    """A message the business sent, with the last status its webhooks announced."""

    id: str
    to: str
    wa_id: str
    type: str
    template: str | None
    category: str
    sent_at: int
    status: str
    biz_opaque_callback_data: str | None


@dataclass
class WhatsAppState:
    """The business number's state: what it sent, who wrote in when, its templates and limits.

    `windows` holds each number's last inbound message (unix seconds), which opens its 24-hour
    window; `last_sent_to` the last send to each number (for the pair rate).
    """

    limits: WhatsAppLimits
    templates: list[Template] = field(
        default_factory=lambda: [Template(**t) for t in DEFAULT_TEMPLATES]
    )
    messages: dict[str, SentMessage] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    last_sent_to: dict[str, float] = field(default_factory=dict)


class WhatsAppEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS):
    """Messages, windows and templates in `sandbox.state.bucket("whatsapp")`."""

    def __init__(self, sandbox: Sandbox, limits: WhatsAppLimits | None = None) -> None:
        super().__init__(sandbox)
        self.default_limits = limits or WhatsAppLimits()
        self.trace_ids = TraceIds(sandbox)
        self._rate_lock = threading.Lock()
        self._recent: deque[float] = deque()

    @property
    def bucket(self) -> WhatsAppState:
        """This number's state, laid out anew (default limits and templates) after a reset."""
        return self.state.bucket(VENDOR, lambda: WhatsAppState(limits=self.default_limits))

    @property
    def limits(self) -> WhatsAppLimits:
        """The limits in force; the admin API replaces them."""
        return self.bucket.limits

    def authenticate(self, request: Request) -> None:
        token = graph_token(request)
        if token is None or not secrets.compare_digest(token, self.credentials["access_token"]):
            raise invalid_token_error()

    def phone_number(self, phone_number_id: str, fields: str | None) -> dict[str, Any]:
        """The business number's node (`PhoneNumberInfo` in the v23.0 spec), the cheap read a
        client uses to prove its token works; `fields` selects keys as Graph does."""
        self._require_own_number(phone_number_id, "get")
        display = self.credentials["display_phone_number"]
        node = {
            "id": phone_number_id,
            "display_phone_number": f"+{display[:2]} {display[2:4]} {display[4:9]}-{display[9:]}",
            "verified_name": "leadflow sandbox",
            "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
            "name_status": "APPROVED",
        }
        wanted = [name.strip() for name in (fields or "").split(",") if name.strip()]
        if not wanted:
            wanted = ["id", "display_phone_number", "verified_name", "quality_rating"]
        return {name: node[name] for name in wanted if name in node} | {"id": phone_number_id}

    def _require_own_number(self, phone_number_id: str, method: str) -> None:
        if phone_number_id != self.credentials["phone_number_id"]:
            raise GraphError(
                f"Unsupported {method} request. Object with ID '{phone_number_id}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation.",
                100,
                type_="GraphMethodException",
                subcode=33,
            )

    # -- sending --------------------------------------------------------------------------
    def send(self, phone_number_id: str, payload: Any) -> dict[str, Any]:
        """Validate and accept one message; the status webhooks follow from the sender thread."""
        self._require_own_number(phone_number_id, "post")
        if not isinstance(payload, dict):
            raise _invalid_parameter("The request body must be a JSON object")
        try:
            body = MessageBody.model_validate(payload)
        except ValidationError as error:
            raise _invalid_parameter(_validation_details(error)) from None
        wa_id = digits(body.to)
        if not 8 <= len(wa_id) <= 15:
            raise _invalid_parameter(f"Param to: '{body.to}' is not a valid phone number")
        limits = self.limits
        now = time.time()
        self._admit_throughput(limits, now)
        category = "service"
        template_name: str | None = None
        if body.type == "text":
            if body.text is None:
                raise _invalid_parameter("Param text is required for type text")
            self._require_open_window(wa_id, now)
        else:
            if body.template is None:
                raise _invalid_parameter("Param template is required for type template")
            category = self._check_template(body.template)
            template_name = body.template.name
        bucket = self.bucket
        with self.sandbox.state.lock:
            last = bucket.last_sent_to.get(wa_id)
            if (
                limits.pair_interval_seconds
                and last is not None
                and now - last < limits.pair_interval_seconds
            ):
                raise GraphError(
                    "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                    131056,
                    error_data={
                        "messaging_product": "whatsapp",
                        "details": "Message failed to send because there were too many messages "
                        "sent from this phone number to the same phone number in a short period "
                        "of time.",
                    },
                    is_transient=True,
                )
            bucket.last_sent_to[wa_id] = now
            wamid = self._wamid(wa_id)
            sent = SentMessage(
                id=wamid,
                to=body.to,
                wa_id=wa_id,
                type=body.type,
                template=template_name,
                category=category,
                sent_at=int(now),
                status="accepted",
                biz_opaque_callback_data=body.biz_opaque_callback_data,
            )
            bucket.messages[wamid] = sent
            self.sandbox.state.created(VENDOR, "message")
            read = self.sandbox.random.random() < limits.read_probability
        self._fire_statuses(sent, read)
        message: dict[str, Any] = {"id": wamid}
        if body.type == "template":
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body.to, "wa_id": wa_id}],
            "messages": [message],
        }

    def _admit_throughput(self, limits: WhatsAppLimits, now: float) -> None:
        with self._rate_lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= limits.messages_per_second:
                raise GraphError(
                    "(#130429) Rate limit hit",
                    130429,
                    error_data={
                        "messaging_product": "whatsapp",
                        "details": "Message failed to send because there were too many messages "
                        "sent from this phone number in a short period of time",
                    },
                    subcode=2494055,
                    is_transient=True,
                )
            self._recent.append(now)

    def _require_open_window(self, wa_id: str, now: float) -> None:
        with self.sandbox.state.lock:
            last_inbound = self.bucket.windows.get(wa_id)
        if last_inbound is None or now - last_inbound > WINDOW_SECONDS:
            raise GraphError(
                "(#131047) Re-engagement message",
                131047,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": "Message failed to send because more than 24 hours have passed "
                    "since the customer last replied to this number.",
                },
            )

    def _check_template(self, template: TemplateObject) -> str:
        with self.sandbox.state.lock:
            known = [t for t in self.bucket.templates if t["name"] == template.name]
        match = next((t for t in known if t["language"] == template.language.code), None)
        if match is None:
            raise GraphError(
                "(#132001) Template name does not exist in the translation",
                132001,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": f"template name ({template.name}) does not exist in "
                    f"{template.language.code}",
                },
            )
        given = sum(len(c.parameters) for c in template.components if c.type == "body")
        if given != match["body_parameters"]:
            raise GraphError(
                "(#132000) Number of parameters does not match the expected number of params",
                132000,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": f"body: number of localizable_params ({given}) does not match "
                    f"the expected number of params ({match['body_parameters']})",
                },
            )
        return match["category"]

    def _wamid(self, wa_id: str) -> str:
        raw = wa_id.encode() + b"\x15\x02\x00\x11\x18\x12" + self.sandbox.random.randbytes(9)
        return "wamid." + base64.b64encode(b"\x18\x0c" + raw).decode().rstrip("=")

    # -- webhooks -------------------------------------------------------------------------
    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        credentials = self.credentials
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": credentials["waba_id"],
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": credentials["display_phone_number"],
                                    "phone_number_id": credentials["phone_number_id"],
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    def _status(self, sent: SentMessage, status: str, at: int) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": sent.id,
            "status": status,
            "timestamp": str(at),
            "recipient_id": sent.wa_id,
        }
        if status == "failed":
            entry["errors"] = [
                {
                    "code": 131026,
                    "title": "Message undeliverable",
                    "message": "Message undeliverable",
                    "error_data": {
                        "details": "Message Undeliverable: the recipient is not a WhatsApp user"
                    },
                    "href": ERROR_CODES_URL,
                }
            ]
        else:
            entry["conversation"] = {
                "id": sent.id[-32:].replace("=", "").lower(),
                "origin": {"type": sent.category},
            }
            if status == "sent":
                entry["conversation"]["expiration_timestamp"] = str(at + WINDOW_SECONDS)
            entry["pricing"] = {
                "billable": sent.category != "service",
                "pricing_model": "PMP",
                "category": sent.category,
            }
        if sent.biz_opaque_callback_data is not None:
            entry["biz_opaque_callback_data"] = sent.biz_opaque_callback_data
        return entry

    def _fire_statuses(self, sent: SentMessage, read: bool) -> None:
        """sent → delivered (→ read), or failed for a number without WhatsApp, in order."""
        statuses = (
            ["failed"]
            if is_brazilian_landline(sent.wa_id)
            else ["sent", "delivered"] + (["read"] if read else [])
        )
        with self.sandbox.state.lock:
            sent.status = statuses[-1]
        for offset, status in enumerate(statuses):
            entry = self._status(sent, status, sent.sent_at + offset)
            send_meta_webhook(self, self._envelope({"statuses": [entry]}))

    def receive(self, inbound: InboundMessage) -> dict[str, Any]:
        """A user writes in: the window opens and the inbound `messages` webhook fires."""
        wa_id = digits(inbound.from_)
        now = inbound.timestamp or int(time.time())
        with self.sandbox.state.lock:
            self.bucket.windows[wa_id] = now
            message_id = self._wamid(wa_id)
            self.sandbox.state.created(VENDOR, "inbound_message")
        payload = self._envelope(
            {
                "contacts": [{"profile": {"name": inbound.name}, "wa_id": wa_id}],
                "messages": [
                    {
                        "from": wa_id,
                        "id": message_id,
                        "timestamp": str(now),
                        "type": "text",
                        "text": {"body": inbound.text},
                    }
                ],
            }
        )
        send_meta_webhook(self, payload)
        return {"id": message_id, "wa_id": wa_id, "window_open_until": now + WINDOW_SECONDS}


def render_unknown_route(sandbox: Sandbox, method: str, path: str, status: int) -> Response:
    """The app's answer for an unrouted request under /whatsapp: Graph's, as for Facebook."""
    return graph_unknown_route(TraceIds(sandbox), method, path, status)


def build_router(sandbox: Sandbox, limits: WhatsAppLimits | None = None) -> APIRouter:
    """The Cloud API's send path, mounted by the app at /whatsapp."""
    emulator = WhatsAppEmulator(sandbox, limits)
    router = emulator.router(
        graph_route_class(emulator.authenticate, emulator.trace_ids),
        graph_fault_renderer(emulator.trace_ids),
    )

    @router.get("/{version}/{phone_number_id}")
    async def get_phone_number(
        version: str, phone_number_id: str, fields: str | None = None
    ) -> Response:
        _require_version(version, f"/{phone_number_id}")
        return JSONResponse(emulator.phone_number(phone_number_id, fields))

    @router.post("/{version}/{phone_number_id}/messages")
    async def send_message(version: str, phone_number_id: str, request: Request) -> Response:
        _require_version(version, f"/{phone_number_id}/messages")
        try:
            payload = await request.json()
        except (ValueError, RecursionError):  # nested deeper than json can read
            raise _invalid_parameter("The request body is not valid JSON") from None
        return JSONResponse(emulator.send(phone_number_id, payload))

    return router


class LimitsBody(AdminBody):
    messages_per_second: int = Field(100_000, ge=1, le=1_000_000_000)
    pair_interval_seconds: float = Field(0.0, ge=0, le=86_400)
    read_probability: float = Field(0.7, ge=0, le=1)


def build_admin_router(sandbox: Sandbox) -> APIRouter:
    """Admin: inbound messages, templates, limits, and the verified webhook subscription."""
    router = APIRouter()

    @router.post("/inbound")
    def inbound(body: InboundMessage) -> dict[str, Any]:
        return WhatsAppEmulator.of(sandbox).receive(body)

    @router.get("/templates")
    def templates() -> list[Template]:
        with sandbox.state.lock:
            return list(WhatsAppEmulator.of(sandbox).bucket.templates)

    @router.put("/templates")
    def set_templates(body: list[TemplateDefinition]) -> list[Template]:
        with sandbox.state.lock:
            bucket = WhatsAppEmulator.of(sandbox).bucket
            bucket.templates = [
                Template(
                    name=t.name,
                    language=t.language,
                    category=t.category,
                    body_parameters=t.body_parameters,
                )
                for t in body
            ]
            return list(bucket.templates)

    @router.put("/limits")
    def set_limits(body: LimitsBody) -> dict[str, Any]:
        with sandbox.state.lock:
            WhatsAppEmulator.of(sandbox).bucket.limits = WhatsAppLimits(**body.model_dump())
        return body.model_dump()

    add_subscription_route(router, sandbox, VENDOR)
    return router
