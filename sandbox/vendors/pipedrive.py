"""Pipedrive emulator: where a qualified lead becomes a person and a deal that is won or lost.

leadflow's journey reaches Pipedrive right after the data-quality gate: it looks the person up by
e-mail and phone (API v2 search, exact match), creates or updates it, creates the deal carrying
leadflow's lead id in a custom field (a v1 dealField whose key is a 40-hex-char hash), leaves notes
(v1), and waits for a salesperson to win or lose the deal, which Pipedrive announces with a v2
webhook (`{meta, data, previous}`) authenticated by HTTP Basic auth.

This module reproduces Pipedrive's published contract (its OpenAPI v1/v2 files; the parts used
are listed in tests/contracts/pipedrive/SOURCE.md) strictly enough that a client which works here
works against Pipedrive: `x-api-token` or Bearer auth with Pipedrive's 401 body, the
`{success, data, additional_data}` envelope and its error twin, v2 cursor and v1 offset
pagination, custom-field keys and value shapes checked, the per-token burst limit with its
`x-ratelimit-*` headers and the company's daily token budget (each operation's `x-token-cost`),
both answered with 429. It also registers the simulated "salesperson" who wins or loses open
deals. Searches by exact match use an index, so the emulator keeps pace with benchmark volumes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Container, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal, NotRequired, TypeVar, cast

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator
from typing_extensions import TypedDict

from sandbox.core import INTERNAL, Sandbox, VendorEmulator
from sandbox.vendor_api import json_body

VENDOR = "pipedrive"

DEFAULT_CREDENTIALS: dict[str, str] = {
    # Sent by clients as the `x-api-token` header (the legacy `?api_token=` is accepted too).
    "api_token": "sandbox-pipedrive-api-token-0000000000000000",
    # Sent as `Authorization: Bearer ...` (what an OAuth app would hold).
    "oauth_access_token": "sandbox-pipedrive-oauth-access-token",
    # The company the sandbox pretends to be: webhook `meta.host` is `<domain>.pipedrive.com`.
    "company_domain": "leadflow-sandbox",
    "company_id": "13000001",
    "user_id": "21000001",
}

logger = logging.getLogger(__name__)

FIELD_KEY = re.compile(r"^[0-9a-f]{40}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
DEAL_STATUSES = ("open", "won", "lost")
# Only these custom field types are searchable (v2 persons/deals search `fields` description).
SEARCHABLE_FIELD_TYPES = frozenset(
    {"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"}
)
PIPELINE_ID = 1
STAGES: dict[int, str] = {1: "Lead In", 2: "Contact Made", 3: "Proposal Made", 4: "Negotiations"}
# Each operation's `x-token-cost` in Pipedrive's OpenAPI files (v1.yaml, v2.yaml), by route.
TOKEN_COSTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v2/persons"): 10,
    ("POST", "/api/v2/persons"): 5,
    ("GET", "/api/v2/persons/{person_id}"): 1,
    ("PATCH", "/api/v2/persons/{person_id}"): 5,
    ("GET", "/api/v2/persons/search"): 20,
    ("GET", "/api/v2/deals"): 10,
    ("POST", "/api/v2/deals"): 5,
    ("GET", "/api/v2/deals/{deal_id}"): 1,
    ("PATCH", "/api/v2/deals/{deal_id}"): 5,
    ("GET", "/api/v2/deals/search"): 20,
    ("GET", "/api/v2/dealFields"): 10,
    ("GET", "/api/v2/personFields"): 10,
    ("GET", "/api/v1/dealFields"): 20,
    ("POST", "/api/v1/dealFields"): 10,
    ("GET", "/api/v1/personFields"): 20,
    ("POST", "/api/v1/personFields"): 10,
    ("GET", "/api/v1/notes"): 20,
    ("POST", "/api/v1/notes"): 10,
    ("GET", "/api/v1/webhooks"): 10,
    ("POST", "/api/v1/webhooks"): 10,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): 6,
}
LOST_REASONS = ("Preço acima do orçamento", "Sem resposta do cliente", "Escolheu um concorrente")


# --------------------------------------------------------------------------------------------
# Settings, errors, time
# --------------------------------------------------------------------------------------------


@dataclass
class PipedriveLimits:
    """Pipedrive's two limits: the burst per token and the company's daily token budget.

    Burst: requests per token in a rolling window (the Essential api_token plan allows 20 per
    2 s). Daily budget: every call spends its `x-token-cost` (POST /deals 5, a search 20...) from
    the company's budget, reset at midnight UTC. `daily_write_limit` feeds the older
    `x-daily-requests-left` header (POST/PUT/PATCH count). The sandbox defaults far higher than
    any plan so tests and benchmarks are never throttled unless they lower a limit on purpose.
    """

    burst_limit: int = 100_000
    window_seconds: float = 2.0
    daily_write_limit: int = 10_000_000
    daily_token_budget: int = 1_000_000_000


@dataclass
class _Window:
    started: float
    count: int = 0


@dataclass
class _RateLimiter:
    limits: Callable[[], PipedriveLimits]
    windows: dict[str, _Window] = field(default_factory=dict)
    day: date | None = None
    daily_writes: dict[str, int] = field(default_factory=dict)
    tokens_spent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, token: str, is_write: bool, cost: int) -> tuple[str | None, dict[str, str]]:
        """Count one request; (the refusal's error text or None, the headers to send)."""
        now = time.monotonic()
        limits = self.limits()
        today = datetime.now(UTC).date()
        with self.lock:
            if self.day != today:
                self.day, self.daily_writes, self.tokens_spent = today, {}, 0
            window = self.windows.get(token)
            if window is None or now - window.started >= limits.window_seconds:
                window = self.windows[token] = _Window(started=now)
            refusal = None
            retry_after = 0
            if window.count >= limits.burst_limit:
                refusal = "Request over limit"
                retry_after = max(1, round(limits.window_seconds - (now - window.started)))
            elif self.tokens_spent + cost > limits.daily_token_budget:
                refusal = "Daily API token budget exceeded"
                midnight = datetime.combine(today, datetime.min.time(), UTC) + timedelta(days=1)
                retry_after = max(1, int((midnight - datetime.now(UTC)).total_seconds()))
            else:
                window.count += 1
                self.tokens_spent += cost
                if is_write:
                    self.daily_writes[token] = self.daily_writes.get(token, 0) + 1
            headers = {
                "x-ratelimit-limit": str(limits.burst_limit),
                "x-ratelimit-remaining": str(max(0, limits.burst_limit - window.count)),
                "x-ratelimit-reset": str(
                    max(1, round(limits.window_seconds - (now - window.started)))
                ),
                "x-daily-requests-left": str(
                    max(0, limits.daily_write_limit - self.daily_writes.get(token, 0))
                ),
            }
            if refusal is not None:
                headers["retry-after"] = str(retry_after)
            return refusal, headers


class PipedriveError(Exception):
    """A refusal Pipedrive answers with `{success: false, error, error_info, data, ...}`."""

    def __init__(self, status_code: int, error: str, error_info: str = ERROR_INFO) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.error = error
        self.error_info = error_info

    def response(self) -> JSONResponse:
        return JSONResponse(
            status_code=self.status_code,
            content={
                "success": False,
                "error": self.error,
                "error_info": self.error_info,
                "data": None,
                "additional_data": None,
            },
        )


class WebhookValidationError(Exception):
    """POST /v1/webhooks answers bad input with its own `{status, success, errors}` body."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(str(errors))
        self.errors = errors


def _now() -> str:
    """Pipedrive v2 timestamps: UTC, second precision, `Z` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time() -> str:
    """Pipedrive v1 timestamps (notes, fields): `YYYY-MM-DD HH:MM:SS` in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{location}: {item['msg']}")
    return "Validation failed: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Request bodies (what Pipedrive accepts; extra keys are refused like the v2 API does)
# --------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ContactEntry(_Body):
    """One e-mail or phone of a person (v2 uses the plural `emails`/`phones` arrays)."""

    value: str = Field(min_length=1)
    primary: StrictBool = False
    label: str = "work"


class PersonBody(_Body):
    name: str | None = Field(default=None, min_length=1)
    owner_id: int | None = None
    org_id: int | None = None
    emails: list[ContactEntry] | None = None
    phones: list[ContactEntry] | None = None
    visible_to: int | None = None
    label_ids: list[int] | None = None
    job_title: str | None = None
    birthday: str | None = None
    notes: str | None = None
    marketing_status: Literal["no_consent", "unsubscribed", "subscribed", "archived"] | None = None
    custom_fields: dict[str, Any] | None = None


class DealBody(_Body):
    title: str | None = Field(default=None, min_length=1)
    owner_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    pipeline_id: int | None = None
    stage_id: int | None = None
    value: float | None = None
    currency: str | None = None
    status: Literal["open", "won", "lost"] | None = None
    probability: float | None = None
    lost_reason: str | None = None
    visible_to: int | None = None
    expected_close_date: str | None = None
    label_ids: list[int] | None = None
    custom_fields: dict[str, Any] | None = None

    @field_validator("value", "probability", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise ValueError("must be a number")
        return float(value) if value is not None else None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and not CURRENCY.match(value):
            raise ValueError("must be an ISO 4217 currency code such as BRL")
        return value

    @field_validator("expected_close_date")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError("must be a date in the format YYYY-MM-DD") from None
            if len(value) != 10:
                raise ValueError("must be a date in the format YYYY-MM-DD")
        return value


FieldEntity = Literal["deal", "person"]


class FieldBody(_Body):
    name: str = Field(min_length=1, max_length=255)
    field_type: Literal[
        "address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone",
        "set", "text", "time", "timerange", "user", "varchar", "varchar_auto", "visible_to",
    ]  # fmt: skip
    options: list[dict[str, Any]] | None = None
    add_visible_flag: StrictBool = True


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # the spec says additionalProperties

    content: str = Field(min_length=1)
    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    lead_id: str | None = None
    project_id: int | None = None
    user_id: int | None = None
    pinned_to_deal_flag: StrictBool | int | None = None
    pinned_to_person_flag: StrictBool | int | None = None


class WebhookBody(_Body):
    subscription_url: str
    event_action: Literal["create", "change", "delete", "*"]
    event_object: Literal[
        "activity", "deal", "lead", "note", "organization", "person", "pipeline", "product",
        "stage", "user", "*",
    ]  # fmt: skip
    name: str = Field(min_length=1, max_length=255)
    user_id: int | None = None
    http_auth_user: str | None = None
    http_auth_password: str | None = None
    version: Literal["1.0", "2.0"] = "2.0"


class _ExactIndex:
    """Exact-match keys -> ids, so an exact search (leadflow's look-up before every create) does
    not scan every person or deal: the emulator must stay fast with the benchmarks' volumes.

    Entries are only ever added. A search re-checks each candidate against the stored record,
    so a stale entry (an e-mail that changed, a state reset) costs a check, never a wrong hit.
    """

    INDEXED: ClassVar[dict[str, frozenset[str]]] = {
        "person": frozenset({"name", "email", "phone", "custom_fields"}),
        "deal": frozenset({"title", "custom_fields"}),
    }

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str], set[int]] = {}

    @staticmethod
    def _forms(field_name: str, value: str) -> set[str]:
        forms = {value.casefold()}
        digits = _digits(value)
        if field_name == "phone" and len(digits) >= 6:
            forms.add("#" + digits)
        return forms

    def add(self, entity: str, terms: Iterable[tuple[str, str]], object_id: int) -> None:
        for field_name, value in terms:
            for form in self._forms(field_name, value):
                self._keys.setdefault((entity, field_name, form), set()).add(object_id)

    def candidates(self, entity: str, fields: set[str], term: str) -> set[int] | None:
        """Ids that may match `term` exactly in `fields`; None when a field is not indexed."""
        if not fields <= self.INDEXED[entity]:
            return None
        found: set[int] = set()
        for field_name in fields:
            for form in self._forms(field_name, term):
                found |= self._keys.get((entity, field_name, form), set())
        return found


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The company's records, as Pipedrive's API shows them
# --------------------------------------------------------------------------------------------


class Contact(TypedDict):
    """One e-mail or phone of a person."""

    value: str
    primary: bool
    label: str


class PersonRecord(TypedDict):
    """A person (v2 shape). `notes` and `marketing_status` appear once a PATCH sets them."""

    id: int
    name: str
    first_name: str
    last_name: str
    owner_id: int
    org_id: int | None
    add_time: str
    update_time: str
    emails: list[Contact]
    phones: list[Contact]
    is_deleted: bool
    visible_to: int
    label_ids: list[int]
    picture_id: int | None
    job_title: str | None
    birthday: str | None
    custom_fields: dict[str, Any]  # field key -> its JSON value, checked by its field's type
    notes: NotRequired[str | None]
    marketing_status: NotRequired[str | None]


class DealRecord(TypedDict):
    """A deal (v2 shape)."""

    id: int
    title: str
    owner_id: int
    person_id: int | None
    org_id: int | None
    pipeline_id: int
    stage_id: int
    value: float
    currency: str
    add_time: str
    update_time: str
    stage_change_time: str
    is_deleted: bool
    is_archived: bool
    status: str
    probability: float | None
    lost_reason: str | None
    visible_to: int
    close_time: str | None
    won_time: str | None
    lost_time: str | None
    expected_close_date: str | None
    label_ids: list[int]
    origin: str
    origin_id: str | None
    channel: int | None
    channel_id: str | None
    source_lead_id: str | None
    arr: float | None
    mrr: float | None
    acv: float | None
    custom_fields: dict[str, Any]  # field key -> its JSON value, checked by its field's type


class FieldOption(TypedDict):
    id: int
    label: str


class FieldRecord(TypedDict):
    """A deal or person field (v1 shape); `is_custom` is the sandbox's own, never shown."""

    id: int
    key: str
    name: str
    order_nr: int
    field_type: str
    add_time: str
    update_time: str
    last_updated_by_user_id: int | None
    created_by_user_id: int | None
    active_flag: bool
    edit_flag: bool
    index_visible_flag: bool
    details_visible_flag: bool
    add_visible_flag: bool
    important_flag: bool
    bulk_edit_allowed: bool
    searchable_flag: bool
    filtering_allowed: bool
    sortable_flag: bool
    mandatory_flag: bool
    options: list[FieldOption] | None
    is_custom: bool


class NoteUser(TypedDict):
    email: str
    icon_url: str
    is_you: bool
    name: str


class NoteRecord(TypedDict):
    """A note (v1 shape), attached to a deal, person, organization, lead or project."""

    id: int
    active_flag: bool
    add_time: str
    update_time: str
    content: str
    deal_id: int | None
    person_id: int | None
    org_id: int | None
    lead_id: str | None
    project_id: int | None
    user_id: int
    last_update_user_id: int
    deal: dict[str, str] | None
    person: dict[str, str] | None
    organization: dict[str, str] | None
    pinned_to_deal_flag: bool
    pinned_to_person_flag: bool
    pinned_to_organization_flag: bool
    pinned_to_project_flag: bool
    user: NoteUser


class WebhookRecord(TypedDict):
    """A webhook subscription (v1 shape); `is_active` is 1 or 0 as Pipedrive writes it."""

    id: int
    company_id: int
    owner_id: int
    user_id: int
    event_action: str
    event_object: str
    subscription_url: str
    version: str
    is_active: int
    add_time: str
    remove_time: str | None
    type: str
    http_auth_user: str | None
    http_auth_password: str | None
    remove_reason: str | None
    last_delivery_time: str | None
    last_http_status: int | None
    admin_id: int
    name: str


#: The fields every Pipedrive company has before anyone adds one (id, key, name, field_type),
#: as `GET /v1/dealFields` and `/v1/personFields` list them; types stay within the v1 spec's
#: `field_type` enum. Their ids sit below the first custom field's (12500).
BUILT_IN_FIELDS: dict[str, tuple[tuple[int, str, str, str], ...]] = {
    "deal": (
        (12451, "title", "Title", "varchar"),
        (12452, "creator_user_id", "Creator", "user"),
        (12453, "user_id", "Owner", "user"),
        (12454, "value", "Value", "monetary"),
        (12455, "currency", "Currency", "varchar"),
        (12456, "org_id", "Organization", "org"),
        (12457, "person_id", "Contact person", "people"),
        (12458, "probability", "Probability", "double"),
        (12459, "expected_close_date", "Expected close date", "date"),
        (12460, "add_time", "Deal created", "date"),
        (12461, "update_time", "Update time", "date"),
        (12462, "won_time", "Won time", "date"),
        (12463, "lost_time", "Lost time", "date"),
        (12464, "close_time", "Deal closed on", "date"),
        (12465, "lost_reason", "Lost reason", "varchar_auto"),
        (12466, "visible_to", "Visible to", "visible_to"),
    ),
    "person": (
        (9051, "name", "Name", "varchar"),
        (9052, "owner_id", "Owner", "user"),
        (9053, "org_id", "Organization", "org"),
        (9054, "email", "Email", "varchar"),
        (9055, "phone", "Phone", "phone"),
        (9056, "first_name", "First name", "varchar"),
        (9057, "last_name", "Last name", "varchar"),
        (9058, "add_time", "Person created", "date"),
        (9059, "update_time", "Update time", "date"),
        (9060, "visible_to", "Visible to", "visible_to"),
    ),
}


def _built_in_fields(entity: FieldEntity) -> dict[int, FieldRecord]:
    """The entity's built-in fields by id, in Pipedrive's order."""
    return {
        field_id: FieldRecord(
            id=field_id,
            key=key,
            name=name,
            order_nr=order,
            field_type=field_type,
            add_time="2020-01-01 00:00:00",
            update_time="2020-01-01 00:00:00",
            last_updated_by_user_id=None,
            created_by_user_id=None,
            active_flag=True,
            edit_flag=False,
            index_visible_flag=True,
            details_visible_flag=True,
            add_visible_flag=True,
            important_flag=False,
            bulk_edit_allowed=True,
            searchable_flag=False,
            filtering_allowed=True,
            sortable_flag=True,
            mandatory_flag=key in ("title", "name"),
            options=None,
            is_custom=False,
        )
        for order, (field_id, key, name, field_type) in enumerate(BUILT_IN_FIELDS[entity], start=1)
    }


@dataclass
class PipedriveState:
    """One company's persons, deals, notes, fields and webhook subscriptions, and its limits.

    The fields start with the built-in ones (real Pipedrive always lists them). The exact-match
    index lives here too, so a reset forgets it and a restored state can still be searched.
    """

    limits: PipedriveLimits
    persons: dict[int, PersonRecord] = field(default_factory=dict)
    deals: dict[int, DealRecord] = field(default_factory=dict)
    notes: dict[int, NoteRecord] = field(default_factory=dict)
    webhooks: dict[int, WebhookRecord] = field(default_factory=dict)
    deal_fields: dict[int, FieldRecord] = field(default_factory=lambda: _built_in_fields("deal"))
    person_fields: dict[int, FieldRecord] = field(
        default_factory=lambda: _built_in_fields("person")
    )
    index: _ExactIndex = field(default_factory=_ExactIndex, metadata=INTERNAL)

    def fields(self, entity: FieldEntity) -> dict[int, FieldRecord]:
        return self.deal_fields if entity == "deal" else self.person_fields


Record = TypeVar("Record", PersonRecord, DealRecord)


#: What a search reads of a record: (search field, text) pairs, given its custom values.
Texts = Callable[[Record, list[str]], list[tuple[str, str]]]


@dataclass(frozen=True)
class _Change:
    """A change Pipedrive announces to its webhooks: `action` (create, change, delete) on an
    `entity`, its `data` now, the `previous` values of what changed, and what made it
    (`source`: "api", or "app" for the salesperson)."""

    action: str
    entity: str
    data: dict[str, Any]
    previous: dict[str, Any] | None
    source: str


@dataclass(frozen=True)
class SearchQuery:
    """A v2 search: the term, the fields it is looked for in, and whether only exactly."""

    term: str
    fields: set[str]
    exact: bool

    @classmethod
    def of(cls, request: Request, searchable: tuple[str, ...]) -> SearchQuery:
        """The query of a `GET .../search` request; 400 for a bad term, field list or flag."""
        q = request.query_params
        exact = _bool_param(q.get("exact_match"), "exact_match")
        return cls(
            _search_term(q.get("term"), exact), _search_fields(q.get("fields"), searchable), exact
        )


class PipedriveEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS):
    """Persons, deals, fields, notes and webhook subscriptions of one Pipedrive company."""

    def __init__(self, sandbox: Sandbox, limits: PipedriveLimits | None = None) -> None:
        super().__init__(sandbox)
        self.default_limits = limits or PipedriveLimits()
        self.limiter = _RateLimiter(lambda: self.limits)

    # -- configuration -------------------------------------------------------------------
    @property
    def company_id(self) -> int:
        return int(self.credentials["company_id"])

    @property
    def user_id(self) -> int:
        return int(self.credentials["user_id"])

    @property
    def bucket(self) -> PipedriveState:
        """The company's state, laid out anew (with the default limits) after a reset."""
        return self.state.bucket(
            VENDOR, lambda: PipedriveState(limits=replace(self.default_limits))
        )

    @property
    def limits(self) -> PipedriveLimits:
        """The limits in force; changing `bucket.limits` applies at once."""
        return self.bucket.limits

    def _field_bucket(self, entity: FieldEntity) -> dict[int, FieldRecord]:
        return self.bucket.fields(entity)

    def authenticate(self, request: Request) -> str | None:
        """The token the request is authenticated with, or None (Pipedrive answers 401)."""
        credentials = self.credentials
        token = request.headers.get("x-api-token") or request.query_params.get("api_token")
        if token is not None:
            return token if token == credentials["api_token"] else None
        authorization = request.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value == credentials["oauth_access_token"]:
            return value
        return None

    # -- custom fields -------------------------------------------------------------------
    def _new_field_key(self) -> str:
        """A 40-hex-char key, reproducible from the sandbox seed like Pipedrive's random hash."""
        return hashlib.sha1(self.sandbox.random.randbytes(20), usedforsecurity=False).hexdigest()

    def _check_custom_fields(
        self, values: dict[str, Any] | None, entity: FieldEntity
    ) -> dict[str, Any]:
        if not values:
            return {}
        known = {f["key"]: f for f in self._field_bucket(entity).values()}
        for key, value in values.items():
            if not FIELD_KEY.match(key):
                raise PipedriveError(
                    400, f"Custom field key '{key}' is not a valid 40-character field hash"
                )
            if key not in known:
                raise PipedriveError(400, f"Custom field '{key}' does not exist")
            if isinstance(value, list) and not value:
                raise PipedriveError(400, f"Custom field '{key}': use null to clear a set, not []")
            field_type = known[key]["field_type"]
            if (
                field_type in {"varchar", "varchar_auto", "text", "phone"}
                and value is not None
                and not isinstance(value, str)
            ):
                raise PipedriveError(400, f"Custom field '{key}' ({field_type}) must be a string")
            if field_type == "varchar" and isinstance(value, str) and len(value) > 255:
                raise PipedriveError(400, f"Custom field '{key}' is longer than 255 characters")
            if value is not None:
                _check_typed_value(key, field_type, value, known[key]["options"] or [])
        return dict(values)

    def _custom_field_defaults(self, entity: FieldEntity) -> dict[str, Any]:
        fields = self._field_bucket(entity).values()
        return {f["key"]: None for f in fields if f["is_custom"]}

    def create_field(self, entity: FieldEntity, body: FieldBody) -> dict[str, Any]:
        """A custom deal or person field (v1 dealFields / personFields) with a 40-hex key."""
        with self.sandbox.state.lock:
            fields = self._field_bucket(entity)
            field_id = self.sandbox.state.next_id(VENDOR, f"{entity}_field", start=12500)
            record = FieldRecord(
                id=field_id,
                key=self._new_field_key(),
                name=body.name,
                order_nr=len(fields) + 1,
                field_type=body.field_type,
                add_time=_v1_time(),
                update_time=_v1_time(),
                last_updated_by_user_id=self.user_id,
                created_by_user_id=self.user_id,
                active_flag=True,
                edit_flag=True,
                index_visible_flag=True,
                details_visible_flag=True,
                add_visible_flag=body.add_visible_flag,
                important_flag=False,
                bulk_edit_allowed=True,
                searchable_flag=body.field_type in SEARCHABLE_FIELD_TYPES,
                filtering_allowed=True,
                sortable_flag=True,
                mandatory_flag=False,
                options=[
                    FieldOption(id=index, label=str(option.get("label", "")))
                    for index, option in enumerate(body.options or [], start=1)
                ]
                or None,
                is_custom=True,
            )
            fields[field_id] = record
            self.sandbox.state.created(VENDOR, f"{entity}_field")
            return self._field_view(record)

    def list_fields(self, entity: FieldEntity) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            fields = sorted(self._field_bucket(entity).items())
            return [self._field_view(f) for _, f in fields]

    def list_fields_v2(self, entity: FieldEntity) -> list[tuple[int, dict[str, Any]]]:
        """(id, field) pairs in the v2 shape: `field_code` is the v1 `key`."""
        with self.sandbox.state.lock:
            fields = sorted(self._field_bucket(entity).items())
            return [
                (
                    field_id,
                    {
                        "field_name": f["name"],
                        "field_code": f["key"],
                        "description": None,
                        "field_type": f["field_type"],
                        "options": [dict(o) for o in f["options"]] if f["options"] else None,
                        "subfields": None,
                        "is_custom_field": f["is_custom"],
                        "is_optional_response_field": False,
                    },
                )
                for field_id, f in fields
            ]

    @staticmethod
    def _field_view(record: FieldRecord) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "is_custom"}

    # -- persons -------------------------------------------------------------------------
    def create_person(self, body: PersonBody) -> dict[str, Any]:
        if body.name is None:
            raise PipedriveError(400, "Validation failed: name: Field required")
        custom = self._check_custom_fields(body.custom_fields, "person")
        first, _, last = body.name.strip().partition(" ")
        with self.sandbox.state.lock:
            person_id = self.sandbox.state.next_id(VENDOR, "person")
            now = _now()
            person = PersonRecord(
                id=person_id,
                name=body.name,
                first_name=first,
                last_name=last,
                owner_id=body.owner_id or self.user_id,
                org_id=body.org_id,
                add_time=now,
                update_time=now,
                emails=_contacts(body.emails),
                phones=_contacts(body.phones),
                is_deleted=False,
                visible_to=body.visible_to or 3,
                label_ids=body.label_ids or [],
                picture_id=None,
                job_title=body.job_title,
                birthday=body.birthday,
                custom_fields={**self._custom_field_defaults("person"), **custom},
            )
            view = self._keep_new("person", self.bucket.persons, person, _person_texts)
        self._notify("create", "person", view, None)
        return view

    def get_person(self, person_id: int) -> dict[str, Any]:
        with self.sandbox.state.lock:
            return _json_copy(_live(self.bucket.persons, person_id, "Person"))

    def update_person(self, person_id: int, body: PersonBody) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if "name" in changes and changes["name"] is None:
            raise PipedriveError(400, "Validation failed: name: must not be null")
        if "custom_fields" in changes:
            changes["custom_fields"] = self._check_custom_fields(changes["custom_fields"], "person")
        with self.sandbox.state.lock:
            person = _live(self.bucket.persons, person_id, "Person")
            previous: dict[str, Any] = {}
            patched = _patchable(person)
            for key, value in changes.items():
                if key in ("emails", "phones"):
                    value = _contacts(getattr(body, key))
                if key == "custom_fields":
                    merged = {**person["custom_fields"], **value}
                    if merged != person["custom_fields"]:
                        previous[key] = person["custom_fields"]
                        person["custom_fields"] = merged
                    continue
                if patched.get(key) != value:
                    previous[key] = patched.get(key)
                    patched[key] = value
                if key == "name" and value:
                    first, _, last = str(value).strip().partition(" ")
                    person["first_name"], person["last_name"] = first, last
            if previous:
                person["update_time"] = _now()
                self._index("person", person, _person_texts)
            view = _json_copy(person)
        if previous:
            self._notify("change", "person", view, previous)
        return view

    def list_persons(self) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return [
                _json_copy(p) for _, p in sorted(self.bucket.persons.items()) if not p["is_deleted"]
            ]

    def search_persons(
        self, query: SearchQuery, organization_id: int | None
    ) -> list[tuple[int, dict[str, Any]]]:
        """(id, item) pairs in id order, as v2 `persons/search` shapes them."""

        def item(person: PersonRecord, custom: list[str]) -> dict[str, Any]:
            notes = person.get("notes")
            return {
                "type": "person",
                "name": person["name"],
                "phones": [p["value"] for p in person["phones"]],
                "emails": [e["value"] for e in person["emails"]],
                "visible_to": person["visible_to"],
                "owner": {"id": person["owner_id"]},
                "organization": None,
                "custom_fields": custom,
                "notes": [notes] if notes else [],
            }

        return self._search(
            "person",
            self.bucket.persons,
            query,
            keep=lambda person: organization_id in (None, person["org_id"]),
            texts=_person_texts,
            item=item,
        )

    def _search(
        self,
        entity: FieldEntity,
        records: dict[int, Record],
        query: SearchQuery,
        keep: Callable[[Record], bool],
        texts: Texts[Record],
        item: Callable[[Record, list[str]], dict[str, Any]],
    ) -> list[tuple[int, dict[str, Any]]]:
        """(id, {result_score, item}) for each live record that `keep` admits and whose texts
        (in the searched `fields`) match the term, in id order. `custom` is the record's
        searchable custom field values."""
        searchable = self._searchable_keys(entity)
        found = []
        with self.sandbox.state.lock:
            for record_id, record in self._search_space(records, entity, query):
                if record["is_deleted"] or not keep(record):
                    continue
                custom = _custom_values(record, searchable)
                candidates = [pair for pair in texts(record, custom) if pair[0] in query.fields]
                score = _best_score(query.term, candidates, query.exact)
                if score is not None:
                    hit = {"id": record_id, **item(record, custom)}
                    found.append((record_id, {"result_score": score, "item": hit}))
        return found

    def _search_space(
        self, records: dict[int, Record], entity: FieldEntity, query: SearchQuery
    ) -> list[tuple[int, Record]]:
        """The records a search must look at, in id order: index candidates when it can."""
        ids = (
            self.bucket.index.candidates(entity, query.fields, query.term) if query.exact else None
        )
        if ids is None:
            return sorted(records.items())
        return [(i, records[i]) for i in sorted(ids) if i in records]

    def _keep_new(
        self, entity: FieldEntity, records: dict[int, Record], record: Record, texts: Texts[Record]
    ) -> dict[str, Any]:
        """Store, index and count a new person or deal (under the lock); its JSON view."""
        records[record["id"]] = record
        self._index(entity, record, texts)
        self.sandbox.state.created(VENDOR, entity)
        return _json_copy(record)

    def _index(self, entity: FieldEntity, record: Record, texts: Texts[Record]) -> None:
        """Index the texts an exact search looks in (every custom value, searchable or not)."""
        self.bucket.index.add(entity, texts(record, _custom_values(record)), record["id"])

    def _searchable_keys(self, entity: FieldEntity) -> set[str]:
        with self.sandbox.state.lock:
            return {
                f["key"]
                for f in self._field_bucket(entity).values()
                if f["is_custom"] and f["field_type"] in SEARCHABLE_FIELD_TYPES
            }

    # -- deals ---------------------------------------------------------------------------
    def create_deal(self, body: DealBody) -> dict[str, Any]:
        if body.title is None:
            raise PipedriveError(400, "Validation failed: title: Field required")
        custom = self._check_custom_fields(body.custom_fields, "deal")
        status = body.status or "open"
        if body.lost_reason is not None and status != "lost":
            raise PipedriveError(400, "lost_reason can only be set when the deal status is lost")
        stage_id = body.stage_id or 1
        if stage_id not in STAGES:
            raise PipedriveError(400, f"Stage {stage_id} not found")
        if body.pipeline_id is not None and body.pipeline_id != PIPELINE_ID:
            raise PipedriveError(400, f"Pipeline {body.pipeline_id} not found")
        with self.sandbox.state.lock:
            if body.person_id is not None and body.person_id not in self.bucket.persons:
                raise PipedriveError(400, f"Person with id {body.person_id} does not exist")
            deal_id = self.sandbox.state.next_id(VENDOR, "deal")
            now = _now()
            deal = DealRecord(
                id=deal_id,
                title=body.title,
                owner_id=body.owner_id or self.user_id,
                person_id=body.person_id,
                org_id=body.org_id,
                pipeline_id=PIPELINE_ID,
                stage_id=stage_id,
                value=body.value if body.value is not None else 0,
                currency=body.currency or "BRL",
                add_time=now,
                update_time=now,
                stage_change_time=now,
                is_deleted=False,
                is_archived=False,
                status="open",
                probability=body.probability,
                lost_reason=None,
                visible_to=body.visible_to or 3,
                close_time=None,
                won_time=None,
                lost_time=None,
                expected_close_date=body.expected_close_date,
                label_ids=body.label_ids or [],
                origin="API",
                origin_id=None,
                channel=None,
                channel_id=None,
                source_lead_id=None,
                arr=None,
                mrr=None,
                acv=None,
                custom_fields={**self._custom_field_defaults("deal"), **custom},
            )
            if status != "open":
                _set_status(deal, status, body.lost_reason, now)
            view = self._keep_new("deal", self.bucket.deals, deal, _deal_texts)
        self._notify("create", "deal", view, None)
        return view

    def get_deal(self, deal_id: int) -> dict[str, Any]:
        with self.sandbox.state.lock:
            return _json_copy(_live(self.bucket.deals, deal_id, "Deal"))

    def update_deal(
        self, deal_id: int, body: DealBody, change_source: str = "api"
    ) -> dict[str, Any]:
        """Apply a PATCH; a status change stamps won/lost/close times like Pipedrive does."""
        changes = body.model_dump(exclude_unset=True)
        for required in ("title", "status"):
            if required in changes and changes[required] is None:
                raise PipedriveError(400, f"Validation failed: {required}: must not be null")
        if "custom_fields" in changes:
            changes["custom_fields"] = self._check_custom_fields(changes["custom_fields"], "deal")
        if "stage_id" in changes and changes["stage_id"] not in STAGES:
            raise PipedriveError(400, f"Stage {changes['stage_id']} not found")
        with self.sandbox.state.lock:
            deal = _live(self.bucket.deals, deal_id, "Deal")
            new_status = changes.get("status", deal["status"])
            if changes.get("lost_reason") is not None and new_status != "lost":
                raise PipedriveError(
                    400, "lost_reason can only be set when the deal status is lost"
                )
            if (
                "person_id" in changes
                and changes["person_id"] is not None
                and changes["person_id"] not in self.bucket.persons
            ):
                raise PipedriveError(400, f"Person with id {changes['person_id']} does not exist")
            patched = _patchable(deal)
            before = dict(patched)
            now = _now()
            for key, value in changes.items():
                if key in ("status", "lost_reason"):
                    continue
                if key == "custom_fields":
                    deal["custom_fields"] = {**deal["custom_fields"], **value}
                else:
                    patched[key] = value
            if new_status != before["status"] or "lost_reason" in changes:
                _set_status(deal, new_status, changes.get("lost_reason"), now)
            if deal["stage_id"] != before["stage_id"]:
                deal["stage_change_time"] = now
            previous = {
                k: before[k] for k in patched if k != "update_time" and patched[k] != before[k]
            }
            if previous:
                previous["update_time"] = before["update_time"]
                deal["update_time"] = now
                self._index("deal", deal, _deal_texts)
            view = _json_copy(deal)
        if previous:
            self._notify("change", "deal", view, previous, change_source=change_source)
        return view

    def list_deals(
        self, person_id: int | None, status: str | None, ids: set[int] | None
    ) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return [
                _json_copy(d)
                for deal_id, d in sorted(self.bucket.deals.items())
                if not d["is_deleted"]
                and not d["is_archived"]
                and (person_id is None or d["person_id"] == person_id)
                and (status is None or d["status"] == status)
                and (ids is None or deal_id in ids)
            ]

    def search_deals(
        self,
        query: SearchQuery,
        person_id: int | None,
        organization_id: int | None,
        status: str | None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """(id, item) pairs in id order, as v2 `deals/search` shapes them."""

        def keep(deal: DealRecord) -> bool:
            return (
                person_id in (None, deal["person_id"])
                and organization_id in (None, deal["org_id"])
                and status in (None, deal["status"])
            )

        def texts(deal: DealRecord, custom: list[str]) -> list[tuple[str, str]]:
            found = _deal_texts(deal, custom)
            if "notes" in query.fields:  # only when asked: it reads every note
                found += [
                    ("notes", n["content"])
                    for n in self.bucket.notes.values()
                    if n["deal_id"] == deal["id"] and n["active_flag"]
                ]
            return found

        def item(deal: DealRecord, custom: list[str]) -> dict[str, Any]:
            person = self.bucket.persons.get(deal["person_id"]) if deal["person_id"] else None
            return {
                "type": "deal",
                "title": deal["title"],
                # an integer in the spec's search item (a number on the deal)
                "value": round(deal["value"]),
                "currency": deal["currency"],
                "status": deal["status"],
                "visible_to": deal["visible_to"],
                "owner": {"id": deal["owner_id"]},
                "stage": {"id": deal["stage_id"], "name": STAGES[deal["stage_id"]]},
                "person": {"id": person["id"], "name": person["name"]} if person else None,
                "organization": None,
                "custom_fields": custom,
                "notes": [],
                "is_archived": deal["is_archived"],
            }

        return self._search("deal", self.bucket.deals, query, keep, texts, item)

    # -- notes ---------------------------------------------------------------------------
    def create_note(self, body: NoteBody) -> dict[str, Any]:
        targets = (body.deal_id, body.person_id, body.org_id, body.lead_id, body.project_id)
        if all(t is None for t in targets):
            raise PipedriveError(
                400, "Note must be attached to a deal, person, organization, lead or project"
            )
        with self.sandbox.state.lock:
            deal = self.bucket.deals.get(body.deal_id) if body.deal_id else None
            person = self.bucket.persons.get(body.person_id) if body.person_id else None
            if body.deal_id is not None and deal is None:
                raise PipedriveError(404, f"Deal with id {body.deal_id} not found")
            if body.person_id is not None and person is None:
                raise PipedriveError(404, f"Person with id {body.person_id} not found")
            note_id = self.sandbox.state.next_id(VENDOR, "note")
            note = NoteRecord(
                id=note_id,
                active_flag=True,
                add_time=_v1_time(),
                update_time=_v1_time(),
                content=body.content,
                deal_id=body.deal_id,
                person_id=body.person_id,
                org_id=body.org_id,
                lead_id=body.lead_id,
                project_id=body.project_id,
                user_id=body.user_id or self.user_id,
                last_update_user_id=body.user_id or self.user_id,
                deal={"title": deal["title"]} if deal else None,
                person={"name": person["name"]} if person else None,
                organization=None,
                pinned_to_deal_flag=bool(body.pinned_to_deal_flag),
                pinned_to_person_flag=bool(body.pinned_to_person_flag),
                pinned_to_organization_flag=False,
                pinned_to_project_flag=False,
                user=NoteUser(
                    email="vendas@leadflow.example",
                    icon_url="",
                    is_you=True,
                    name="Leadflow Sandbox",
                ),
            )
            self.bucket.notes[note_id] = note
            self.sandbox.state.created(VENDOR, "note")
            view = _json_copy(note)
        self._notify("create", "note", view, None)
        return view

    def list_notes(self, deal_id: int | None, person_id: int | None) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return [
                _json_copy(n)
                for _, n in sorted(self.bucket.notes.items())
                if n["active_flag"]
                and (deal_id is None or n["deal_id"] == deal_id)
                and (person_id is None or n["person_id"] == person_id)
            ]

    # -- webhooks ------------------------------------------------------------------------
    def create_webhook(self, body: WebhookBody) -> dict[str, Any]:
        if not re.match(r"^https?://[^\s/]+", body.subscription_url):
            raise WebhookValidationError({"subscription_url": ["invalid or non-reachable URL"]})
        with self.sandbox.state.lock:
            hooks = self.bucket.webhooks
            if sum(1 for h in hooks.values() if h["is_active"]) >= 40:
                raise WebhookValidationError({"limit": ["Webhooks limit (40) reached"]})
            webhook_id = self.sandbox.state.next_id(VENDOR, "webhook")
            hook = WebhookRecord(
                id=webhook_id,
                company_id=self.company_id,
                owner_id=self.user_id,
                user_id=body.user_id or self.user_id,
                event_action=body.event_action,
                event_object=body.event_object,
                subscription_url=body.subscription_url,
                version=body.version,
                is_active=1,
                add_time=_now(),
                remove_time=None,
                type="general",
                http_auth_user=body.http_auth_user,
                http_auth_password=body.http_auth_password,
                remove_reason=None,
                last_delivery_time=None,
                last_http_status=None,
                admin_id=self.user_id,
                name=body.name,
            )
            hooks[webhook_id] = hook
            self.sandbox.state.created(VENDOR, "webhook")
            return dict(hook)

    def list_webhooks(self) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return [dict(h) for _, h in sorted(self.bucket.webhooks.items()) if h["is_active"]]

    def delete_webhook(self, webhook_id: int) -> None:
        with self.sandbox.state.lock:
            hook = self.bucket.webhooks.get(webhook_id)
            if hook is None or not hook["is_active"]:
                raise PipedriveError(404, "Webhook not found")
            hook["is_active"] = 0
            hook["remove_time"] = _now()
            hook["remove_reason"] = "user"

    def _notify(
        self,
        action: str,
        entity: str,
        data: dict[str, Any],
        previous: dict[str, Any] | None,
        change_source: str = "api",
    ) -> None:
        """Send one webhook per matching subscription, as Pipedrive does after a change.

        A subscription made with `version: "2.0"` (the default) gets `{meta, data, previous}`;
        one made with `"1.0"` gets the legacy `{v, matches_filters, meta, current, previous,
        retry, event}`. Each retry of a failed delivery counts itself (`meta.attempt` in v2,
        `retry` in v1). Deliveries are made outside the state lock.
        """
        change = _Change(action, entity, data, previous, change_source)
        deliveries: list[tuple[str, Callable[[int], tuple[bytes, dict[str, str]]]]] = []
        with self.sandbox.state.lock:
            for hook in self.bucket.webhooks.values():
                if not hook["is_active"]:
                    continue
                if hook["event_action"] not in ("*", action):
                    continue
                if hook["event_object"] not in ("*", entity):
                    continue
                headers = {"Content-Type": "application/json", "User-Agent": "Pipedrive Webhooks"}
                if hook["http_auth_user"] is not None:
                    token = f"{hook['http_auth_user']}:{hook['http_auth_password'] or ''}"
                    headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode(
                        "ascii"
                    )
                build = self._v1_payload if hook["version"] == "1.0" else self._v2_payload
                payload = build(hook, change)
                deliveries.append((hook["subscription_url"], _attempts(payload, headers)))
                hook["last_delivery_time"] = _now()
        for url, render in deliveries:
            try:
                body, headers = render(1)
                self.sandbox.webhooks.deliver(
                    vendor=VENDOR, url=url, body=body, headers=headers, redeliver=render
                )
            except Exception:  # a delivery problem must not fail the API call that caused it
                # No URL in the log: a subscription URL may carry credentials.
                logger.warning("pipedrive webhook could not be queued", exc_info=True)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.sandbox.random.getrandbits(128), version=4))

    def _v2_payload(self, hook: WebhookRecord, change: _Change) -> dict[str, Any]:
        return {
            "meta": {
                "action": change.action,
                "entity": change.entity,
                "version": "2.0",
                "company_id": str(self.company_id),
                "user_id": str(self.user_id),
                "id": self._uuid(),
                "entity_id": str(change.data["id"]),
                "webhook_id": str(hook["id"]),
                "webhook_owner_id": str(hook["owner_id"]),
                "permitted_user_ids": [str(self.user_id)],
                "attempt": 1,
                "host": f"{self.credentials['company_domain']}.pipedrive.com",
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "change_source": change.source,
                "is_bulk_edit": False,
                "type": "general",
                "correlation_id": self._uuid(),
            },
            "data": change.data,
            "previous": change.previous,
        }

    def _v1_payload(self, hook: WebhookRecord, change: _Change) -> dict[str, Any]:
        """The legacy v1 body: v1 verbs (`added`, `updated`, `deleted`), `event`, `retry`."""
        verb = {"create": "added", "change": "updated", "delete": "deleted"}.get(
            change.action, change.action
        )
        now = datetime.now(UTC)
        current = None if change.action == "delete" else change.data
        prior = {**change.data, **change.previous} if change.previous is not None else None
        if change.action == "delete":
            prior = change.data
        return {
            "v": 1,
            "matches_filters": {"current": [], "previous": []},
            "meta": {
                "v": 1,
                "action": verb,
                "object": change.entity,
                "id": change.data["id"],
                "company_id": self.company_id,
                "user_id": self.user_id,
                "host": f"{self.credentials['company_domain']}.pipedrive.com",
                "timestamp": int(now.timestamp()),
                "timestamp_micro": int(now.timestamp() * 1_000_000),
                "permitted_user_ids": [self.user_id],
                "trans_pending": False,
                "is_bulk_update": False,
                "pipedrive_service_name": False,
                "change_source": change.source,
                "matches_filters": {"current": [], "previous": []},
                "send_source": "webhooks",
                "webhook_id": str(hook["id"]),
                "webhook_owner_id": hook["owner_id"],
            },
            "current": current,
            "previous": prior,
            "retry": 0,
            "event": f"{verb}.{change.entity}",
        }

    # -- the salesperson -----------------------------------------------------------------
    def open_deal_ids(self) -> list[str]:
        with self.sandbox.state.lock:
            return [
                str(deal_id)
                for deal_id, deal in sorted(self.bucket.deals.items())
                if deal["status"] == "open" and not deal["is_deleted"]
            ]

    def win_deal(self, deal_id: str) -> dict[str, Any]:
        """The salesperson closes the deal as won in Pipedrive's app (`change_source: app`)."""
        self._require_open(deal_id)
        return self.update_deal(int(deal_id), DealBody(status="won"), change_source="app")

    def lose_deal(self, deal_id: str) -> dict[str, Any]:
        """The salesperson marks the deal lost, giving one of the usual reasons."""
        self._require_open(deal_id)
        reason = self.sandbox.random.choice(LOST_REASONS)
        return self.update_deal(
            int(deal_id), DealBody(status="lost", lost_reason=reason), change_source="app"
        )

    def _require_open(self, deal_id: str) -> None:
        deal = self.get_deal(int(deal_id))
        if deal["status"] != "open":
            raise PipedriveError(400, f"Deal {deal_id} is {deal['status']}, not open")


def _check_typed_value(key: str, field_type: str, value: Any, options: list[FieldOption]) -> None:
    """v2 value shapes: enum is one option id, set a list of option ids, double a number."""
    option_ids = {option["id"] for option in options}
    if field_type == "enum" and (isinstance(value, bool) or value not in option_ids):
        raise PipedriveError(400, f"Custom field '{key}' (enum) must be one of its option ids")
    if field_type == "set" and not (
        isinstance(value, list) and all(not isinstance(v, bool) and v in option_ids for v in value)
    ):
        raise PipedriveError(400, f"Custom field '{key}' (set) must be a list of its option ids")
    if field_type == "double" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise PipedriveError(400, f"Custom field '{key}' (double) must be a number")


def _contacts(entries: list[ContactEntry] | None) -> list[Contact]:
    if not entries:
        return []
    items = [Contact(value=e.value, primary=e.primary, label=e.label) for e in entries]
    if not any(item["primary"] for item in items):
        items[0]["primary"] = True
    return items


def _json_copy(record: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy in plain JSON: what an answer or a webhook carries, never the stored record."""
    copied: dict[str, Any] = json.loads(json.dumps(record))
    return copied


def _live(records: dict[int, Record], record_id: int, what: str) -> Record:
    """The person or deal with that id, unless it is unknown or deleted (Pipedrive's 404)."""
    record = records.get(record_id)
    if record is None or record["is_deleted"]:
        raise PipedriveError(404, f"{what} not found")
    return record


def _custom_values(
    record: PersonRecord | DealRecord, keys: Container[str] | None = None
) -> list[str]:
    """The record's custom field values as search sees them (text), optionally only `keys`'."""
    return [
        str(value)
        for key, value in record["custom_fields"].items()
        if value is not None and (keys is None or key in keys)
    ]


def _person_texts(person: PersonRecord, custom: list[str]) -> list[tuple[str, str]]:
    """(search field, text) pairs a person is found by: name, contacts, notes, `custom`."""
    notes = person.get("notes")
    return [
        ("name", person["name"]),
        *(("email", e["value"]) for e in person["emails"]),
        *(("phone", p["value"]) for p in person["phones"]),
        *([("notes", notes)] if notes else []),
        *(("custom_fields", value) for value in custom),
    ]


def _deal_texts(deal: DealRecord, custom: list[str]) -> list[tuple[str, str]]:
    """(search field, text) pairs a deal is found by (its notes are other records)."""
    return [("title", deal["title"]), *(("custom_fields", value) for value in custom)]


def _patchable(record: PersonRecord | DealRecord) -> dict[str, Any]:
    """The record as a plain mapping, for a PATCH whose keys are known only at run time.

    Every key a PATCH may name is a field of its body model (PersonBody, DealBody), which
    pydantic has checked; those models and the records are kept in step by the tests.
    """
    return cast(dict[str, Any], record)


def _set_status(deal: DealRecord, status: str, lost_reason: str | None, now: str) -> None:
    """Stamp a status change: won or lost closes the deal now; reopening clears the stamps."""
    deal["status"] = status
    deal["won_time"] = now if status == "won" else None
    deal["lost_time"] = now if status == "lost" else None
    deal["close_time"] = now if status in ("won", "lost") else None
    deal["lost_reason"] = lost_reason if status == "lost" else None


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _best_score(term: str, candidates: Iterable[tuple[str, str]], exact: bool) -> float | None:
    """Pipedrive's relevance, simplified: 1.0 for a full match, 0.5 for a partial one.

    Matching ignores case. Phones also match on their digits alone, so `+55 11 99999-8888`
    is found by `5511999998888` (Pipedrive normalises phone numbers for search).
    """
    wanted = term.casefold()
    best: float | None = None
    for kind, value in candidates:
        text = value.casefold()
        full = text == wanted or (
            kind == "phone" and len(_digits(term)) >= 6 and _digits(value) == _digits(term)
        )
        if full:
            return 1.0
        partial = wanted in text or (
            kind == "phone" and len(_digits(term)) >= 6 and _digits(term) in _digits(value)
        )
        if not exact and partial:
            best = 0.5
    return best


# --------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------


def _encode_cursor(last_id: int) -> str:
    raw = json.dumps({"field": "id", "id": last_id, "sortDirection": "asc"}).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        return int(data["id"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise PipedriveError(400, "Invalid cursor") from None


def _limit(limit: int | None) -> int:
    if limit is None:
        return 100
    if limit < 1 or limit > 500:
        raise PipedriveError(400, "limit must be between 1 and 500")
    return limit


def _cursor_page(
    rows: list[tuple[int, Any]], limit: int | None, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One v2 page of `rows` (already in id order) after the cursor's id."""
    size = _limit(limit)
    after = _decode_cursor(cursor)
    remaining = [(row_id, row) for row_id, row in rows if row_id > after]
    page = remaining[:size]
    next_cursor = _encode_cursor(page[-1][0]) if len(remaining) > size else None
    return [row for _, row in page], next_cursor


def _offset_page(
    rows: list[Any], start: int, limit: int | None
) -> tuple[list[Any], dict[str, Any]]:
    size = _limit(limit)
    if start < 0:
        raise PipedriveError(400, "start must be a non-negative integer")
    page = rows[start : start + size]
    more = start + size < len(rows)
    return page, {
        "start": start,
        "limit": size,
        "more_items_in_collection": more,
        "next_start": start + size if more else None,
    }


def _bool_param(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise PipedriveError(400, f"{name} must be a boolean")


def _int_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise PipedriveError(400, f"{name} must be an integer") from None


def _search_fields(raw: str | None, allowed: tuple[str, ...]) -> set[str]:
    if raw is None:
        return set(allowed)
    fields = {f.strip() for f in raw.split(",") if f.strip()}
    unknown = fields - set(allowed)
    if unknown or not fields:
        raise PipedriveError(400, f"fields must be a comma-separated list of: {', '.join(allowed)}")
    return fields


def _search_term(term: str | None, exact: bool) -> str:
    if term is None:
        raise PipedriveError(400, "term is required")
    if len(term) < (1 if exact else 2):
        raise PipedriveError(
            400, "term must be at least 2 characters long (1 when exact_match is used)"
        )
    return term


def _ok(data: Any, additional_data: Any = None, status_code: int = 200) -> JSONResponse:
    content: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        content["additional_data"] = additional_data
    return JSONResponse(status_code=status_code, content=content)


# --------------------------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------------------------


def _attempts(
    payload: dict[str, Any], headers: dict[str, str]
) -> Callable[[int], tuple[bytes, dict[str, str]]]:
    """Body and headers for delivery attempt N: v2 counts `meta.attempt` from 1, v1 `retry`
    from 0."""

    def render(attempt: int) -> tuple[bytes, dict[str, str]]:
        sent = json.loads(json.dumps(payload))
        if "retry" in sent:
            sent["retry"] = attempt - 1
        else:
            sent["meta"]["attempt"] = attempt
        return json.dumps(sent, separators=(",", ":")).encode(), dict(headers)

    return render


def _route_class(emulator: PipedriveEmulator) -> type[APIRoute]:
    """Routes that authenticate, rate-limit and translate every error into Pipedrive's bodies.

    FastAPI has no router-level exception handlers, so the translation wraps each route's
    handler; this also keeps FastAPI's own `{"detail": ...}` 422 from ever reaching a client.
    """

    class PipedriveRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            template = self.path.removeprefix(f"/{VENDOR}")  # as mounted by the app
            if template.startswith("/v1/"):  # the v1 spec's server form costs what /api/v1 does
                template = "/api" + template
            assert self.methods is not None  # APIRoute defaults it to {"GET"}
            cost = max((TOKEN_COSTS.get((m, template), 1) for m in self.methods), default=1)

            async def pipedrive_handler(request: Request) -> Response:
                token = emulator.authenticate(request)
                if token is None:
                    return JSONResponse(
                        status_code=401,
                        content={
                            "success": False,
                            "error": "unauthorized access",
                            "errorCode": 401,
                            "error_info": ERROR_INFO,
                            "data": None,
                            "additional_data": None,
                        },
                    )
                is_write = request.method in ("POST", "PUT", "PATCH")
                refusal, headers = emulator.limiter.admit(token, is_write, cost)
                if refusal is not None:
                    response: Response = JSONResponse(
                        status_code=429,
                        content={
                            "success": False,
                            "error": refusal,
                            "errorCode": 429,
                            "error_info": ERROR_INFO,
                            "data": None,
                            "additional_data": None,
                        },
                    )
                else:
                    try:
                        response = await handler(request)
                    except PipedriveError as error:
                        response = error.response()
                    except WebhookValidationError as error:
                        response = JSONResponse(
                            status_code=400,
                            content={"status": "error", "success": False, "errors": error.errors},
                        )
                    except ValidationError as error:
                        response = PipedriveError(400, _validation_message(error)).response()
                    except RequestValidationError as error:
                        message = "; ".join(
                            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                            for e in error.errors()
                        )
                        response = PipedriveError(400, f"Validation failed: {message}").response()
                for name, value in headers.items():
                    response.headers[name] = value
                return response

            return pipedrive_handler

    return PipedriveRoute


async def _json_body(request: Request) -> Any:
    return await json_body(
        request, refuse=lambda: PipedriveError(400, "Request body is not valid JSON")
    )


def _object_body(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise PipedriveError(400, "Request body must be a JSON object")
    return payload


Body = TypeVar("Body", bound=BaseModel)


async def _body(request: Request, model: type[Body]) -> Body:
    """The request's JSON object as `model`; a ValidationError becomes Pipedrive's 400."""
    return model.model_validate(_object_body(await _json_body(request)))


def _v2_page(request: Request, rows: list[tuple[int, Any]], items: bool = False) -> Response:
    """One v2 page of `rows` (id order) after the request's `cursor`, `limit` rows at most;
    a search answers its page as `{"items": [...]}`."""
    q = request.query_params
    page, next_cursor = _cursor_page(rows, _int_param(q.get("limit"), "limit"), q.get("cursor"))
    return _ok({"items": page} if items else page, {"next_cursor": next_cursor})


def _add_field_routes(
    router: APIRouter, emulator: PipedriveEmulator, entity: FieldEntity, path: str
) -> None:
    async def add_field(request: Request) -> Response:
        return _ok(emulator.create_field(entity, await _body(request, FieldBody)))

    async def list_fields(request: Request) -> Response:
        q = request.query_params
        page, pagination = _offset_page(
            emulator.list_fields(entity),
            _int_param(q.get("start"), "start") or 0,
            _int_param(q.get("limit"), "limit"),
        )
        return _ok(page, {"pagination": pagination})

    async def list_fields_v2(request: Request) -> Response:
        return _v2_page(request, emulator.list_fields_v2(entity))

    router.add_api_route(path, add_field, methods=["POST"], name=f"add_{entity}_field")
    router.add_api_route(path, list_fields, methods=["GET"], name=f"list_{entity}_fields")
    v2_path = path.replace("/api/v1/", "/api/v2/")
    router.add_api_route(v2_path, list_fields_v2, methods=["GET"], name=f"list_{entity}_fields_v2")


GATEWAY_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def render_fault(status: int, headers: dict[str, str]) -> Response:
    """The body of an injected fault as Pipedrive sends it (the fault injector's renderer).

    A 429 or 500 comes from Pipedrive itself, in its JSON envelope; 502-504 come from the
    gateway in front of it, as plain text.
    """
    if status in (429, 500):
        error = "Request over limit" if status == 429 else "Internal server error"
        return JSONResponse(
            status_code=status,
            headers=headers,
            content={
                "success": False,
                "error": error,
                "errorCode": status,
                "error_info": ERROR_INFO,
                "data": None,
                "additional_data": None,
            },
        )
    reason = GATEWAY_REASONS.get(status, "Error")
    return PlainTextResponse(f"{status} {reason}", status_code=status, headers=headers)


def render_unknown_route(sandbox: Sandbox, method: str, path: str, status: int) -> Response:
    """The app's answer for an unrouted request under /pipedrive.

    Pipedrive routes on method and path together, so an unknown path and a method a path does
    not take are one answer: `404 {"success": false, "error": "Unknown method ."}` (what it
    says, for instance, to the retired `/v1/persons/search`).
    """
    return PipedriveError(404, "Unknown method .").response()


def build_router(sandbox: Sandbox, limits: PipedriveLimits | None = None) -> APIRouter:
    """Pipedrive's v1 and v2 paths, mounted by the app at /pipedrive."""
    emulator = PipedriveEmulator(sandbox, limits)
    router = emulator.router(_route_class(emulator), render_fault)
    emulator.person("salesperson", emulator.open_deal_ids, emulator.win_deal, emulator.lose_deal)

    # Persons (v2)
    @router.post("/api/v2/persons")
    async def add_person(request: Request) -> Response:
        return _ok(emulator.create_person(await _body(request, PersonBody)))

    @router.get("/api/v2/persons/search")
    async def search_persons(request: Request) -> Response:
        query = SearchQuery.of(request, ("custom_fields", "email", "notes", "phone", "name"))
        organization_id = _int_param(request.query_params.get("organization_id"), "organization_id")
        return _v2_page(request, emulator.search_persons(query, organization_id), items=True)

    @router.get("/api/v2/persons")
    async def list_persons(request: Request) -> Response:
        return _v2_page(request, [(p["id"], p) for p in emulator.list_persons()])

    @router.get("/api/v2/persons/{person_id}")
    async def get_person(person_id: int) -> Response:
        return _ok(emulator.get_person(person_id))

    @router.patch("/api/v2/persons/{person_id}")
    async def update_person(person_id: int, request: Request) -> Response:
        return _ok(emulator.update_person(person_id, await _body(request, PersonBody)))

    # Deals (v2)
    @router.post("/api/v2/deals")
    async def add_deal(request: Request) -> Response:
        return _ok(emulator.create_deal(await _body(request, DealBody)))

    @router.get("/api/v2/deals/search")
    async def search_deals(request: Request) -> Response:
        query = SearchQuery.of(request, ("custom_fields", "notes", "title"))
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in DEAL_STATUSES:
            raise PipedriveError(400, "status must be one of: open, won, lost")
        found = emulator.search_deals(
            query,
            _int_param(q.get("person_id"), "person_id"),
            _int_param(q.get("organization_id"), "organization_id"),
            status,
        )
        return _v2_page(request, found, items=True)

    @router.get("/api/v2/deals")
    async def list_deals(request: Request) -> Response:
        q = request.query_params
        status = q.get("status")
        if status is not None and status not in (*DEAL_STATUSES, "deleted"):
            raise PipedriveError(400, "status must be one of: open, won, lost, deleted")
        ids = None
        if q.get("ids"):
            ids = {_int_param(v, "ids") or 0 for v in q["ids"].split(",")}
        deals = emulator.list_deals(_int_param(q.get("person_id"), "person_id"), status, ids)
        return _v2_page(request, [(d["id"], d) for d in deals])

    @router.get("/api/v2/deals/{deal_id}")
    async def get_deal(deal_id: int) -> Response:
        return _ok(emulator.get_deal(deal_id))

    @router.patch("/api/v2/deals/{deal_id}")
    async def update_deal(deal_id: int, request: Request) -> Response:
        return _ok(emulator.update_deal(deal_id, await _body(request, DealBody)))

    # Deal and person fields (v1)
    field_paths: tuple[tuple[FieldEntity, str], ...] = (
        ("deal", "/api/v1/dealFields"),
        ("person", "/api/v1/personFields"),
    )
    for entity, path in field_paths:
        _add_field_routes(router, emulator, entity, path)

    # Notes (v1)
    @router.post("/api/v1/notes")
    async def add_note(request: Request) -> Response:
        return _ok(emulator.create_note(await _body(request, NoteBody)))

    @router.get("/api/v1/notes")
    async def list_notes(request: Request) -> Response:
        q = request.query_params
        notes = emulator.list_notes(
            _int_param(q.get("deal_id"), "deal_id"), _int_param(q.get("person_id"), "person_id")
        )
        page, pagination = _offset_page(
            notes, _int_param(q.get("start"), "start") or 0, _int_param(q.get("limit"), "limit")
        )
        return _ok(page, {"pagination": pagination})

    # Webhooks (v1)
    @router.post("/api/v1/webhooks")
    async def add_webhook(request: Request) -> Response:
        payload = _object_body(await _json_body(request))
        try:
            body = WebhookBody.model_validate(payload)
        except ValidationError as error:
            errors: dict[str, list[str]] = {}
            for item in error.errors():
                key = str(item["loc"][0]) if item["loc"] else "body"
                errors.setdefault(key, []).append(item["msg"])
            raise WebhookValidationError(errors) from None
        hook = emulator.create_webhook(body)
        return JSONResponse(
            status_code=201, content={"status": "ok", "success": True, "data": hook}
        )

    @router.get("/api/v1/webhooks")
    async def list_webhooks() -> Response:
        return JSONResponse(
            content={"status": "ok", "success": True, "data": emulator.list_webhooks()}
        )

    @router.delete("/api/v1/webhooks/{webhook_id}")
    async def delete_webhook(webhook_id: int) -> Response:
        emulator.delete_webhook(webhook_id)
        return JSONResponse(content={"status": "ok", "success": True})

    # The v1 spec's server is https://api.pipedrive.com/v1 (no /api): its paths are served as
    # written there too, so a client built from either form reaches the same handlers.
    for route in list(router.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/api/v1/"):
            assert route.methods is not None  # APIRoute defaults it to {"GET"}
            router.add_api_route(
                route.path.removeprefix("/api"),
                route.endpoint,
                methods=sorted(route.methods),
                name=f"{route.name}_v1_server_form",
            )

    return router
