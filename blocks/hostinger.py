"""Hostinger public API: the credentials Block and the async client that activates a client's site.

Where it sits: once the PIX charge is paid (Asaas), the journey activates the client's hosting —
a website on a hosting order the agency already owns — then welcomes the client on WhatsApp.
Hostinger has no single "activate" call and no webhook (contracts README §5.3, option A):

1. find the hosting order (`GET /api/hosting/v1/orders`), and for the first site on a new plan
   its best datacenter (`GET /api/hosting/v1/datacenters?order_id=`);
2. `POST /api/hosting/v1/websites {domain, order_id, datacenter_code?}` — answered
   `{"message": "Request accepted"}` while the site is built in the background;
3. read `GET /api/hosting/v1/websites?domain=` (`find_by_reference(domain)`) until the site is
   listed with `is_enabled: true` — the journey's `activating` state asks again when its
   ledger `due_at` comes round; nothing here sleeps or polls.

A website's reference is its domain (Hostinger keys websites by it and returns no id on
create). A lost answer to the website create raises UnknownOutcomeError; the task then calls
`find_by_reference(domain)` before asking again (a second create for the domain would be a 422).

Buying a plan (`POST /api/billing/v1/orders`) spends real money, so `purchase` refuses to run
unless the Block says `allow_purchases: true`, and it is never retried once sent: a lost answer
raises UnknownOutcomeError and the caller looks the purchase up with
`find_subscriptions_created_since(<moment before the purchase>)` before buying again.
The catalogue and subscriptions are plain reads.

    from blocks.hostinger import HostingerCredentials, NewWebsite

    hostinger = await HostingerCredentials.load("NAME")
    async with hostinger.get_client() as client:
        if await client.find_by_reference("cliente.com.br") is None:
            await client.create_website(NewWebsite(domain="cliente.com.br", order_id=12345))
        site = await client.find_by_reference("cliente.com.br")  # later: site.is_enabled

Contract (§5.2): `Authorization: Bearer <API token>`; JSON everywhere; lists are
`{data, meta: {current_page, per_page, total}}` (the billing lists are bare arrays); errors are
`{message, correlation_id}` and a 422 adds `errors: {field: [messages]}` — e.g. a domain that
already has a website, raised as a PermanentError carrying the field messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Unpack, get_args

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, TypeAdapter, field_validator

from blocks.credentials import ClientOptions, VendorCredentials
from blocks.errors import PermanentError
from blocks.http import RateLimit, VendorClient, VendorHTTP, json_object, status_text

__all__ = [
    "BillingOrder",
    "CatalogCategory",
    "CatalogItem",
    "CatalogPrice",
    "CreatedWebsite",
    "Datacenter",
    "HostingOrder",
    "HostingOrdersPage",
    "HostingerClient",
    "HostingerCredentials",
    "NewWebsite",
    "PurchasesDisabledError",
    "Subscription",
    "Website",
    "WebsitesPage",
    "bare_domain",
    "hostinger_error",
]

VENDOR = "hostinger"
PRODUCTION_URL = "https://developers.hostinger.com"
MAX_PAGE = 100


class PurchasesDisabledError(PermanentError):
    """A purchase was asked of a Block without `allow_purchases`: nothing was sent to Hostinger.

    A PermanentError because retrying cannot help: a person must decide to allow spending.
    """


# ------------------------------------------------------------------------------------ models


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PageMeta(_Answer):
    current_page: int
    per_page: int
    total: int


class HostingOrder(_Answer):
    """A hosting plan the agency owns (Hosting.V1.Orders.OrderResource)."""

    id: int
    status: str
    client_id: int | None = None
    subscription_id: str | None = None
    created_at: str | None = None
    plan_name: str | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> HostingOrder:
        plan = payload.get("plan") or {}
        return cls.model_validate({**payload, "plan_name": plan.get("name")})


class HostingOrdersPage(_Answer):
    data: list[HostingOrder]
    meta: PageMeta


class Website(_Answer):
    """A website on a hosting order (Hosting.V1.Websites.WebsiteResource)."""

    domain: str | None
    is_enabled: bool
    order_id: int
    client_id: int | None = None
    username: str | None = None
    vhost_type: str | None = None
    website_type: str | None = None
    created_at: str | None = None


class CreatedWebsite(_Answer):
    """What a website create leaves the journey: the site's id (its domain, the key Hostinger
    lists websites by: the create answers only "Request accepted") and where it goes."""

    id: str
    order_id: int
    message: str | None = None

    @property
    def domain(self) -> str:
        return self.id


class WebsitesPage(_Answer):
    data: list[Website]
    meta: PageMeta


class Datacenter(_Answer):
    code: str
    title: str | None = None


def bare_domain(value: str) -> str:
    """The domain as Hostinger keys websites: lower case, no trailing dot, never "www."."""
    domain = value.strip().lower().rstrip(".")
    if domain.startswith("www."):
        raise ValueError('the domain cannot start with "www."')
    if "." not in domain or any(ch in domain for ch in "/: @"):
        raise ValueError("the domain must be a bare host name such as cliente.com.br")
    return domain


class NewWebsite(BaseModel):
    """A website to create (Hosting.V1.Websites.CreateWebsiteRequest)."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(min_length=3, max_length=253)
    order_id: int = Field(gt=0)
    datacenter_code: str | None = None

    @field_validator("domain")
    @classmethod
    def _bare_domain(cls, value: str) -> str:
        return bare_domain(value)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class CatalogPrice(_Answer):
    id: str
    name: str | None = None
    currency: str
    price: int
    first_period_price: int | None = None
    period: int
    period_unit: str


class CatalogItem(_Answer):
    """A product on sale; its `prices[].id` is the item id a purchase takes."""

    id: str
    name: str
    category: str
    prices: list[CatalogPrice] = Field(default_factory=list)


class Subscription(_Answer):
    id: str
    name: str
    status: str
    billing_period: int | None = None
    billing_period_unit: str | None = None
    currency_code: str | None = None
    total_price: int | None = None
    renewal_price: int | None = None
    is_auto_renewed: bool | None = None
    created_at: str | None = None
    expires_at: str | None = None
    next_billing_at: str | None = None


class BillingOrder(_Answer):
    """A purchase (Billing.V1.Order.OrderResource): its subscription, status and total in cents."""

    id: int
    status: str
    subscription_id: str | None = None
    currency: str | None = None
    subtotal: int | None = None
    total: int | None = None
    created_at: str | None = None


#: the catalogue categories the spec lets a caller filter by
CatalogCategory = Literal["DOMAIN", "VPS", "EMAIL"]

_catalog = TypeAdapter(list[CatalogItem])
_subscriptions = TypeAdapter(list[Subscription])
_datacenters = TypeAdapter(list[Datacenter])


def hostinger_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from `{message, errors: {field: [msgs]}, correlation_id}`.

    Hostinger has no error codes: the code is None, and the message gathers the field messages
    and the correlation id Hostinger's support asks for.
    """
    body = json_object(response)
    if body is None:
        return None, status_text(response)
    message = str(body.get("message") or body.get("error") or response.reason_phrase)
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        fields = "; ".join(
            f"{field}: {' '.join(str(m) for m in (msgs if isinstance(msgs, list) else [msgs]))}"
            for field, msgs in errors.items()
        )
        message = f"{message} [{fields}]"
    if body.get("correlation_id"):
        message = f"{message} (correlation_id {body['correlation_id']})"
    return None, message


# ------------------------------------------------------------------------------------ client


class HostingerClient(VendorClient):
    """Websites, hosting orders and billing reads of one Hostinger account."""

    def __init__(self, http: VendorHTTP, *, allow_purchases: bool = False) -> None:
        super().__init__(http)
        self.allow_purchases = allow_purchases

    async def check_access(self) -> str:
        """A cheap read proving the token works (`leadflow blocks check`): active hosting plans."""
        orders = await self.list_hosting_orders(statuses=["active"], per_page=1)
        return f"{orders.meta.total} active hosting order(s)"

    # -- hosting

    async def list_hosting_orders(
        self,
        *,
        statuses: list[str] | None = None,
        order_ids: list[int] | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> HostingOrdersPage:
        """The agency's hosting plans, e.g. `statuses=["active"]`."""
        params: dict[str, Any] = {"page": page, "per_page": _page_size(per_page)}
        if statuses:
            params["statuses[]"] = statuses
        if order_ids:
            params["order_ids[]"] = order_ids
        return await self._get("/api/hosting/v1/orders", _orders_page, params=params)

    async def list_datacenters(self, order_id: int) -> list[Datacenter]:
        """Datacenters for the first website of a plan, best match first."""
        return await self._get(
            "/api/hosting/v1/datacenters",
            _datacenters.validate_python,
            params={"order_id": order_id},
        )

    async def create_website(self, website: NewWebsite) -> CreatedWebsite:
        """Ask Hostinger to build the site; returns its id (the domain) once it is accepted.

        The site is listed minutes later, enabled later still: the journey reads it with
        `find_by_reference(domain)` when its ledger `due_at` comes round. A domain that already
        has a site is refused with 422 (PermanentError). Sent once: after an
        UnknownOutcomeError, look the domain up with `find_by_reference` before asking again.
        """

        def accepted(body: Any) -> CreatedWebsite:
            message = body.get("message") if body is not None else None
            return CreatedWebsite(
                id=website.domain,
                order_id=website.order_id,
                message=None if message is None else str(message),
            )

        return await self._create("/api/hosting/v1/websites", accepted, website.to_json())

    async def list_websites(
        self,
        *,
        domain: str | None = None,
        order_id: int | None = None,
        is_enabled: bool | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> WebsitesPage:
        """Websites, filtered by domain (Hostinger matches a substring), order and state."""
        params: dict[str, Any] = {"page": page, "per_page": _page_size(per_page)}
        if domain is not None:
            params["domain"] = domain
        if order_id is not None:
            params["order_id"] = order_id
        if is_enabled is not None:
            params["is_enabled"] = "true" if is_enabled else "false"
        return await self._get(
            "/api/hosting/v1/websites", WebsitesPage.model_validate, params=params
        )

    async def find_by_reference(
        self, domain: str, *, order_id: int | None = None
    ) -> Website | None:
        """The website of exactly `domain` (its reference), or None; `.is_enabled` says if live.

        The list filter also matches longer names, so only an exact domain is taken.
        """
        wanted = bare_domain(domain)
        page_number = 1
        while True:
            page = await self.list_websites(
                domain=wanted, order_id=order_id, page=page_number, per_page=MAX_PAGE
            )
            for website in page.data:
                if (website.domain or "").lower() == wanted:
                    return website
            if page_number * page.meta.per_page >= page.meta.total or not page.data:
                return None
            page_number += 1

    async def find_website(self, domain: str, *, order_id: int | None = None) -> Website | None:
        """Deprecated: `find_by_reference(domain)`, kept while tasks/activation.py calls it."""
        return await self.find_by_reference(domain, order_id=order_id)

    # -- billing

    async def get_catalog(
        self, *, category: CatalogCategory | None = None, name: str | None = None
    ) -> list[CatalogItem]:
        """Products on sale with their price item ids (e.g. `category="VPS"`; the spec filters
        by DOMAIN, VPS or EMAIL only)."""
        if category is not None and category not in get_args(CatalogCategory):
            raise ValueError(f"the catalogue filters by {', '.join(get_args(CatalogCategory))}")
        params = {k: v for k, v in {"category": category, "name": name}.items() if v is not None}
        return await self._get("/api/billing/v1/catalog", _catalog.validate_python, params=params)

    async def list_subscriptions(self) -> list[Subscription]:
        """The account's subscriptions: where a purchase whose answer was lost shows up."""
        return await self._get("/api/billing/v1/subscriptions", _subscriptions.validate_python)

    async def find_subscriptions_created_since(
        self, since: datetime, *, name: str | None = None
    ) -> list[Subscription]:
        """Subscriptions created at or after `since` (and named `name`), oldest first.

        Hostinger orders carry no reference of ours, so after an UnknownOutcomeError from
        `purchase` the caller passes the moment recorded just before buying: a subscription
        here means the purchase went through and must not be repeated.
        """
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        found: list[tuple[datetime, Subscription]] = []
        for subscription in await self.list_subscriptions():
            if name is not None and subscription.name != name:
                continue
            created = _moment(subscription.created_at)
            if created is not None and created >= since:
                found.append((created, subscription))
        return [subscription for _, subscription in sorted(found, key=lambda pair: pair[0])]

    async def purchase(
        self,
        item_id: str,
        *,
        quantity: int = 1,
        payment_method_id: int | None = None,
        coupons: list[str] | None = None,
    ) -> BillingOrder:
        """Buy a catalogue price item — only when the Block allows purchases; never retried.

        Raises PurchasesDisabledError (nothing sent) without `allow_purchases`, and
        UnknownOutcomeError when the order was sent and no answer came: look it up with
        `find_subscriptions_created_since` before buying again.
        """
        if not self.allow_purchases:
            raise PurchasesDisabledError(
                VENDOR,
                None,
                "purchases_disabled",
                "this Hostinger Block does not allow purchases (allow_purchases is false)",
                method="POST",
                path="/api/billing/v1/orders",
            )
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        body: dict[str, Any] = {"items": [{"item_id": item_id, "quantity": quantity}]}
        if payment_method_id is not None:
            body["payment_method_id"] = payment_method_id
        if coupons:
            body["coupons"] = coupons
        return await self._create("/api/billing/v1/orders", BillingOrder.model_validate, body)


def _orders_page(body: Any) -> HostingOrdersPage:
    return HostingOrdersPage(
        data=[HostingOrder.from_payload(order) for order in body["data"]],
        meta=PageMeta.model_validate(body["meta"]),
    )


def _moment(value: str | None) -> datetime | None:
    """Hostinger's date-time ("2025-02-27T11:54:22Z"), or None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _page_size(per_page: int) -> int:
    if not 1 <= per_page <= MAX_PAGE:
        raise ValueError(f"Hostinger pages hold 1 to {MAX_PAGE} items")
    return per_page


# ------------------------------------------------------------------------------------- Block


class HostingerCredentials(VendorCredentials):
    """Hostinger API access for the agency's account, and whether leadflow may spend money.

    `api_token` is created in hPanel (Profile → API). `allow_purchases` stays false unless the
    agency wants leadflow to buy plans itself; website creation on existing plans never buys.

    Example:
        ```python
        from blocks import HostingerCredentials

        hostinger = await HostingerCredentials.load("default")
        async with hostinger.get_client() as client:
            site = await client.find_by_reference("cliente.com.br")
        ```
    """

    _block_type_name: ClassVar[str] = "Hostinger Credentials"
    _block_type_slug: ClassVar[str] = "leadflow-hostinger-credentials"
    _description: ClassVar[str] = (
        "Hostinger API token (hosting orders, websites, billing reads) and the switch that "
        "allows purchases."
    )
    _logo_url = HttpUrl("https://www.hostinger.com/favicon.ico")
    _documentation_url = HttpUrl("https://developers.hostinger.com")
    vendor: ClassVar[str] = VENDOR

    api_token: SecretStr = Field(description="API token, sent as Authorization: Bearer.")
    base_url: str = Field(default=PRODUCTION_URL, description="Hostinger's API, or the sandbox's.")
    allow_purchases: bool = Field(
        default=False, description="Allow purchase() to place billing orders (spends money)."
    )
    default_order_id: int | None = Field(
        default=None, description="The hosting order new client websites go on."
    )
    requests_per_minute: int = Field(
        default=60, ge=1, description="Self-imposed rate (Hostinger does not publish its own)."
    )
    burst: int = Field(default=10, ge=1, description="Requests allowed at once.")

    def _account_secrets(self) -> tuple[str | None, ...]:
        return (self.api_token.get_secret_value(),)

    def _published_rate_limit(self) -> RateLimit:
        return RateLimit(self.requests_per_minute, per=60.0, burst=self.burst)

    def get_client(self, **options: Unpack[ClientOptions]) -> HostingerClient:
        """A client for this account, under the token's shared rate limit.

        Hostinger publishes limits per endpoint (the domain availability check's 90 a minute),
        so a 429 pauses its route only. `rate_limit` replaces the shared bucket (tests).
        """
        http = self.vendor_http(
            options,
            headers={
                "Authorization": f"Bearer {self.api_token.get_secret_value()}",
                "Accept": "application/json",
            },
            error_parser=hostinger_error,
            rate_limit_scope="route",
        )
        return HostingerClient(http, allow_purchases=self.allow_purchases)
