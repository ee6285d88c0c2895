"""DocuSign eSignature v2.1: the credentials Block and the async client that sends the contract.

Where it sits: when Pipedrive says a deal is won, the journey sends the service contract as an
envelope created from a template (the client as the "Cliente" role, the journey id in a custom
field, a `transactionId`), then waits for DocuSign Connect to report `envelope-completed` or
`envelope-declined`. The Connect HMAC key lives in this Block too (`connect_hmac_key`): the
webhook service reads it from here to check `X-DocuSign-Signature-1`.

Auth (contracts README §3.2): OAuth 2.0 JWT grant. An assertion `{iss: integration key, sub:
user id, aud: the auth host without scheme, iat, exp ≤ 1 h, scope: "signature impersonation"}`
signed RS256 with the integration's private key is exchanged at `{auth_server}/oauth/token` for
a one-hour access token. There is no refresh token: a new assertion is minted. The token is kept
in a `TokenStore` shared by every client of the credential in the process and reused until five
minutes before it expires; however many callers need a token at once, one mint is made (per event
loop). The client mints a new one and retries once when the REST API answers 401 (a token
revoked or expired early). The private key only ever signs the assertion: it is never logged,
and a key that cannot sign raises an AuthenticationError naming the error's type, not the key.
Across processes each worker mints its own token, which DocuSign allows (tokens are
independent); a task wanting one token per deployment can keep it in a Prefect cache and hand
it over with `TokenStore.replace`.

REST (§3.3-3.5) under `{base_url}/restapi/v2.1/accounts/{account_id}`: create an envelope from
a template, read it, list envelopes by custom field (`custom_field=name=value`, `from_date`
required) or by transaction id; list and create the account's Connect configurations
(`leadflow webhooks register`). Errors are `{errorCode, message}`; the account's hourly and
30-second burst limits answer 429 with `X-RateLimit-*` headers, which the HTTP policy honours.

Idempotency (§3.8): DocuSign has no idempotency key. A create whose answer was lost raises
UnknownOutcomeError; the caller then looks the envelope up by leadflow's reference — the lead id
in the `leadflow_lead_id` custom field, `find_by_reference` — (or by `transactionId`, valid 7
days) before creating it again:

    from blocks import (
        DocuSignCredentials, EnvelopeFromTemplate, TemplateRole, TextCustomField
    )

    docusign = await DocuSignCredentials.load("NAME")
    async with docusign.get_client() as client:
        envelope = await client.find_by_reference("42", since=journey_started_at)
        if envelope is None:
            summary = await client.create_envelope_from_template(
                EnvelopeFromTemplate(
                    template_id=docusign.template_id,
                    template_roles=[
                        TemplateRole(role_name="Cliente", name=..., email=...,
                                     text_tabs={"cpf": "123.456.789-09"})
                    ],
                    custom_fields=[TextCustomField(name=LEAD_ID_FIELD, value="42")],
                    transaction_id="lead:42:contract",
                )
            )
        signed = await client.get_envelope_form_data(summary.envelope_id)  # once completed
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator
from pydantic.alias_generators import to_camel

from blocks.credentials import VendorCredentials
from blocks.errors import AuthenticationError, NotFoundError, PermanentError, TransientError
from blocks.http import (
    HttpPolicy,
    RateLimit,
    SharedObjects,
    VendorClient,
    VendorHTTP,
    credential_fingerprint,
    json_object,
    status_text,
)

__all__ = [
    "DEMO_AUTH_SERVER",
    "DEMO_BASE_URL",
    "LEAD_ID_FIELD",
    "AccessToken",
    "AccessTokens",
    "ConnectConfiguration",
    "DocuSignClient",
    "DocuSignCredentials",
    "Envelope",
    "EnvelopeFormData",
    "EnvelopeFromTemplate",
    "EnvelopeSummary",
    "EnvelopesPage",
    "FormDataItem",
    "NewConnectConfiguration",
    "TemplateRole",
    "TextCustomField",
    "TokenStore",
    "docusign_error",
    "forget_access_tokens",
]

VENDOR = "docusign"
PRODUCTION_BASE_URL = "https://www.docusign.net"
DEMO_BASE_URL = "https://demo.docusign.net"
PRODUCTION_AUTH_SERVER = "https://account.docusign.com"
DEMO_AUTH_SERVER = "https://account-d.docusign.com"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "signature impersonation"
#: DocuSign refuses an assertion whose exp is more than an hour after iat
MAX_ASSERTION_SECONDS = 3600
#: `envelope-status` values after which nothing more happens to an envelope
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "declined", "voided"})
#: a 400 that means "slow down" (too many GETs of one envelope this hour), not "bad request"
RATE_LIMIT_CODES: frozenset[str] = frozenset(
    {"HOURLY_ENVELOPE_POLLING_LIMIT_EXCEEDED", "HOURLY_APIINVOCATION_LIMIT_EXCEEDED"}
)
REST = "/restapi/v2.1/accounts/{account_id}"
BURST_WINDOW_SECONDS = 30.0
#: envelopes carry their custom fields only when asked ("additional information" in v2.1)
INCLUDE = "custom_fields"
#: the envelope custom field holding leadflow's lead id: the envelope's reference
LEAD_ID_FIELD = "leadflow_lead_id"

T = TypeVar("T")


# ------------------------------------------------------------------------------------ models


class _DocuSignModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _flag(value: bool) -> str:
    """DocuSign's booleans are the strings "true" and "false"."""
    return "true" if value else "false"


class TemplateRole(_DocuSignModel):
    """A signer filling one role of the template (templateRole). `role_name` must match it."""

    model_config = ConfigDict(extra="forbid")

    role_name: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    client_user_id: str | None = None
    routing_order: int | None = Field(default=None, ge=1)
    #: the signer's text tabs prefilled by label (say {"cpf": "123.456.789-09"}); the labels
    #: must be the template's
    text_tabs: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"text_tabs"})
        if self.routing_order is not None:
            body["routingOrder"] = str(self.routing_order)
        if self.text_tabs:
            body["tabs"] = {
                "textTabs": [
                    {"tabLabel": label, "value": value} for label, value in self.text_tabs.items()
                ]
            }
        return body


class TextCustomField(_DocuSignModel):
    """An envelope custom field; leadflow puts the journey id in one to find the envelope later."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    value: str = Field(max_length=100)
    show: bool = False
    required: bool = False

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "value": self.value,
            "show": _flag(self.show),
            "required": _flag(self.required),
        }


class EnvelopeFromTemplate(_DocuSignModel):
    """An envelope to create from a template (the envelopeDefinition leadflow sends)."""

    model_config = ConfigDict(extra="forbid")

    template_id: str = Field(min_length=1)
    template_roles: list[TemplateRole] = Field(min_length=1)
    custom_fields: list[TextCustomField] = Field(default_factory=list)
    transaction_id: str | None = Field(default=None, min_length=1, max_length=100)
    email_subject: str | None = Field(default=None, max_length=100)
    email_blurb: str | None = Field(default=None, max_length=10_000)
    status: Literal["sent", "created"] = "sent"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "templateId": self.template_id,
            "templateRoles": [role.to_json() for role in self.template_roles],
            "status": self.status,
        }
        if self.custom_fields:
            body["customFields"] = {
                "textCustomFields": [field.to_json() for field in self.custom_fields]
            }
        if self.transaction_id is not None:
            body["transactionId"] = self.transaction_id
        if self.email_subject is not None:
            body["emailSubject"] = self.email_subject
        if self.email_blurb is not None:
            body["emailBlurb"] = self.email_blurb
        return body


class EnvelopeSummary(_DocuSignModel):
    """What a create answers (envelopeSummary): the id to store in the ledger."""

    envelope_id: str
    status: str
    status_date_time: str | None = None
    uri: str | None = None


class Envelope(_DocuSignModel):
    """An envelope as read back (envelope): its status and the custom fields leadflow set.

    Timestamps stay DocuSign's strings (seven fractional digits do not parse everywhere).
    """

    envelope_id: str
    status: str
    status_changed_date_time: str | None = None
    created_date_time: str | None = None
    sent_date_time: str | None = None
    completed_date_time: str | None = None
    declined_date_time: str | None = None
    voided_date_time: str | None = None
    voided_reason: str | None = None
    transaction_id: str | None = None
    email_subject: str | None = None
    text_custom_fields: dict[str, str] = Field(default_factory=dict, validation_alias="_fields")

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Envelope:
        fields = (payload.get("customFields") or {}).get("textCustomFields") or []
        values = {str(f["name"]): str(f.get("value") or "") for f in fields if "name" in f}
        return cls.model_validate({**payload, "_fields": values})

    @property
    def is_final(self) -> bool:
        """Completed, declined or voided: Connect will send nothing more for it."""
        return self.status in TERMINAL_STATUSES


class FormDataItem(_DocuSignModel):
    """One filled-in field of an envelope (formDataItem): its tab label and value."""

    name: str
    value: str | None = None
    original_value: str | None = None


class EnvelopeFormData(_DocuSignModel):
    """What the signers filled in (envelopeFormData): every field, and per recipient."""

    envelope_id: str | None = None
    status: str | None = None
    form_data: list[FormDataItem] = Field(default_factory=list)
    recipient_form_data: list[dict[str, Any]] = Field(default_factory=list)

    def values(self) -> dict[str, str]:
        """Field name -> value, the envelope's own fields then each signer's (later wins)."""
        found = {item.name: item.value or "" for item in self.form_data}
        for recipient in self.recipient_form_data:
            for item in recipient.get("formData") or []:
                parsed = FormDataItem.model_validate(item)
                found[parsed.name] = parsed.value or ""
        return found


class EnvelopesPage(_DocuSignModel):
    """One page of `GET …/envelopes` (envelopesInformation; DocuSign's counts are strings)."""

    envelopes: list[Envelope]
    result_set_size: int
    total_set_size: int
    start_position: int
    next_uri: str | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> EnvelopesPage:
        return cls.model_validate(
            {
                **payload,
                "envelopes": [Envelope.from_payload(e) for e in payload.get("envelopes") or []],
            }
        )


class NewConnectConfiguration(_DocuSignModel):
    """An account-level Connect configuration to create (connectCustomConfiguration).

    JSON SIM messages (`eventData.version` restv2.1) of the envelope `events` to
    `url_to_publish_to`, for every user of the account, acknowledged and retried. With
    `include_hmac` each message is signed with the account's Connect HMAC keys — keys that only
    DocuSign's admin console makes. `include_data` names what the message carries beyond the
    event (leadflow needs `custom_fields`: the lead id).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    url_to_publish_to: str = Field(min_length=1)
    events: list[str] = Field(min_length=1)
    include_hmac: bool = True
    include_data: list[str] = Field(default_factory=lambda: ["custom_fields"])
    requires_acknowledgement: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "configurationType": "custom",
            "name": self.name,
            "urlToPublishTo": self.url_to_publish_to,
            "allowEnvelopePublish": "true",
            "allUsers": "true",
            "enableLog": "true",
            "deliveryMode": "SIM",
            "events": list(self.events),
            "includeHMAC": _flag(self.include_hmac),
            "requiresAcknowledgement": _flag(self.requires_acknowledgement),
            "eventData": {
                "version": "restv2.1",
                "format": "json",
                "includeData": list(self.include_data),
            },
        }


class ConnectConfiguration(_DocuSignModel):
    """A Connect configuration as DocuSign lists it (the fields leadflow reads; DocuSign's
    "true"/"false" strings read as booleans)."""

    connect_id: str
    url_to_publish_to: str
    name: str | None = None
    allow_envelope_publish: bool = False
    include_hmac: bool = Field(default=False, alias="includeHMAC")
    events: list[str] = Field(default_factory=list)
    envelope_events: list[str] = Field(default_factory=list)

    @field_validator("connect_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _ConnectConfigurations(_DocuSignModel):
    """`GET …/connect` (connectConfigResults): DocuSign counts in a string."""

    configurations: list[ConnectConfiguration] = Field(default_factory=list)
    total_records: int


def docusign_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from `{errorCode, message}` (REST) or `{error, error_description}`."""
    body = json_object(response)
    if body is None:
        return None, status_text(response)
    if "errorCode" in body:
        return str(body["errorCode"]), str(body.get("message") or response.reason_phrase)
    if "error" in body:
        return str(body["error"]), str(body.get("error_description") or body["error"])
    return None, status_text(response)


# ------------------------------------------------------------------------------- access tokens


@dataclass(frozen=True)
class AccessToken:
    """A minted token and when it expires (epoch seconds, the cache's clock)."""

    value: str
    expires_at: float


class TokenStore:
    """The current access token of one credential, shared by every client in the process.

    Why shared: DocuSign asks integrations to reuse a token for its hour rather than mint one
    per call, and every task of a flow run builds its own client. Only the token is shared —
    each client keeps its own connection pool, so clients on different event loops never
    share an httpx client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._mint_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def mint_lock(self) -> asyncio.Lock:
        """The lock every client of the credential on the running loop mints under.

        One per event loop, because an asyncio.Lock belongs to one loop (Prefect runs tasks on
        several): concurrent callers on a loop share one mint; another loop mints at most once.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            lock = self._mint_locks.get(loop)
            if lock is None:
                lock = self._mint_locks[loop] = asyncio.Lock()
            return lock

    def current(self) -> AccessToken | None:
        with self._lock:
            return self._token

    def replace(self, token: AccessToken) -> None:
        with self._lock:
            self._token = token

    def discard(self, value: str) -> None:
        """Forget the token `value`, unless another caller already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None


_token_stores: SharedObjects[str, TokenStore] = SharedObjects()


def shared_token_store(fingerprint: str) -> TokenStore:
    """The one TokenStore of a credential (its fingerprint) in this process."""
    return _token_stores.get(fingerprint, TokenStore)


def forget_access_tokens() -> None:
    """Drop every cached token (tests start each case without one)."""
    _token_stores.clear()


class AccessTokens:
    """JWT-grant access tokens for one integration and user, cached until shortly before expiry.

    Concurrent callers — of this client or of any other client sharing the `TokenStore` —
    wait for a single mint, and the token lands in the store where all of them find it.
    """

    def __init__(
        self,
        http: VendorHTTP,
        *,
        integration_key: str,
        user_id: str,
        private_key: SecretStr,
        audience: str,
        store: TokenStore | None = None,
        token_seconds: int = MAX_ASSERTION_SECONDS,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 60 <= token_seconds <= MAX_ASSERTION_SECONDS:
            raise ValueError("a JWT-grant assertion lives 60 s to 1 h")
        self._http = http
        self.integration_key = integration_key
        self.user_id = user_id
        self._private_key = private_key
        self.audience = audience
        self.store = store or TokenStore()
        self.token_seconds = token_seconds
        self.refresh_margin = refresh_margin
        self._clock = clock
        #: how many tokens this client has minted (read by tests and the benchmark)
        self.minted = 0

    def assertion(self) -> str:
        """The signed JWT exchanged for a token (RS256, claims per contracts README §3.2)."""
        now = int(self._clock())
        claims = {
            "iss": self.integration_key,
            "sub": self.user_id,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.token_seconds,
            "scope": SCOPE,
        }
        try:
            return jwt.encode(
                claims,
                self._private_key.get_secret_value(),
                algorithm="RS256",
                headers={"typ": "JWT"},
            )
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            # an unreadable PEM: the Block must be fixed (the text of exc holds no key material)
            raise AuthenticationError(
                VENDOR,
                None,
                "invalid_private_key",
                f"the private key cannot sign: {type(exc).__name__}",
            ) from None

    def _fresh(self) -> str | None:
        token = self.store.current()
        if token is not None and self._clock() < token.expires_at - self.refresh_margin:
            return token.value
        return None

    async def access_token(self) -> str:
        """A token valid for at least `refresh_margin` more seconds, minted if needed."""
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self.store.mint_lock():
            cached = self._fresh()
            if cached is not None:
                return cached
            return await self._mint()

    def invalidate(self, token: str) -> None:
        """DocuSign refused `token`: the next call mints a new one."""
        self.store.discard(token)

    async def _mint(self) -> str:
        started = self._clock()
        try:
            # Minting creates nothing at DocuSign: safe to retry whatever happened.
            response = await self._http.request(
                "POST",
                "/oauth/token",
                data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()},
                idempotent=True,
            )
        except AuthenticationError:
            raise
        except PermanentError as exc:
            # invalid_grant, consent_required...: the credentials, not the request, are wrong
            raise AuthenticationError(
                VENDOR,
                exc.status,
                exc.code,
                f"the JWT grant was refused: {exc.message}",
                exc.details,
                method=exc.method,
                path=exc.path,
            ) from None
        try:
            body = response.json()
            value = str(body["access_token"])
            lifetime = float(body.get("expires_in", self.token_seconds))
        except (KeyError, TypeError, ValueError, AttributeError):
            # a proxy's page or a cut answer, not DocuSign refusing the grant: mint again later
            raise TransientError(
                VENDOR,
                "the token answer could not be read (no access_token)",
                method="POST",
                path="/oauth/token",
                status=response.status_code,
            ) from None
        self.store.replace(AccessToken(value=value, expires_at=started + lifetime))
        self.minted += 1
        return value

    async def aclose(self) -> None:
        await self._http.aclose()


# ------------------------------------------------------------------------------------ client


class DocuSignClient(VendorClient):
    """Envelopes of one DocuSign account, as one impersonated user. Build it with the Block."""

    def __init__(self, http: VendorHTTP, tokens: AccessTokens, *, account_id: str) -> None:
        super().__init__(http)
        self.tokens = tokens
        self.account_id = account_id

    async def aclose(self) -> None:
        await super().aclose()
        await self.tokens.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with a Bearer token; on a 401, mint a new token and try exactly once more.

        A 401 means DocuSign did nothing, so repeating even a create is safe. Read the answer
        with `_answer` (never `response.json()`), so a body that cannot be read is a VendorError.
        """
        filled = {"account_id": self.account_id, **(path_params or {})}
        for attempt in (1, 2):
            token = await self.tokens.access_token()
            try:
                response = await self._http.request(
                    method,
                    REST + path,
                    path_params=filled,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                    idempotent=idempotent,
                )
            except AuthenticationError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self.tokens.invalidate(token)
            else:
                self._respect_burst_limit(response)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _answer(self, method: str, path: str, read: Callable[[Any], T], **request: Any) -> T:
        """`_request`, then `read` its answer under the HTTP policy's `read_answer` rules."""
        response = await self._request(method, path, **request)
        return self._http.read_answer(response, read, method=method, path=REST + path)

    async def _create(self, path: str, read: Callable[[Any], T], body: Any, **request: Any) -> T:
        """POST a new envelope or configuration, once (DocuSign has no idempotency key)."""
        return await self._answer("POST", path, read, json=body, idempotent=False, **request)

    async def _get(self, path: str, read: Callable[[Any], T], **request: Any) -> T:
        """GET with the account's token (a read: retried through transient failures)."""
        return await self._answer("GET", path, read, **request)

    def _respect_burst_limit(self, response: httpx.Response) -> None:
        """`X-BurstLimit-Remaining: 0`: the next call inside the window would get a 429.

        DocuSign does not say when its 30-second burst window ends, so every client of the
        account holds back for a whole window (the hourly budget's reset the HTTP policy
        already reads from `X-RateLimit-Reset`).
        """
        remaining = response.headers.get("x-burstlimit-remaining")
        if remaining is not None and remaining.strip() == "0" and self._http.rate_limit:
            self._http.rate_limit.hold(BURST_WINDOW_SECONDS)

    async def check_access(self) -> str:
        """A cheap read proving the grant and account work (`leadflow blocks check`)."""
        since = datetime.now(UTC) - timedelta(days=1)
        page = await self.list_envelopes(from_date=since, count=1)
        return f"{page.total_set_size} envelope(s) changed in the last 24 h"

    async def create_envelope_from_template(
        self, envelope: EnvelopeFromTemplate
    ) -> EnvelopeSummary:
        """Create (and by default send) the envelope, once: see the module docstring."""
        return await self._create("/envelopes", EnvelopeSummary.model_validate, envelope.to_json())

    async def get_envelope(self, envelope_id: str) -> Envelope:
        """The envelope's status and custom fields (poll sparingly: prefer Connect)."""
        return await self._get(
            "/envelopes/{envelope_id}",
            Envelope.from_payload,
            path_params={"envelope_id": envelope_id},
            params={"include": INCLUDE},
        )

    async def get_envelope_form_data(self, envelope_id: str) -> EnvelopeFormData:
        """What the signers filled in (the CPF or address the contract asked for), once signed.

        `GET …/envelopes/{envelopeId}/form_data` (Envelopes: getFormData in the v2.1 spec).
        """
        return await self._get(
            "/envelopes/{envelope_id}/form_data",
            EnvelopeFormData.model_validate,
            path_params={"envelope_id": envelope_id},
        )

    async def list_envelopes(
        self,
        *,
        from_date: datetime | None = None,
        custom_field: tuple[str, str] | None = None,
        transaction_ids: list[str] | None = None,
        status: list[str] | None = None,
        count: int = 100,
        start_position: int = 0,
    ) -> EnvelopesPage:
        """One page of envelopes. DocuSign requires `from_date` unless transaction ids are given."""
        if from_date is None and not transaction_ids:
            raise ValueError("DocuSign lists envelopes only from a from_date or by transaction id")
        if not 1 <= count <= 1000:
            raise ValueError("DocuSign pages hold 1 to 1000 envelopes")
        params: dict[str, str | int] = {
            "count": count,
            "start_position": start_position,
            "include": INCLUDE,
        }
        if from_date is not None:
            params["from_date"] = _utc(from_date)
        if custom_field is not None:
            name, value = custom_field
            params["custom_field"] = f"{name}={value}"
        if transaction_ids:
            params["transaction_ids"] = ",".join(transaction_ids)
        if status:
            params["status"] = ",".join(status)
        return await self._get("/envelopes", EnvelopesPage.from_payload, params=params)

    async def find_by_reference(self, lead_id: str, *, since: datetime) -> Envelope | None:
        """The newest envelope whose `leadflow_lead_id` custom field is `lead_id`, or None.

        `since` is when the lead's journey started (DocuSign searches only from a date).
        """
        return await self.find_envelope_by_custom_field(LEAD_ID_FIELD, lead_id, from_date=since)

    async def find_envelope_by_custom_field(
        self, name: str, value: str, *, from_date: datetime
    ) -> Envelope | None:
        """The most recent envelope whose custom field `name` is `value`, changed since from_date.

        `from_date` should be the journey's start: DocuSign searches only from a date.
        """
        found: list[Envelope] = []
        start = 0
        while True:
            page = await self.list_envelopes(
                from_date=from_date, custom_field=(name, value), start_position=start, count=100
            )
            # asked with include=custom_fields, so an envelope without the field is not ours
            # (a filter DocuSign ignored must not hand the journey someone else's envelope)
            found.extend(e for e in page.envelopes if e.text_custom_fields.get(name) == value)
            start += page.result_set_size
            if not page.next_uri or page.result_set_size == 0:
                break
        return _latest(found)

    async def find_envelope_by_transaction_id(self, transaction_id: str) -> Envelope | None:
        """The envelope created with this transactionId in the last 7 days, if any.

        An envelope naming another transaction id is never returned; one that names none is
        accepted, since DocuSign filtered on the id and may leave it out of list entries.
        """
        page = await self.list_envelopes(transaction_ids=[transaction_id])
        matches = [e for e in page.envelopes if e.transaction_id in (None, transaction_id)]
        return _latest(matches)

    async def void_envelope(self, envelope_id: str, reason: str) -> None:
        """Void an envelope that is not finished (the deal was lost, or it was sent twice).

        Safe to repeat: the PUT is retried through server errors, and when DocuSign refuses a
        void because the envelope is already voided (an earlier attempt whose answer was lost),
        that is success, not an error.
        """
        if not reason:
            raise ValueError("DocuSign requires a voided reason")
        try:
            await self._request(
                "PUT",
                "/envelopes/{envelope_id}",
                path_params={"envelope_id": envelope_id},
                json={"status": "voided", "voidedReason": reason},
            )
        except PermanentError as refused:
            if isinstance(refused, AuthenticationError | NotFoundError):
                raise
            if (await self.get_envelope(envelope_id)).status != "voided":
                raise

    # -- Connect (account level)

    async def list_connect_configurations(self) -> list[ConnectConfiguration]:
        """The account's Connect configurations (needs an account admin's grant)."""
        return await self._get(
            "/connect",
            lambda body: _ConnectConfigurations.model_validate(body).configurations,
        )

    async def create_connect_configuration(
        self, configuration: NewConnectConfiguration
    ) -> ConnectConfiguration:
        """Create an account-level Connect configuration, once: DocuSign makes a second one for
        the same URL (each event would come twice), so `list_connect_configurations` first."""
        return await self._create(
            "/connect", ConnectConfiguration.model_validate, configuration.to_json()
        )


def _latest(envelopes: list[Envelope]) -> Envelope | None:
    """The most recently created envelope; DocuSign's listing order breaks ties (later wins).

    Why: after a retried journey step two envelopes may exist; the newest is the one to track
    (the older one should then be voided by the caller).
    """
    if not envelopes:
        return None
    ranked = sorted(
        enumerate(envelopes), key=lambda pair: (pair[1].created_date_time or "", pair[0])
    )
    return ranked[-1][1]


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("from_date must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------- Block


class DocuSignCredentials(VendorCredentials):
    """DocuSign eSignature access through the OAuth JWT grant, and the Connect HMAC key.

    `integration_key` is the app's client id, `user_id` the GUID of the user it impersonates
    (who granted consent once), `private_key` the app's RSA key in PEM. `base_url` is the
    account's `base_uri` from `/oauth/userinfo` (https://demo.docusign.net for developer
    accounts) and `auth_server` https://account-d.docusign.com for developer accounts.

    Example:
        ```python
        from blocks import DocuSignCredentials

        docusign = await DocuSignCredentials.load("default")
        async with docusign.get_client() as client:
            envelope = await client.get_envelope("4b7a5d3c-...")
        ```
    """

    _block_type_name: ClassVar[str] = "DocuSign Credentials"
    _block_type_slug: ClassVar[str] = "leadflow-docusign-credentials"
    _description: ClassVar[str] = (
        "DocuSign eSignature JWT-grant credentials (integration key, user id, RSA private key, "
        "account id) and the Connect HMAC key of the envelope webhooks."
    )
    _logo_url = HttpUrl("https://www.docusign.com/favicon.ico")
    _documentation_url = HttpUrl("https://developers.docusign.com/platform/auth/jwt/jwt-get-token/")
    vendor: ClassVar[str] = VENDOR

    integration_key: str = Field(description="The app's integration key (JWT iss).")
    user_id: str = Field(description="GUID of the impersonated user (JWT sub).")
    account_id: str = Field(description="The eSignature account id (API account id GUID).")
    private_key: SecretStr = Field(description="The app's RSA private key, PEM.")
    base_url: str = Field(
        default=PRODUCTION_BASE_URL,
        description="The account's base_uri (e.g. https://na3.docusign.net), or the sandbox's.",
    )
    auth_server: str = Field(
        default=PRODUCTION_AUTH_SERVER,
        description="https://account.docusign.com, https://account-d.docusign.com, or the sandbox.",
    )
    auth_audience: str | None = Field(
        default=None, description="JWT aud; the auth server's host when empty."
    )
    template_id: str | None = Field(default=None, description="The contract template's id.")
    connect_hmac_key: SecretStr | None = Field(
        default=None, description="Connect HMAC secret (checks X-DocuSign-Signature-1)."
    )
    hourly_limit: int = Field(default=3000, ge=1, description="API calls per hour (account).")
    burst: int = Field(default=100, ge=1, description="Calls allowed at once within the hour.")

    @field_validator("base_url", "auth_server")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    def _account_secrets(self) -> tuple[str | None, ...]:
        return (self.account_id, self.integration_key)

    def _published_rate_limit(self) -> RateLimit:
        return RateLimit(self.hourly_limit, per=3600.0, burst=self.burst)

    def audience(self) -> str:
        """JWT aud: the auth host without scheme (account-d.docusign.com)."""
        return self.auth_audience or urlsplit(self.auth_server).netloc

    def get_client(
        self,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit: RateLimit | None = None,
        token_store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> DocuSignClient:
        """A client for this account, under the account's shared hourly limit and token.

        `rate_limit`, `token_store` and `clock` replace the shared ones (tests use fakes).
        """
        key = self.private_key.get_secret_value()
        tokens = AccessTokens(
            VendorHTTP(
                VENDOR,
                self.auth_server,
                policy=policy,
                transport=transport,
                error_parser=docusign_error,
            ),
            integration_key=self.integration_key,
            user_id=self.user_id,
            private_key=self.private_key,
            audience=self.audience(),
            store=token_store
            or shared_token_store(
                credential_fingerprint(self.integration_key, self.user_id, self.auth_server, key)
            ),
            clock=clock,
        )
        http = self.vendor_http(
            {"policy": policy, "transport": transport, "rate_limit": rate_limit},
            error_parser=docusign_error,
            rate_limited_codes=RATE_LIMIT_CODES,
            rate_limit_scope="vendor",  # the account's hourly and 30-second budgets
        )
        return DocuSignClient(http, tokens, account_id=self.account_id)
