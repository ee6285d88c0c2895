"""Facebook Lead Ads: the credentials Block and the async client that reads forms and leads.

Where it sits: the very start of the journey. A `leadgen` webhook (webhooks/) or the scheduled
poll gives a lead id or a form; the intake tasks call this client to list a Page's lead forms,
list a form's leads created since the last poll, or fetch one lead's answers (the webhook carries
none). Everything here is a read, so every call is retried freely — and the one write,
`subscribe_page_to_leadgen` (`leadflow webhooks register`), may be repeated as freely.

Contract (contracts README §1): Graph API `GET /{version}/{page-id}/leadgen_forms`,
`GET /{version}/{form-id}/leads?filtering=[{"field":"time_created","operator":"GREATER_THAN",...}]`
with cursor paging — follow `paging.next` until it is absent, never store a cursor — and
`GET /{version}/{lead-id}`. Ids are 15-17 digit numbers that Meta sends as strings (JSON numbers
in older payloads): they are accepted either way and kept as `str`, since a float64 would round
them. The Page token travels in the `Authorization: Bearer` header, never in a URL.

Graph errors share one envelope with WhatsApp (`graph_error`): codes 4, 17, 32, 613 and the
80000 range are throttling (RateLimitedError), 190 an expired token (AuthenticationError).

How to use it (the Block is saved once — in the Prefect UI, or by `leadflow blocks init` for the
sandbox — and loaded by name wherever a task needs it)::

    from blocks import FacebookLeadAdsCredentials

    facebook = await FacebookLeadAdsCredentials.load("default")
    async with facebook.get_client() as client:
        async for lead in client.iter_leads(form_id, since=last_poll):
            ...  # lead.id (str), lead.answers() {"email": ..., "phone_number": ...}
        lead = await client.get_lead(leadgen_id)  # from a leadgen webhook
"""

from __future__ import annotations

import json
from abc import ABC
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar, Unpack
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StrictBool,
    field_validator,
)

from blocks.credentials import ClientOptions, VendorCredentials
from blocks.errors import TransientError
from blocks.http import RateLimit, VendorClient, VendorHTTP, json_object, status_text

__all__ = [
    "GRAPH_AUTH_CODES",
    "GRAPH_RATE_LIMIT_CODES",
    "FacebookLeadAdsClient",
    "FacebookLeadAdsCredentials",
    "FieldAnswer",
    "Lead",
    "LeadForm",
    "graph_error",
]

VENDOR = "facebook"
PRODUCTION_URL = "https://graph.facebook.com"
GRAPH_VERSION = "v23.0"
LEAD_FIELDS = "id,created_time,field_data,form_id,ad_id,campaign_id,is_organic,platform"
FORM_FIELDS = "id,name,status,locale,created_time,leads_count"

#: Graph throttling codes: app (4), user (17), page (32), custom (613), business use case (80xxx)
GRAPH_RATE_LIMIT_CODES: frozenset[str] = frozenset(
    {"4", "17", "32", "613", *(str(code) for code in range(80000, 80015))}
)
#: Graph codes that mean the token itself is bad or expired
GRAPH_AUTH_CODES: frozenset[str] = frozenset({"190", "102"})


def graph_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from Graph's `{"error": {"message", "type", "code", "error_data"}}`.

    The message is Meta's `message`, followed by `error_data.details` when present, because
    Meta says to branch on `code` and `details`, not on titles.
    """
    body = json_object(response)
    error = body.get("error") if body is not None else None
    if not isinstance(error, dict):
        return None, status_text(response)
    code = error.get("code")
    message = str(error.get("message") or response.reason_phrase)
    details = (error.get("error_data") or {}).get("details") if error.get("error_data") else None
    if details:
        message = f"{message} — {details}"
    return (None if code is None else str(code), message)


def _graph_id(value: Any) -> Any:
    """Graph ids arrive as strings or JSON numbers; both become str (never float)."""
    if isinstance(value, bool):
        raise ValueError("an id cannot be a boolean")
    if isinstance(value, int):
        return str(value)
    return value


# ------------------------------------------------------------------------------------ models


class FieldAnswer(BaseModel):
    """One question's answer: the form question `key` and its values."""

    model_config = ConfigDict(extra="ignore")

    name: str
    values: list[str] = Field(default_factory=list)


class Lead(BaseModel):
    """A lead as Graph returns it (contracts README §1.2)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    created_time: datetime
    field_data: list[FieldAnswer] = Field(default_factory=list)
    form_id: str | None = None
    ad_id: str | None = None
    campaign_id: str | None = None
    is_organic: bool | None = None
    platform: str | None = None

    @field_validator("id", "form_id", "ad_id", "campaign_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return _graph_id(value)

    @field_validator("created_time", mode="before")
    @classmethod
    def _graph_time(cls, value: Any) -> Any:
        """`2015-11-12T15:27:06+0000` (no colon in the offset) or unix seconds."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if (
            isinstance(value, str)
            and len(value) >= 5
            and value[-5] in "+-"
            and ":" not in value[-5:]
        ):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
        return value

    def answers(self) -> dict[str, str]:
        """Question key -> first answer (Lead Ads questions hold one value each)."""
        return {field.name: field.values[0] for field in self.field_data if field.values}


class LeadForm(BaseModel):
    """A Page's lead form."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str | None = None
    status: str | None = None
    locale: str | None = None
    created_time: str | None = None
    leads_count: int | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return _graph_id(value)


class _Success(BaseModel):
    """Graph's answer to an edge write such as `subscribed_apps`: `{"success": true}`."""

    success: StrictBool


Item = TypeVar("Item", bound=BaseModel)


def _graph_page(body: Any, model: type[Item]) -> tuple[list[Item], str | None]:
    """One Graph edge page: its items as `model`, and `paging.next` (None on the last page)."""
    items = [model.model_validate(item) for item in body.get("data") or []]
    next_url = (body.get("paging") or {}).get("next")
    if next_url is not None and not isinstance(next_url, str):
        raise TypeError("paging.next is not a URL")
    return items, next_url or None


# ------------------------------------------------------------------------------------ client


class FacebookLeadAdsClient(VendorClient):
    """Reads a Page's lead forms and their leads. Build it with FacebookLeadAdsCredentials."""

    def __init__(self, http: VendorHTTP, *, page_id: str, graph_version: str = GRAPH_VERSION):
        super().__init__(http)
        self.page_id = page_id
        self.graph_version = graph_version

    async def _pages(
        self,
        path: str,
        path_params: dict[str, str | int],
        params: dict[str, Any],
        model: type[Item],
    ) -> AsyncIterator[Item]:
        """Each item of a Graph edge, following `paging.next` until it is absent.

        The next page is asked for on the same path template with the query `next` carries
        (minus any access_token Graph put in it), so the log line stays the template and the
        token stays in the header.
        """
        path_params = {"version": self.graph_version, **path_params}
        while True:
            items, next_url = await self._get(
                path,
                lambda body: _graph_page(body, model),
                path_params=path_params,
                params=params,
            )
            for item in items:
                yield item
            if not next_url:
                return
            next_params = {
                key: value
                for key, value in parse_qsl(urlsplit(next_url).query, keep_blank_values=True)
                if key != "access_token"
            }
            if next_params == params:
                # a `next` that points at the page just read would loop for ever
                raise TransientError(
                    VENDOR,
                    "Graph's paging.next repeats the page just read",
                    method="GET",
                    path=path,
                )
            params = next_params

    async def list_forms(self, page_id: str | None = None) -> list[LeadForm]:
        """Every lead form of the Page (all statuses; callers keep the ACTIVE ones they want)."""
        forms = self._pages(
            "/{version}/{page_id}/leadgen_forms",
            {"page_id": page_id or self.page_id},
            {"fields": FORM_FIELDS, "limit": 100},
            LeadForm,
        )
        return [form async for form in forms]

    async def iter_leads(
        self,
        form_id: str | int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> AsyncIterator[Lead]:
        """The form's leads created after `since` (and before `until`), page after page.

        `since` is the poll's cursor: the `created_time` of the newest lead already taken (Graph
        filters on whole seconds, so a lead of that same second comes back: the inbox's unique
        lead id makes that harmless). Paging cursors are followed, never stored.
        """
        filters = []
        if since is not None:
            filters.append(
                {"field": "time_created", "operator": "GREATER_THAN", "value": _unix(since)}
            )
        if until is not None:
            filters.append(
                {"field": "time_created", "operator": "LESS_THAN", "value": _unix(until)}
            )
        params: dict[str, Any] = {"fields": LEAD_FIELDS, "limit": limit}
        if filters:
            params["filtering"] = json.dumps(filters, separators=(",", ":"))
        async for lead in self._pages(
            "/{version}/{form_id}/leads", {"form_id": str(form_id)}, params, Lead
        ):
            yield lead

    async def list_leads(
        self,
        form_id: str | int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Lead]:
        """All of `iter_leads` at once (a poll's whole window)."""
        return [
            lead async for lead in self.iter_leads(form_id, since=since, until=until, limit=limit)
        ]

    async def check_access(self) -> str:
        """A cheap read proving the token works (`leadflow blocks check`): the Page's forms."""
        forms = await self.list_forms()
        return f"{len(forms)} lead form(s) on page {self.page_id}"

    async def get_lead(self, lead_id: str | int) -> Lead:
        """One lead with its answers (what a `leadgen` webhook points at)."""
        return await self._get(
            "/{version}/{lead_id}",
            Lead.model_validate,
            path_params={"version": self.graph_version, "lead_id": str(lead_id)},
            params={"fields": LEAD_FIELDS},
        )

    async def subscribe_page_to_leadgen(self) -> bool:
        """Install the app on the Page for its `leadgen` field, so new leads reach the app's
        webhook (`POST /{page-id}/subscribed_apps?subscribed_fields=leadgen`).

        Meta keeps one subscription per app and Page, so repeating it is harmless (and it is
        retried like a read). True when Graph answers success; the callback URL itself is set
        in the app dashboard, which no API call here can do.
        """
        return await self._http.request_parsed(
            "POST",
            "/{version}/{page_id}/subscribed_apps",
            lambda body: _Success.model_validate(body).success,
            path_params={"version": self.graph_version, "page_id": self.page_id},
            params={"subscribed_fields": "leadgen"},
            idempotent=True,
        )


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("use an aware datetime: Graph filters on UTC unix seconds")
    return int(moment.timestamp())


# ------------------------------------------------------------------------------------- Block


class GraphCredentials(VendorCredentials, ABC):
    """What Meta's Graph products share (Lead Ads here, WhatsApp Cloud API in blocks.whatsapp):
    the Graph URL and version, the app's webhook secrets, Graph's error envelope, and limits
    counted per app and token rather than per route."""

    base_url: str = Field(default=PRODUCTION_URL, description="Graph API URL, or the sandbox's.")
    graph_version: str = Field(default=GRAPH_VERSION, description="Graph API version, e.g. v23.0.")
    app_secret: SecretStr | None = Field(
        default=None, description="App secret: verifies X-Hub-Signature-256 on webhooks."
    )
    verify_token: SecretStr | None = Field(
        default=None, description="Token echoed in Meta's webhook subscription handshake."
    )

    def graph_http(
        self,
        options: ClientOptions,
        token: SecretStr,
        *,
        rate_limited_codes: frozenset[str],
        auth_codes: frozenset[str],
    ) -> VendorHTTP:
        """A VendorHTTP sending `token` as Bearer; a throttled call pauses the whole token."""
        return self.vendor_http(
            options,
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            error_parser=graph_error,
            rate_limited_codes=rate_limited_codes,
            auth_codes=auth_codes,
            rate_limit_scope="vendor",
        )


class FacebookLeadAdsCredentials(GraphCredentials):
    """Facebook Page access for Lead Ads: the Page token and id, and the app's webhook secrets.

    `page_access_token` needs leads_retrieval, pages_show_list, pages_read_engagement and
    pages_manage_ads. `app_secret` checks the `X-Hub-Signature-256` of leadgen webhooks and
    `verify_token` answers Meta's subscription handshake (both read by webhooks/).

    Example:
        ```python
        from blocks import FacebookLeadAdsCredentials

        facebook = await FacebookLeadAdsCredentials.load("default")
        async with facebook.get_client() as client:
            lead = await client.get_lead("555971704561545")
        ```
    """

    _block_type_name: ClassVar[str] = "Facebook Lead Ads Credentials"
    _block_type_slug: ClassVar[str] = "leadflow-facebook-lead-ads-credentials"
    _description: ClassVar[str] = (
        "A Facebook Page's access token and id (Lead Ads forms and leads) and the app secret "
        "and verify token of its leadgen webhook."
    )
    _logo_url = HttpUrl("https://www.facebook.com/favicon.ico")
    _documentation_url = HttpUrl(
        "https://developers.facebook.com/docs/marketing-api/guides/lead-ads/retrieving"
    )
    vendor: ClassVar[str] = VENDOR

    page_id: str = Field(description="The Facebook Page whose lead forms are read.")
    page_access_token: SecretStr = Field(description="Page access token (leads_retrieval).")
    calls_per_hour: int = Field(
        default=200,
        ge=1,
        description="Client-side budget; Meta allows 200 x 24 x leads of the last 90 days per day.",
    )

    def _account_secrets(self) -> tuple[str | None, ...]:
        return (self.page_access_token.get_secret_value(),)

    def _published_rate_limit(self) -> RateLimit:
        return RateLimit(self.calls_per_hour, per=3600.0, burst=min(self.calls_per_hour, 50))

    def get_client(self, **options: Unpack[ClientOptions]) -> FacebookLeadAdsClient:
        """A client reading this Page with its token, under the process's shared rate limit.

        Graph counts its limits per app and Page, not per route: a throttled call pauses them
        all (`rate_limit_scope="vendor"`).
        """
        http = self.graph_http(
            options,
            self.page_access_token,
            rate_limited_codes=GRAPH_RATE_LIMIT_CODES,
            auth_codes=GRAPH_AUTH_CODES,
        )
        return FacebookLeadAdsClient(http, page_id=self.page_id, graph_version=self.graph_version)
