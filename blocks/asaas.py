"""Asaas API v3: the credentials Block and the async client for customers, PIX charges and QR codes.

Where it sits: after the contract is signed (DocuSign), the journey bills the client through
Asaas — find or create the customer, create a PIX charge, fetch its copy-and-paste code (sent on
WhatsApp) — and waits for the `PAYMENT_RECEIVED` webhook before activating the hosting. The
webhook itself is received by the webhook service, which reads the shared `asaas-access-token`
secret from this Block (`webhook_auth_token`).

Contract (contracts README §4): `access_token: <API key>` and a `User-Agent` on every request;
`POST /v3/customers`, `GET /v3/customers?cpfCnpj=|externalReference=`, `POST /v3/payments`
(`billingType: PIX`), `GET /v3/payments/{id}`, `GET /v3/payments?externalReference=`,
`GET /v3/payments/{id}/pixQrCode`; list answers are `{object: "list", hasMore, totalCount,
limit, offset, data}`; errors `{"errors": [{"code", "description"}]}`.

Asaas has no idempotency key and happily creates duplicate customers and charges, so the
creates are sent once (`UnknownOutcomeError` when the answer is lost) and the caller looks the
object up by `externalReference` first — `find_customer` and `find_payment` exist for that:

    from blocks.asaas import AsaasCredentials, NewPixCharge

    asaas = await AsaasCredentials.load("NAME")
    async with asaas.get_client() as client:
        charge = await client.find_payment("j_123:charge-1") or await client.create_pix_charge(
            NewPixCharge(customer=customer.id, value=Decimal("1490.00"), due_date=due,
                         external_reference="j_123:charge-1")
        )
        pix = await client.get_pix_qr_code(charge.id)
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, Literal, Self

import httpx
from prefect.blocks.core import Block
from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
)
from pydantic.alias_generators import to_camel

from blocks.http import (
    HttpPolicy,
    RateLimit,
    VendorClient,
    VendorHTTP,
    credential_fingerprint,
    shared_rate_limit,
)

__all__ = [
    "PAID_STATUSES",
    "AsaasClient",
    "AsaasCredentials",
    "AsaasCustomer",
    "AsaasPayment",
    "CustomerPage",
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


class AsaasCustomer(_AsaasModel):
    """A customer as Asaas answers it (CustomerGetResponseDTO, the fields leadflow reads)."""

    id: str
    name: str
    cpf_cnpj: str | None = None
    email: str | None = None
    mobile_phone: str | None = None
    external_reference: str | None = None
    person_type: Literal["FISICA", "JURIDICA"] | None = None
    deleted: bool = False
    date_created: date | None = None


class AsaasPayment(_AsaasModel):
    """A charge as Asaas answers it (PaymentGetResponseDTO, the fields leadflow reads)."""

    id: str
    customer: str
    value: Decimal
    net_value: Decimal | None = None
    billing_type: str
    status: str
    due_date: date
    description: str | None = None
    external_reference: str | None = None
    invoice_url: str | None = None
    payment_date: date | None = None
    deleted: bool = False
    date_created: date | None = None

    @property
    def is_paid(self) -> bool:
        """Paid for the journey's purpose: CONFIRMED or RECEIVED (contracts README §4.4)."""
        return self.status in PAID_STATUSES


class PixQrCode(_AsaasModel):
    """The charge's PIX: the copy-and-paste code (`payload`), the QR PNG in base64, the expiry."""

    encoded_image: str
    payload: str
    expiration_date: str | None = None


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
    try:
        body = response.json()
    except ValueError:
        return None, response.reason_phrase or f"HTTP {response.status_code}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        code = errors[0].get("code")
        message = "; ".join(str(e.get("description") or e.get("code") or "") for e in errors)
        return (None if code is None else str(code)), message or response.reason_phrase
    return None, response.reason_phrase or f"HTTP {response.status_code}"


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
        response = await self._http.request(
            "POST", "/v3/customers", json=customer.to_json(), idempotent=False
        )
        return AsaasCustomer.model_validate(response.json())

    async def get_customer(self, customer_id: str) -> AsaasCustomer:
        response = await self._http.request(
            "GET", "/v3/customers/{id}", path_params={"id": customer_id}
        )
        return AsaasCustomer.model_validate(response.json())

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
        response = await self._http.request("GET", "/v3/customers", params=params)
        return CustomerPage.model_validate(response.json())

    async def find_customer(
        self, *, external_reference: str | None = None, cpf_cnpj: str | None = None
    ) -> AsaasCustomer | None:
        """The existing customer, looked up as Asaas prescribes: reference first, then document.

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
        response = await self._http.request(
            "POST", "/v3/payments", json=charge.to_json(), idempotent=False
        )
        return AsaasPayment.model_validate(response.json())

    async def get_payment(self, payment_id: str) -> AsaasPayment:
        response = await self._http.request(
            "GET", "/v3/payments/{id}", path_params={"id": payment_id}
        )
        return AsaasPayment.model_validate(response.json())

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
        response = await self._http.request("GET", "/v3/payments", params=params)
        return PaymentPage.model_validate(response.json())

    async def find_payment(self, external_reference: str) -> AsaasPayment | None:
        """The live (not deleted) charge carrying exactly leadflow's reference, if Asaas has one.

        The task calls this before `create_pix_charge` and after its UnknownOutcomeError.
        """
        page = await self.list_payments(external_reference=external_reference, limit=MAX_PAGE)
        found = [
            p for p in page.data if not p.deleted and p.external_reference == external_reference
        ]
        return found[0] if found else None

    async def get_pix_qr_code(self, payment_id: str) -> PixQrCode:
        """The charge's PIX copy-and-paste code and QR image (a read: safe to repeat)."""
        response = await self._http.request(
            "GET", "/v3/payments/{id}/pixQrCode", path_params={"id": payment_id}
        )
        return PixQrCode.model_validate(response.json())


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"Asaas pages hold 1 to {MAX_PAGE} items")
    return limit


# ------------------------------------------------------------------------------------- Block


class AsaasCredentials(Block):
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
    _logo_url: ClassVar[str] = "https://www.asaas.com/favicon.ico"
    _documentation_url: ClassVar[str] = "https://docs.asaas.com/reference/comece-por-aqui"

    api_key: SecretStr = Field(description="API key, sent as the access_token header.")
    webhook_auth_token: SecretStr | None = Field(
        default=None, description="The webhook's authToken (asaas-access-token header)."
    )
    base_url: str = Field(
        default=PRODUCTION_URL,
        description="https://api.asaas.com, https://api-sandbox.asaas.com, or leadflow's sandbox.",
    )
    user_agent: str = Field(
        default="leadflow", description="Application name Asaas asks for in User-Agent."
    )
    requests_per_12h: int = Field(
        default=QUOTA_REQUESTS, ge=1, description="The account's 12-hour request quota."
    )
    burst: int = Field(
        default=500,
        ge=1,
        description="Requests allowed in a burst before the quota's average rate applies.",
    )
    concurrency_limit_name: str | None = Field(
        default=None, description="Prefect global rate limit the tasks take before calling."
    )

    @classmethod
    def from_sandbox(cls, base_url: str, credentials: dict[str, str]) -> Self:
        """The Block for a sandbox, from what its admin API lists (`leadflow blocks init`)."""
        token = credentials.get("webhook_auth_token")
        return cls(
            base_url=base_url,
            api_key=SecretStr(credentials["api_key"]),
            webhook_auth_token=SecretStr(token) if token else None,
        )

    def get_client(
        self,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit: RateLimit | None = None,
    ) -> AsaasClient:
        """A client for this account, under the account's shared 12-hour quota.

        `rate_limit` replaces the shared bucket (tests give one on a fake clock).
        """
        key = self.api_key.get_secret_value()
        http = VendorHTTP(
            VENDOR,
            self.base_url,
            headers={"access_token": key, "user-agent": self.user_agent},
            rate_limit=rate_limit
            or shared_rate_limit(
                VENDOR,
                credential_fingerprint(key),
                rate=self.requests_per_12h,
                per=QUOTA_WINDOW_SECONDS,
                burst=self.burst,
            ),
            error_parser=asaas_error,
            policy=policy,
            transport=transport,
        )
        return AsaasClient(http)
