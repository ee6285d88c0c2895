"""Asaas API v3: the credentials Block and the async client for customers, PIX charges and QR codes.

Where it sits: after the contract is signed (DocuSign), the journey bills the client through
Asaas — find or create the customer, create a PIX charge, fetch its copy-and-paste code (sent on
WhatsApp) — and waits for the `PAYMENT_RECEIVED` webhook before activating the hosting. The
webhook itself is received by the webhook service, which reads the shared `asaas-access-token`
secret from this Block (`webhook_auth_token`).

Contract (contracts README §4): `access_token: <API key>` and a `User-Agent` on every request;
`POST /v3/customers`, `GET /v3/customers?cpfCnpj=|externalReference=`, `POST /v3/payments`
(`billingType: PIX`), `GET /v3/payments/{id}`, `GET /v3/payments?externalReference=`,
`GET /v3/payments/{id}/pixQrCode`, `GET|POST /v3/webhooks` (§4.5); list answers are
`{object: "list", hasMore, totalCount, limit, offset, data}`; errors
`{"errors": [{"code", "description"}]}`.

Asaas has no idempotency key and happily creates duplicate customers and charges, so the
creates are sent once (`UnknownOutcomeError` when the answer is lost, or when a 2xx cannot be
read) and the caller looks the object up by `externalReference` first — `find_by_reference`:

    from blocks import AsaasCredentials, AsaasPayment, NewPixCharge

    asaas = await AsaasCredentials.load("NAME")
    async with asaas.get_client() as client:
        charge = await client.find_by_reference(
            "j_123:charge-1", of=AsaasPayment
        ) or await client.create_pix_charge(
            NewPixCharge(customer=customer.id, value=Decimal("1490.00"), due_date=due,
                         external_reference="j_123:charge-1")
        )
        pix = await client.get_pix_qr_code(charge.id)

Limits (contracts README §4.6), modelled as published: 25,000 requests per account in any
12-hour rolling window (`RollingWindow`, not an average rate: a burst of a thousand calls waits
on nothing), at most 50 GETs in flight (`ConcurrencyCap`), and the `RateLimit-*` headers some
endpoints send, read on every answer by the HTTP policy (a spent endpoint pauses that endpoint
only, for at most LEADFLOW_HTTP_MAX_RATE_LIMIT_PAUSE).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal, Unpack, overload

import httpx
from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_serializer,
    field_validator,
)
from pydantic.alias_generators import to_camel

from blocks.credentials import ClientOptions, VendorCredentials
from blocks.http import (
    USER_AGENT,
    ConcurrencyCap,
    RateLimit,
    RollingWindow,
    VendorClient,
    VendorHTTP,
    credential_fingerprint,
    json_object,
    shared_limit,
    status_text,
)

__all__ = [
    "PAID_STATUSES",
    "AsaasClient",
    "AsaasCredentials",
    "AsaasCustomer",
    "AsaasPayment",
    "AsaasWebhook",
    "CustomerPage",
    "NewAsaasWebhook",
    "NewCustomer",
    "NewPixCharge",
    "PaymentPage",
    "PixQrCode",
    "asaas_error",
]

VENDOR = "asaas"
PRODUCTION_URL = "https://api.asaas.com"
SANDBOX_URL = "https://api-sandbox.asaas.com"
#: a PIX is paid once Asaas says CONFIRMED (funds held up to 72 h) or RECEIVED (settled);
#: RECEIVED_IN_CASH is a charge the agency marked as paid by hand
PAID_STATUSES: frozenset[str] = frozenset({"CONFIRMED", "RECEIVED", "RECEIVED_IN_CASH"})
#: Asaas counts 25,000 requests per account in a rolling 12-hour window
QUOTA_REQUESTS = 25_000
QUOTA_WINDOW_SECONDS = 12 * 3600
#: Asaas refuses a 51st concurrent GET with 429
MAX_CONCURRENT_GETS = 50
MAX_PAGE = 100


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


# ------------------------------------------------------------------------------------ models


class _AsaasModel(BaseModel):
    """Asaas speaks camelCase, leadflow snake_case; unknown answer keys are left out."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="ignore",
    )


class _Request(_AsaasModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class NewCustomer(_Request):
    """A customer to create (CustomerSaveRequestDTO). `external_reference` is leadflow's id."""

    name: str = Field(min_length=1)
    cpf_cnpj: str
    email: str | None = None
    mobile_phone: str | None = None
    phone: str | None = None
    postal_code: str | None = None
    address: str | None = None
    address_number: str | None = None
    province: str | None = None
    external_reference: str | None = None
    notification_disabled: bool | None = None

    @field_validator("cpf_cnpj")
    @classmethod
    def _cpf_or_cnpj(cls, value: str) -> str:
        """Asaas takes the document as digits: 11 for a CPF, 14 for a CNPJ."""
        digits = _digits(value)
        if len(digits) not in (11, 14):
            raise ValueError("cpf_cnpj must be a CPF (11 digits) or a CNPJ (14 digits)")
        return digits

    @field_validator("mobile_phone", "phone")
    @classmethod
    def _phone_digits(cls, value: str | None) -> str | None:
        """Asaas stores Brazilian numbers as area code + number: a leading +55 is dropped."""
        if value is None:
            return None
        digits = _digits(value)
        if digits.startswith("55") and len(digits) in (12, 13):
            digits = digits[2:]
        return digits


class NewPixCharge(_Request):
    """A PIX charge to create (PaymentSaveRequestDTO with billingType PIX)."""

    customer: str = Field(pattern=r"^cus_\w+$")
    value: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    due_date: date
    description: str | None = Field(default=None, max_length=500)
    external_reference: str | None = None

    @field_serializer("value")
    def _value_as_number(self, value: Decimal) -> float:
        # Asaas wants a JSON number; two decimal places survive a float exactly enough (cents).
        return float(value)

    def to_json(self) -> dict[str, Any]:
        return {"billingType": "PIX", **super().to_json()}


class _Referenced(_AsaasModel):
    """What every Asaas object leadflow creates carries: its id, leadflow's reference, and
    whether it was deleted (a deleted object is never taken for the journey's)."""

    id: str
    external_reference: str | None = None
    deleted: bool = False
    date_created: date | None = None


class AsaasCustomer(_Referenced):
    """A customer as Asaas answers it (CustomerGetResponseDTO, the fields leadflow reads)."""

    name: str
    cpf_cnpj: str | None = None
    email: str | None = None
    mobile_phone: str | None = None
    person_type: Literal["FISICA", "JURIDICA"] | None = None


class AsaasPayment(_Referenced):
    """A charge as Asaas answers it (PaymentGetResponseDTO, the fields leadflow reads)."""

    customer: str
    value: Decimal
    net_value: Decimal | None = None
    billing_type: str
    status: str
    due_date: date
    description: str | None = None
    invoice_url: str | None = None
    payment_date: date | None = None

    @property
    def is_paid(self) -> bool:
        """Paid for the journey's purpose: CONFIRMED or RECEIVED (contracts README §4.4)."""
        return self.status in PAID_STATUSES


class PixQrCode(_AsaasModel):
    """The charge's PIX: the copy-and-paste code (`payload`), the QR PNG in base64, the expiry."""

    encoded_image: str
    payload: str
    expiration_date: str | None = None


class NewAsaasWebhook(_Request):
    """A webhook configuration to create (WebhookConfigSaveRequestDto, contracts README §4.5).

    Asaas sends `auth_token` back in the `asaas-access-token` header of every event: it is the
    receiver's only proof that a call is Asaas's, so it stays a secret until it is sent.
    """

    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    events: list[str] = Field(min_length=1)
    email: str | None = None
    enabled: bool = True
    interrupted: bool = False
    api_version: int = 3
    auth_token: SecretStr | None = None
    send_type: Literal["SEQUENTIALLY", "NON_SEQUENTIALLY"] = "SEQUENTIALLY"

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        if self.auth_token is not None:
            body["authToken"] = self.auth_token.get_secret_value()
        return body


class AsaasWebhook(_AsaasModel):
    """A webhook configuration as Asaas answers it: the token itself is never read back."""

    id: str
    url: str
    name: str | None = None
    email: str | None = None
    enabled: bool = True
    interrupted: bool = False
    api_version: int | None = None
    has_auth_token: bool | None = None
    send_type: str | None = None
    events: list[str] = Field(default_factory=list)

    @property
    def delivering(self) -> bool:
        """Enabled and not interrupted (15 failures in a row interrupt the queue)."""
        return self.enabled and not self.interrupted


class _WebhookPage(_AsaasModel):
    has_more: bool
    data: list[AsaasWebhook]


class CustomerPage(_AsaasModel):
    has_more: bool
    total_count: int
    limit: int
    offset: int
    data: list[AsaasCustomer]


class PaymentPage(_AsaasModel):
    has_more: bool
    total_count: int
    limit: int
    offset: int
    data: list[AsaasPayment]


def asaas_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from `{"errors": [{"code", "description"}]}`; every description is kept."""
    body = json_object(response)
    errors = body.get("errors") if body is not None else None
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        code = errors[0].get("code")
        message = "; ".join(str(e.get("description") or e.get("code") or "") for e in errors)
        return (None if code is None else str(code)), message or response.reason_phrase
    return None, status_text(response)


# ------------------------------------------------------------------------------------ client


class AsaasClient(VendorClient):
    """Customers, PIX charges and QR codes of one Asaas account. Build it with the Block."""

    def __init__(self, http: VendorHTTP) -> None:
        super().__init__(http)

    async def check_access(self) -> str:
        """A cheap read proving the key works (`leadflow blocks check`): the customer count."""
        page = await self.list_customers(limit=1)
        return f"{page.total_count} customer(s)"

    # -- customers

    async def create_customer(self, customer: NewCustomer) -> AsaasCustomer:
        """Create a customer, once: Asaas allows duplicates, so call `find_customer` first."""
        return await self._create("/v3/customers", AsaasCustomer.model_validate, customer.to_json())

    async def get_customer(self, customer_id: str) -> AsaasCustomer:
        return await self._get(
            "/v3/customers/{id}",
            AsaasCustomer.model_validate,
            path_params={"id": customer_id},
        )

    async def list_customers(
        self,
        *,
        cpf_cnpj: str | None = None,
        external_reference: str | None = None,
        offset: int = 0,
        limit: int = 10,
    ) -> CustomerPage:
        """One page of customers filtered by document and/or leadflow's reference."""
        params: dict[str, str | int] = {"offset": offset, "limit": _page_size(limit)}
        if cpf_cnpj is not None:
            params["cpfCnpj"] = _digits(cpf_cnpj)
        if external_reference is not None:
            params["externalReference"] = external_reference
        return await self._get("/v3/customers", CustomerPage.model_validate, params=params)

    async def find_customer(
        self, *, external_reference: str | None = None, cpf_cnpj: str | None = None
    ) -> AsaasCustomer | None:
        """The existing customer, looked up as Asaas prescribes: reference first, then document.

        `find_by_reference(ref, of=AsaasCustomer)` is the reference-only form.

        Deleted customers are ignored (a charge cannot be created for them), and so is any
        answer that does not carry the asked reference or document: a filter Asaas ignored must
        never bill the journey's client as somebody else.
        """
        if external_reference is None and cpf_cnpj is None:
            raise ValueError("find_customer needs an external_reference or a cpf_cnpj")
        if external_reference is not None:
            page = await self.list_customers(external_reference=external_reference, limit=MAX_PAGE)
            found = [
                c for c in page.data if not c.deleted and c.external_reference == external_reference
            ]
            if found:
                return found[0]
        if cpf_cnpj is not None:
            document = _digits(cpf_cnpj)
            page = await self.list_customers(cpf_cnpj=document, limit=MAX_PAGE)
            found = [
                c for c in page.data if not c.deleted and _digits(c.cpf_cnpj or "") == document
            ]
            if found:
                return found[0]
        return None

    # -- payments

    async def create_pix_charge(self, charge: NewPixCharge) -> AsaasPayment:
        """Create a PIX charge, once: after an UnknownOutcomeError call `find_payment` first."""
        return await self._create("/v3/payments", AsaasPayment.model_validate, charge.to_json())

    async def get_payment(self, payment_id: str) -> AsaasPayment:
        """The charge as Asaas has it now (its `status`, `is_paid`)."""
        return await self._get(
            "/v3/payments/{id}", AsaasPayment.model_validate, path_params={"id": payment_id}
        )

    async def list_payments(
        self,
        *,
        external_reference: str | None = None,
        customer: str | None = None,
        status: str | None = None,
        billing_type: Literal["UNDEFINED", "BOLETO", "CREDIT_CARD", "PIX"] | None = None,
        offset: int = 0,
        limit: int = 10,
    ) -> PaymentPage:
        """One page of charges filtered by leadflow's reference, customer, status, billing type."""
        params: dict[str, str | int] = {"offset": offset, "limit": _page_size(limit)}
        if external_reference is not None:
            params["externalReference"] = external_reference
        if customer is not None:
            params["customer"] = customer
        if status is not None:
            params["status"] = status
        if billing_type is not None:
            params["billingType"] = billing_type
        return await self._get("/v3/payments", PaymentPage.model_validate, params=params)

    @overload
    async def find_by_reference(
        self, reference: str, *, of: type[AsaasPayment]
    ) -> AsaasPayment | None: ...

    @overload
    async def find_by_reference(
        self, reference: str, *, of: type[AsaasCustomer]
    ) -> AsaasCustomer | None: ...

    async def find_by_reference(
        self, reference: str, *, of: type[AsaasPayment] | type[AsaasCustomer]
    ) -> AsaasPayment | AsaasCustomer | None:
        """The live (not deleted) charge or customer whose `externalReference` is exactly
        `reference`, or None.

        The task calls this before `create_pix_charge` / `create_customer` and after their
        UnknownOutcomeError. An answer carrying another reference (a filter Asaas ignored) is
        never taken for ours.
        """
        if of is AsaasCustomer:
            return await self.find_customer(external_reference=reference)
        if of is not AsaasPayment:
            raise TypeError("Asaas looks up an AsaasPayment or an AsaasCustomer by reference")
        page = await self.list_payments(external_reference=reference, limit=MAX_PAGE)
        found = [p for p in page.data if not p.deleted and p.external_reference == reference]
        return found[0] if found else None

    async def find_payment(self, external_reference: str) -> AsaasPayment | None:
        """Deprecated: `find_by_reference(reference, of=AsaasPayment)`, kept while
        tasks/billing.py still calls it."""
        return await self.find_by_reference(external_reference, of=AsaasPayment)

    async def get_pix_qr_code(self, payment_id: str) -> PixQrCode:
        """The charge's PIX copy-and-paste code and QR image (a read: safe to repeat)."""
        return await self._get(
            "/v3/payments/{id}/pixQrCode",
            PixQrCode.model_validate,
            path_params={"id": payment_id},
        )

    # -- webhooks

    async def list_webhooks(self) -> list[AsaasWebhook]:
        """Every webhook configuration of the account, following the pages to the end."""
        found: list[AsaasWebhook] = []
        while True:
            page = await self._get(
                "/v3/webhooks",
                _WebhookPage.model_validate,
                params={"offset": len(found), "limit": MAX_PAGE},
            )
            found.extend(page.data)
            if not page.has_more or not page.data:
                return found

    async def create_webhook(self, webhook: NewAsaasWebhook) -> AsaasWebhook:
        """Create a webhook configuration, once: Asaas keeps a second one for the same URL,
        which would deliver every event twice, so `list_webhooks` first."""
        return await self._create("/v3/webhooks", AsaasWebhook.model_validate, webhook.to_json())


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"Asaas pages hold 1 to {MAX_PAGE} items")
    return limit


# ------------------------------------------------------------------------------------- Block


class AsaasCredentials(VendorCredentials):
    """Asaas API access for one account, and the token Asaas sends on its webhooks.

    `api_key` starts `$aact_prod_` (production) or `$aact_hmlg_` (Asaas's sandbox, with
    `base_url` https://api-sandbox.asaas.com); `webhook_auth_token` is the `authToken` set on the
    webhook, checked by the webhook service against the `asaas-access-token` header.

    Example:
        ```python
        from blocks import AsaasCredentials

        asaas = await AsaasCredentials.load("default")
        async with asaas.get_client() as client:
            qr = await client.get_pix_qr_code("pay_080225913252")
        ```
    """

    _block_type_name: ClassVar[str] = "Asaas Credentials"
    _block_type_slug: ClassVar[str] = "leadflow-asaas-credentials"
    _description: ClassVar[str] = (
        "Asaas API key (customers, PIX charges, QR codes) and the auth token Asaas sends "
        "on its payment webhooks."
    )
    _logo_url = HttpUrl("https://www.asaas.com/favicon.ico")
    _documentation_url = HttpUrl("https://docs.asaas.com/reference/comece-por-aqui")
    vendor: ClassVar[str] = VENDOR

    api_key: SecretStr = Field(description="API key, sent as the access_token header.")
    webhook_auth_token: SecretStr | None = Field(
        default=None, description="The webhook's authToken (asaas-access-token header)."
    )
    base_url: str = Field(
        default=PRODUCTION_URL,
        description="https://api.asaas.com, https://api-sandbox.asaas.com, or leadflow's sandbox.",
    )
    user_agent: str = Field(
        default=USER_AGENT, description="Application name Asaas asks for in User-Agent."
    )
    requests_per_12h: int = Field(
        default=QUOTA_REQUESTS,
        ge=1,
        description="The account's quota: requests in any 12-hour rolling window.",
    )
    concurrent_gets: int = Field(
        default=MAX_CONCURRENT_GETS, ge=1, description="GET requests in flight at most."
    )

    def _account_secrets(self) -> tuple[str | None, ...]:
        return (self.api_key.get_secret_value(),)

    def _published_rate_limit(self) -> RateLimit:
        return RollingWindow(self.requests_per_12h, QUOTA_WINDOW_SECONDS)

    def concurrency_cap(self) -> ConcurrencyCap:
        """The account's cap on GETs in flight, shared by every client of it in the process."""
        fingerprint = credential_fingerprint(*self._account_secrets())
        return shared_limit(
            f"{VENDOR}-gets", fingerprint, lambda: ConcurrencyCap(self.concurrent_gets)
        )

    def get_client(self, **options: Unpack[ClientOptions]) -> AsaasClient:
        """A client for this account, under its shared quota, GET cap and endpoint limits.

        `rate_limit` replaces the shared quota (tests give one on a fake clock).
        """
        http = self.vendor_http(
            options,
            headers={
                "access_token": self.api_key.get_secret_value(),
                "user-agent": self.user_agent,
            },
            error_parser=asaas_error,
            rate_limit_scope="route",  # RateLimit-* limits are per endpoint
            concurrency=self.concurrency_cap(),
        )
        return AsaasClient(http)
