"""DocuSign eSignature v2.1 emulator: where a won deal becomes a contract, signed or declined.

After Pipedrive says a deal is won, leadflow gets an access token with the OAuth JWT grant
(`POST /oauth/token`, an RS256 assertion signed with the integration's private key), creates an
envelope from the contract template (`templateId`, `templateRoles` with role "Cliente",
`customFields` carrying the journey id, `transactionId` for idempotency, `status: sent`) and waits
for the signer. DocuSign Connect then posts a JSON message (`envelope-completed` or
`envelope-declined`) signed with `X-DocuSign-Signature-1` (base64 HMAC-SHA256 of the raw body).

This module reproduces DocuSign's published contract (the eSignature v2.1 Swagger, the Connect
sample and the OAuth pages named in tests/contracts/docusign/SOURCE.md): the OAuth server under
`/docusign/oauth` (real host account-d.docusign.com) and the REST API under
`/docusign/restapi/v2.1/accounts/{accountId}` (real base_uri demo.docusign.net, as `userinfo`
tells a client), DocuSign's `{errorCode, message}` errors, hourly and burst limits with their
headers, the per-envelope polling limit, and the simulated "signer" who signs or declines.

Connect listeners: configurations made with `POST …/connect` (`urlToPublishTo`, `events` or
`envelopeEvents`, `includeHMAC`, `eventData.includeData`; listed by `GET …/connect`), the admin
API's target standing for one made in the eSignature Admin console (every event, signed), and an
envelope's own `eventNotification`. All are sent by the same path: signed as asked, carrying
what their `includeData` names.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict, cast, get_args
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.core import INTERNAL, Sandbox, VendorEmulator
from sandbox.vendor_api import AdminBody, json_body

VENDOR = "docusign"

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEMO_AUTH_HOST = "account-d.docusign.com"
TOKEN_LIFETIME_SECONDS = 3600
TRANSACTION_ID_LIFETIME = timedelta(days=7)
TEMPLATE_ROLE = "Cliente"
# What a Connect message's envelopeSummary carries (the sample's keys: recipients, customFields).
CONNECT_INCLUDE = frozenset({"custom_fields", "recipients"})
#: connectEventData.includeData's documented values; the default is `[]`: the message then
#: carries only the triggering event's data (account, user, envelope ids), no envelopeSummary.
IncludeData = Literal[
    "attachments", "custom_fields", "documents", "extensions", "folders", "payment_tabs",
    "powerform", "recipients", "tabs",
]  # fmt: skip
INCLUDE_DATA: frozenset[str] = frozenset(get_args(IncludeData))
#: The template's text tab the signer fills with a CPF when the sender did not prefill it.
CPF_TAB_LABEL = "cpf"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DECLINE_REASONS = ("Valores diferentes do combinado", "Vou revisar com meu contador")


def _generate_private_key_pem() -> str:
    """A fresh RSA key for this process: the integration's key pair, as DocuSign's admin makes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


DEFAULT_CREDENTIALS: dict[str, str] = {
    # JWT `iss`: the app's integration key (client id).
    "integration_key": "5c3d9f0a-7b1e-4a55-9c02-2f6f0e7d1a11",
    # JWT `sub`: the user the app impersonates (consent is assumed granted in the sandbox).
    "user_id": "8f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "account_id": "a1b2c3d4-e5f6-4789-8abc-def012345678",
    # JWT `aud`: the bare auth host. The real demo host is account-d.docusign.com; the sandbox
    # also accepts its own host[:port] (the OAuth server lives at <sandbox>/docusign/oauth).
    "auth_host": DEMO_AUTH_HOST,
    # The app's RSA private key (PKCS#8 PEM), generated when the sandbox starts so that a client
    # can sign assertions; the sandbox verifies them with the matching public key. A configured
    # `public_key_pem` (and no private key) verifies a client's own key instead.
    "private_key_pem": _generate_private_key_pem(),
    # The Connect HMAC secret: each message carries X-DocuSign-Signature-1 computed with it.
    "connect_hmac_key": "sandbox-docusign-connect-hmac-key-0000000000000000",
    # The contract template with one signer role, "Cliente".
    "template_id": "2e4f6a8c-0b1d-4e3f-a5b7-c9d1e3f5a7b9",
}

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=16)
def _public_key_of(public_key_pem: str) -> Any:
    """The verification key of a configured public key PEM (parsed once: parsing is slow)."""
    return serialization.load_pem_public_key(public_key_pem.encode())


@functools.lru_cache(maxsize=16)
def _public_key_of_private(private_key_pem: str) -> Any:
    """The public half of a private key PEM; RSA key loading checks the key and takes ~25 ms."""
    private = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return private.public_key()


def _timestamp(moment: datetime | None = None) -> str:
    """DocuSign's date-time format: UTC with seven fractional digits and `Z`."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.rstrip("Z")[:26]).replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Limits and errors
# --------------------------------------------------------------------------------------------


@dataclass
class DocuSignLimits:
    """The account's hourly and 30-second burst API limits and the per-envelope GET limit.

    DocuSign's defaults are 3,000 calls per hour, a burst of 200 per 30 s in the demo
    environment, and about one GET per envelope every 15 minutes. The sandbox defaults far higher
    so tests and benchmarks are never throttled unless they lower the limits on purpose.
    """

    hourly_limit: int = 1_000_000
    burst_limit: int = 100_000
    burst_window_seconds: float = 30.0
    envelope_polls_per_hour: int = 100_000


@dataclass
class _Usage:
    hour: int = -1
    hourly: int = 0
    burst_started: float = 0.0
    burst: int = 0
    polls: dict[str, int] = field(default_factory=dict)


class DocuSignError(Exception):
    """A refusal DocuSign answers with `{errorCode, message}` (definitions.errorDetails)."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse(
            status_code=self.status_code,
            content={"errorCode": self.error_code, "message": self.message},
        )


class OAuthError(Exception):
    """A refusal of the OAuth server: `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status_code = status_code


# --------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------


class _Body(BaseModel):
    # DocuSign ignores properties it does not use, and so does the sandbox (extra="ignore"), but
    # every property leadflow sends is typed strictly: DocuSign's booleans are strings.
    model_config = ConfigDict(extra="ignore", strict=True)


class TextCustomField(_Body):
    name: str = Field(min_length=1)
    value: str = ""
    show: str = "false"
    required: str = "false"
    fieldId: str | None = None  # noqa: N815 (DocuSign's own property names)
    configurationType: str | None = None  # noqa: N815


class CustomFields(_Body):
    textCustomFields: list[TextCustomField] = Field(default_factory=list)  # noqa: N815
    listCustomFields: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815


class TemplateRole(_Body):
    roleName: str  # noqa: N815
    name: str | None = None
    email: str | None = None
    clientUserId: str | None = None  # noqa: N815
    routingOrder: str | None = None  # noqa: N815
    tabs: dict[str, Any] | None = None


class EventData(_Body):
    version: str | None = None
    format: str | None = None
    includeData: list[IncludeData] = Field(default_factory=list)  # noqa: N815


class EventNotification(_Body):
    url: str
    includeHMAC: Literal["true", "false"] = "false"  # noqa: N815
    requireAcknowledgment: Literal["true", "false"] = "false"  # noqa: N815
    events: list[str] | None = None
    envelopeEvents: list[dict[str, Any]] | None = None  # noqa: N815
    eventData: EventData | None = None  # noqa: N815


class ConnectConfigurationBody(_Body):
    """A Connect configuration made through the REST API (connectCustomConfiguration, the
    properties the sandbox acts on; DocuSign's booleans are strings)."""

    urlToPublishTo: str = Field(pattern=r"^https?://[^\s/]+")  # noqa: N815
    name: str | None = None
    configurationType: str | None = None  # noqa: N815
    allowEnvelopePublish: Literal["true", "false"] = "false"  # noqa: N815
    allUsers: Literal["true", "false"] | None = None  # noqa: N815
    includeHMAC: Literal["true", "false"] = "false"  # noqa: N815
    requiresAcknowledgement: Literal["true", "false"] | None = None  # noqa: N815
    enableLog: Literal["true", "false"] | None = None  # noqa: N815
    deliveryMode: str | None = None  # noqa: N815
    events: list[str] = Field(default_factory=list)
    envelopeEvents: list[str] = Field(default_factory=list)  # noqa: N815
    recipientEvents: list[str] = Field(default_factory=list)  # noqa: N815
    eventData: EventData | None = None  # noqa: N815


class ConnectSettings(AdminBody):
    """The account's Connect configuration (the admin API's webhook target listens with it)."""

    include_data: list[IncludeData] = Field(default_factory=list)


class SignerSettings(AdminBody):
    """How the simulated signer fills the CPF tab left for them: sometimes a mistyped CPF."""

    invalid_cpf_rate: float = Field(0.05, ge=0, le=1)


class EnvelopeDefinition(_Body):
    templateId: str | None = None  # noqa: N815
    templateRoles: list[TemplateRole] = Field(default_factory=list)  # noqa: N815
    emailSubject: str | None = None  # noqa: N815
    emailBlurb: str | None = Field(default=None, max_length=10_000)  # noqa: N815
    status: str | None = None
    customFields: CustomFields | None = None  # noqa: N815
    transactionId: str | None = Field(default=None, min_length=1, max_length=100)  # noqa: N815
    eventNotification: EventNotification | None = None  # noqa: N815
    documents: list[dict[str, Any]] | None = None
    compositeTemplates: list[dict[str, Any]] | None = None  # noqa: N815


class EnvelopeUpdate(_Body):
    status: str | None = None
    voidedReason: str | None = None  # noqa: N815


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


class AccessTokenRecord(TypedDict):
    """A live access token, stored under its digest (the state dump must not reveal tokens)."""

    user_id: str
    expires_at: float


class Signer(TypedDict):
    """The envelope's signer (a template role filled), with the dates of what they did."""

    recipientId: str
    recipientIdGuid: str
    roleName: str
    name: str
    email: str
    clientUserId: str | None
    routingOrder: str
    status: str
    recipientType: str
    tabs: dict[str, Any]
    sentDateTime: NotRequired[str]
    deliveredDateTime: NotRequired[str]
    signedDateTime: NotRequired[str]
    declinedDateTime: NotRequired[str]
    declinedReason: NotRequired[str]


class Envelope(TypedDict):
    """An envelope as the account keeps it; the dates appear as its status moves on."""

    envelopeId: str
    accountId: str
    status: str
    emailSubject: str
    emailBlurb: str
    templateId: str
    transactionId: str | None
    createdDateTime: str
    lastModifiedDateTime: str
    statusChangedDateTime: str
    customFields: dict[str, Any]
    recipients: list[Signer]
    eventNotification: dict[str, Any] | None
    sentDateTime: NotRequired[str]
    initialSentDateTime: NotRequired[str]
    deliveredDateTime: NotRequired[str]
    completedDateTime: NotRequired[str]
    declinedDateTime: NotRequired[str]
    voidedDateTime: NotRequired[str]
    voidedReason: NotRequired[str | None]


class ConnectConfiguration(TypedDict):
    """A Connect configuration made with `POST …/connect`, as `GET …/connect` lists it."""

    connectId: str
    configurationType: str
    urlToPublishTo: str
    allowEnvelopePublish: str
    includeHMAC: str
    events: list[str]
    envelopeEvents: list[str]
    recipientEvents: list[str]
    name: NotRequired[str]
    allUsers: NotRequired[str]
    requiresAcknowledgement: NotRequired[str]
    enableLog: NotRequired[str]
    deliveryMode: NotRequired[str]
    eventData: NotRequired[dict[str, Any]]


@dataclass
class DocuSignState:
    """One DocuSign account: its tokens, envelopes and Connect configurations, and the admin
    API's settings (limits, the console-made Connect's includeData, the signer's habits).

    The look-up indexes (transactionId and custom field -> envelope ids) live here too, out of
    the dump, so a reset forgets them and a restored state finds its envelopes again; every hit
    is re-checked against the stored envelope.
    """

    limits: DocuSignLimits
    signer: SignerSettings = field(default_factory=SignerSettings)
    connect: ConnectSettings = field(default_factory=ConnectSettings)
    tokens: dict[str, AccessTokenRecord] = field(default_factory=dict)
    envelopes: dict[str, Envelope] = field(default_factory=dict)
    connect_configurations: dict[str, ConnectConfiguration] = field(default_factory=dict)
    by_transaction_id: dict[str, set[str]] = field(default_factory=dict, metadata=INTERNAL)
    by_custom_field: dict[tuple[str, str], set[str]] = field(
        default_factory=dict, metadata=INTERNAL
    )


#: the configurationId of the console-made Connect configuration (the admin API's target) and
#: of per-envelope eventNotification messages; REST-made configurations count up from it
CONSOLE_CONNECT_ID = 10_000_001
#: one Connect listener: URL, includeData, signed with HMAC, configurationId
Listener = tuple[str, frozenset[str], bool, int]


@dataclass
class _Delivery:
    url: str
    body: bytes
    headers: dict[str, str]


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class DocuSignEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS):
    """One DocuSign account: tokens, templates, envelopes, Connect and the account's limits."""

    def __init__(self, sandbox: Sandbox, limits: DocuSignLimits | None = None) -> None:
        super().__init__(sandbox)
        self.default_limits = limits or DocuSignLimits()
        self._usage = _Usage()
        self._usage_lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------
    @property
    def bucket(self) -> DocuSignState:
        """The account's state, laid out anew (with the default limits) after a reset."""
        return self.state.bucket(VENDOR, lambda: DocuSignState(limits=replace(self.default_limits)))

    @property
    def limits(self) -> DocuSignLimits:
        """The limits in force; setting `bucket.limits` changes them."""
        with self.state.lock:
            return self.bucket.limits

    def templates(self) -> dict[str, dict[str, Any]]:
        """The account's templates: the configured contract template with its signer role."""
        template_id = self.credentials["template_id"]
        return {
            template_id: {
                "templateId": template_id,
                "name": "Contrato de prestação de serviços",
                "emailSubject": "Contrato de prestação de serviços",
                "roles": {TEMPLATE_ROLE: "signer"},
            }
        }

    def _public_key(self) -> Any:
        credentials = self.credentials
        if credentials.get("public_key_pem") and (
            "private_key_pem" not in self.sandbox.credentials.get(VENDOR, {})
        ):
            return _public_key_of(credentials["public_key_pem"])
        return _public_key_of_private(credentials["private_key_pem"])

    def _guid(self) -> str:
        return str(uuid.UUID(int=self.sandbox.random.getrandbits(128), version=4))

    # -- OAuth ---------------------------------------------------------------------------
    def issue_token(
        self, grant_type: str | None, assertion: str | None, own_host: str
    ) -> dict[str, Any]:
        """Verify a JWT-grant assertion as DocuSign does and mint a one-hour access token.

        `aud` must be the bare auth host (account-d.docusign.com by default); the sandbox also
        accepts its own host as the request reached it and as `public_base_url` names it.
        """
        if grant_type != JWT_BEARER_GRANT:
            raise OAuthError("unsupported_grant_type", "The grant type is not supported.")
        if not assertion:
            raise OAuthError("invalid_request", "The assertion is missing.")
        credentials = self.credentials
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "The assertion is not a valid JWT.") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "The assertion must be signed with RS256.")
        try:
            claims = jwt.decode(
                assertion,
                self._public_key(),
                algorithms=["RS256"],
                audience=[
                    credentials["auth_host"],
                    own_host,
                    urlsplit(self.sandbox.public_base_url).netloc,
                ],
                options={"require": ["iss", "sub", "aud", "iat", "exp"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_grant", "The assertion has expired.") from None
        except jwt.InvalidAudienceError:
            raise OAuthError(
                "invalid_grant", f"The audience must be the bare host {credentials['auth_host']}."
            ) from None
        except jwt.InvalidSignatureError:
            raise OAuthError("invalid_grant", "no_valid_keys_or_signatures") from None
        except jwt.PyJWTError as error:
            raise OAuthError("invalid_grant", f"The assertion is invalid: {error}.") from None
        if claims["iss"] != credentials["integration_key"]:
            raise OAuthError("invalid_grant", "issuer_not_found")
        if claims["sub"] != credentials["user_id"]:
            raise OAuthError("invalid_grant", "user_not_found")
        if int(claims["exp"]) - int(claims["iat"]) > TOKEN_LIFETIME_SECONDS:
            raise OAuthError("invalid_grant", "The assertion's exp is more than 1 hour after iat.")
        scopes = set(str(claims.get("scope", "")).split())
        if not {"signature", "impersonation"} <= scopes:
            raise OAuthError(
                "consent_required", "The scope must include signature and impersonation."
            )
        token = base64.urlsafe_b64encode(self.sandbox.random.randbytes(48)).decode().rstrip("=")
        with self.sandbox.state.lock:
            # Stored by digest: the admin API's state dump must not reveal live tokens.
            self.bucket.tokens[_token_digest(token)] = {
                "user_id": claims["sub"],
                "expires_at": time.time() + TOKEN_LIFETIME_SECONDS,
            }
            self.sandbox.state.created(VENDOR, "access_token")
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS,
        }

    def token_user(self, request: Request) -> str | None:
        """The user a request's Bearer token stands for, or None if it is not a live token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with self.sandbox.state.lock:
            record = self.bucket.tokens.get(_token_digest(token))
        if record is None or record["expires_at"] < time.time():
            return None
        return str(record["user_id"])

    def userinfo(self, user_id: str) -> dict[str, Any]:
        credentials = self.credentials
        return {
            "sub": user_id,
            "name": "Leadflow Sandbox",
            "given_name": "Leadflow",
            "family_name": "Sandbox",
            "created": "2024-01-01T00:00:00.000Z",
            "email": "contratos@leadflow.example",
            "accounts": [
                {
                    "account_id": credentials["account_id"],
                    "is_default": True,
                    "account_name": "Leadflow Sandbox",
                    "base_uri": self.sandbox.base_url(VENDOR),
                }
            ],
        }

    # -- limits --------------------------------------------------------------------------
    def admit(self, envelope_poll: str | None) -> dict[str, str]:
        """Count one API call; raise DocuSign's 429 (or the polling 400) when over a limit."""
        limits = self.limits
        now = time.time()
        hour = int(now // 3600)
        with self._usage_lock:
            usage = self._usage
            if usage.hour != hour:
                usage.hour, usage.hourly, usage.polls = hour, 0, {}
            if now - usage.burst_started >= limits.burst_window_seconds:
                usage.burst_started, usage.burst = now, 0
            headers = {
                "X-RateLimit-Limit": str(limits.hourly_limit),
                "X-RateLimit-Reset": str((hour + 1) * 3600),
                "X-BurstLimit-Limit": str(limits.burst_limit),
            }
            if usage.hourly >= limits.hourly_limit:
                headers |= {"X-RateLimit-Remaining": "0", "X-BurstLimit-Remaining": "0"}
                raise _ThrottledError(
                    DocuSignError(
                        429,
                        "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
                        "The maximum number of hourly API invocations has been exceeded. "
                        f"The hourly limit is {limits.hourly_limit}.",
                    ),
                    headers | {"Retry-After": str((hour + 1) * 3600 - int(now))},
                )
            if usage.burst >= limits.burst_limit:
                headers |= {
                    "X-RateLimit-Remaining": str(limits.hourly_limit - usage.hourly),
                    "X-BurstLimit-Remaining": "0",
                }
                wait = max(1, round(limits.burst_window_seconds - (now - usage.burst_started)))
                raise _ThrottledError(
                    DocuSignError(
                        429,
                        "BURST_APIINVOCATION_LIMIT_EXCEEDED",
                        "The maximum number of API invocations in the burst window has been "
                        f"exceeded. The burst limit is {limits.burst_limit}.",
                    ),
                    headers | {"Retry-After": str(wait)},
                )
            usage.hourly += 1
            usage.burst += 1
            headers |= {
                "X-RateLimit-Remaining": str(limits.hourly_limit - usage.hourly),
                "X-BurstLimit-Remaining": str(limits.burst_limit - usage.burst),
            }
            if envelope_poll is not None:
                polls = usage.polls.get(envelope_poll, 0) + 1
                usage.polls[envelope_poll] = polls
                if polls > limits.envelope_polls_per_hour:
                    raise _ThrottledError(
                        DocuSignError(
                            400,
                            "HOURLY_ENVELOPE_POLLING_LIMIT_EXCEEDED",
                            "The polling limit for this envelope has been exceeded. "
                            "Use DocuSign Connect instead of polling.",
                        ),
                        headers,
                    )
            return headers

    # -- envelopes -----------------------------------------------------------------------
    def create_envelope(
        self, account_id: str, body: EnvelopeDefinition
    ) -> tuple[int, dict[str, Any]]:
        """Create (or, for a known transactionId, return) an envelope: (status code, summary)."""
        status = body.status or "created"
        if status not in ("created", "sent"):
            raise DocuSignError(
                400,
                "INVALID_ENVELOPE_STATUS",
                "An envelope can only be created with status 'created' or 'sent'.",
            )
        if body.templateId is None and not body.documents and not body.compositeTemplates:
            raise DocuSignError(
                400,
                "ENVELOPE_IS_INCOMPLETE",
                "The Envelope is not Complete. A Complete Envelope Requires Documents, "
                "Recipients, Tabs, and a Subject Line.",
            )
        if body.templateId is None:
            raise DocuSignError(
                400,
                "INVALID_REQUEST_BODY",
                "The sandbox creates envelopes from templates only (templateId).",
            )
        template = self.templates().get(body.templateId)
        if template is None:
            raise DocuSignError(
                400, "TEMPLATE_ID_INVALID", f"Invalid template ID: {body.templateId}."
            )
        recipients = self._signers(body.templateRoles, template)
        subject = body.emailSubject or template["emailSubject"]
        if len(subject) > 100:
            raise DocuSignError(
                400,
                "EMAIL_SUBJECT_TOO_LONG",
                "The email subject is longer than the maximum of 100 characters.",
            )
        text_fields = []
        for index, custom in enumerate(
            body.customFields.textCustomFields if body.customFields else [], start=1
        ):
            if len(custom.value) > 100:
                raise DocuSignError(
                    400,
                    "CUSTOM_FIELD_VALUE_TOO_LONG",
                    f"The value of custom field '{custom.name}' exceeds 100 characters.",
                )
            text_fields.append(
                {
                    "fieldId": custom.fieldId or str(10_000_000 + index),
                    "name": custom.name,
                    "show": custom.show,
                    "required": custom.required,
                    "value": custom.value,
                }
            )
        with self.sandbox.state.lock:
            envelopes = self.bucket.envelopes
            if body.transactionId is not None:
                existing = self._by_transaction(body.transactionId)
                if existing is not None:
                    return 201, self._summary(existing, existing["statusChangedDateTime"])
            now = _timestamp()
            envelope_id = self._guid()
            envelope: Envelope = {
                "envelopeId": envelope_id,
                "accountId": account_id,
                "status": status,
                "emailSubject": subject,
                "emailBlurb": body.emailBlurb or "",
                "templateId": body.templateId,
                "transactionId": body.transactionId,
                "createdDateTime": now,
                "lastModifiedDateTime": now,
                "statusChangedDateTime": now,
                "customFields": {"textCustomFields": text_fields, "listCustomFields": []},
                "recipients": recipients,
                "eventNotification": (
                    body.eventNotification.model_dump() if body.eventNotification else None
                ),
            }
            if status == "sent":
                self._mark_sent(envelope, now)
            envelopes[envelope_id] = envelope
            self._index(envelope)
            self.sandbox.state.created(VENDOR, "envelope")
            summary = self._summary(envelope, now)
        if status == "sent":
            self._connect(envelope_id, "envelope-sent")
        return 201, summary

    def _signers(self, roles: list[TemplateRole], template: dict[str, Any]) -> list[Signer]:
        signers: list[Signer] = []
        for index, role in enumerate(roles, start=1):
            if role.roleName not in template["roles"]:
                raise DocuSignError(
                    400,
                    "INVALID_ROLE_NAME",
                    f"The role name '{role.roleName}' does not match a role of the template.",
                )
            if not role.name or not role.name.strip():
                raise DocuSignError(
                    400,
                    "INVALID_USERNAME_FOR_RECIPIENT",
                    "The user name for the recipient is invalid.",
                )
            if not role.email or not EMAIL.match(role.email):
                raise DocuSignError(
                    400,
                    "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT",
                    "The email address for the recipient is invalid. The recipient Id follows.",
                )
            signers.append(
                {
                    "recipientId": str(index),
                    "recipientIdGuid": self._guid(),
                    "roleName": role.roleName,
                    "name": role.name,
                    "email": role.email,
                    "clientUserId": role.clientUserId,
                    "routingOrder": role.routingOrder or "1",
                    "status": "created",
                    "recipientType": "signer",
                    "tabs": _signer_tabs(role.tabs),
                }
            )
        if not signers:
            raise DocuSignError(
                400,
                "ENVELOPE_IS_INCOMPLETE",
                "The Envelope is not Complete. A Complete Envelope Requires Documents, "
                "Recipients, Tabs, and a Subject Line.",
            )
        return signers

    @staticmethod
    def _mark_sent(envelope: Envelope, now: str) -> None:
        envelope.update({"status": "sent", "sentDateTime": now, "initialSentDateTime": now})
        envelope["statusChangedDateTime"] = now
        for signer in envelope["recipients"]:
            signer.update({"status": "sent", "sentDateTime": now})

    def _by_transaction(self, transaction_id: str) -> Envelope | None:
        horizon = datetime.now(UTC) - TRANSACTION_ID_LIFETIME
        envelopes = self.bucket.envelopes
        for envelope_id in sorted(self.bucket.by_transaction_id.get(transaction_id, ())):
            envelope = envelopes.get(envelope_id)
            if (
                envelope is not None
                and envelope["transactionId"] == transaction_id
                and _parse_timestamp(envelope["createdDateTime"]) >= horizon
            ):
                return envelope
        return None

    def _index(self, envelope: Envelope) -> None:
        envelope_id = envelope["envelopeId"]
        if envelope["transactionId"] is not None:
            self.bucket.by_transaction_id.setdefault(envelope["transactionId"], set()).add(
                envelope_id
            )
        for custom in envelope["customFields"]["textCustomFields"]:
            key = (custom["name"], custom["value"])
            self.bucket.by_custom_field.setdefault(key, set()).add(envelope_id)

    def _list_space(
        self,
        custom_field: tuple[str, str] | None,
        envelope_ids: set[str] | None,
        transaction_ids: set[str] | None,
    ) -> list[Envelope]:
        """The envelopes a listing must look at: the narrowest index's candidates, or all."""
        envelopes = self.bucket.envelopes
        narrowed: set[str] | None = envelope_ids
        if transaction_ids is not None:
            ids = set().union(
                *(self.bucket.by_transaction_id.get(t, set()) for t in transaction_ids)
            )
            narrowed = ids if narrowed is None else narrowed & ids
        if custom_field is not None:
            ids = self.bucket.by_custom_field.get(custom_field, set())
            narrowed = ids if narrowed is None else narrowed & ids
        if narrowed is None:
            return list(envelopes.values())
        return [envelopes[i] for i in narrowed if i in envelopes]

    @staticmethod
    def _summary(envelope: Envelope, status_time: str) -> dict[str, Any]:
        return {
            "envelopeId": envelope["envelopeId"],
            "uri": f"/envelopes/{envelope['envelopeId']}",
            "statusDateTime": status_time,
            "status": envelope["status"],
        }

    def _view(
        self, envelope: Envelope, include: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The `envelope` object of GET …/envelopes/{id} (DocuSign booleans are strings).

        As at DocuSign, `customFields` and `recipients` are "additional information" sent only
        when `include` names them (`custom_fields`, `recipients`); otherwise the envelope
        carries just their URIs (`customFieldsUri`, `recipientsUri`).
        """
        envelope_id = envelope["envelopeId"]
        base = f"/envelopes/{envelope_id}"
        credentials = self.credentials
        view: dict[str, Any] = {
            "envelopeId": envelope_id,
            "status": envelope["status"],
            "emailSubject": envelope["emailSubject"],
            "emailBlurb": envelope["emailBlurb"],
            "envelopeUri": base,
            "documentsUri": f"{base}/documents",
            "recipientsUri": f"{base}/recipients",
            "attachmentsUri": f"{base}/attachments",
            "customFieldsUri": f"{base}/custom_fields",
            "templatesUri": f"{base}/templates",
            "notificationUri": f"{base}/notification",
            "certificateUri": f"{base}/documents/certificate",
            "documentsCombinedUri": f"{base}/documents/combined",
            "createdDateTime": envelope["createdDateTime"],
            "lastModifiedDateTime": envelope["lastModifiedDateTime"],
            "statusChangedDateTime": envelope["statusChangedDateTime"],
            "signingLocation": "online",
            "enableWetSign": "true",
            "allowMarkup": "false",
            "allowReassign": "true",
            "is21CFRPart11": "false",
            "isSignatureProviderEnvelope": "false",
            "purgeState": "unpurged",
            "envelopeIdStamping": "true",
            "autoNavigation": "true",
            "hasComments": "false",
            "anySigner": None,
            "envelopeLocation": "current_site",
            "sender": {
                "userName": "Leadflow Sandbox",
                "userId": credentials["user_id"],
                "accountId": credentials["account_id"],
                "email": "contratos@leadflow.example",
            },
        }
        view = {k: v for k, v in view.items() if v is not None}
        if envelope["transactionId"] is not None:
            view["transactionId"] = envelope["transactionId"]
        for key in (
            "sentDateTime",
            "initialSentDateTime",
            "deliveredDateTime",
            "completedDateTime",
            "declinedDateTime",
            "voidedDateTime",
            "voidedReason",
        ):
            if envelope.get(key) is not None:
                view[key] = envelope[key]
        if "custom_fields" in include:
            view["customFields"] = json.loads(json.dumps(envelope["customFields"]))
        if "recipients" in include:
            view["recipients"] = self._recipients(envelope)
        return view

    @staticmethod
    def _recipients(envelope: Envelope, tabs: bool = False) -> dict[str, Any]:
        signers = []
        for signer in envelope["recipients"]:
            entry = {k: v for k, v in signer.items() if v is not None and k != "tabs"}
            if tabs:
                entry["tabs"] = json.loads(json.dumps(signer["tabs"]))
            signers.append(entry)
        return {
            "signers": signers,
            "carbonCopies": [],
            "certifiedDeliveries": [],
            "recipientCount": str(len(signers)),
            "currentRoutingOrder": "1",
        }

    def get_envelope(self, envelope_id: str, include: set[str]) -> dict[str, Any]:
        with self.sandbox.state.lock:
            envelope = self.bucket.envelopes.get(envelope_id)
            if envelope is None:
                raise _envelope_not_found()
            return self._view(envelope, include)

    def list_envelopes(
        self,
        from_date: datetime | None,
        to_date: datetime | None,
        statuses: set[str] | None,
        custom_field: tuple[str, str] | None,
        envelope_ids: set[str] | None,
        transaction_ids: set[str] | None,
        include: set[str],
    ) -> list[dict[str, Any]]:
        """Envelopes matching every filter, oldest first (what `GET …/envelopes` lists)."""
        found = []
        with self.sandbox.state.lock:
            for envelope in self._list_space(custom_field, envelope_ids, transaction_ids):
                changed = _parse_timestamp(envelope["statusChangedDateTime"])
                if from_date is not None and changed < from_date:
                    continue
                if to_date is not None and changed > to_date:
                    continue
                if statuses is not None and envelope["status"] not in statuses:
                    continue
                if envelope_ids is not None and envelope["envelopeId"] not in envelope_ids:
                    continue
                if transaction_ids is not None and envelope["transactionId"] not in (
                    transaction_ids
                ):
                    continue
                if custom_field is not None:
                    name, value = custom_field
                    fields = envelope["customFields"]["textCustomFields"]
                    if not any(f["name"] == name and f["value"] == value for f in fields):
                        continue
                found.append(self._view(envelope, include))
        found.sort(key=lambda e: (e["createdDateTime"], e["envelopeId"]))
        return found

    def update_envelope(self, envelope_id: str, body: EnvelopeUpdate) -> dict[str, Any]:
        """PUT …/envelopes/{id}: send a draft (`sent`) or void an unfinished envelope."""
        event = None
        with self.sandbox.state.lock:
            envelope = self.bucket.envelopes.get(envelope_id)
            if envelope is None:
                raise _envelope_not_found()
            now = _timestamp()
            if body.status == "voided":
                if envelope["status"] in ("completed", "declined", "voided"):
                    raise DocuSignError(
                        400,
                        "ENVELOPE_CANNOT_VOID_INVALID_STATE",
                        "Only envelopes in the 'Sent' or 'Delivered' states may be voided.",
                    )
                if not body.voidedReason:
                    raise DocuSignError(
                        400, "INVALID_REQUEST_PARAMETER", "A voided reason is required."
                    )
                envelope.update(
                    {"status": "voided", "voidedDateTime": now, "voidedReason": body.voidedReason}
                )
                envelope["statusChangedDateTime"] = now
                event = "envelope-voided"
            elif body.status == "sent":
                if envelope["status"] != "created":
                    raise DocuSignError(
                        400,
                        "ENVELOPE_INVALID_STATUS",
                        "Only a draft envelope (status 'created') can be sent.",
                    )
                self._mark_sent(envelope, now)
                event = "envelope-sent"
            elif body.status is not None:
                raise DocuSignError(
                    400,
                    "INVALID_REQUEST_PARAMETER",
                    "The envelope status can only be changed to 'sent' or 'voided'.",
                )
            envelope["lastModifiedDateTime"] = now
        if event is not None:
            self._connect(envelope_id, event)
        return {"envelopeId": envelope_id}

    # -- the signer ----------------------------------------------------------------------
    def sent_envelope_ids(self) -> list[str]:
        with self.sandbox.state.lock:
            return [
                e["envelopeId"]
                for e in sorted(self.bucket.envelopes.values(), key=lambda e: e["createdDateTime"])
                if e["status"] in ("sent", "delivered")
            ]

    def complete(self, envelope_id: str) -> dict[str, Any]:
        """The signer opens and signs: delivered, then completed, and Connect is told."""
        with self.sandbox.state.lock:
            envelope = self._pending(envelope_id)
            now = _timestamp()
            envelope.setdefault("deliveredDateTime", now)
            envelope.update({"status": "completed", "completedDateTime": now})
            envelope["statusChangedDateTime"] = envelope["lastModifiedDateTime"] = now
            for signer in envelope["recipients"]:
                signer.update(
                    {"status": "completed", "deliveredDateTime": now, "signedDateTime": now}
                )
                self._fill_left_tabs(signer)
            view = self._view(envelope, CONNECT_INCLUDE)
        self._connect(envelope_id, "envelope-completed")
        return view

    def decline(self, envelope_id: str) -> dict[str, Any]:
        """The signer opens and declines with a reason, and Connect is told."""
        reason = self.sandbox.random.choice(DECLINE_REASONS)
        with self.sandbox.state.lock:
            envelope = self._pending(envelope_id)
            now = _timestamp()
            envelope.setdefault("deliveredDateTime", now)
            envelope.update({"status": "declined", "declinedDateTime": now})
            envelope["statusChangedDateTime"] = envelope["lastModifiedDateTime"] = now
            for signer in envelope["recipients"]:
                signer.update(
                    {
                        "status": "declined",
                        "deliveredDateTime": now,
                        "declinedDateTime": now,
                        "declinedReason": reason,
                    }
                )
            view = self._view(envelope, CONNECT_INCLUDE)
        self._connect(envelope_id, "envelope-declined")
        return view

    @property
    def signer_settings(self) -> SignerSettings:
        """The signer's habits; `PUT /__sandbox__/docusign/signer` changes them."""
        with self.state.lock:
            return self.bucket.signer

    def _fill_left_tabs(self, signer: Signer) -> None:
        """The signer types a CPF into the CPF tab the sender left empty (held under the lock).

        Drawn from the sandbox's seeded stream: a valid CPF, or with `invalid_cpf_rate` one
        whose check digit is wrong, typed with the usual dots and dash.
        """
        for tab in signer["tabs"].get("textTabs", []):
            if tab.get("tabLabel") != CPF_TAB_LABEL or tab.get("value"):
                continue
            invalid = self.sandbox.random.random() < self.signer_settings.invalid_cpf_rate
            tab["value"] = generate_cpf(self.sandbox.random, valid=not invalid)

    def form_data(self, envelope_id: str) -> dict[str, Any]:
        """GET …/envelopes/{id}/form_data: every tab's value, overall and per recipient."""
        with self.sandbox.state.lock:
            envelope = self.bucket.envelopes.get(envelope_id)
            if envelope is None:
                raise _envelope_not_found()
            everyone: list[dict[str, str]] = []
            per_recipient = []
            for signer in envelope["recipients"]:
                items = [
                    {
                        "name": tab["tabLabel"],
                        "value": tab.get("value", ""),
                        "originalValue": tab.get("originalValue", ""),
                    }
                    for tab in signer["tabs"].get("textTabs", [])
                ]
                everyone.extend(items)
                entry: dict[str, Any] = {
                    "recipientId": signer["recipientId"],
                    "name": signer["name"],
                    "email": signer["email"],
                    "formData": items,
                }
                for source, key in (
                    ("sentDateTime", "SentTime"),
                    ("deliveredDateTime", "DeliveredTime"),
                    ("signedDateTime", "SignedTime"),
                    ("declinedDateTime", "DeclinedTime"),
                ):
                    dated: Mapping[str, Any] = signer  # the dates the signer has so far
                    if dated.get(source):
                        entry[key] = dated[source]
                per_recipient.append(entry)
            result: dict[str, Any] = {
                "envelopeId": envelope_id,
                "emailSubject": envelope["emailSubject"],
                "status": envelope["status"],
                "formData": everyone,
                "recipientFormData": per_recipient,
            }
            if envelope.get("sentDateTime"):
                result["sentDateTime"] = envelope["sentDateTime"]
            return result

    def _pending(self, envelope_id: str) -> Envelope:
        envelope = self.bucket.envelopes.get(envelope_id)
        if envelope is None:
            raise _envelope_not_found()
        if envelope["status"] not in ("sent", "delivered"):
            raise DocuSignError(
                400,
                "ENVELOPE_INVALID_STATUS",
                f"Envelope {envelope_id} is {envelope['status']}, not waiting for a signature.",
            )
        return envelope

    # -- Connect -------------------------------------------------------------------------
    @property
    def connect_settings(self) -> ConnectSettings:
        """The console-made Connect configuration; `PUT /__sandbox__/docusign/connect` sets it."""
        with self.state.lock:
            return self.bucket.connect

    def connect_message(
        self,
        envelope_id: str,
        event: str,
        include: set[str] | frozenset[str] = frozenset(),
        retry_count: int = 0,
        configuration_id: int = CONSOLE_CONNECT_ID,
    ) -> dict[str, Any]:
        """The Connect JSON SIM message for `event` (connect.schema-v2.json's layout).

        As at DocuSign, the message carries only the triggering event's data (the envelope's
        status, subject and dates in `envelopeSummary`) unless the listener's `includeData`
        asked for more: the custom fields, recipients and tabs it names are added then, never
        otherwise. `retry_count` is the number of the retry.
        """
        credentials = self.credentials
        data: dict[str, Any]
        with self.sandbox.state.lock:
            envelope = self.bucket.envelopes[envelope_id]
            account_id = envelope["accountId"]
            data = {
                "accountId": account_id,
                "userId": credentials["user_id"],
                "envelopeId": envelope_id,
            }
            summary = self._view(envelope, include & CONNECT_INCLUDE)
            if "tabs" in include:
                summary["recipients"] = self._recipients(envelope, tabs=True)
            data["envelopeSummary"] = summary
        return {
            "event": event,
            "apiVersion": "v2.1",
            "uri": f"/restapi/v2.1/accounts/{account_id}/envelopes/{envelope_id}",
            "retryCount": retry_count,
            "configurationId": configuration_id,
            "generatedDateTime": _timestamp(),
            "data": data,
        }

    def _connect(self, envelope_id: str, event: str) -> None:
        """Post the message to the account's Connect URL and to the envelope's own listener.

        The account-level configuration (the admin API's webhook target) always signs with the
        HMAC key and includes what `connect_settings.include_data` names. An envelope's
        `eventNotification` is honoured for the events it lists (`events` names or
        `envelopeEvents[].envelopeEventStatusCode`, all when it lists none), includes what its
        `eventData.includeData` names, and is signed only when it asks for `includeHMAC`.
        A retry is a new message: `retryCount` counts up and the signature is made again.
        """
        listeners = self._account_listeners(event)
        with self.sandbox.state.lock:
            notification = self.bucket.envelopes[envelope_id].get("eventNotification")
        if notification and _wants(notification, event):
            event_data = notification.get("eventData") or {}
            listeners.append(
                (
                    notification["url"],
                    frozenset(event_data.get("includeData") or ()),
                    notification.get("includeHMAC") == "true",
                    CONSOLE_CONNECT_ID,
                )
            )
        generated = _timestamp()
        for url, include, signed, configuration in listeners:

            def render(
                attempt: int,
                include: frozenset[str] = include,
                signed: bool = signed,
                configuration: int = configuration,
            ) -> tuple[bytes, dict[str, str]]:
                message = self.connect_message(
                    envelope_id, event, include, attempt - 1, configuration
                )
                message["generatedDateTime"] = generated  # one event, however often it is sent
                body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
                return body, self._headers(body, signed=signed)

            try:
                body, headers = render(1)
                self.sandbox.webhooks.deliver(
                    vendor=VENDOR, url=url, body=body, headers=headers, redeliver=render
                )
            except Exception:  # a delivery problem must not undo the signature
                # No URL in the log: a listener URL may carry credentials.
                logger.warning("docusign connect message could not be queued", exc_info=True)

    def _account_listeners(self, event: str) -> list[Listener]:
        """The account-level Connect listeners of `event`.

        Each configuration made with `POST …/connect` that publishes envelopes and lists the
        event, with its own `includeData` and `includeHMAC`; and the admin API's target (a
        configuration made in the eSignature Admin console: every event, signed, including
        `connect_settings.include_data`) unless a REST configuration has its URL, so one
        listener never gets an event twice from two configurations of the same URL.
        """
        with self.sandbox.state.lock:
            configured = list(self.bucket.connect_configurations.values())
        listeners: list[Listener] = [
            (
                c["urlToPublishTo"],
                frozenset((c.get("eventData") or {}).get("includeData") or ()),
                c["includeHMAC"] == "true",
                int(c["connectId"]),
            )
            for c in configured
            if c["allowEnvelopePublish"] == "true" and _configuration_wants(c, event)
        ]
        console_url = self.sandbox.webhook_targets.get(VENDOR)
        if console_url and all(c["urlToPublishTo"] != console_url for c in configured):
            include = frozenset(self.connect_settings.include_data)
            listeners.append((console_url, include, True, CONSOLE_CONNECT_ID))
        return listeners

    def create_connect_configuration(self, body: ConnectConfigurationBody) -> dict[str, Any]:
        """Store a Connect configuration (`POST …/connect`); its URL then gets the events it
        lists. A second one for the same URL is made if asked, as at DocuSign."""
        with self.sandbox.state.lock:
            connect_id = self.sandbox.state.next_id(VENDOR, "connect", start=CONSOLE_CONNECT_ID + 1)
            configuration = cast(
                ConnectConfiguration,
                {
                    **body.model_dump(mode="json", exclude_none=True),
                    "connectId": str(connect_id),
                    "configurationType": body.configurationType or "custom",
                },
            )
            self.bucket.connect_configurations[str(connect_id)] = configuration
            self.sandbox.state.created(VENDOR, "connect_configuration")
            return dict(configuration)

    def list_connect_configurations(self) -> dict[str, Any]:
        """`GET …/connect` (connectConfigResults; the count is a string, as DocuSign's are)."""
        with self.sandbox.state.lock:
            found = [dict(c) for c in self.bucket.connect_configurations.values()]
        return {"configurations": found, "totalRecords": str(len(found))}

    def _headers(self, body: bytes, signed: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if signed:
            key = self.credentials["connect_hmac_key"].encode()
            digest = hmac.new(key, body, hashlib.sha256).digest()
            headers["X-Authorization-Digest"] = "HMACSHA256"
            headers["X-DocuSign-Signature-1"] = base64.b64encode(digest).decode("ascii")
        return headers


class _ThrottledError(Exception):
    def __init__(self, error: DocuSignError, headers: dict[str, str]) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers = headers


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _envelope_not_found() -> DocuSignError:
    return DocuSignError(
        404,
        "ENVELOPE_DOES_NOT_EXIST",
        "The envelope specified either does not exist or you have no rights to it.",
    )


def _include(raw: str | None) -> set[str]:
    """The `include` query parameter: a comma-separated list, spaces allowed (`a, b`)."""
    return {part.strip() for part in (raw or "").split(",") if part.strip()}


def _signer_tabs(role_tabs: dict[str, Any] | None) -> dict[str, Any]:
    """The signer's tabs: the template's CPF tab (prefilled when the sender gave a value) plus
    whatever other tabs the sender set. Each tab keeps the value it was sent with as
    `originalValue`, as form data reports it."""
    tabs: dict[str, Any] = json.loads(json.dumps(role_tabs or {}))
    text_tabs = [t for t in tabs.get("textTabs") or [] if isinstance(t, dict)]
    if not any(t.get("tabLabel") == CPF_TAB_LABEL for t in text_tabs):
        text_tabs.insert(0, {"tabLabel": CPF_TAB_LABEL, "value": ""})
    for index, tab in enumerate(text_tabs, start=1):
        tab.setdefault("value", "")
        tab.setdefault("tabId", str(uuid.UUID(int=index, version=4)))
        tab["originalValue"] = str(tab.get("value") or "")
        tab["value"] = str(tab.get("value") or "")
    tabs["textTabs"] = text_tabs
    return tabs


def generate_cpf(rng: random.Random, valid: bool = True) -> str:
    """A CPF as a person types it (`123.456.789-09`); invalid ones have a wrong check digit."""
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        if len(set(digits)) > 1:  # 111.111.111-11 and the like are refused by every check
            break
    for weight_start in (10, 11):
        total = sum(d * w for d, w in zip(digits, range(weight_start, 1, -1), strict=False))
        digits.append(total * 10 % 11 % 10)
    if not valid:
        digits[-1] = (digits[-1] + 1 + rng.randrange(9)) % 10
    text = "".join(map(str, digits))
    return f"{text[:3]}.{text[3:6]}.{text[6:9]}-{text[9:]}"


def _configuration_wants(configuration: ConnectConfiguration, event: str) -> bool:
    """A REST-made configuration sends the envelope events it names: `events`
    (`envelope-completed`) or the legacy `envelopeEvents` (`Completed`); none named, none sent."""
    names = set(configuration.get("events") or [])
    names |= {f"envelope-{code.lower()}" for code in configuration.get("envelopeEvents") or []}
    return event in names


def _wants(notification: dict[str, Any], event: str) -> bool:
    names = set(notification.get("events") or [])
    for item in notification.get("envelopeEvents") or []:
        code = str(item.get("envelopeEventStatusCode", "")).lower()
        if code:
            names.add(f"envelope-{code}")
    return not names or event in names


def _parse_query_date(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DocuSignError(
            400,
            "INVALID_REQUEST_PARAMETER",
            f"The request contained at least one invalid parameter. Invalid value for '{name}'.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _validation_error(error: ValidationError | RequestValidationError) -> DocuSignError:
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
    return DocuSignError(
        400,
        "INVALID_REQUEST_BODY",
        f"The request body is missing or improperly formatted. {details}",
    )


# --------------------------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------------------------


def _route_class(emulator: DocuSignEmulator) -> type[APIRoute]:
    """REST routes: Bearer token, account check, limits and DocuSign's error body on any error."""

    class DocuSignRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            is_oauth = self.path.startswith("/oauth")

            async def docusign_handler(request: Request) -> Response:
                if is_oauth:
                    try:
                        return await handler(request)
                    except OAuthError as error:
                        return JSONResponse(
                            status_code=error.status_code,
                            content={"error": error.error, "error_description": error.description},
                        )
                headers: dict[str, str] = {}
                try:
                    user = emulator.token_user(request)
                    if user is None:
                        raise DocuSignError(
                            401,
                            "AUTHORIZATION_INVALID_TOKEN",
                            "The access token provided is expired, revoked or malformed.",
                        )
                    account_id = request.path_params.get("account_id")
                    if account_id != emulator.credentials["account_id"]:
                        raise DocuSignError(
                            400,
                            "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT",
                            "The specified User is not a member of the specified Account.",
                        )
                    poll = (
                        request.path_params.get("envelope_id") if request.method == "GET" else None
                    )
                    headers = emulator.admit(poll)
                    response = await handler(request)
                except _ThrottledError as throttled:
                    headers = throttled.headers
                    response = throttled.error.response()
                except DocuSignError as error:
                    response = error.response()
                except (ValidationError, RequestValidationError) as error:
                    response = _validation_error(error).response()
                for name, value in headers.items():
                    response.headers[name] = value
                return response

            return docusign_handler

    return DocuSignRoute


async def _json_object(request: Request) -> dict[str, Any]:
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise DocuSignError(
            400, "INVALID_REQUEST_BODY", "The request body is missing or improperly formatted."
        )
    return payload


def _host_of(request: Request) -> str:
    return request.headers.get("host") or urlsplit(str(request.base_url)).netloc


GATEWAY_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def render_fault(status: int, headers: dict[str, str]) -> Response:
    """The body of an injected fault as DocuSign sends it (the fault injector's renderer).

    A 429 or 500 comes from the eSignature API, as `{errorCode, message}`; 502-504 come from
    the load balancer in front of it, as plain text.
    """
    if status == 429:
        error = DocuSignError(
            429,
            "BURST_APIINVOCATION_LIMIT_EXCEEDED",
            "The maximum number of API invocations in the burst window has been exceeded.",
        )
    elif status == 500:
        error = DocuSignError(500, "UNSPECIFIED_ERROR", "An unexpected error occurred.")
    else:
        reason = GATEWAY_REASONS.get(status, "Error")
        return PlainTextResponse(f"{status} {reason}", status_code=status, headers=headers)
    response = error.response()
    response.headers.update(headers)
    return response


def render_unknown_route(sandbox: Sandbox, method: str, path: str, status: int) -> Response:
    """The app's answer for an unrouted request under /docusign, in the server's own shape.

    The OAuth server answers `{error, error_description}`; the eSignature API answers
    `errorDetails` (`{errorCode, message}`) with the router's 404 or 405.
    """
    if path.startswith("/oauth/"):
        return JSONResponse(
            status_code=status,
            content={"error": "invalid_request", "error_description": "Unknown endpoint."},
        )
    if status == 405:
        return DocuSignError(
            405, "INVALID_REQUEST_PARAMETER", f"The HTTP method {method} is not supported here."
        ).response()
    return DocuSignError(
        404, "RESOURCE_NOT_FOUND", "The URL provided does not resolve to a resource."
    ).response()


def build_router(sandbox: Sandbox, limits: DocuSignLimits | None = None) -> APIRouter:
    """The OAuth server and the eSignature REST API, mounted by the app at /docusign."""
    emulator = DocuSignEmulator(sandbox, limits)
    router = emulator.router(_route_class(emulator), render_fault)
    emulator.person("signer", emulator.sent_envelope_ids, emulator.complete, emulator.decline)
    api = "/restapi/v2.1/accounts/{account_id}"

    @router.post("/oauth/token")
    async def oauth_token(request: Request) -> Response:
        # Parsed by hand: python-multipart (Starlette's form parser) is not a dependency.
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise OAuthError("invalid_request", "The body must be form-urlencoded.")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = emulator.issue_token(
            form.get("grant_type", [None])[0],
            form.get("assertion", [None])[0],
            _host_of(request),
        )
        return JSONResponse(token, headers={"Cache-Control": "no-store"})

    @router.get("/oauth/userinfo")
    async def oauth_userinfo(request: Request) -> Response:
        user = emulator.token_user(request)
        if user is None:
            raise OAuthError("invalid_token", "The access token is invalid or expired.", 401)
        return JSONResponse(emulator.userinfo(user))

    @router.post(api + "/envelopes")
    async def create_envelope(account_id: str, request: Request) -> Response:
        body = EnvelopeDefinition.model_validate(await _json_object(request))
        status, summary = emulator.create_envelope(account_id, body)
        return JSONResponse(status_code=status, content=summary)

    @router.get(api + "/envelopes")
    async def list_envelopes(account_id: str, request: Request) -> Response:
        q = request.query_params
        envelope_ids = set(q["envelope_ids"].split(",")) if q.get("envelope_ids") else None
        transaction_ids = set(q["transaction_ids"].split(",")) if q.get("transaction_ids") else None
        if q.get("from_date") is None and envelope_ids is None and transaction_ids is None:
            raise DocuSignError(
                400,
                "INVALID_REQUEST_PARAMETER",
                "The request contained at least one invalid parameter. Query parameter "
                "'from_date' must be set to a valid DateTime, or 'envelope_ids' or "
                "'transaction_ids' must be specified.",
            )
        from_date = _parse_query_date(q["from_date"], "from_date") if q.get("from_date") else None
        to_date = _parse_query_date(q["to_date"], "to_date") if q.get("to_date") else None
        custom_field = None
        if q.get("custom_field"):
            name, sep, value = q["custom_field"].partition("=")
            if not sep or not name:
                raise DocuSignError(
                    400,
                    "INVALID_REQUEST_PARAMETER",
                    "The request contained at least one invalid parameter. "
                    "'custom_field' must be of the form name=value.",
                )
            custom_field = (name, value)
        statuses = {s.strip() for s in q["status"].split(",")} if q.get("status") else None
        include = _include(q.get("include"))
        try:
            start = int(q.get("start_position", "0"))
            count = int(q.get("count", "1000"))
        except ValueError:
            raise DocuSignError(
                400,
                "INVALID_REQUEST_PARAMETER",
                "The request contained at least one invalid parameter. "
                "'start_position' and 'count' must be integers.",
            ) from None
        if start < 0 or not 1 <= count <= 1000:
            raise DocuSignError(
                400,
                "INVALID_REQUEST_PARAMETER",
                "The request contained at least one invalid parameter. "
                "'count' must be between 1 and 1000 and 'start_position' not negative.",
            )
        found = emulator.list_envelopes(
            from_date, to_date, statuses, custom_field, envelope_ids, transaction_ids, include
        )
        page = found[start : start + count]
        content: dict[str, Any] = {
            "resultSetSize": str(len(page)),
            "totalSetSize": str(len(found)),
            "startPosition": str(start),
            "endPosition": str(start + len(page) - 1 if page else start),
            "envelopes": page,
        }
        if start + count < len(found):
            content["nextUri"] = (
                f"/accounts/{account_id}/envelopes?start_position={start + count}&count={count}"
            )
        return JSONResponse(content)

    @router.get(api + "/envelopes/{envelope_id}")
    async def get_envelope(account_id: str, envelope_id: str, request: Request) -> Response:
        include = _include(request.query_params.get("include"))
        return JSONResponse(emulator.get_envelope(envelope_id, include))

    @router.put(api + "/envelopes/{envelope_id}")
    async def update_envelope(account_id: str, envelope_id: str, request: Request) -> Response:
        body = EnvelopeUpdate.model_validate(await _json_object(request))
        return JSONResponse(emulator.update_envelope(envelope_id, body))

    @router.post(api + "/connect")
    async def create_connect_configuration(account_id: str, request: Request) -> Response:
        body = ConnectConfigurationBody.model_validate(await _json_object(request))
        return JSONResponse(status_code=201, content=emulator.create_connect_configuration(body))

    @router.get(api + "/connect")
    async def list_connect_configurations(account_id: str) -> Response:
        return JSONResponse(emulator.list_connect_configurations())

    @router.get(api + "/envelopes/{envelope_id}/form_data")
    async def form_data(account_id: str, envelope_id: str) -> Response:
        return JSONResponse(emulator.form_data(envelope_id))

    return router


def build_admin_router(sandbox: Sandbox) -> APIRouter:
    """`/__sandbox__/docusign/`: the account's Connect settings and the signer's habits."""
    router = APIRouter()

    @router.get("/connect")
    def connect_settings() -> dict[str, Any]:
        return DocuSignEmulator.of(sandbox).connect_settings.model_dump()

    @router.put("/connect")
    def set_connect_settings(body: ConnectSettings) -> dict[str, Any]:
        """What the account's Connect configuration includes (`include_data`, default none)."""
        with sandbox.state.lock:
            DocuSignEmulator.of(sandbox).bucket.connect = body
        return body.model_dump()

    @router.get("/signer")
    def signer_settings() -> dict[str, Any]:
        return DocuSignEmulator.of(sandbox).signer_settings.model_dump()

    @router.put("/signer")
    def set_signer_settings(body: SignerSettings) -> dict[str, Any]:
        """How often the signer mistypes the CPF they fill in (`invalid_cpf_rate`)."""
        with sandbox.state.lock:
            DocuSignEmulator.of(sandbox).bucket.signer = body
        return body.model_dump()

    return router
