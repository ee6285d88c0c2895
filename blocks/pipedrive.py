"""Pipedrive: the credentials Block and the async client for persons, deals, fields and notes.

Where it sits: right after the data-quality gate a qualified lead becomes a Pipedrive person and a
deal carrying leadflow's lead id in a custom field; a salesperson wins or loses the deal. The tasks
(tasks/pipedrive*.py) compose these vendor operations into upserts — look up by e-mail, phone or
the lead-id field first, create only when nothing matches — because Pipedrive has no idempotency
key (contracts README §2.9). This client only exposes the vendor's operations, one method each:

- API v2: persons (search exact by e-mail/phone, create, update, get), deals (search by custom
  field, create, update — won/lost —, get);
- API v1, for what v2 lacks: deal fields (list, create; a custom field's key is a 40-hex hash) and
  notes (list by deal, create).

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
        found = await pipedrive.search_deals(lead_id)  # the lead-id custom field, exact
        if not found.items:
            deal = await pipedrive.create_deal(
                DealCreate(title="Site", person_id=person.id, custom_fields={field_key: lead_id})
            )
        await pipedrive.update_deal(deal_id, DealUpdate(status="won"))
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, Self, get_args

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from blocks.errors import AuthenticationError, PermanentError, RateLimitedError, TransientError
from blocks.http import (
    HttpPolicy,
    RateLimit,
    RateLimitWaitTooLong,
    VendorClient,
    VendorHTTP,
    credential_fingerprint,
    parse_retry_after,
    shared_rate_limit,
)
from blocks.masking import mask_text
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
)

__all__ = ["PipedriveClient", "PipedriveCredentials", "PipedriveOAuth", "pipedrive_error"]

VENDOR = "pipedrive"
PRODUCTION_URL = "https://api.pipedrive.com"
OAUTH_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL
#: published burst limits per rolling 2 s on the smallest plan (contracts README §2.8)
API_TOKEN_BURST = 20
OAUTH_BURST = 80

#: x-token-cost of each operation, as the OpenAPI files declare it (contracts README §2.8):
#: v2 search 20, v2 POST/PATCH 5, v2 GET by id 1; v1 GET /dealFields 20, POST /dealFields 10,
#: v1 GET /notes 20, POST /notes 10 (tests/blocks/test_pipedrive.py pins them to the spec)
TOKEN_COST: dict[str, int] = {
    "search": 20,
    "create": 5,
    "update": 5,
    "get": 1,
    "list_fields": 20,
    "create_field": 10,
    "list_notes": 20,
    "create_note": 10,
}


def pipedrive_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from `{"success": false, "error": ..., "error_info": ..., "errorCode"}`."""
    try:
        body = response.json()
    except ValueError:
        return None, response.reason_phrase or f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return None, response.reason_phrase or f"HTTP {response.status_code}"
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
        tokens = OAuthTokens.model_validate(response.json())
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

    async def async_auth_flow(  # type: ignore[override]
        self, request: httpx.Request
    ) -> Any:
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
        *,
        path_params: dict[str, str | int] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
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
        try:
            body = response.json()
        except ValueError:
            raise TransientError(
                VENDOR,
                f"answer was not JSON (status {response.status_code})",
                method=method,
                path=path,
                status=response.status_code,
            ) from None
        if not isinstance(body, dict) or body.get("success") is False:
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
        return body

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
        params: dict[str, Any] = {
            "term": term,
            "fields": field,
            "exact_match": "true" if exact_match else "false",
            "limit": limit,
        }
        if cursor:
            params["cursor"] = cursor
        body = await self._call("search", "GET", "/api/v2/persons/search", params=params)
        items = (body.get("data") or {}).get("items") or []
        matches = [
            PersonMatch.model_validate({**item["item"], "result_score": item.get("result_score")})
            for item in items
        ]
        return Page[PersonMatch](items=matches, next_cursor=self._next_cursor(body))

    async def get_person(self, person_id: int) -> Person:
        body = await self._call("get", "GET", "/api/v2/persons/{id}", path_params={"id": person_id})
        return Person.model_validate(body["data"])

    async def create_person(self, person: PersonCreate) -> Person:
        body = await self._call("create", "POST", "/api/v2/persons", json=person.payload())
        return Person.model_validate(body["data"])

    async def update_person(self, person_id: int, changes: PersonUpdate) -> Person:
        body = await self._call(
            "update",
            "PATCH",
            "/api/v2/persons/{id}",
            path_params={"id": person_id},
            json=changes.payload(),
        )
        return Person.model_validate(body["data"])

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
        params: dict[str, Any] = {
            "term": term,
            "fields": field,
            "exact_match": "true" if exact_match else "false",
            "limit": limit,
        }
        if status:
            params["status"] = status
        if person_id is not None:
            params["person_id"] = person_id
        if cursor:
            params["cursor"] = cursor
        body = await self._call("search", "GET", "/api/v2/deals/search", params=params)
        items = (body.get("data") or {}).get("items") or []
        matches = [
            DealMatch.model_validate({**item["item"], "result_score": item.get("result_score")})
            for item in items
        ]
        return Page[DealMatch](items=matches, next_cursor=self._next_cursor(body))

    async def get_deal(self, deal_id: int) -> Deal:
        body = await self._call("get", "GET", "/api/v2/deals/{id}", path_params={"id": deal_id})
        return Deal.model_validate(body["data"])

    async def create_deal(self, deal: DealCreate) -> Deal:
        body = await self._call("create", "POST", "/api/v2/deals", json=deal.payload())
        return Deal.model_validate(body["data"])

    async def update_deal(self, deal_id: int, changes: DealUpdate) -> Deal:
        """PATCH a deal: e.g. `DealUpdate(status="won")` or `status="lost", lost_reason=...`."""
        body = await self._call(
            "update",
            "PATCH",
            "/api/v2/deals/{id}",
            path_params={"id": deal_id},
            json=changes.payload(),
        )
        return Deal.model_validate(body["data"])

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
            body = await self._call(
                "list_fields",
                "GET",
                "/api/v1/dealFields",
                params={"start": start, "limit": 500},
            )
            fields.extend(DealField.model_validate(item) for item in body.get("data") or [])
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return fields
            start = int(pagination.get("next_start") or start + 500)

    async def create_deal_field(self, field: DealFieldCreate) -> DealField:
        """Create a custom deal field; its `key` (40 hex) is how v2 addresses its values."""
        body = await self._call("create_field", "POST", "/api/v1/dealFields", json=field.payload())
        return DealField.model_validate(body["data"])

    # -- notes (v1)

    async def list_notes(self, *, deal_id: int, start: int = 0, limit: int = 100) -> Page[Note]:
        body = await self._call(
            "list_notes",
            "GET",
            "/api/v1/notes",
            params={"deal_id": deal_id, "start": start, "limit": limit},
        )
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        next_start = (
            int(pagination["next_start"])
            if pagination.get("more_items_in_collection")
            and pagination.get("next_start") is not None
            else None
        )
        return Page[Note](
            items=[Note.model_validate(item) for item in body.get("data") or []],
            next_start=next_start,
        )

    async def create_note(self, note: NoteCreate) -> Note:
        body = await self._call("create_note", "POST", "/api/v1/notes", json=note.payload())
        return Note.model_validate(body["data"])


# ------------------------------------------------------------------------------------- Block


class PipedriveCredentials(Block):
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
    _logo_url: ClassVar[str] = "https://www.pipedrive.com/favicon.ico"
    _documentation_url: ClassVar[str] = "https://developers.pipedrive.com/docs/api/v1"

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
    concurrency_limit_name: str | None = Field(
        default=None,
        description="Prefect global concurrency/rate limit the tasks take before calling "
        "Pipedrive (across processes).",
    )

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        if (self.api_token is None) == (self.oauth_access_token is None):
            raise ValueError("give exactly one of api_token or oauth_access_token")
        return self

    @classmethod
    def from_sandbox(cls, base_url: str, credentials: dict[str, str]) -> Self:
        """The Block for a sandbox, from what its admin API lists (`leadflow blocks init`).

        The API token is used: the sandbox has no OAuth token endpoint to refresh against.
        """
        return cls(base_url=base_url, api_token=SecretStr(credentials["api_token"]))

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

    def get_client(
        self,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> PipedriveClient:
        """A PipedriveClient on this Block's credentials, sharing the process's rate limit."""
        fingerprint = credential_fingerprint(self._secret())
        burst = shared_rate_limit(
            VENDOR, fingerprint, rate=self.requests_per_2s, per=2.0, burst=self.requests_per_2s
        )
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
        http = VendorHTTP(
            VENDOR,
            self.base_url,
            auth=auth,
            headers=headers,
            rate_limit=burst,
            error_parser=pipedrive_error,
            policy=policy,
            transport=transport,
        )
        return PipedriveClient(http, daily_budget=daily)
