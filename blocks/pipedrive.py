"""Pipedrive: the credentials Block and the async client for persons, deals, fields and notes.

Where it sits: right after the data-quality gate a qualified lead becomes a Pipedrive person and a
deal carrying leadflow's lead id in a custom field; a salesperson wins or loses the deal. The tasks
(tasks/pipedrive*.py) compose these vendor operations into upserts — look up by e-mail, phone or
the lead-id field first, create only when nothing matches — because Pipedrive has no idempotency
key (contracts README §2.9). This client only exposes the vendor's operations, one method each:

- API v2: persons (search exact by e-mail/phone, create, update, get), deals (search by custom
  field, create, update — won/lost —, get);
- API v1, for what v2 lacks: deal fields (list, create; a custom field's key is a 40-hex hash),
  notes (list by deal, create) and webhook subscriptions (list, create).

Authentication is an API token in the `x-api-token` header, or OAuth 2.0 Bearer whose access
token is refreshed before it expires and once on a 401 (`PipedriveOAuth`). Rate limits: the burst
limit per token (a rolling 2-second window; 20 requests per 2 s on the smallest api_token plan,
80 with OAuth) is the shared RateLimit, and the optional daily token budget is spent by each
operation's `x-token-cost` (search 20, create/update 5, get 1; v1 field and note lists 20).
A call that would wait longer than the policy's total timeout for either budget raises
RateLimitedError with the wait as `retry_after`, so Prefect retries the task later.

How to use it::

    from blocks import PipedriveCredentials
    from blocks.pipedrive_models import DealCreate, DealUpdate

    credentials = await PipedriveCredentials.load("default")
    async with credentials.get_client() as pipedrive:
        field = await pipedrive.ensure_deal_field(DealFieldCreate(name="leadflow lead id",
                                                                  field_type="varchar"))
        deal = await pipedrive.find_by_reference(lead_id, field_key=field.key)
        if deal is None:
            deal = await pipedrive.create_deal(
                DealCreate(title="Site", person_id=person.id, custom_fields={field.key: lead_id})
            )
        await pipedrive.update_deal(deal.id, DealUpdate(stage_id=3))

Every answer is read through the HTTP policy's `read_answer`: a 2xx that is not JSON, is cut
short or lacks `data` is a TransientError for a read and an UnknownOutcomeError for a write.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, Self, TypeVar, Unpack, get_args

import httpx
from pydantic import BaseModel, Field, HttpUrl, SecretStr, model_validator

from blocks.credentials import ClientOptions, VendorCredentials
from blocks.errors import AuthenticationError, PermanentError, RateLimitedError, TransientError
from blocks.http import (
    RateLimit,
    RateLimitWaitTooLong,
    VendorClient,
    VendorHTTP,
    credential_fingerprint,
    json_object,
    parse_retry_after,
    shared_rate_limit,
    status_text,
)
from blocks.pipedrive_models import (
    Deal,
    DealCreate,
    DealField,
    DealFieldCreate,
    DealMatch,
    DealSearchField,
    DealStatus,
    DealUpdate,
    Note,
    NoteCreate,
    OAuthTokens,
    Page,
    Person,
    PersonCreate,
    PersonMatch,
    PersonSearchField,
    PersonUpdate,
    Webhook,
    WebhookCreate,
)
from leadflow.privacy import mask_text

__all__ = ["PipedriveClient", "PipedriveCredentials", "PipedriveOAuth", "pipedrive_error"]

T = TypeVar("T")

VENDOR = "pipedrive"
PRODUCTION_URL = "https://api.pipedrive.com"
OAUTH_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL
#: published burst limits per rolling 2 s on the smallest plan (contracts README §2.8)
API_TOKEN_BURST = 20
OAUTH_BURST = 80

#: x-token-cost of each operation, as the OpenAPI files declare it (contracts README §2.8):
#: v2 search 20, v2 POST/PATCH 5, v2 GET by id 1; v1 GET /dealFields 20, POST /dealFields 10,
#: v1 GET /notes 20, POST /notes 10, GET and POST /webhooks 10 each (tests/blocks/ pin them to
#: the spec)
TOKEN_COST: dict[str, int] = {
    "search": 20,
    "create": 5,
    "update": 5,
    "get": 1,
    "list_fields": 20,
    "create_field": 10,
    "list_notes": 20,
    "create_note": 10,
    "list_webhooks": 10,
    "create_webhook": 10,
}


def pipedrive_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from `{"success": false, "error": ..., "error_info": ..., "errorCode"}`."""
    body = json_object(response)
    if body is None:
        return None, status_text(response)
    code = body.get("errorCode") or body.get("error_code")
    message = body.get("error") or body.get("message") or response.reason_phrase
    return (None if code is None else str(code), str(message))


def _searchable(field: str, allowed: Any) -> None:
    if field not in get_args(allowed):
        raise ValueError(f"Pipedrive searches only {', '.join(get_args(allowed))}, not {field!r}")


# ------------------------------------------------------------------------------------- OAuth


class PipedriveOAuth(httpx.Auth):
    """OAuth 2.0 Bearer with refresh: before the token expires, and once after a 401.

    The refresh goes through the same client (so through the same transport in tests), as the
    form POST Pipedrive documents: Basic base64(client_id:client_secret), grant_type=refresh_token.
    A failed refresh raises AuthenticationError: the Block's refresh token must be replaced.
    `on_refresh` receives the new tokens (Pipedrive may rotate the refresh token) so the caller
    can persist them.
    """

    requires_response_body = True

    def __init__(
        self,
        *,
        access_token: str,
        refresh_token: str | None,
        client_id: str | None,
        client_secret: str | None,
        token_url: str = OAUTH_TOKEN_URL,
        expires_at: float | None = None,
        clock: Callable[[], float] = time.time,
        on_refresh: Callable[[OAuthTokens], Awaitable[None] | None] | None = None,
        refresh_margin: float = 60.0,
    ) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_url = token_url
        self.expires_at = expires_at
        self._clock = clock
        self._on_refresh = on_refresh
        self._margin = refresh_margin
        # one lock per event loop: an asyncio.Lock belongs to the loop that first waits on it,
        # and the client may be used from several loops (see VendorHTTP._client)
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.refreshes = 0

    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)

    def _expiring(self) -> bool:
        return self.expires_at is not None and self._clock() >= self.expires_at - self._margin

    def _refresh_request(self) -> httpx.Request:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return httpx.Request(
            "POST",
            self.token_url,
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "refresh_token", "refresh_token": self.refresh_token or ""},
        )

    async def _accept(self, response: httpx.Response) -> None:
        if response.status_code in (429, 500, 502, 503, 504):
            # the token endpoint is down, not the refresh token wrong: try again later
            raise TransientError(
                VENDOR,
                f"OAuth token refresh answered {response.status_code}",
                method="POST",
                path="/oauth/token",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if response.status_code != 200:
            code, message = pipedrive_error(response)
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("error_description"):
                code, message = str(body.get("error")), str(body["error_description"])
            raise AuthenticationError(
                VENDOR,
                response.status_code,
                code,
                f"OAuth token refresh failed: {mask_text(message)}",
                method="POST",
                path="/oauth/token",
            )
        try:
            tokens = OAuthTokens.model_validate(response.json())
        except ValueError:  # a proxy's page or a cut answer: the refresh may be tried again
            raise TransientError(
                VENDOR,
                "the OAuth token answer could not be read",
                method="POST",
                path="/oauth/token",
                status=response.status_code,
            ) from None
        self.access_token = tokens.access_token
        if tokens.refresh_token:
            self.refresh_token = tokens.refresh_token
        self.expires_at = self._clock() + tokens.expires_in
        self.refreshes += 1
        if self._on_refresh is not None:
            result = self._on_refresh(tokens)
            if result is not None:
                await result

    def _authorize(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.access_token}"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("PipedriveOAuth is used by the async client only")

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        if self._expiring() and self.can_refresh:
            async with lock:
                if self._expiring():  # another request may have refreshed meanwhile
                    refresh_response = yield self._refresh_request()
                    await refresh_response.aread()
                    await self._accept(refresh_response)
        sent_with = self.access_token
        self._authorize(request)
        response = yield request
        if response.status_code != 401 or not self.can_refresh:
            return
        async with lock:
            if self.access_token == sent_with:  # nobody refreshed since this request went out
                refresh_response = yield self._refresh_request()
                await refresh_response.aread()
                await self._accept(refresh_response)
        self._authorize(request)
        yield request


# ------------------------------------------------------------------------------------ client


class PipedriveClient(VendorClient):
    """Pipedrive's vendor operations for leadflow, typed in and out. Build it with the Block.

    Use as an async context manager (or call `aclose()`): it owns one connection pool.
    """

    def __init__(self, http: VendorHTTP, *, daily_budget: RateLimit | None = None) -> None:
        super().__init__(http)
        self._daily_budget = daily_budget

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        read: Callable[[dict[str, Any]], T],
        *,
        path_params: dict[str, str | int] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> T:
        """One operation: spend its token cost, send, and `read` the answer's envelope.

        `{"success": false}` in a 2xx is Pipedrive refusing (PermanentError); a body that is
        not an object, or that `read` cannot take apart, is the HTTP policy's unreadable answer.
        """
        if self._daily_budget is not None:
            policy = self._http.policy
            try:
                await self._daily_budget.acquire(
                    TOKEN_COST[operation], sleep=policy.sleep, max_wait=policy.total_timeout
                )
            except RateLimitWaitTooLong as too_long:
                # the day's budget is spent: a task retries later, nobody sleeps for hours
                raise RateLimitedError(
                    VENDOR,
                    f"the daily API token budget is spent for {too_long.wait:.0f}s more",
                    retry_after=too_long.wait,
                    method=method,
                    path=path,
                ) from None
        response = await self._http.request(
            method, path, path_params=path_params, params=params, json=json
        )

        def checked(body: Any) -> T:
            if not isinstance(body, dict):
                raise TypeError("the answer is not an object")
            if body.get("success") is False:
                code, message = pipedrive_error(response)
                raise PermanentError(
                    VENDOR,
                    response.status_code,
                    code,
                    mask_text(message),
                    body,
                    method=method,
                    path=path,
                )
            return read(body)

        return self._http.read_answer(response, checked, method=method, path=path)

    async def _search(self, path: str, model: type[M], params: dict[str, Any]) -> Page[M]:
        """One page of a v2 search endpoint's hits, read as `model`."""
        return await self._call(
            "search", "GET", path, lambda body: _search_page(body, model), params=params
        )

    @staticmethod
    def _next_cursor(body: dict[str, Any]) -> str | None:
        additional = body.get("additional_data") or {}
        cursor = additional.get("next_cursor")
        return str(cursor) if cursor else None

    # -- persons (v2)

    async def search_persons(
        self,
        term: str,
        *,
        field: PersonSearchField = "email",
        exact_match: bool = True,
        limit: int = 10,
        cursor: str | None = None,
    ) -> Page[PersonMatch]:
        """Persons whose `field` (email, phone, name, custom_fields, notes) matches `term`.

        Exact match by default: the upsert decides on identity, and a fuzzy hit would merge two
        different people. A field Pipedrive does not search is refused before anything is sent.
        """
        _searchable(field, PersonSearchField)
        params = _search_query(term, field, exact_match, limit, cursor=cursor)
        return await self._search("/api/v2/persons/search", PersonMatch, params)

    async def find_person(
        self, *, email: str | None = None, phone: str | None = None
    ) -> PersonMatch | None:
        """The person whose e-mail (first) or phone is exactly this, or None.

        Give the normalised values (lower-case e-mail, E.164 phone); each is one exact search
        (token cost 20). The best-scored match wins.
        """
        if email is None and phone is None:
            raise ValueError("find_person needs an email or a phone")
        searches: tuple[tuple[PersonSearchField, str | None], ...] = (
            ("email", email),
            ("phone", phone),
        )
        for field, term in searches:
            if term:
                page = await self.search_persons(term, field=field, exact_match=True, limit=1)
                if page.items:
                    return page.items[0]
        return None

    async def get_person(self, person_id: int) -> Person:
        return await self._call(
            "get", "GET", "/api/v2/persons/{id}", _data(Person), path_params={"id": person_id}
        )

    async def create_person(self, person: PersonCreate) -> Person:
        return await self._call(
            "create", "POST", "/api/v2/persons", _data(Person), json=person.payload()
        )

    async def update_person(self, person_id: int, changes: PersonUpdate) -> Person:
        return await self._update("/api/v2/persons/{id}", person_id, changes, Person)

    # -- deals (v2)

    async def search_deals(
        self,
        term: str,
        *,
        field: DealSearchField = "custom_fields",
        exact_match: bool = True,
        status: DealStatus | None = None,
        person_id: int | None = None,
        limit: int = 10,
        cursor: str | None = None,
    ) -> Page[DealMatch]:
        """Deals whose `field` (custom_fields by default: leadflow's lead-id field) matches."""
        _searchable(field, DealSearchField)
        if status is not None and status not in get_args(DealStatus):
            raise ValueError(f"deal search status must be one of {get_args(DealStatus)}")
        params = _search_query(
            term, field, exact_match, limit, cursor=cursor, status=status, person_id=person_id
        )
        return await self._search("/api/v2/deals/search", DealMatch, params)

    async def find_by_reference(self, lead_id: str, *, field_key: str) -> Deal | None:
        """The deal whose lead-id custom field (`field_key`, 40 hex) holds exactly `lead_id`.

        An exact custom-field search, then each hit read back and checked on that very field:
        a deal that only mentions the id in another custom field is not ours. Open, won and
        lost deals all count (a lost deal is still the lead's). Cost: 20 + 1 per hit.
        """
        page = await self.search_deals(lead_id, field="custom_fields", exact_match=True)
        for match in page.items:
            deal = await self.get_deal(match.id)
            if str(deal.custom_fields.get(field_key)) == lead_id:
                return deal
        return None

    async def get_deal(self, deal_id: int) -> Deal:
        return await self._call(
            "get", "GET", "/api/v2/deals/{id}", _data(Deal), path_params={"id": deal_id}
        )

    async def create_deal(self, deal: DealCreate) -> Deal:
        return await self._call("create", "POST", "/api/v2/deals", _data(Deal), json=deal.payload())

    async def update_deal(self, deal_id: int, changes: DealUpdate) -> Deal:
        """PATCH a deal: its stage (`DealUpdate(stage_id=3)`), `status="won"`, or
        `status="lost", lost_reason=...`."""
        return await self._update("/api/v2/deals/{id}", deal_id, changes, Deal)

    async def _update(
        self, path: str, object_id: int, changes: PersonUpdate | DealUpdate, model: type[M]
    ) -> M:
        """PATCH only the fields `changes` sets (idempotent: safe to repeat)."""
        return await self._call(
            "update",
            "PATCH",
            path,
            _data(model),
            path_params={"id": object_id},
            json=changes.payload(),
        )

    async def check_access(self) -> str:
        """A cheap read proving the credentials work (`leadflow blocks check`): deal fields."""
        fields = await self.list_deal_fields()
        return f"{len(fields)} deal field(s)"

    # -- deal fields (v1)

    async def list_deal_fields(self) -> list[DealField]:
        """Every deal field, built-in and custom, following v1 offset pages to the end."""
        fields: list[DealField] = []
        start = 0
        while True:
            page = await self._call(
                "list_fields",
                "GET",
                "/api/v1/dealFields",
                lambda body: _offset_page(body, DealField),
                params={"start": start, "limit": 500},
            )
            fields.extend(page.items)
            if page.next_start is None:
                return fields
            start = page.next_start

    async def find_deal_field(self, name: str) -> DealField | None:
        """The deal field called exactly `name` (built-in or custom), or None."""
        return next((field for field in await self.list_deal_fields() if field.name == name), None)

    async def ensure_deal_field(self, field: DealFieldCreate) -> DealField:
        """The deal field of this name, created when the company has none yet.

        Not atomic across processes: two first runs at once may each create one; the setup
        task runs it once (say at deployment) and keeps the `key`.
        """
        return await self.find_deal_field(field.name) or await self.create_deal_field(field)

    async def create_deal_field(self, field: DealFieldCreate) -> DealField:
        """Create a custom deal field; its `key` (40 hex) is how v2 addresses its values."""
        return await self._call(
            "create_field", "POST", "/api/v1/dealFields", _data(DealField), json=field.payload()
        )

    # -- notes (v1)

    async def list_notes(self, *, deal_id: int, start: int = 0, limit: int = 100) -> Page[Note]:
        return await self._call(
            "list_notes",
            "GET",
            "/api/v1/notes",
            lambda body: _offset_page(body, Note),
            params={"deal_id": deal_id, "start": start, "limit": limit},
        )

    async def create_note(self, note: NoteCreate) -> Note:
        """Add a note to a deal or person (`NoteCreate(content=..., deal_id=...)`)."""
        return await self._call(
            "create_note", "POST", "/api/v1/notes", _data(Note), json=note.payload()
        )

    # -- webhooks (v1)

    async def list_webhooks(self) -> list[Webhook]:
        """The company's active webhook subscriptions (v1 lists them all at once, no pages)."""
        return await self._call(
            "list_webhooks",
            "GET",
            "/api/v1/webhooks",
            lambda body: [Webhook.model_validate(item) for item in body["data"] or []],
        )

    async def create_webhook(self, webhook: WebhookCreate) -> Webhook:
        """Subscribe a URL, once: Pipedrive makes a second identical subscription if asked,
        so `list_webhooks` first (`leadflow webhooks register` does)."""
        return await self._call(
            "create_webhook", "POST", "/api/v1/webhooks", _data(Webhook), json=webhook.payload()
        )


M = TypeVar("M", bound=BaseModel)


def _search_query(
    term: str, field: str, exact_match: bool, limit: int, **filters: object
) -> dict[str, Any]:
    """The query of a v2 search: the term, where to look, exact or not, and the set filters."""
    query: dict[str, Any] = {
        "term": term,
        "fields": field,
        "exact_match": "true" if exact_match else "false",
        "limit": limit,
    }
    query.update({name: value for name, value in filters.items() if value})
    return query


def _data(model: type[M]) -> Callable[[dict[str, Any]], M]:
    """Read `{"success": true, "data": {...}}` as `model`."""
    return lambda body: model.model_validate(body["data"])


def _search_page(body: dict[str, Any], model: type[M]) -> Page[M]:
    """A v2 search answer: `data.items[].item` (with its score) and the next cursor."""
    items = (body.get("data") or {}).get("items") or []
    matches = [
        model.model_validate({**item["item"], "result_score": item.get("result_score")})
        for item in items
    ]
    return Page[model](items=matches, next_cursor=PipedriveClient._next_cursor(body))  # type: ignore[valid-type]


def _offset_page(body: dict[str, Any], model: type[M]) -> Page[M]:
    """A v1 list answer: `data[]` and `additional_data.pagination` (next_start when more)."""
    pagination = (body.get("additional_data") or {}).get("pagination") or {}
    next_start = (
        int(pagination["next_start"])
        if pagination.get("more_items_in_collection") and pagination.get("next_start") is not None
        else None
    )
    items = [model.model_validate(item) for item in body.get("data") or []]
    return Page[model](items=items, next_start=next_start)  # type: ignore[valid-type]


# ------------------------------------------------------------------------------------- Block


class PipedriveCredentials(VendorCredentials):
    """Pipedrive credentials and base URL: an API token, or an OAuth app's tokens.

    Give either `api_token` (sent as `x-api-token`) or `oauth_access_token` (Bearer; with
    `oauth_refresh_token`, `oauth_client_id` and `oauth_client_secret` it is refreshed before it
    expires and after a 401). `base_url` is `https://<company>.pipedrive.com` or the OAuth
    `api_domain`; the sandbox's URL in the demo and tests.

    Example:
        ```python
        from blocks import PipedriveCredentials

        credentials = await PipedriveCredentials.load("default")
        async with credentials.get_client() as pipedrive:
            page = await pipedrive.search_persons("maria@example.com", field="email")
        ```
    """

    _block_type_name: ClassVar[str] = "Pipedrive Credentials"
    _block_type_slug: ClassVar[str] = "leadflow-pipedrive-credentials"
    _description: ClassVar[str] = (
        "Pipedrive API token or OAuth tokens and the company's base URL, for leadflow's "
        "persons, deals, deal fields and notes."
    )
    _logo_url = HttpUrl("https://www.pipedrive.com/favicon.ico")
    _documentation_url = HttpUrl("https://developers.pipedrive.com/docs/api/v1")
    vendor: ClassVar[str] = VENDOR

    base_url: str = Field(
        default=PRODUCTION_URL,
        description="https://<company>.pipedrive.com, the OAuth api_domain, or the sandbox URL.",
    )
    api_token: SecretStr | None = Field(default=None, description="API token (x-api-token).")
    oauth_access_token: SecretStr | None = Field(default=None, description="OAuth access token.")
    oauth_refresh_token: SecretStr | None = Field(default=None, description="OAuth refresh token.")
    oauth_client_id: str | None = Field(default=None, description="OAuth app client id.")
    oauth_client_secret: SecretStr | None = Field(
        default=None, description="OAuth app client secret."
    )
    oauth_token_url: str = Field(default=OAUTH_TOKEN_URL, description="OAuth token endpoint.")
    oauth_expires_at: float | None = Field(
        default=None, description="Unix time the access token expires (refreshed a minute early)."
    )
    burst_limit: int | None = Field(
        default=None,
        ge=1,
        description="Requests per rolling 2 s for this token; empty means the smallest plan's "
        "published limit: 20 with an API token, 80 with OAuth.",
    )
    daily_token_budget: int | None = Field(
        default=None,
        ge=1,
        description="The company's daily API token budget (plan x seats); None leaves it to "
        "Pipedrive's 429.",
    )
    save_refreshed_tokens: bool = Field(
        default=True,
        description="Save rotated OAuth tokens back to this Block document after a refresh.",
    )

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        if (self.api_token is None) == (self.oauth_access_token is None):
            raise ValueError("give exactly one of api_token or oauth_access_token")
        return self

    @property
    def requests_per_2s(self) -> int:
        """The burst limit in force: the Block's, or the published one for its kind of token."""
        if self.burst_limit is not None:
            return self.burst_limit
        return API_TOKEN_BURST if self.api_token is not None else OAUTH_BURST

    async def _save_refreshed_tokens(self) -> None:
        """Write rotated tokens back to the saved Block document, when it was loaded from one.

        Pipedrive may rotate the refresh token on each refresh; a process that loads the Block
        tomorrow must find the new one, or its refresh fails with invalid_grant. A failed save
        is logged (masked) and does not fail the vendor call that triggered the refresh.
        """
        name = self._block_document_name
        if not self.save_refreshed_tokens or not name or self._is_anonymous:
            return
        try:
            await self.asave(name, overwrite=True)
        except Exception as error:  # the call itself succeeded; the save is best effort
            logging.getLogger("leadflow.http").warning(
                "pipedrive: could not save refreshed OAuth tokens to block %r: %s",
                name,
                mask_text(f"{type(error).__name__}: {error}"),
            )

    def _secret(self) -> str:
        token = self.api_token or self.oauth_access_token
        assert token is not None  # the validator guarantees one
        return token.get_secret_value()

    def _account_secrets(self) -> tuple[str | None, ...]:
        return (self._secret(),)

    def _published_rate_limit(self) -> RateLimit:
        return RateLimit(self.requests_per_2s, per=2.0, burst=self.requests_per_2s)

    def get_client(self, **options: Unpack[ClientOptions]) -> PipedriveClient:
        """A PipedriveClient on this Block's credentials, sharing the process's rate limit.

        Pipedrive's burst limit and daily budget are per token, not per route: a 429 pauses
        every call of the token (`rate_limit_scope="vendor"`).
        """
        fingerprint = credential_fingerprint(self._secret())
        daily = (
            shared_rate_limit(
                f"{VENDOR}-daily",
                fingerprint,
                rate=self.daily_token_budget,
                per=86_400.0,
                burst=self.daily_token_budget,
            )
            if self.daily_token_budget
            else None
        )
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if self.api_token is not None:
            headers["x-api-token"] = self.api_token.get_secret_value()
        else:
            assert self.oauth_access_token is not None

            async def remember(tokens: OAuthTokens) -> None:
                # keep the Block in step so a later get_client() starts from the new tokens
                self.oauth_access_token = SecretStr(tokens.access_token)
                if tokens.refresh_token:
                    self.oauth_refresh_token = SecretStr(tokens.refresh_token)
                self.oauth_expires_at = time.time() + tokens.expires_in
                await self._save_refreshed_tokens()

            auth = PipedriveOAuth(
                access_token=self.oauth_access_token.get_secret_value(),
                refresh_token=(
                    self.oauth_refresh_token.get_secret_value()
                    if self.oauth_refresh_token
                    else None
                ),
                client_id=self.oauth_client_id,
                client_secret=(
                    self.oauth_client_secret.get_secret_value()
                    if self.oauth_client_secret
                    else None
                ),
                token_url=self.oauth_token_url,
                expires_at=self.oauth_expires_at,
                on_refresh=remember,
            )
        http = self.vendor_http(
            options,
            auth=auth,
            headers=headers,
            error_parser=pipedrive_error,
            rate_limit_scope="vendor",
        )
        return PipedriveClient(http, daily_budget=daily)
