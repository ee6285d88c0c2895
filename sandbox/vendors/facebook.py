"""Facebook Graph (Lead Ads) emulator: where a lead enters leadflow's journey.

A page with a lead form; simulated people fill the form (faker pt_BR, with a configurable share
of bad answers — malformed e-mail, landline instead of a mobile, a missing field — because
leadflow's data-quality gate must see them); each new lead fires the `leadgen` page webhook
signed with `X-Hub-Signature-256`, and leadflow reads it back with the Graph API:

    GET /{version}/{page_id}/leadgen_forms           the page's forms
    GET /{version}/{form_id}/leads                   cursor paging + `filtering` on time_created
    GET /{version}/{node_id}                         one lead (`field_data`), form or page
    POST /{version}/{page_id}/subscribed_apps        subscribe the app to `leadgen`

(the Graph writes `{form-id}`; fault rules name these routes with underscores, e.g.
"GET /{version}/{form_id}/leads"). The access token comes as `access_token` or a Bearer header;
a bad or missing one is Graph's 400 OAuthException code 190. Errors use Graph's
`{"error": {message, type, code, error_subcode, fbtrace_id}}` envelope.

The admin API (mounted at /__sandbox__/facebook) submits N leads and performs Meta's GET
`hub.*` verification handshake against a receiver before making it the webhook target.
The Graph pieces WhatsApp shares with this module (error envelope, token check, signature,
handshake) live here too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
import unicodedata
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

import httpx
from faker import Faker
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import AnyHttpUrl, Field
from typing_extensions import TypedDict

from sandbox.core import Sandbox, VendorEmulator
from sandbox.vendor_api import AdminBody, VendorError

VENDOR = "facebook"
GRAPH_VERSION = "v23.0"

DEFAULT_CREDENTIALS: dict[str, str] = {
    "page_id": "104857600000001",
    "form_id": "771200000000001",
    "page_access_token": "EAAsandboxPageAccessToken0leadflow0000000000000000",
    "app_secret": "5b2c7f0e9d1a4c3b8e6f7a0d1c2b3e4f",
    "verify_token": "leadflow-sandbox-verify-token",
}

LEAD_FIELDS: frozenset[str] = frozenset(
    {
        "ad_id",
        "ad_name",
        "adset_id",
        "adset_name",
        "campaign_id",
        "campaign_name",
        "created_time",
        "custom_disclaimer_responses",
        "field_data",
        "form_id",
        "home_listing",
        "id",
        "is_organic",
        "partner_name",
        "platform",
        "post",
        "post_submission_check_result",
        "retailer_item_id",
        "vehicle",
    }
)
DEFAULT_LEAD_FIELDS = ("id", "created_time", "field_data")
FORM_FIELDS: frozenset[str] = frozenset(
    {"id", "name", "status", "locale", "questions", "leads_count", "created_time", "page_id"}
)
DEFAULT_FORM_FIELDS = ("id", "name", "status", "locale")
BadKind = Literal["malformed_email", "landline", "missing_field"]
BAD_KINDS: tuple[BadKind, ...] = ("malformed_email", "landline", "missing_field")
DDDS = ("11", "21", "31", "41", "47", "51", "61", "71", "81", "85", "92")


# -- Graph pieces shared with WhatsApp --------------------------------------------------------


class GraphError(VendorError):
    """A Graph API error, answered as `{"error": {...}}` with Graph's HTTP status."""

    def __init__(
        self,
        message: str,
        code: int,
        *,
        status: int = 400,
        type_: str = "OAuthException",
        subcode: int | None = None,
        error_data: dict[str, Any] | None = None,
        is_transient: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code
        self.type = type_
        self.subcode = subcode
        self.error_data = error_data
        self.is_transient = is_transient

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.error_data is not None:
            error["error_data"] = self.error_data
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}


def invalid_token_error() -> GraphError:
    return GraphError("Invalid OAuth access token - Cannot parse access token", 190)


def graph_token(request: Request) -> str | None:
    """The access token as Graph reads it: `access_token` parameter or `Authorization: Bearer`."""
    token = request.query_params.get("access_token")
    if token:
        return token
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


class TraceIds:
    """fbtrace_id values (11 url-safe characters) drawn from the sandbox's seeded random."""

    ALPHABET = string.ascii_letters + string.digits + "_-"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def next(self) -> str:
        with self.sandbox.state.lock:
            return "".join(self.sandbox.random.choice(self.ALPHABET) for _ in range(11))


def graph_route_class(
    authenticate: Callable[[Request], None], trace_ids: TraceIds
) -> type[APIRoute]:
    """Routes that check the token first and answer every GraphError in Graph's envelope.

    FastAPI has no router-level exception handlers, so the translation wraps each handler;
    this also keeps FastAPI's own `{"detail": ...}` 422 from reaching a client.
    """

    class GraphRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def graph_handler(request: Request) -> Response:
                try:
                    authenticate(request)
                    return await handler(request)
                except GraphError as error:
                    return JSONResponse(
                        status_code=error.status,
                        content=error.body(trace_ids.next()),
                        headers=_oauth_challenge(error) | error.headers
                        if error.code == 190
                        else error.headers,
                    )

            return graph_handler

    return GraphRoute


def _oauth_challenge(error: GraphError) -> dict[str, str]:
    """Graph's `WWW-Authenticate` on a token error: realm, RFC 6750 error code, message."""
    message = error.message.replace('"', "'")
    return {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'}


def graph_fault_renderer(trace_ids: TraceIds) -> Callable[[int, dict[str, str]], Response]:
    """Injected 5xx/429 as Graph shapes them: JSON errors from Graph, text from its edge."""

    def render(status: int, headers: dict[str, str]) -> Response:
        if status == 429:
            error = GraphError(
                "(#4) Application request limit reached", 4, status=429, is_transient=True
            )
        elif status in (500, 503):
            message = (
                "An unknown error has occurred."
                if status == 500
                else "(#2) Service temporarily unavailable"
            )
            error = GraphError(message, 1 if status == 500 else 2, status=status, is_transient=True)
        else:
            return PlainTextResponse(f"{status} Bad Gateway", status_code=status, headers=headers)
        return JSONResponse(
            status_code=status, content=error.body(trace_ids.next()), headers=headers
        )

    return render


def graph_unknown_route(trace_ids: TraceIds, method: str, path: str, status: int) -> Response:
    """What Graph answers for a path it has no route for, or a method a node does not support.

    Graph knows no 404/405: an unknown edge is `400 OAuthException 2500 "Unknown path
    components: /<rest>"`; a method the node does not take is `400 GraphMethodException 100/33
    "Unsupported <method> request..."`. `path` is the path below the vendor prefix.
    """
    segments = [segment for segment in path.split("/") if segment]
    if segments and re.fullmatch(r"v\d+\.\d+", segments[0]):
        segments = segments[1:]
    node = segments[0] if segments else ""
    if status == 405 or len(segments) < 2:
        error = GraphError(
            f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation. "
            "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
            100,
            type_="GraphMethodException",
            subcode=33,
        )
    else:
        error = GraphError(f"Unknown path components: /{'/'.join(segments[1:])}", 2500)
    return JSONResponse(status_code=error.status, content=error.body(trace_ids.next()))


def render_unknown_route(sandbox: Sandbox, method: str, path: str, status: int) -> Response:
    """The app's answer for an unrouted request under /facebook (see sandbox.app)."""
    return graph_unknown_route(TraceIds(sandbox), method, path, status)


def hub_signature_headers(app_secret: str, body: bytes) -> dict[str, str]:
    """Meta's signature headers over the raw body: X-Hub-Signature-256 and the legacy sha1."""
    key = app_secret.encode()
    sha256 = hmac.new(key, body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(key, body, hashlib.sha1).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "facebookexternalua",
        "X-Hub-Signature-256": f"sha256={sha256}",
        "X-Hub-Signature": f"sha1={sha1}",
    }


def meta_json(payload: Any) -> bytes:
    """A webhook body serialised as Meta does: compact, non-ASCII escaped (`\\u00e9`)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def send_meta_webhook(emulator: VendorEmulator, payload: Any) -> None:
    """Post `payload` to the vendor's webhook target (if one is set) as Meta does: compact
    JSON signed with the app secret."""
    target = emulator.sandbox.webhook_targets.get(emulator.vendor)
    if not target:
        return
    body = meta_json(payload)
    headers = hub_signature_headers(emulator.credentials["app_secret"], body)
    emulator.sandbox.webhooks.deliver(
        vendor=emulator.vendor, url=target, body=body, headers=headers
    )


class SubscribeBody(AdminBody):
    """Admin: verify a receiver with Meta's handshake, then make it the webhook target."""

    callback_url: AnyHttpUrl
    verify_token: str | None = None


def verify_callback(url: str, verify_token: str, challenge: str, timeout: float = 10.0) -> None:
    """Meta's GET `hub.*` handshake: the receiver must echo `hub.challenge` with a 200.

    Raises HTTPException(400) with Meta's wording when it does not, as the App Dashboard
    refuses the callback URL.
    """
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
    try:
        response = httpx.get(url, params=params, timeout=timeout)
    except httpx.HTTPError as error:
        raise HTTPException(
            400, f"The URL couldn't be validated. Callback verification failed: {error}"
        ) from None
    if response.status_code != 200 or response.text != challenge:
        raise HTTPException(
            400,
            "The URL couldn't be validated. Response does not match challenge, "
            f"expected {challenge!r} value, status {response.status_code}",
        )


# -- Lead Ads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FacebookLimits:
    """Graph calls allowed per token per rolling hour (Graph's own limit is per app/page)."""

    calls_per_hour: int = 1_000_000


class LeadSubmission(AdminBody):
    """Admin: N people fill the form; `bad_share` of them answer badly."""

    count: int = Field(1, ge=1, le=10_000)
    bad_share: float = Field(0.1, ge=0, le=1)
    bad_kinds: list[BadKind] = Field(default_factory=lambda: list(BAD_KINDS), min_length=1)
    form_id: str | None = None
    created_time: int | None = Field(None, ge=0, le=2**33, description="unix seconds; default: now")
    webhook: bool = True


class Page(TypedDict):
    """A Facebook page, and the webhook fields it installed the app for (subscribed_apps)."""

    id: str
    name: str
    subscribed: list[str]


class Question(TypedDict):
    key: str
    label: str
    type: str
    id: str


class LeadForm(TypedDict):
    """A lead form as Graph shows it (`leads_count` is added when it is read)."""

    id: str
    page_id: str
    name: str
    status: str
    locale: str
    created_time: str
    questions: list[Question]


class Answer(TypedDict):
    """One `field_data` entry: the question's key and what the person typed."""

    name: str
    values: list[str]


class Lead(TypedDict):
    """A submitted lead: Graph's fields (`created_time` kept as unix seconds) plus two of the
    sandbox's own, never shown by Graph: `seq` (its paging cursor) and `quality` ("good" or
    the kind of bad answer, for tests and the demo)."""

    id: str
    seq: int
    created_time: int
    form_id: str
    page_id: str
    ad_id: str
    ad_name: str
    adset_id: str
    adset_name: str
    campaign_id: str
    campaign_name: str
    is_organic: bool
    platform: str
    field_data: list[Answer]
    quality: str


@dataclass
class FacebookState:
    """The page, its lead forms and the leads people submitted.

    `form_leads` lists each form's lead ids in submission order (what `/{form-id}/leads` pages
    through without scanning every lead).
    """

    pages: dict[str, Page]
    forms: dict[str, LeadForm]
    form_leads: dict[str, list[str]]
    leads: dict[str, Lead] = field(default_factory=dict)


class FacebookEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS):
    """Pages, forms and leads in `sandbox.state.bucket("facebook")`, plus the lead generator."""

    def __init__(self, sandbox: Sandbox, limits: FacebookLimits | None = None) -> None:
        super().__init__(sandbox)
        self.limits = limits or FacebookLimits()
        self.trace_ids = TraceIds(sandbox)
        self.faker = Faker("pt_BR")
        self.faker.seed_instance(sandbox.seed)
        self._faker_lock = threading.Lock()
        self._calls: dict[str, list[float]] = {}
        self._calls_lock = threading.Lock()

    @property
    def bucket(self) -> FacebookState:
        """The vendor's state, laid out on first use (and after a reset) with the page and its
        lead form named by the credentials in force then."""
        return self.state.bucket(VENDOR, self._layout)

    def _layout(self) -> FacebookState:
        credentials = self.credentials
        page_id, form_id = credentials["page_id"], credentials["form_id"]
        return FacebookState(
            pages={page_id: Page(id=page_id, name="Agência Exemplo", subscribed=[])},
            forms={form_id: _default_form(form_id, page_id)},
            form_leads={form_id: []},
        )

    def lead_ids(self) -> list[str]:
        """Every lead submitted so far, oldest first."""
        with self.state.lock:
            return list(self.bucket.leads)

    # -- auth and limits ------------------------------------------------------------------
    def authenticate(self, request: Request) -> None:
        token = graph_token(request)
        if token is None or not secrets.compare_digest(
            token, self.credentials["page_access_token"]
        ):
            raise invalid_token_error()
        usage = self._count_call(token)
        if usage > 100:
            raise GraphError(
                "(#4) Application request limit reached",
                4,
                is_transient=True,
                headers={"X-App-Usage": self._usage_header(usage)},
            )
        request.state.app_usage = self._usage_header(usage)

    def _count_call(self, token: str) -> int:
        now = time.monotonic()
        with self._calls_lock:
            calls = [t for t in self._calls.get(token, []) if now - t < 3600]
            calls.append(now)
            self._calls[token] = calls
            return (len(calls) * 100) // max(self.limits.calls_per_hour, 1)

    @staticmethod
    def _usage_header(percent: int) -> str:
        return json.dumps({"call_count": percent, "total_cputime": 0, "total_time": 0})

    # -- reads ----------------------------------------------------------------------------
    def forms_of_page(self, page_id: str) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            bucket = self.bucket
            if page_id not in bucket.pages:
                raise _unknown_node(page_id)
            forms = [f for f in bucket.forms.values() if f["page_id"] == page_id]
            return [self._form_view(form) for form in forms]

    def _form_view(self, form: LeadForm) -> dict[str, Any]:
        """The form as Graph shows it: with how many leads it holds."""
        return dict(form, leads_count=len(self.bucket.form_leads[form["id"]]))

    def leads_of_form(self, form_id: str, since: int | None, until: int | None) -> list[Lead]:
        """The form's leads, newest first, inside the time filter."""
        with self.sandbox.state.lock:
            bucket = self.bucket
            if form_id not in bucket.forms:
                raise _unknown_node(form_id)
            leads = [bucket.leads[lead_id] for lead_id in bucket.form_leads[form_id]]
        leads = [
            lead
            for lead in leads
            if (since is None or lead["created_time"] > since)
            and (until is None or lead["created_time"] < until)
        ]
        return sorted(leads, key=lambda lead: (lead["created_time"], lead["seq"]), reverse=True)

    def node(self, node_id: str) -> tuple[str, Mapping[str, Any]]:
        """("lead" | "form" | "page", the stored object) for a Graph id."""
        with self.sandbox.state.lock:
            bucket = self.bucket
            if node_id in bucket.leads:
                return "lead", bucket.leads[node_id]
            if node_id in bucket.forms:
                return "form", self._form_view(bucket.forms[node_id])
            if node_id in bucket.pages:
                return "page", bucket.pages[node_id]
        raise _unknown_node(node_id)

    def page_subscribed(self, page_id: str, field: str) -> bool:
        """Whether the page installed the app for `field` (subscribed_apps)."""
        with self.sandbox.state.lock:
            page = self.bucket.pages.get(page_id)
            return page is not None and field in page["subscribed"]

    def subscribe_app(self, page_id: str, fields: list[str]) -> None:
        with self.sandbox.state.lock:
            page = self.bucket.pages.get(page_id)
            if page is None:
                raise _unknown_node(page_id)
            page["subscribed"] = sorted(set(page["subscribed"]) | set(fields))

    # -- simulated people filling the form ------------------------------------------------
    def submit_leads(self, submission: LeadSubmission) -> list[dict[str, Any]]:
        """Store `count` new leads and fire one `leadgen` webhook per lead; returns a summary."""
        form_id = submission.form_id or self.credentials["form_id"]
        with self.sandbox.state.lock:
            form = self.bucket.forms.get(form_id)
            if form is None:
                raise HTTPException(404, f"no lead form {form_id!r}")
            page_id = form["page_id"]
        created: list[dict[str, Any]] = []
        for _ in range(submission.count):
            with self.sandbox.state.lock:
                bad = self.sandbox.random.random() < submission.bad_share
                kind: BadKind | None = (
                    self.sandbox.random.choice(submission.bad_kinds) if bad else None
                )
                seq = self.sandbox.state.next_id(VENDOR, "lead")
                ad_seq = self.sandbox.random.randrange(1, 4)
            field_data = self._answers(kind)
            lead_id = str(880_000_000_000_000 + seq)
            created_time = submission.created_time or int(time.time())
            lead = Lead(
                id=lead_id,
                seq=seq,
                created_time=created_time,
                form_id=form_id,
                page_id=page_id,
                ad_id=str(238_000_000_000_000 + ad_seq),
                ad_name=f"Anúncio {ad_seq} — Sites profissionais",
                adset_id=str(238_100_000_000_000 + ad_seq),
                adset_name="Brasil 25-55",
                campaign_id="238200000000001",
                campaign_name="Leads — Sites para pequenas empresas",
                is_organic=False,
                platform="fb",
                field_data=field_data,
                quality=kind or "good",
            )
            self.store_lead(lead)
            if submission.webhook:
                self.fire_leadgen(lead)
            created.append(
                {"id": lead_id, "created_time": created_time, "quality": lead["quality"]}
            )
        return created

    def store_lead(self, lead: Lead) -> None:
        """Keep a submitted lead under its form and count it."""
        with self.sandbox.state.lock:
            bucket = self.bucket
            bucket.leads[lead["id"]] = lead
            bucket.form_leads[lead["form_id"]].append(lead["id"])
            self.sandbox.state.created(VENDOR, "lead")

    def _answers(self, kind: BadKind | None) -> list[Answer]:
        with self._faker_lock:
            name = self.faker.name()
            domain = self.faker.free_email_domain()
            ddd = self.faker.random_element(DDDS)
            subscriber = self.faker.numerify("####-####")
            style = self.faker.random_int(0, 2)
            malformed = self.faker.random_int(0, 3)
            drop = self.faker.random_element(("full_name", "contacts"))
        # Two simulated people never share an address (the gate would rightly call them one).
        local = f"{_email_local_part(name)}{self.sandbox.state.next_id(VENDOR, 'person')}"
        email = f"{local}@{domain}"
        mobile_digits = f"9{subscriber.replace('-', '')}"
        phone = (
            f"+55 {ddd} 9{subscriber}",
            f"({ddd}) 9{subscriber}",
            f"+55{ddd}{mobile_digits}",
        )[style]
        if kind == "malformed_email":
            email = (
                f"{local}{domain}",  # no @
                f"{local}@{domain.split('.')[0]}",  # no top-level domain
                f"{local} @{domain}",  # a space
                f"{local}@@{domain}",
            )[malformed]
        answers = {"full_name": name, "email": email, "phone_number": phone}
        if kind == "landline":
            # A landline and no e-mail: nobody can reach this person (WhatsApp needs a mobile).
            first = str(2 + int(subscriber[0]) % 4)  # landlines start with 2-5
            answers["phone_number"] = f"+55 {ddd} {first}{subscriber[1:]}"
            del answers["email"]
        if kind == "missing_field":
            # No name, or no way to reach the person: what a lead needs at intake is missing.
            for field_name in ("email", "phone_number") if drop == "contacts" else (drop,):
                del answers[field_name]
        return [Answer(name=key, values=[value]) for key, value in answers.items()]

    def fire_leadgen(self, lead: Lead) -> None:
        """The page webhook Meta sends for a new lead (no answers: the receiver reads the lead).

        Only to a page that installed the app for `leadgen`
        (`POST /{page-id}/subscribed_apps?subscribed_fields=leadgen`), as Meta does: an app
        callback URL alone receives nothing for a page that never subscribed.
        """
        if not self.page_subscribed(lead["page_id"], "leadgen"):
            return
        payload = {
            "object": "page",
            "entry": [
                {
                    "id": lead["page_id"],
                    "time": int(time.time()),
                    "changes": [
                        {
                            "field": "leadgen",
                            "value": {
                                "ad_id": lead["ad_id"],
                                "form_id": lead["form_id"],
                                "leadgen_id": lead["id"],
                                "created_time": lead["created_time"],
                                "page_id": lead["page_id"],
                                "adgroup_id": lead["ad_id"],
                            },
                        }
                    ],
                }
            ],
        }
        send_meta_webhook(self, payload)


def _default_form(form_id: str, page_id: str) -> LeadForm:
    return LeadForm(
        id=form_id,
        page_id=page_id,
        name="Orçamento de site profissional",
        status="ACTIVE",
        locale="pt_BR",
        created_time="2026-01-05T12:00:00+0000",
        questions=[
            Question(key="full_name", label="Nome completo", type="FULL_NAME", id="1"),
            Question(key="email", label="E-mail", type="EMAIL", id="2"),
            Question(key="phone_number", label="Telefone", type="PHONE", id="3"),
        ],
    )


def _email_local_part(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    parts = [p.lower() for p in ascii_name.replace(".", " ").split() if p.isalpha()]
    return ".".join(parts[-2:]) if len(parts) >= 2 else (parts[0] if parts else "contato")


def _unknown_node(node_id: str) -> GraphError:
    return GraphError(
        f"Unsupported get request. Object with ID '{node_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the Graph "
        "API documentation at https://developers.facebook.com/docs/graph-api",
        100,
        type_="GraphMethodException",
        subcode=33,
    )


def graph_time(unix_seconds: int) -> str:
    """Graph's datetime format: 2015-11-12T15:27:06+0000."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _fields(raw: str | None, allowed: frozenset[str], default: tuple[str, ...], node: str) -> list:
    if not raw:
        return list(default)
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for name in fields:
        if name not in allowed:
            raise GraphError(
                f"(#100) Tried accessing nonexisting field ({name}) on node type ({node})", 100
            )
    return fields


def _lead_view(lead: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for name in fields:
        if name == "created_time":
            view[name] = graph_time(lead["created_time"])
        elif name in lead:
            view[name] = lead[name]
    return view


def _time_filter(raw: str | None) -> tuple[int | None, int | None]:
    """Graph's `filtering=[{"field":"time_created","operator":"GREATER_THAN","value":N}]`."""
    if raw is None:
        return None, None
    try:
        rules = json.loads(raw)
    except (ValueError, RecursionError):
        raise GraphError("(#100) param filtering must be a JSON array", 100) from None
    if not isinstance(rules, list):
        raise GraphError("(#100) param filtering must be an array.", 100)
    since: int | None = None
    until: int | None = None
    for rule in rules:
        if not isinstance(rule, dict) or not {"field", "operator", "value"} <= set(rule):
            raise GraphError("(#100) param filtering[0] must have field, operator and value", 100)
        if rule["field"] != "time_created":
            raise GraphError(f"(#100) Filtering field {rule['field']} is invalid", 100)
        try:
            value = int(rule["value"])
        except (TypeError, ValueError):
            raise GraphError("(#100) Filtering value must be a unix timestamp", 100) from None
        if rule["operator"] == "GREATER_THAN":
            since = value
        elif rule["operator"] == "LESS_THAN":
            until = value
        else:
            raise GraphError(f"(#100) Filtering operator {rule['operator']} is invalid", 100)
    return since, until


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"lead:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, seq = raw.partition(":")
        if kind != "lead":
            raise ValueError(kind)
        return int(seq)
    except (ValueError, UnicodeDecodeError):
        raise GraphError("(#100) The cursor is invalid", 100) from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return 25
    try:
        limit = int(raw)
    except ValueError:
        raise GraphError("(#100) param limit must be an integer", 100) from None
    if limit < 1:
        raise GraphError("(#100) param limit must be a positive integer", 100)
    return min(limit, 100)


def build_router(sandbox: Sandbox, limits: FacebookLimits | None = None) -> APIRouter:
    """Graph's Lead Ads paths, mounted by the app at /facebook."""
    emulator = FacebookEmulator(sandbox, limits)
    router = emulator.router(
        graph_route_class(emulator.authenticate, emulator.trace_ids),
        graph_fault_renderer(emulator.trace_ids),
    )

    def answer(request: Request, content: Any) -> JSONResponse:
        headers = {"X-App-Usage": getattr(request.state, "app_usage", "{}")}
        return JSONResponse(content=content, headers=headers)

    @router.get("/{version}/{page_id}/leadgen_forms")
    async def leadgen_forms(version: str, page_id: str, request: Request) -> Response:
        fields = _fields(
            request.query_params.get("fields"), FORM_FIELDS, DEFAULT_FORM_FIELDS, "LeadgenForm"
        )
        forms = emulator.forms_of_page(page_id)
        data = [{name: form[name] for name in fields if name in form} for form in forms]
        cursors = (
            {"before": _encode_cursor(0), "after": _encode_cursor(len(forms))} if forms else {}
        )
        body: dict[str, Any] = {"data": data}
        if data:
            body["paging"] = {"cursors": cursors}
        return answer(request, body)

    @router.get("/{version}/{form_id}/leads")
    async def form_leads(version: str, form_id: str, request: Request) -> Response:
        q = request.query_params
        fields = _fields(q.get("fields"), LEAD_FIELDS, DEFAULT_LEAD_FIELDS, "Lead")
        limit = _limit(q.get("limit"))
        since, until = _time_filter(q.get("filtering"))
        leads = emulator.leads_of_form(form_id, since, until)
        positions = {lead["seq"]: index for index, lead in enumerate(leads)}
        start = 0
        if q.get("after"):
            seq = _decode_cursor(q["after"])
            start = positions[seq] + 1 if seq in positions else _after(leads, seq)
        elif q.get("before"):
            seq = _decode_cursor(q["before"])
            end = positions.get(seq, 0)
            start = max(end - limit, 0)
        page = leads[start : start + limit]
        body: dict[str, Any] = {"data": [_lead_view(lead, fields) for lead in page]}
        if page:
            before, after = _encode_cursor(page[0]["seq"]), _encode_cursor(page[-1]["seq"])
            paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
            base = f"{sandbox.base_url(VENDOR)}/{version}/{form_id}/leads"
            params = {k: v for k, v in q.items() if k not in ("after", "before")}
            if start + limit < len(leads):
                paging["next"] = f"{base}?{urlencode({**params, 'after': after})}"
            if start > 0:
                paging["previous"] = f"{base}?{urlencode({**params, 'before': before})}"
            body["paging"] = paging
        return answer(request, body)

    @router.post("/{version}/{page_id}/subscribed_apps")
    async def subscribed_apps(version: str, page_id: str, request: Request) -> Response:
        raw = request.query_params.get("subscribed_fields")
        if raw is None:
            raw = _body_parameter(await request.body(), "subscribed_fields")
        if not raw:
            raise GraphError("(#100) The parameter subscribed_fields is required", 100)
        fields = [f.strip() for f in raw.strip("[]").replace('"', "").split(",") if f.strip()]
        emulator.subscribe_app(page_id, fields)
        return answer(request, {"success": True})

    @router.get("/{version}/{node_id}")
    async def graph_node(version: str, node_id: str, request: Request) -> Response:
        kind, obj = emulator.node(node_id)
        raw_fields = request.query_params.get("fields")
        if kind == "lead":
            fields = _fields(raw_fields, LEAD_FIELDS, DEFAULT_LEAD_FIELDS, "Lead")
            return answer(request, _lead_view(obj, fields))
        if kind == "form":
            fields = _fields(raw_fields, FORM_FIELDS, DEFAULT_FORM_FIELDS, "LeadgenForm")
            return answer(request, {name: obj[name] for name in fields if name in obj})
        return answer(request, {"id": obj["id"], "name": obj["name"]})

    return router


def _body_parameter(body: bytes, name: str) -> str | None:
    """A Graph POST parameter sent in the body, form-encoded or JSON (as the SDKs do).

    Parsed by hand: python-multipart (Starlette's form parser) is not a dependency.
    """
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get(name)
        except (ValueError, AttributeError, RecursionError):
            return None
        if isinstance(value, list):
            return ",".join(str(item) for item in value)
        return value if isinstance(value, str) else None
    values = parse_qs(text).get(name)
    return values[0] if values else None


def _after(leads: list[Lead], seq: int) -> int:
    """Where paging resumes after a cursor whose lead fell out of the filter: the next older."""
    for index, lead in enumerate(leads):
        if lead["seq"] < seq:
            return index
    return len(leads)


def build_admin_router(sandbox: Sandbox) -> APIRouter:
    """Admin actions: people fill the form; a receiver is verified and made the webhook target."""
    router = APIRouter()

    @router.post("/leads")
    def submit_leads(body: LeadSubmission) -> dict[str, Any]:
        """N people fill the lead form now; each lead fires a `leadgen` webhook."""
        return {"leads": FacebookEmulator.of(sandbox).submit_leads(body)}

    add_subscription_route(router, sandbox, VENDOR)
    return router


def add_subscription_route(router: APIRouter, sandbox: Sandbox, vendor: str) -> None:
    """Admin `POST /subscription` for a Meta vendor (Facebook, WhatsApp): the callback URL
    becomes its webhook target as Meta makes it one, only after the receiver passes the
    `hub.*` handshake with the vendor's verify token (or the one given)."""

    @router.post("/subscription")
    def subscribe(body: SubscribeBody) -> dict[str, Any]:
        emulator: VendorEmulator = sandbox.emulators[vendor]
        verify_token = body.verify_token or emulator.credentials["verify_token"]
        with sandbox.state.lock:
            challenge = str(sandbox.random.randrange(10**9, 10**10))
        verify_callback(str(body.callback_url), verify_token, challenge)
        sandbox.webhook_targets[vendor] = str(body.callback_url)
        return {"success": True, "callback_url": str(body.callback_url)}
