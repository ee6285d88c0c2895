"""Hostinger API emulator: the journey's activation step, the client's website on the agency's plan.

Once the PIX is paid, leadflow activates the client's hosting. Hostinger has no "activate" call;
the contract notes (../shared/contracts/README.md §5.3, model A) map it to: find the agency's
hosting order (`GET /api/hosting/v1/orders`), pick a datacenter for the first site on a plan
(`GET /api/hosting/v1/datacenters?order_id=`), `POST /api/hosting/v1/websites` — answered
`200 {"message": "Request accepted"}` while the job runs — and poll
`GET /api/hosting/v1/websites?domain=` until the website shows `is_enabled: true`.

What the emulator enforces, as the published OpenAPI (v1.42.5) and Laravel-style validation do:
- `Authorization: Bearer <token>`; otherwise 401 `{message: "Unauthenticated", correlation_id}`.
- 422 `{message, errors: {field: [msgs]}, correlation_id}`: required `domain` (no `www.`,
  a valid host name) and integer `order_id` of an active order of this account;
  `datacenter_code` required for the first website on a plan; a domain that already exists.
- The asynchronous completion is explicit and deterministic: a website is enabled once
  `activation_delay_seconds` have passed (default 0.5 s, measured by a replaceable clock) or,
  when `activation_polls` is set, on the N-th listing that shows it.
- Billing: the catalog and subscriptions can be read, so a client looks up instead of buying;
  `POST /api/billing/v1/orders` exists, is counted as created and adds to `spent_cents` —
  buying costs money here too, which is why leadflow never buys unless configured to.
- Pagination `{data, meta: {current_page, per_page, total}}`, `per_page` ≤ 100 (default 25).
- A request quota per minute answered with Laravel's `X-RateLimit-Limit/-Remaining` headers and
  429 + `Retry-After` (the spec names no headers; Hostinger's API is Laravel), high by default.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field

from sandbox.core import Sandbox, VendorEmulator
from sandbox.quota import FixedWindow
from sandbox.vendor_api import AdminBody, VendorError, json_body

VENDOR = "hostinger"

DEFAULT_CREDENTIALS: dict[str, str] = {
    # created in hPanel (https://hpanel.hostinger.com/profile/api) for the real API
    "api_token": "leadflowSandboxHostingerApiToken0000000000000000",
}

CLIENT_ID = 4_820_117  # the agency's Hostinger account
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25
ORDER_STATUSES = ("active", "deleting", "deleted", "suspended")
WEBSITE_TYPES = ("wordpress", "builder", "horizons", "nodejs", "other")
CATALOG_CATEGORIES = ("DOMAIN", "VPS", "EMAIL")  # the spec's filter enum
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class Coordinates:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Datacenter:
    """Where a plan's first website can be placed (`GET /api/hosting/v1/datacenters`)."""

    title: str
    code: str
    coordinates: Coordinates


# Fixed, like the catalog: Hostinger offers the same datacenters to every order.
DATACENTERS: tuple[Datacenter, ...] = (
    Datacenter("South America (Brazil)", "br-sao", Coordinates(-23.5505, -46.6333)),
    Datacenter("North America (USA)", "us-east-1", Coordinates(39.0438, -77.4874)),
    Datacenter("Europe (Netherlands)", "nl-ams", Coordinates(52.3676, 4.9041)),
)


def _price(item: str, name: str, cents: int, first: int, period: int, unit: str) -> dict[str, Any]:
    return {
        "id": item,
        "name": name,
        "currency": "BRL",
        "price": cents,
        "first_period_price": first,
        "period": period,
        "period_unit": unit,
    }


CATALOG: list[dict[str, Any]] = [
    {
        "id": "hostingercom-hosting-business",
        "name": "Business Web Hosting",
        "category": "HOSTING",
        "metadata": {"plan": "hostinger_business"},
        "prices": [
            _price(
                "hostingercom-hosting-business-brl-12m",
                "Business (12 meses)",
                56_280,
                26_280,
                12,
                "month",
            ),
        ],
    },
    {
        "id": "hostingercom-vps-kvm2",
        "name": "KVM 2",
        "category": "VPS",
        "metadata": {"cpus": 2, "memory": 8192, "disk_space": 102400},
        "prices": [
            _price("hostingercom-vps-kvm2-brl-1m", "KVM 2 (mensal)", 9_999, 4_999, 1, "month"),
            _price(
                "hostingercom-vps-kvm2-brl-12m", "KVM 2 (12 meses)", 95_880, 59_880, 12, "month"
            ),
        ],
    },
    {
        "id": "hostingercom-domain-com-br",
        "name": ".COM.BR",
        "category": "DOMAIN",
        "metadata": None,
        "prices": [
            _price("hostingercom-domain-com-br-brl-1y", ".com.br (1 ano)", 5_999, 3_999, 1, "year"),
        ],
    },
    {
        "id": "hostingercom-email-business",
        "name": "Business Email",
        "category": "EMAIL",
        "metadata": {"mailboxes": 1},
        "prices": [
            _price(
                "hostingercom-email-business-brl-12m",
                "Email (12 meses)",
                11_880,
                5_880,
                12,
                "month",
            ),
        ],
    },
]


@dataclass(frozen=True)
class HostingerSettings:
    """How activation completes and how many requests a minute are served.

    `activation_polls`, when set, makes completion count listings instead of time, so a test
    knows exactly which poll sees `is_enabled: true`.
    """

    activation_delay_seconds: float = 0.5
    activation_polls: int | None = None
    requests_per_minute: int = 1_000_000


class SettingsBody(AdminBody):
    activation_delay_seconds: float = Field(0.5, ge=0, le=86_400)
    activation_polls: int | None = Field(None, ge=1, le=1_000_000)
    requests_per_minute: int = Field(1_000_000, ge=1, le=1_000_000_000)


@dataclass(frozen=True)
class HostingPlan:
    name: str


@dataclass
class HostingOrder:
    """A hosting plan the agency owns (`GET /api/hosting/v1/orders`); fields in the API's order."""

    id: int
    client_id: int
    subscription_id: str
    created_at: str
    plan: HostingPlan
    status: str = "active"


@dataclass
class Subscription:
    """What the agency pays for, yearly (`GET /api/billing/v1/subscriptions`)."""

    id: str
    name: str
    status: str
    billing_period: int
    billing_period_unit: str
    currency_code: str
    total_price: int
    renewal_price: int
    is_auto_renewed: bool
    created_at: str
    expires_at: str
    next_billing_at: str


@dataclass
class Website:
    """A client's website on a plan, as `GET /api/hosting/v1/websites` shows it."""

    domain: str
    vhost_type: str
    is_enabled: bool
    username: str
    client_id: int
    order_id: int
    created_at: str
    root_directory: str
    parent_domain: str | None
    website_type: str
    horizons_uuid: str | None


@dataclass
class ActivationJob:
    """The job that enables a new website: Hostinger never shows it, clients only poll.

    Done when `ready_at` has passed or, when `polls_left` is set, once that many listings
    have shown the website.
    """

    ready_at: datetime
    polls_left: int | None
    datacenter: str | None


@dataclass(frozen=True)
class BillingAddress:
    """The agency's billing address, printed on every billing order it places."""

    first_name: str = "Agência"
    last_name: str = "Leadflow"
    company: str = "Agência Leadflow Ltda"
    address_1: str | None = None
    address_2: str | None = None
    city: str = "São Paulo"
    state: str = "SP"
    zip: str | None = None
    country: str = "BR"
    phone: str | None = None
    email: str = "financeiro@agencia.example"


@dataclass
class BillingOrder:
    """A purchase (`POST /api/billing/v1/orders`): money the agency spent."""

    id: int
    subscription_id: str
    status: str
    currency: str
    subtotal: int
    total: int
    billing_address: BillingAddress
    created_at: str
    updated_at: str


@dataclass
class HostingerState:
    """Everything the emulator keeps, in `sandbox.state.bucket("hostinger", ...)`.

    Websites are keyed by domain (a domain exists once at Hostinger), with their activation
    jobs beside them under the same key; orders and billing orders by id, subscriptions by id.
    """

    settings: HostingerSettings = field(default_factory=HostingerSettings)
    orders: dict[int, HostingOrder] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    websites: dict[str, Website] = field(default_factory=dict)
    jobs: dict[str, ActivationJob] = field(default_factory=dict)
    billing_orders: dict[int, BillingOrder] = field(default_factory=dict)
    spent_cents: int = 0


class HostingerError(VendorError):
    """Hostinger's error answer: `message`, `correlation_id`, and `errors` for a 422."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.errors = errors


def validation_error(errors: dict[str, list[str]]) -> HostingerError:
    """Laravel's summary: the first message, then "(and N more error[s])"."""
    messages = [m for field_messages in errors.values() for m in field_messages]
    message = messages[0]
    if len(messages) > 1:
        more = len(messages) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return HostingerError(422, message, errors)


def _timestamp(moment: datetime) -> str:
    """Billing resources' UTC time, as the spec shows it (`2025-02-27T11:54:22Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hosting_timestamp(moment: datetime) -> str:
    """Hosting resources' UTC time, as the spec shows it (`2024-01-15T10:30:00+00:00`)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _integer(value: Any) -> int | None:
    """An integer as Laravel's `integer` rule accepts it (a number or a numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


class HostingerEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS):
    """Orders, websites and their jobs, subscriptions and billing orders: one `HostingerState`."""

    def __init__(self, sandbox: Sandbox, settings: HostingerSettings | None = None) -> None:
        super().__init__(sandbox)
        self.default_settings = settings or HostingerSettings()
        #: wall-clock "now"; tests replace it to move time
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._quota = FixedWindow()

    def bucket(self) -> HostingerState:
        """This vendor's state, laid out on first use and again after a reset."""
        return self.sandbox.state.bucket(VENDOR, self._lay_out)

    def _lay_out(self) -> HostingerState:
        """The agency already owns two hosting plans (one with room) when the sandbox starts."""
        state = HostingerState(settings=self.default_settings)
        created = self.clock() - timedelta(days=90)
        for plan in ("hostinger_business", "hostinger_premium"):
            self._add_plan(state, plan, created, "Web Hosting " + plan.split("_")[1])
        return state

    def _add_plan(
        self, state: HostingerState, plan: str, created: datetime, name: str
    ) -> HostingOrder:
        order_id = self.sandbox.state.next_id(VENDOR, "hosting_order", start=12_345)
        subscription_id = self._new_subscription_id()
        order = HostingOrder(
            id=order_id,
            client_id=CLIENT_ID,
            subscription_id=subscription_id,
            created_at=_hosting_timestamp(created),
            plan=HostingPlan(plan),
        )
        state.orders[order_id] = order
        state.subscriptions[subscription_id] = _subscription(subscription_id, name, 56_280, created)
        return order

    def _new_subscription_id(self) -> str:
        return f"Azz{self.sandbox.random.getrandbits(64):016x}"[:17]

    @property
    def settings(self) -> HostingerSettings:
        with self.sandbox.state.lock:
            return self.bucket().settings

    def correlation_id(self) -> str:
        with self.sandbox.state.lock:
            return str(uuid.UUID(int=self.sandbox.random.getrandbits(128), version=4))

    # -- the request gate -----------------------------------------------------------------
    def authenticate(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.strip().encode(), self.credentials["api_token"].encode()
        ):
            raise HostingerError(401, "Unauthenticated")

    def admit(self) -> dict[str, str]:
        limit = self.settings.requests_per_minute
        admission = self._quota.admit(limit, 60)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(admission.remaining),
        }
        if not admission.admitted:
            retry = max(1, int(admission.resets_in + 0.999))
            raise HostingerError(
                429, "Too Many Attempts.", headers={**headers, "Retry-After": str(retry)}
            )
        return headers

    # -- hosting orders and datacenters ----------------------------------------------------
    def list_orders(self, request: Request) -> dict[str, Any]:
        page, per_page = _pagination(request)
        statuses = _array(request, "statuses")
        bad = [s for s in statuses if s not in ORDER_STATUSES]
        raw_ids = _array(request, "order_ids")
        ids = [_integer(v) for v in raw_ids]
        errors: dict[str, list[str]] = {}
        if bad:
            errors["statuses.0"] = ["The selected statuses.0 is invalid."]
        if any(i is None for i in ids):
            errors["order_ids.0"] = ["The order_ids.0 field must be an integer."]
        if errors:
            raise validation_error(errors)
        with self.sandbox.state.lock:
            orders = [
                asdict(o)
                for o in self.bucket().orders.values()
                if (not statuses or o.status in statuses) and (not ids or o.id in ids)
            ]
        return _paginate(orders, page, per_page)

    def _active_order(self, order_id: int) -> HostingOrder | None:
        with self.sandbox.state.lock:
            order = self.bucket().orders.get(order_id)
            return order if order and order.status == "active" else None

    def datacenters(self, request: Request) -> list[dict[str, Any]]:
        raw = request.query_params.get("order_id")
        if raw is None or raw == "":
            raise validation_error({"order_id": ["The order id field is required."]})
        order_id = _integer(raw)
        if order_id is None:
            raise validation_error({"order_id": ["The order id field must be an integer."]})
        if self._active_order(order_id) is None:
            raise validation_error({"order_id": ["The selected order id is invalid."]})
        return [asdict(d) for d in DATACENTERS]

    # -- websites -------------------------------------------------------------------------
    def create_website(self, payload: Any) -> dict[str, str]:
        """Validate and accept the job; the website is enabled later (see `_refresh`)."""
        payload = payload if isinstance(payload, dict) else {}
        errors: dict[str, list[str]] = {}
        domain = payload.get("domain")
        if domain is None or domain == "":
            errors["domain"] = ["The domain field is required."]
        elif not isinstance(domain, str):
            errors["domain"] = ["The domain field must be a string."]
        else:
            domain = domain.strip().lower()
            if domain.startswith("www."):
                errors["domain"] = ["The domain field must not start with www."]
            elif not _DOMAIN.match(domain):
                errors["domain"] = ["The domain field must be a valid domain name."]
        raw_order = payload.get("order_id")
        order_id = _integer(raw_order) if not isinstance(raw_order, str) else None
        order: HostingOrder | None = None
        if raw_order is None:
            errors["order_id"] = ["The order id field is required."]
        elif order_id is None:
            errors["order_id"] = ["The order id field must be an integer."]
        else:
            order = self._active_order(order_id)
            if order is None:
                errors["order_id"] = ["The selected order id is invalid."]
        datacenter = payload.get("datacenter_code")
        if datacenter is not None and (
            not isinstance(datacenter, str) or datacenter not in {d.code for d in DATACENTERS}
        ):
            errors["datacenter_code"] = ["The selected datacenter code is invalid."]
        settings = self.settings
        with self.sandbox.state.lock:
            state = self.bucket()
            websites = state.websites
            if "domain" not in errors and isinstance(domain, str) and domain in websites:
                errors["domain"] = ["The domain has already been taken."]
            if (
                order is not None
                and "datacenter_code" not in errors
                and datacenter is None
                and first_on_plan_of(websites, order.id)
            ):
                errors["datacenter_code"] = [
                    "The datacenter code field is required when creating the first "
                    "website on a plan."
                ]
            if errors:
                raise validation_error(errors)
            assert order is not None
            assert isinstance(domain, str)
            now = self.clock()
            number = self.sandbox.state.next_id(VENDOR, "website", start=1)
            username = f"u{order.id % 1000:03d}{number:06d}"
            websites[domain] = Website(
                domain=domain,
                vhost_type="main" if first_on_plan_of(websites, order.id) else "addon",
                is_enabled=False,
                username=username,
                client_id=CLIENT_ID,
                order_id=order.id,
                created_at=_hosting_timestamp(now),
                root_directory=f"/home/{username}/domains/{domain}/public_html",
                parent_domain=None,
                # nothing is installed on a new website: the platform detects "other"
                website_type="other",
                horizons_uuid=None,
            )
            state.jobs[domain] = ActivationJob(
                ready_at=now + timedelta(seconds=settings.activation_delay_seconds),
                polls_left=settings.activation_polls,
                datacenter=datacenter,
            )
            self.sandbox.state.created(VENDOR, "website")
        return {"message": "Request accepted"}

    def _refresh(self, website: Website, job: ActivationJob, listed: bool) -> None:
        """Finish the activation job when it is due (by polls when configured, else by time)."""
        if website.is_enabled:
            return
        if job.polls_left is not None:
            if listed:
                job.polls_left -= 1
                if job.polls_left <= 0:
                    website.is_enabled = True
        elif self.clock() >= job.ready_at:
            website.is_enabled = True

    def list_websites(self, request: Request) -> dict[str, Any]:
        page, per_page = _pagination(request)
        query = request.query_params
        errors: dict[str, list[str]] = {}
        order_id = None
        if query.get("order_id"):
            order_id = _integer(query["order_id"])
            if order_id is None:
                errors["order_id"] = ["The order id field must be an integer."]
        enabled: bool | None = None
        if query.get("is_enabled"):
            flag = query["is_enabled"].lower()
            if flag not in ("true", "false", "1", "0"):
                errors["is_enabled"] = ["The is enabled field must be true or false."]
            enabled = flag in ("true", "1")
        types = [t for t in query.get("website_types", "").split(",") if t]
        if any(t not in WEBSITE_TYPES for t in types):
            errors["website_types"] = ["The selected website types is invalid."]
        if errors:
            raise validation_error(errors)
        domain = (query.get("domain") or "").lower()
        username = query.get("username")
        with self.sandbox.state.lock:
            state = self.bucket()
            found = []
            for website in state.websites.values():
                if domain and domain not in website.domain:
                    continue
                if order_id is not None and website.order_id != order_id:
                    continue
                if username and website.username != username:
                    continue
                if types and website.website_type not in types:
                    continue
                self._refresh(website, state.jobs[website.domain], listed=True)
                if enabled is not None and website.is_enabled != enabled:
                    continue
                found.append(asdict(website))
        return _paginate(found, page, per_page)

    def complete_pending(self) -> list[str]:
        """Admin: finish every activation job now (the demo need not wait)."""
        with self.sandbox.state.lock:
            done = []
            for website in self.bucket().websites.values():
                if not website.is_enabled:
                    website.is_enabled = True
                    done.append(website.domain)
            return done

    # -- billing --------------------------------------------------------------------------
    def catalog(self, request: Request) -> list[dict[str, Any]]:
        category = request.query_params.get("category")
        if category is not None and category not in CATALOG_CATEGORIES:
            raise validation_error({"category": ["The selected category is invalid."]})
        name = request.query_params.get("name")
        pattern = None
        if name:
            pattern = re.compile(
                "^" + ".*".join(re.escape(p) for p in name.split("*")) + "$", re.IGNORECASE
            )
        return [
            json.loads(json.dumps(item))
            for item in CATALOG
            if (category is None or item["category"] == category)
            and (pattern is None or pattern.match(item["name"]))
        ]

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.sandbox.state.lock:
            return [asdict(s) for s in self.bucket().subscriptions.values()]

    def purchase(self, payload: Any) -> dict[str, Any]:
        """Place a billing order: it costs money, so it is counted and added to `spent_cents`."""
        payload = payload if isinstance(payload, dict) else {}
        prices = {p["id"]: (item, p) for item in CATALOG for p in item["prices"]}
        errors: dict[str, list[str]] = {}
        items = payload.get("items")
        if not items:
            errors["items"] = ["The items field is required."]
        elif not isinstance(items, list):
            errors["items"] = ["The items field must be an array."]
        else:
            for index, line in enumerate(items):
                if not isinstance(line, dict) or not line.get("item_id"):
                    errors[f"items.{index}.item_id"] = [
                        f"The items.{index}.item_id field is required."
                    ]
                elif line["item_id"] not in prices:
                    errors[f"items.{index}.item_id"] = [
                        f"The selected items.{index}.item_id is invalid."
                    ]
                quantity = line.get("quantity", 1) if isinstance(line, dict) else 1
                if _integer(quantity) is None or (_integer(quantity) or 0) < 1:
                    errors[f"items.{index}.quantity"] = [
                        f"The items.{index}.quantity field must be at least 1."
                    ]
        method = payload.get("payment_method_id")
        if method is not None and _integer(method) is None:
            errors["payment_method_id"] = ["The payment method id field must be an integer."]
        if errors:
            raise validation_error(errors)
        now = self.clock()
        with self.sandbox.state.lock:
            state = self.bucket()
            subtotal = 0
            subscription_id = ""
            for line in items:
                item, price = prices[line["item_id"]]
                quantity = _integer(line.get("quantity", 1)) or 1
                cost = price["first_period_price"] * quantity
                subtotal += cost
                subscription_id = self._new_subscription_id()
                state.subscriptions[subscription_id] = _subscription(
                    subscription_id, item["name"], price["price"] * quantity, now
                )
                if item["category"] == "HOSTING":
                    order = self._add_plan(state, item["metadata"]["plan"], now, item["name"])
                    state.subscriptions.pop(order.subscription_id)
                    order.subscription_id = subscription_id
            order_id = self.sandbox.state.next_id(VENDOR, "billing_order", start=2_957_086)
            billing_order = BillingOrder(
                id=order_id,
                subscription_id=subscription_id,
                status="completed",
                currency="BRL",
                subtotal=subtotal,
                total=subtotal,  # Brazilian invoices here carry no VAT line
                billing_address=BillingAddress(),
                created_at=_timestamp(now),
                updated_at=_timestamp(now),
            )
            state.billing_orders[order_id] = billing_order
            state.spent_cents += subtotal
            self.sandbox.state.created(VENDOR, "billing_order")
            return asdict(billing_order)


def first_on_plan_of(websites: dict[str, Website], order_id: int) -> bool:
    """True while the plan has no website yet: the next one is its main vhost."""
    return not any(w.order_id == order_id for w in websites.values())


def _subscription(subscription_id: str, name: str, cents: int, created: datetime) -> Subscription:
    """A yearly, auto-renewed subscription bought at `created`."""
    renews = _timestamp(created + timedelta(days=365))
    return Subscription(
        id=subscription_id,
        name=name,
        status="active",
        billing_period=12,
        billing_period_unit="month",
        currency_code="BRL",
        total_price=cents,
        renewal_price=cents,
        is_auto_renewed=True,
        created_at=_timestamp(created),
        expires_at=renews,
        next_billing_at=renews,
    )


def _array(request: Request, name: str) -> list[str]:
    """PHP-style arrays: `statuses[]=a&statuses[]=b` (also `statuses=a`)."""
    params = request.query_params
    return params.getlist(f"{name}[]") + params.getlist(name)


def _pagination(request: Request) -> tuple[int, int]:
    errors: dict[str, list[str]] = {}
    raw_page = request.query_params.get("page") or "1"
    raw_per_page = request.query_params.get("per_page") or str(DEFAULT_PER_PAGE)
    page, per_page = _integer(raw_page), _integer(raw_per_page)
    if page is None or page < 1:
        errors["page"] = ["The page field must be at least 1."]
    if per_page is None or not 1 <= per_page <= MAX_PER_PAGE:
        errors["per_page"] = [f"The per page field must be between 1 and {MAX_PER_PAGE}."]
    if errors:
        raise validation_error(errors)
    assert page is not None
    assert per_page is not None
    return page, per_page


def _paginate(items: list[dict[str, Any]], page: int, per_page: int) -> dict[str, Any]:
    start = (page - 1) * per_page
    return {
        "data": items[start : start + per_page],
        "meta": {"current_page": page, "per_page": per_page, "total": len(items)},
    }


def hostinger_route_class(emulator: HostingerEmulator) -> type[APIRoute]:
    """Routes that authenticate, count the quota and answer errors in Hostinger's shape."""

    class HostingerRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    emulator.authenticate(request)
                    headers = emulator.admit()
                    response = await handler(request)
                except HostingerError as error:
                    body: dict[str, Any] = {"message": error.message}
                    if error.errors is not None:
                        body["errors"] = error.errors
                    body["correlation_id"] = emulator.correlation_id()
                    return JSONResponse(body, status_code=error.status, headers=error.headers)
                response.headers.update(headers)
                return response

            return route

    return HostingerRoute


async def _json_body(request: Request) -> Any:
    """Laravel reads an unparsable body as no input at all: validation then names the fields."""
    return await json_body(request, empty={}, unreadable={})


def hostinger_fault_renderer(emulator: HostingerEmulator) -> Callable[..., Response]:
    def render(status: int, headers: dict[str, str]) -> Response:
        message = "Too Many Attempts." if status == 429 else "Error message"
        if status in (502, 503, 504):  # the CDN in front answers these, in plain text
            return Response(
                f"{status}", status_code=status, headers=headers, media_type="text/plain"
            )
        body = {"message": message, "correlation_id": emulator.correlation_id()}
        return JSONResponse(body, status_code=status, headers=headers)

    return render


def render_unknown_route(sandbox: Sandbox, method: str, path: str, status: int) -> Response:
    """The app's answer for an unrouted call under /hostinger, in Laravel's words.

    Routing happens before authentication at Hostinger (Laravel), so no token is needed to
    learn that a path does not exist.
    """
    emulator = sandbox.emulators[VENDOR]
    route = path.lstrip("/")
    if status == 405:
        message = f"The {method} method is not supported for route {route}."
    else:
        message = f"The route {route} could not be found."
    body = {"message": message, "correlation_id": emulator.correlation_id()}
    return JSONResponse(body, status_code=status)


def build_router(sandbox: Sandbox, settings: HostingerSettings | None = None) -> APIRouter:
    """Hostinger's API as the app mounts it at /hostinger (paths `/api/...`)."""
    emulator = HostingerEmulator(sandbox, settings)
    router = emulator.router(hostinger_route_class(emulator), hostinger_fault_renderer(emulator))

    @router.get("/api/hosting/v1/orders")
    async def list_orders(request: Request) -> Response:
        return JSONResponse(emulator.list_orders(request))

    @router.get("/api/hosting/v1/datacenters")
    async def list_datacenters(request: Request) -> Response:
        return JSONResponse(emulator.datacenters(request))

    @router.get("/api/hosting/v1/websites")
    async def list_websites(request: Request) -> Response:
        return JSONResponse(emulator.list_websites(request))

    @router.post("/api/hosting/v1/websites")
    async def create_website(request: Request) -> Response:
        return JSONResponse(emulator.create_website(await _json_body(request)))

    @router.get("/api/billing/v1/catalog")
    async def catalog(request: Request) -> Response:
        return JSONResponse(emulator.catalog(request))

    @router.get("/api/billing/v1/subscriptions")
    async def subscriptions() -> Response:
        return JSONResponse(emulator.subscriptions())

    @router.post("/api/billing/v1/orders")
    async def purchase(request: Request) -> Response:
        return JSONResponse(emulator.purchase(await _json_body(request)))

    return router


def build_admin_router(sandbox: Sandbox) -> APIRouter:
    """Admin (under /__sandbox__/hostinger): activation timing, finishing jobs, money spent."""
    router = APIRouter()

    @router.put("/settings")
    def set_settings(body: SettingsBody) -> dict[str, Any]:
        with sandbox.state.lock:
            HostingerEmulator.of(sandbox).bucket().settings = HostingerSettings(**body.model_dump())
        return body.model_dump()

    @router.post("/websites/complete")
    def complete() -> dict[str, list[str]]:
        return {"enabled": HostingerEmulator.of(sandbox).complete_pending()}

    @router.get("/spending")
    def spending() -> dict[str, Any]:
        with sandbox.state.lock:
            state = HostingerEmulator.of(sandbox).bucket()
            return {"spent_cents": state.spent_cents, "orders": len(state.billing_orders)}

    return router
