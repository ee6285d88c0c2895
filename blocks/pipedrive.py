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
operation's `x-token-cost` (search 20, create/update 5, get 1...).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, Self

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from blocks.errors import AuthenticationError, PermanentError, TransientError
from blocks.http import HttpPolicy, RateLimit, VendorHTTP, credential_fingerprint, shared_rate_limit
from blocks.masking import mask_text
from blocks.pipedrive_models import (
    Deal,
    DealCreate,
    DealField,
    DealFieldCreate,
    DealMatch,
    DealStatus,
    DealUpdate,
    Note,
    NoteCreate,
    OAuthTokens,
    Page,
    Person,
    PersonCreate,
    PersonMatch,
    PersonUpdate,
)

__all__ = ["PipedriveClient", "PipedriveCredentials", "PipedriveOAuth", "pipedrive_error"]

VENDOR = "pipedrive"
PRODUCTION_URL = "https://api.pipedrive.com"
OAUTH_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL

#: x-token-cost of each operation, from the v2/v1 OpenAPI files (contracts README §2.8)
TOKEN_COST: dict[str, int] = {
    "search": 20,
    "create": 5,
    "update": 5,
    "get": 1,
    "list_fields": 10,
    "create_field": 5,
    "list_notes": 2,
    "create_note": 5,
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
        self._lock: asyncio.Lock | None = None
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
        if self._lock is None:
            self._lock = asyncio.Lock()
        if self._expiring() and self.can_refresh:
            async with self._lock:
                if self._expiring():  # another request may have refreshed meanwhile
                    refresh_response = yield self._refresh_request()
                    await refresh_response.aread()
                    await self._accept(refresh_response)
        sent_with = self.access_token
        self._authorize(request)
        response = yield request
        if response.status_code != 401 or not self.can_refresh:
            return
        async with self._lock:
            if self.access_token == sent_with:  # nobody refreshed since this request went out
                refresh_response = yield self._refresh_request()
                await refresh_response.aread()
                await self._accept(refresh_response)
        self._authorize(request)
        yield request


# ------------------------------------------------------------------------------------ client


class PipedriveClient:
    """Pipedrive's vendor operations for leadflow, typed in and out. Build it with the Block.

    Use as an async context manager (or call `aclose()`): it owns one connection pool.
    """

    def __init__(self, http: VendorHTTP, *, daily_budget: RateLimit | None = None) -> None:
        self._http = http
        self._daily_budget = daily_budget

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

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
            await self._daily_budget.acquire(TOKEN_COST[operation], sleep=self._http.policy.sleep)
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
        field: str = "email",
        exact_match: bool = True,
        limit: int = 10,
        cursor: str | None = None,
    ) -> Page[PersonMatch]:
        """Persons whose `field` (email, phone, name, custom_fields, notes) matches `term`.

        Exact match by default: the upsert decides on identity, and a fuzzy hit would merge two
        different people.
        """
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
        field: str = "custom_fields",
        exact_match: bool = True,
        status: DealStatus | None = None,
        person_id: int | None = None,
        limit: int = 10,
        cursor: str | None = None,
    ) -> Page[DealMatch]:
        """Deals whose `field` (custom_fields by default: leadflow's lead-id field) matches."""
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
    burst_limit: int = Field(
        default=20,
        ge=1,
        description="Requests per rolling 2 s for this token (20 on the smallest api_token plan, "
        "80 with OAuth).",
    )
    daily_token_budget: int | None = Field(
        default=None,
        ge=1,
        description="The company's daily API token budget (plan x seats); None leaves it to "
        "Pipedrive's 429.",
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
            VENDOR, fingerprint, rate=self.burst_limit, per=2.0, burst=self.burst_limit
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

            def remember(tokens: OAuthTokens) -> None:
                # keep the Block in step so a later get_client() starts from the new tokens
                self.oauth_access_token = SecretStr(tokens.access_token)
                if tokens.refresh_token:
                    self.oauth_refresh_token = SecretStr(tokens.refresh_token)
                self.oauth_expires_at = time.time() + tokens.expires_in

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
