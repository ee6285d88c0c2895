"""Asaas API v3 emulator: where the journey bills the client by PIX and learns that it was paid.

After the contract is signed, leadflow finds or creates the Asaas customer, creates a PIX charge
(`billingType: PIX`), reads its copy-and-paste code (`/pixQrCode`, sent on WhatsApp) and waits for
the `PAYMENT_RECEIVED` webhook before the hosting is activated. This module plays Asaas for that
stretch, with the contract's rules (../shared/contracts/README.md §4):

- auth by the `access_token` header (the API key); a missing or wrong key gets 401
  `{"errors": [{"code": "invalid_access_token", ...}]}`. A `User-Agent` is mandatory for Asaas
  accounts created since 2024-06-13 (docs.asaas.com "Autenticação"); the docs do not show the
  refusal, so the sandbox's 400 `invalid_user_agent` is its own wording of it.
- customers: create (duplicates allowed, exactly as at Asaas — the client must look up by
  `externalReference` / `cpfCnpj` first), read, list filtered by `cpfCnpj`, `externalReference`,
  `name`, `email`, `groupName`; CPF/CNPJ check digits are verified. `groupName` is kept (it
  filters) but not answered: Asaas's customer DTO has no such field.
- payments: create (customer must exist, `value` > 0, `dueDate` `YYYY-MM-DD` not in the past in
  São Paulo time), read, `/status`, list filtered by `externalReference`, `customer`, `status`,
  `billingType` and date ranges; `/pixQrCode` answers a real BR Code (EMV, CRC16) and a PNG.
  `discount`, `fine` and `interest` are checked and answered as the payment DTO declares them
  (zeros when not asked); `callback` is checked, not answered (the DTO has no such field).
- the real sandbox's helpers `POST /v3/sandbox/payment/{id}/confirm` (the PIX is paid) and
  `.../overdue`; the simulated "payer" does the same things on its own.
- webhook configurations: `POST /v3/webhooks` (name, url, sendType, events; authToken kept,
  answered only as `hasAuthToken`) and `GET /v3/webhooks`; duplicates are made if asked, as at
  Asaas.
- webhooks `{id: "evt_…", event, dateCreated, payment}` to each enabled, uninterrupted
  configuration that asks for the event (its authToken in `asaas-access-token`), and to
  `sandbox.webhook_targets["asaas"]` (a console-made configuration: every event, the
  credentials' token) unless a configuration has that URL. PAYMENT_CREATED on create,
  PAYMENT_RECEIVED when a PIX is paid (a PIX goes PENDING → RECEIVED; CONFIRMED is the card
  path, or a PIX under Asaas's precautionary hold — switched on through the admin API to test
  that a client treats CONFIRMED as paid; `POST /__sandbox__/asaas/pix-hold/release` ends the
  holds, firing PAYMENT_RECEIVED), PAYMENT_OVERDUE. A payment's events are queued in the order
  its changes happened, as Asaas's sequential webhook queue delivers them.
- errors `{"errors": [{"code", "description"}]}` with 400; 404 with an empty body for an unknown
  id (the contract documents no body); a GET carrying a body gets 403.
- limits: a rolling request quota answered with `RateLimit-Limit/-Remaining/-Reset` headers and
  429, and a cap on concurrent GETs; both configurable and high by default.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import re
import secrets
import struct
import threading
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypedDict

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field
from validate_docbr import CNPJ, CPF

from sandbox.core import Sandbox, VendorEmulator
from sandbox.quota import FixedWindow
from sandbox.vendor_api import AdminBody, json_body

VENDOR = "asaas"

DEFAULT_CREDENTIALS: dict[str, str] = {
    # Asaas sandbox keys start `$aact_hmlg_`; the real base URL is https://api-sandbox.asaas.com
    "api_key": "$aact_hmlg_000leadflowSandboxAsaasApiKey0000000000000000",
    # sent back on every webhook in the `asaas-access-token` header (the webhook's authToken)
    "webhook_auth_token": "leadflow-sandbox-asaas-webhook-token",
}

#: Asaas runs on Brasília time (UTC-3, no daylight saving since 2019): "today" is São Paulo's.
BRAZIL = timezone(timedelta(hours=-3), "America/Sao_Paulo")
MAX_LIMIT = 100
PIX_FEE = 0.99  # what Asaas keeps of a PIX charge (netValue = value - fee)
MERCHANT_NAME = "LEADFLOW SANDBOX"
MERCHANT_CITY = "SAO PAULO"

PAYMENT_STATUSES = frozenset(
    {
        "PENDING",
        "RECEIVED",
        "CONFIRMED",
        "OVERDUE",
        "REFUNDED",
        "RECEIVED_IN_CASH",
        "REFUND_REQUESTED",
        "REFUND_IN_PROGRESS",
        "CHARGEBACK_REQUESTED",
        "CHARGEBACK_DISPUTE",
        "AWAITING_CHARGEBACK_REVERSAL",
        "DUNNING_REQUESTED",
        "DUNNING_RECEIVED",
        "AWAITING_RISK_ANALYSIS",
    }
)
BILLING_TYPES = frozenset({"UNDEFINED", "BOLETO", "CREDIT_CARD", "PIX"})
#: the payment events a webhook configuration may ask for (contracts README §4.5, SDK enum)
WEBHOOK_EVENTS = frozenset(
    {
        "PAYMENT_CREATED", "PAYMENT_AWAITING_RISK_ANALYSIS", "PAYMENT_APPROVED_BY_RISK_ANALYSIS",
        "PAYMENT_REPROVED_BY_RISK_ANALYSIS", "PAYMENT_AUTHORIZED", "PAYMENT_UPDATED",
        "PAYMENT_CONFIRMED", "PAYMENT_RECEIVED", "PAYMENT_CREDIT_CARD_CAPTURE_REFUSED",
        "PAYMENT_ANTICIPATED", "PAYMENT_OVERDUE", "PAYMENT_DELETED", "PAYMENT_RESTORED",
        "PAYMENT_REFUNDED", "PAYMENT_PARTIALLY_REFUNDED", "PAYMENT_REFUND_IN_PROGRESS",
        "PAYMENT_REFUND_DENIED", "PAYMENT_RECEIVED_IN_CASH_UNDONE", "PAYMENT_CHARGEBACK_REQUESTED",
        "PAYMENT_CHARGEBACK_DISPUTE", "PAYMENT_AWAITING_CHARGEBACK_REVERSAL",
        "PAYMENT_DUNNING_RECEIVED", "PAYMENT_DUNNING_REQUESTED", "PAYMENT_BANK_SLIP_VIEWED",
        "PAYMENT_CHECKOUT_VIEWED", "PAYMENT_SPLIT_CANCELLED", "PAYMENT_SPLIT_DIVERGENCE_BLOCK",
        "PAYMENT_SPLIT_DIVERGENCE_BLOCK_FINISHED",
    }
)  # fmt: skip
SEND_TYPES = frozenset({"SEQUENTIALLY", "NON_SEQUENTIALLY"})
_URL = re.compile(r"^https?://[^\s/]+")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# -- errors -------------------------------------------------------------------------------------


class AsaasError(Exception):
    """An answer Asaas gives instead of the resource: its status and `errors[]` envelope."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        description: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.headers = headers or {}

    def response(self) -> Response:
        if self.code is None:  # Asaas documents no body for 403/404
            return Response(status_code=self.status, headers=self.headers)
        body = {"errors": [{"code": self.code, "description": self.description}]}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(field: str, description: str) -> AsaasError:
    """Asaas names a validation error after the field: `invalid_cpfCnpj`, `invalid_dueDate`."""
    return AsaasError(400, f"invalid_{field}", description)


def not_found() -> AsaasError:
    return AsaasError(404)


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsaasLimits:
    """The request quota per rolling window and the concurrent-GET cap (Asaas: 50).

    Asaas's real numbers (25,000 requests / 12 h, 50 concurrent GETs) would throttle a
    benchmark, so the defaults are high; the admin API lowers them to test a client's 429s.
    """

    requests_per_window: int = 1_000_000
    window_seconds: float = 60.0
    concurrent_gets: int = 10_000


class PixHoldBody(AdminBody):
    """Whether a paid PIX is first held (CONFIRMED) before it is RECEIVED."""

    enabled: bool


class LimitsBody(AdminBody):
    requests_per_window: int = Field(1_000_000, ge=1, le=1_000_000_000)
    window_seconds: float = Field(60.0, gt=0, le=30 * 86_400)
    concurrent_gets: int = Field(10_000, ge=1, le=1_000_000)


# -- state --------------------------------------------------------------------------------------


class Customer(TypedDict):
    """A customer as Asaas answers it (CustomerGetResponseDTO), plus `_groupName`: it filters
    the list but Asaas's DTO has no such field, so it is never answered (`public`)."""

    object: str
    id: str
    dateCreated: str
    name: str
    email: str | None
    phone: str | None
    mobilePhone: str | None
    address: str | None
    addressNumber: str | None
    complement: str | None
    province: str | None
    city: str | None
    cityName: str | None
    state: str | None
    country: str
    postalCode: str | None
    cpfCnpj: str
    personType: str
    deleted: bool
    additionalEmails: str | None
    externalReference: str | None
    notificationDisabled: bool
    observations: str | None
    foreignCustomer: bool
    _groupName: str | None


class Payment(TypedDict):
    """A charge as Asaas answers it (PaymentGetResponseDTO): every key, set or null."""

    object: str
    id: str
    dateCreated: str
    customer: str
    subscription: str | None
    installment: str | None
    checkoutSession: str | None
    paymentLink: str | None
    value: float
    netValue: float
    originalValue: float | None
    interestValue: float | None
    discount: dict[str, Any]
    fine: dict[str, Any]
    interest: dict[str, Any]
    description: str | None
    billingType: str
    canBePaidAfterDueDate: bool
    pixTransaction: str | None
    pixQrCodeId: str | None
    status: str
    dueDate: str
    originalDueDate: str
    paymentDate: str | None
    clientPaymentDate: str | None
    installmentNumber: int | None
    invoiceUrl: str
    invoiceNumber: str
    externalReference: str | None
    deleted: bool
    anticipated: bool
    anticipable: bool
    creditDate: str | None
    estimatedCreditDate: str | None
    transactionReceiptUrl: str | None
    nossoNumero: str | None
    bankSlipUrl: str | None
    postalService: bool
    split: list[Any] | None
    refunds: list[Any] | None
    chargeback: dict[str, Any] | None
    escrow: dict[str, Any] | None


class Event(TypedDict):
    """One webhook event as fired (the admin API's event log): its id, name and payment."""

    id: str
    event: str
    payment: str


class WebhookConfiguration(TypedDict):
    """A `/v3/webhooks` configuration as answered, plus `_authToken` (kept, never answered)."""

    object: str
    id: str
    name: str
    url: str
    email: str | None
    enabled: bool
    interrupted: bool
    apiVersion: int
    hasAuthToken: bool
    sendType: str
    events: list[str]
    _authToken: str | None


@dataclass
class AsaasState:
    """One Asaas account: customers and charges by id, the events fired (in order), the webhook
    configurations, and the admin API's settings (the limits, the PIX precautionary hold)."""

    limits: AsaasLimits
    customers: dict[str, Customer] = dataclasses.field(default_factory=dict)
    payments: dict[str, Payment] = dataclasses.field(default_factory=dict)
    events: list[Event] = dataclasses.field(default_factory=list)
    webhooks: dict[str, WebhookConfiguration] = dataclasses.field(default_factory=dict)
    pix_hold: bool = False


# -- PIX: BR Code and image ---------------------------------------------------------------------


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), the checksum the BR Code spec requires."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _emv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def pix_payload(location: str, value: float, txid: str = "***") -> str:
    """A dynamic PIX BR Code (EMV MPM) pointing at `location`, as Asaas's copy-and-paste code."""
    body = (
        _emv("00", "01")
        + _emv("01", "12")  # dynamic: may be paid once
        + _emv("26", _emv("00", "br.gov.bcb.pix") + _emv("25", location))
        + _emv("52", "0000")
        + _emv("53", "986")  # BRL
        + _emv("54", f"{value:.2f}")
        + _emv("58", "BR")
        + _emv("59", MERCHANT_NAME[:25])
        + _emv("60", MERCHANT_CITY[:15])
        + _emv("62", _emv("05", txid))
        + "6304"
    )
    return body + f"{crc16_ccitt(body.encode('ascii')):04X}"


@functools.lru_cache(maxsize=256)
def png_image(seed: str, cells: int = 29, scale: int = 4) -> bytes:
    """A valid black-and-white PNG patterned from `seed` (a stand-in: not a scannable QR code)."""
    bits = hashlib.shake_256(seed.encode()).digest(cells * cells // 8 + 1)
    size = cells * scale
    rows = []
    for cell_row in range(cells):  # one row of cells, drawn once, is `scale` rows of pixels
        row = bytearray([0])  # filter type 0
        for cell in range(cell_row * cells, (cell_row + 1) * cells):
            dark = (bits[cell // 8] >> (cell % 8)) & 1
            row += (b"\x00" if dark else b"\xff") * scale
        rows.extend([bytes(row)] * scale)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


# -- request parsing ----------------------------------------------------------------------------


def _optional_str(payload: dict[str, Any], field: str, max_length: int | None = None) -> str | None:
    value = payload.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid(field, f"O campo {field} é inválido.")
    text = str(value)
    if max_length is not None and len(text) > max_length:
        raise invalid(field, f"O campo {field} deve ter no máximo {max_length} caracteres.")
    return text


def _optional_bool(payload: dict[str, Any], field: str) -> bool | None:
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(field, f"O campo {field} deve ser verdadeiro ou falso.")
    return value


def document_digits(value: str) -> str:
    """CPF/CNPJ as Asaas stores it: punctuation removed (letters kept for the new CNPJ)."""
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


def valid_cpf_cnpj(document: str) -> bool:
    if len(document) == 11:
        return bool(CPF().validate(document))
    if len(document) == 14:
        return bool(CNPJ().validate(document))
    return False


def parse_date(value: Any, field: str) -> date:
    """Asaas dates are `YYYY-MM-DD`, nothing else (no time, no slashes)."""
    if not isinstance(value, str) or not _DATE.match(value):
        raise invalid(field, f"O campo {field} deve estar no formato AAAA-MM-DD.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(field, f"A data informada em {field} é inválida.") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_discount(value: Any, amount: float) -> dict[str, Any]:
    """`discount{value, dueDateLimitDays, type}` as Asaas answers it (zeros when none is asked).

    A fixed discount must leave something to pay and a percentage cannot pass 100.
    """
    if value is None:
        return {"value": 0, "dueDateLimitDays": 0, "type": "FIXED"}
    if not isinstance(value, dict):
        raise invalid("discount", "O campo discount deve ser um objeto.")
    kind = value.get("type", "FIXED")
    if kind not in ("FIXED", "PERCENTAGE"):
        raise invalid("discount", "O tipo de desconto deve ser FIXED ou PERCENTAGE.")
    discount = value.get("value", 0)
    if not _number(discount) or discount < 0:
        raise invalid("discount", "O valor do desconto deve ser um número não negativo.")
    if (kind == "FIXED" and discount >= amount) or (kind == "PERCENTAGE" and discount > 100):
        raise invalid("discount", "O desconto não pode ser maior ou igual ao valor da cobrança.")
    days = value.get("dueDateLimitDays", 0)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise invalid("discount", "O campo dueDateLimitDays deve ser um inteiro não negativo.")
    return {"value": discount, "dueDateLimitDays": days, "type": kind}


def _percentage(value: Any, field: str) -> float | int:
    """`fine` / `interest`: `{value}` in percent (fine may also say `type`); 0 when absent."""
    if value is None:
        return 0
    if not isinstance(value, dict):
        raise invalid(field, f"O campo {field} deve ser um objeto.")
    if field == "fine" and value.get("type", "PERCENTAGE") not in ("FIXED", "PERCENTAGE"):
        raise invalid(field, "O tipo de multa deve ser FIXED ou PERCENTAGE.")
    amount = value.get("value", 0)
    if not _number(amount) or amount < 0:
        raise invalid(field, f"O valor de {field} deve ser um número não negativo.")
    return amount


def parse_callback(value: Any) -> None:
    """`callback{successUrl (required, ≤255), autoRedirect}`: checked, not answered (no field)."""
    if value is None:
        return
    url = value.get("successUrl") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise invalid("callback", "O campo successUrl deve ser informado.")
    if len(url) > 255:
        raise invalid("callback", "O campo successUrl deve ter no máximo 255 caracteres.")
    if not isinstance(value.get("autoRedirect", True), bool):
        raise invalid("callback", "O campo autoRedirect deve ser verdadeiro ou falso.")


def _page(query: dict[str, str]) -> tuple[int, int]:
    try:
        offset = int(query.get("offset", "0"))
        limit = int(query.get("limit", "10"))
    except ValueError:
        raise invalid("object", "Os parâmetros offset e limit devem ser números.") from None
    if offset < 0:
        raise invalid("offset", "O offset não pode ser negativo.")
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"O limit deve estar entre 1 e {MAX_LIMIT}.")
    return offset, limit


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """What Asaas answers about a stored object: its fields without the sandbox's own (`_…`)."""
    return {key: value for key, value in record.items() if not key.startswith("_")}


def list_envelope(items: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    page = items[offset : offset + limit]
    return {
        "object": "list",
        "hasMore": offset + len(page) < len(items),
        "totalCount": len(items),
        "limit": limit,
        "offset": offset,
        "data": page,
    }


# -- the emulator -------------------------------------------------------------------------------


class AsaasEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS):
    """Customers, payments and events in `sandbox.state.bucket("asaas")`."""

    def __init__(self, sandbox: Sandbox, limits: AsaasLimits | None = None) -> None:
        super().__init__(sandbox)
        self.default_limits = limits or AsaasLimits()
        #: "now" in Brasília time; tests replace it to move the calendar
        self.clock: Callable[[], datetime] = lambda: datetime.now(BRAZIL)
        self._rate_lock = threading.Lock()
        self._quota = FixedWindow()
        self._gets_in_flight = 0

    @property
    def bucket(self) -> AsaasState:
        """The account's state, laid out on first use (and again after an admin reset)."""
        return self.state.bucket(VENDOR, self._layout)

    def _layout(self) -> AsaasState:
        return AsaasState(limits=self.default_limits)

    @property
    def limits(self) -> AsaasLimits:
        with self.sandbox.state.lock:
            return self.bucket.limits

    def today(self) -> date:
        return self.clock().astimezone(BRAZIL).date()

    def _timestamp(self) -> str:
        return self.clock().astimezone(BRAZIL).strftime("%Y-%m-%d %H:%M:%S")

    # -- the request gate -----------------------------------------------------------------
    def authenticate(self, request: Request) -> None:
        key = request.headers.get("access_token")
        if key is None or not secrets.compare_digest(
            key.encode(), self.credentials["api_key"].encode()
        ):
            raise AsaasError(401, "invalid_access_token", "A chave de API fornecida é inválida")
        if not request.headers.get("user-agent", "").strip():
            raise AsaasError(
                400,
                "invalid_user_agent",
                "O header User-Agent é obrigatório: informe o nome da sua aplicação.",
            )

    def admit(self) -> dict[str, str]:
        """Count one request against the quota window; 429 when it is spent."""
        limits = self.limits
        admission = self._quota.admit(limits.requests_per_window, limits.window_seconds)
        reset = max(0, int(admission.resets_in + 0.999))
        headers = {
            "RateLimit-Limit": str(limits.requests_per_window),
            "RateLimit-Remaining": str(admission.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not admission.admitted:
            raise AsaasError(
                429,
                "rate_limit_exceeded",
                "Limite de requisições atingido. Aguarde para tentar novamente.",
                {**headers, "Retry-After": str(reset)},
            )
        return headers

    def enter_get(self) -> None:
        limits = self.limits
        with self._rate_lock:
            if self._gets_in_flight >= limits.concurrent_gets:
                raise AsaasError(
                    429,
                    "rate_limit_exceeded",
                    "Limite de requisições GET simultâneas atingido.",
                    {"Retry-After": "1"},
                )
            self._gets_in_flight += 1

    def leave_get(self) -> None:
        with self._rate_lock:
            self._gets_in_flight -= 1

    # -- customers ------------------------------------------------------------------------
    def create_customer(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise invalid("object", "O corpo da requisição deve ser um objeto JSON.")
        name = _optional_str(payload, "name")
        if not name or not name.strip():
            raise invalid("name", "O campo nome deve ser informado.")
        raw_document = _optional_str(payload, "cpfCnpj")
        if not raw_document:
            raise invalid("cpfCnpj", "O campo CPF/CNPJ deve ser informado.")
        document = document_digits(raw_document)
        if not valid_cpf_cnpj(document):
            raise invalid("cpfCnpj", "O CPF/CNPJ informado é inválido.")
        email = _optional_str(payload, "email")
        if email is not None and not _EMAIL.match(email):
            raise invalid("email", "O email informado é inválido.")
        phones: dict[str, str | None] = {}
        for field in ("phone", "mobilePhone"):
            value = _optional_str(payload, field)
            if value is not None:
                digits = re.sub(r"\D", "", value)
                if not 10 <= len(digits) <= 11:
                    raise invalid(field, f"O {field} informado é inválido.")
                value = digits
            phones[field] = value
        postal_code = _optional_str(payload, "postalCode")
        if postal_code is not None:
            postal_code = re.sub(r"\D", "", postal_code)
            if len(postal_code) != 8:
                raise invalid("postalCode", "O CEP informado é inválido.")
        customer_fields = {
            field: _optional_str(payload, field, 255)
            for field in (
                "address",
                "addressNumber",
                "complement",
                "province",
                "externalReference",
                "additionalEmails",
                "observations",
            )
        }
        flags = {
            field: _optional_bool(payload, field)
            for field in ("notificationDisabled", "foreignCustomer")
        }
        with self.sandbox.state.lock:
            number = self.sandbox.state.next_id(VENDOR, "customer", start=5_401_844)
            customer: Customer = {
                "object": "customer",
                "id": f"cus_{number:012d}",
                "dateCreated": self.today().isoformat(),
                "name": name.strip(),
                "email": email,
                "phone": phones["phone"],
                "mobilePhone": phones["mobilePhone"],
                "address": customer_fields["address"],
                "addressNumber": customer_fields["addressNumber"],
                "complement": customer_fields["complement"],
                "province": customer_fields["province"],
                "city": None,
                "cityName": None,
                "state": None,
                "country": "Brasil",
                "postalCode": postal_code,
                "cpfCnpj": document,
                "personType": "FISICA" if len(document) == 11 else "JURIDICA",
                "deleted": False,
                "additionalEmails": customer_fields["additionalEmails"],
                "externalReference": customer_fields["externalReference"],
                "notificationDisabled": bool(flags["notificationDisabled"]),
                "observations": customer_fields["observations"],
                "foreignCustomer": bool(flags["foreignCustomer"]),
                "_groupName": _optional_str(payload, "groupName", 255),
            }
            self.bucket.customers[customer["id"]] = customer
            self.sandbox.state.created(VENDOR, "customer")
            return public(customer)

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        with self.sandbox.state.lock:
            customer = self.bucket.customers.get(customer_id)
            if customer is None:
                raise not_found()
            return public(customer)

    def list_customers(self, query: dict[str, str]) -> dict[str, Any]:
        offset, limit = _page(query)
        document = document_digits(query["cpfCnpj"]) if "cpfCnpj" in query else None
        name = query.get("name", "").lower()
        with self.sandbox.state.lock:
            found = [
                public(c)
                for c in self.bucket.customers.values()
                if not c["deleted"]
                and (document is None or c["cpfCnpj"] == document)
                and (
                    "externalReference" not in query
                    or c["externalReference"] == query["externalReference"]
                )
                and ("email" not in query or (c["email"] or "") == query["email"])
                and (not name or name in c["name"].lower())
                and ("groupName" not in query or c["_groupName"] == query["groupName"])
            ]
        found.reverse()  # Asaas lists the newest first
        return list_envelope(found, offset, limit)

    # -- payments -------------------------------------------------------------------------
    def create_payment(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise invalid("object", "O corpo da requisição deve ser um objeto JSON.")
        customer_id = payload.get("customer")
        with self.sandbox.state.lock:
            customer = (
                self.bucket.customers.get(customer_id) if isinstance(customer_id, str) else None
            )
        if customer is None or customer["deleted"]:
            raise AsaasError(400, "invalid_customer", "Customer Inválido ou não informado")
        billing_type = payload.get("billingType")
        if billing_type not in BILLING_TYPES:
            raise invalid("billingType", "Informe uma forma de pagamento válida.")
        value = payload.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid("value", "O campo valor deve ser informado.")
        if value <= 0:
            raise invalid("value", "O valor da cobrança deve ser maior que zero.")
        if billing_type == "PIX" and value < 0.01:
            raise invalid("value", "O valor mínimo para Pix é R$ 0,01.")
        if "dueDate" not in payload or payload["dueDate"] in (None, ""):
            raise invalid("dueDate", "O campo vencimento deve ser informado.")
        due = parse_date(payload["dueDate"], "dueDate")
        if due < self.today():
            raise invalid("dueDate", "A data de vencimento não pode ser anterior à data atual.")
        description = _optional_str(payload, "description", 500)
        external_reference = _optional_str(payload, "externalReference")
        for forbidden in ("installmentCount", "installmentValue", "totalValue"):
            if payload.get(forbidden) is not None and billing_type == "PIX":
                raise invalid(forbidden, "Cobranças Pix não podem ser parceladas.")
        discount = parse_discount(payload.get("discount"), float(value))
        fine = {"value": _percentage(payload.get("fine"), "fine")}
        interest = {"value": _percentage(payload.get("interest"), "interest")}
        parse_callback(payload.get("callback"))
        with self.sandbox.state.lock:
            number = self.sandbox.state.next_id(VENDOR, "payment", start=80_225_913_252)
            invoice = self.sandbox.state.next_id(VENDOR, "invoice", start=1)
            payment_id = f"pay_{number:012d}"
            amount = round(float(value), 2)
            payment: Payment = {
                "object": "payment",
                "id": payment_id,
                "dateCreated": self.today().isoformat(),
                "customer": customer["id"],
                "subscription": None,
                "installment": None,
                "checkoutSession": None,
                "paymentLink": None,
                "value": amount,
                "netValue": round(max(amount - PIX_FEE, 0), 2) if billing_type == "PIX" else amount,
                "originalValue": None,
                "interestValue": None,
                "discount": discount,
                "fine": fine,
                "interest": interest,
                "description": description,
                "billingType": billing_type,
                "canBePaidAfterDueDate": True,
                "pixTransaction": None,
                "pixQrCodeId": None,
                "status": "PENDING",
                "dueDate": due.isoformat(),
                "originalDueDate": due.isoformat(),
                "paymentDate": None,
                "clientPaymentDate": None,
                "installmentNumber": None,
                "invoiceUrl": f"{self.sandbox.base_url(VENDOR)}/i/{number:012d}",
                "invoiceNumber": f"{invoice:08d}",
                "externalReference": external_reference,
                "deleted": False,
                "anticipated": False,
                "anticipable": False,
                "creditDate": None,
                "estimatedCreditDate": None,
                "transactionReceiptUrl": None,
                "nossoNumero": None,
                "bankSlipUrl": None,
                "postalService": False,
                # documented on every payment, unset for a fresh single charge
                "split": None,
                "refunds": None,
                "chargeback": None,
                "escrow": None,
            }
            self.bucket.payments[payment_id] = payment
            self.sandbox.state.created(VENDOR, "payment")
            snapshot = dict(payment)
            self._fire("PAYMENT_CREATED", snapshot)
        return snapshot

    def get_payment(self, payment_id: str) -> dict[str, Any]:
        with self.sandbox.state.lock:
            return dict(self._payment(payment_id))

    def _payment(self, payment_id: str) -> Payment:
        """The stored charge (the caller holds the state lock); Asaas's 404 when there is none."""
        payment = self.bucket.payments.get(payment_id)
        if payment is None:
            raise not_found()
        return payment

    def payment_status(self, payment_id: str) -> dict[str, str]:
        """`GET /v3/payments/{id}/status`: the status alone, what a poller needs."""
        return {"status": self.get_payment(payment_id)["status"]}

    def list_payments(self, query: dict[str, str]) -> dict[str, Any]:
        offset, limit = _page(query)
        if "status" in query and query["status"] not in PAYMENT_STATUSES:
            raise invalid("status", "O status informado é inválido.")
        if "billingType" in query and query["billingType"] not in BILLING_TYPES:
            raise invalid("billingType", "A forma de pagamento informada é inválida.")
        ranges: list[tuple[str, str, date]] = []
        for field in ("dateCreated", "dueDate", "paymentDate"):
            for bound in ("ge", "le"):
                key = f"{field}[{bound}]"
                if key in query:
                    ranges.append((field, bound, parse_date(query[key], key)))
        exact = ("customer", "externalReference", "status", "billingType", "subscription")
        with self.sandbox.state.lock:
            found = []
            for stored in self.bucket.payments.values():
                payment: Mapping[str, Any] = stored  # filtered by the fields the query names
                if payment["deleted"]:
                    continue
                if any(f in query and payment[f] != query[f] for f in exact):
                    continue
                if not all(_in_range(payment[f], bound, day) for f, bound, day in ranges):
                    continue
                found.append(dict(payment))
        found.reverse()
        return list_envelope(found, offset, limit)

    def pix_qr_code(self, payment_id: str) -> dict[str, Any]:
        payment = self.get_payment(payment_id)
        if payment["billingType"] not in ("PIX", "UNDEFINED"):
            raise invalid("billingType", "Somente cobranças Pix ou a definir possuem QR Code.")
        if payment["status"] not in ("PENDING", "OVERDUE"):
            raise invalid("status", "Esta cobrança já foi paga e não possui QR Code disponível.")
        location = f"pix-h.asaas.com/qr/cobv/{self._location_uuid(payment_id)}"
        payload = pix_payload(location, payment["value"])
        expires = date.fromisoformat(payment["dueDate"]) + timedelta(days=365)
        return {
            "encodedImage": base64.b64encode(png_image(payload)).decode("ascii"),
            "payload": payload,
            "expirationDate": f"{expires.isoformat()} 23:59:59",
        }

    def _location_uuid(self, payment_id: str) -> str:
        """Stable per payment (a charge has one QR code), derived from the seed and the id."""
        digest = hashlib.sha256(f"{self.sandbox.seed}:{payment_id}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    # -- webhook configurations (/v3/webhooks) ----------------------------------------------
    def create_webhook(self, payload: Any) -> dict[str, Any]:
        """Store a webhook configuration (WebhookConfigSaveRequestDto); events follow it.

        As at Asaas, a second configuration for the same URL is made if asked (each event then
        goes out twice): the client lists first. The token is kept, never answered
        (`hasAuthToken` says whether there is one).
        """
        if not isinstance(payload, dict):
            raise invalid("object", "O corpo da requisição deve ser um objeto JSON.")
        name = _optional_str(payload, "name", 255)
        if not name or not name.strip():
            raise invalid("name", "O campo name deve ser informado.")
        url = _optional_str(payload, "url", 500)
        if not url or not _URL.match(url):
            raise invalid("url", "Informe uma URL válida.")
        email = _optional_str(payload, "email")
        if email is not None and not _EMAIL.match(email):
            raise invalid("email", "O email informado é inválido.")
        send_type = payload.get("sendType")
        if send_type not in SEND_TYPES:
            raise invalid("sendType", "Informe o tipo de envio: SEQUENTIALLY ou NON_SEQUENTIALLY.")
        events = payload.get("events")
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in events)
        ):
            raise invalid("events", "Informe ao menos um evento válido.")
        api_version = payload.get("apiVersion", 3)
        if api_version != 3:
            raise invalid("apiVersion", "A versão da API deve ser 3.")
        token = _optional_str(payload, "authToken", 255)
        enabled = _optional_bool(payload, "enabled")
        interrupted = _optional_bool(payload, "interrupted")
        with self.sandbox.state.lock:
            webhook_id = str(uuid.UUID(int=self.sandbox.random.getrandbits(128), version=4))
            webhook: WebhookConfiguration = {
                "object": "webhook",
                "id": webhook_id,
                "name": name.strip(),
                "url": url,
                "email": email,
                "enabled": True if enabled is None else enabled,
                "interrupted": bool(interrupted),
                "apiVersion": 3,
                "hasAuthToken": bool(token),
                "sendType": send_type,
                "events": list(dict.fromkeys(events)),
                "_authToken": token,
            }
            self.bucket.webhooks[webhook_id] = webhook
            self.sandbox.state.created(VENDOR, "webhook")
            return public(webhook)

    def list_webhooks(self, query: dict[str, str]) -> dict[str, Any]:
        offset, limit = _page(query)
        with self.sandbox.state.lock:
            found = [public(w) for w in self.bucket.webhooks.values()]
        return list_envelope(found, offset, limit)

    # -- what the payer (or the sandbox helper) does ---------------------------------------
    def pending_pix(self) -> list[str]:
        with self.sandbox.state.lock:
            return [
                p["id"]
                for p in self.bucket.payments.values()
                if p["status"] == "PENDING" and p["billingType"] == "PIX" and not p["deleted"]
            ]

    def receive_pix(self, payment_id: str) -> dict[str, Any]:
        """The client pays the PIX: PENDING/OVERDUE → RECEIVED, and PAYMENT_RECEIVED fires.

        With the precautionary hold on (Asaas may hold a natural-person account's PIX up to
        72 h), payment goes to CONFIRMED firing PAYMENT_CONFIRMED; paying ("confirming") the
        CONFIRMED charge again releases it to RECEIVED, as Asaas does when the hold ends.
        """
        today = self.today().isoformat()
        with self.sandbox.state.lock:
            bucket = self.bucket
            payment = self._payment(payment_id)
            status = payment["status"]
            if status == "CONFIRMED":
                payment.update(
                    {"status": "RECEIVED", "creditDate": today, "estimatedCreditDate": today}
                )
                snapshot = dict(payment)
                event = "PAYMENT_RECEIVED"
            elif status in ("PENDING", "OVERDUE"):
                held = bucket.pix_hold
                payment.update(
                    {
                        "status": "CONFIRMED" if held else "RECEIVED",
                        "paymentDate": today,
                        "clientPaymentDate": today,
                        "creditDate": None if held else today,
                        "estimatedCreditDate": (
                            (self.today() + timedelta(days=3)).isoformat() if held else today
                        ),
                        "pixTransaction": self._location_uuid(f"{payment_id}:transaction"),
                        "transactionReceiptUrl": (
                            f"{self.sandbox.base_url(VENDOR)}/comprovantes/{payment_id[4:]}"
                        ),
                    }
                )
                snapshot = dict(payment)
                event = "PAYMENT_CONFIRMED" if held else "PAYMENT_RECEIVED"
            else:
                raise invalid(
                    "action", f"A cobrança {payment_id} está {status} e não pode ser paga."
                )
            self._fire(event, snapshot)
        return snapshot

    def release_held(self) -> list[str]:
        """Asaas ends every precautionary hold: each CONFIRMED PIX becomes RECEIVED, in order.

        The simulated payer only pays; at Asaas the hold ends by itself (up to 72 h later), so
        the admin API calls this to let a scenario move on from CONFIRMED.
        """
        with self.sandbox.state.lock:
            held = [
                p["id"]
                for p in self.bucket.payments.values()
                if p["status"] == "CONFIRMED" and p["billingType"] == "PIX" and not p["deleted"]
            ]
            for payment_id in held:
                self.receive_pix(payment_id)
        return held

    def make_overdue(self, payment_id: str) -> dict[str, Any]:
        """The client never pays: PENDING → OVERDUE, then PAYMENT_OVERDUE fires."""
        with self.sandbox.state.lock:
            payment = self._payment(payment_id)
            if payment["status"] != "PENDING":
                raise invalid(
                    "action",
                    f"A cobrança {payment_id} está {payment['status']} e não pode vencer.",
                )
            payment["status"] = "OVERDUE"
            snapshot = dict(payment)
            self._fire("PAYMENT_OVERDUE", snapshot)
        return snapshot

    def payer_accepts(self, payment_id: str) -> dict[str, Any]:
        try:
            return self.receive_pix(payment_id)
        except AsaasError as error:
            raise ValueError(error.description or f"no payment {payment_id}") from None

    def payer_refuses(self, payment_id: str) -> dict[str, Any]:
        try:
            return self.make_overdue(payment_id)
        except AsaasError as error:
            raise ValueError(error.description or f"no payment {payment_id}") from None

    # -- webhooks -------------------------------------------------------------------------
    def _fire(self, event: str, payment: dict[str, Any]) -> None:
        """Record the event and queue it for each listener, as Asaas does.

        The listeners are the webhook configurations made through `/v3/webhooks` that are
        enabled, not interrupted and ask for this event (each gets its own `authToken` in the
        `asaas-access-token` header), and the admin API's target, which stands for one set in
        Asaas's console: every event, with the credentials' token — unless a configuration
        already has its URL, so one receiver never gets the same event twice from two setups.

        Called with the state lock held by the change it reports, so the events of one payment
        are numbered and queued in the order the changes happened: a payer acting in another
        thread cannot get PAYMENT_RECEIVED queued before the PAYMENT_CREATED of its charge.
        """
        with self.sandbox.state.lock:
            number = self.sandbox.state.next_id(VENDOR, "event", start=368_604_920)
            token = self.sandbox.random.getrandbits(128)
            body: dict[str, Any] = {
                "id": f"evt_{token:032x}&{number}",
                "event": event,
                "dateCreated": self._timestamp(),
                "payment": payment,
            }
            self.bucket.events.append({"id": body["id"], "event": event, "payment": payment["id"]})
            listeners = self._listeners(event)
        if not listeners:
            return
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        for url, auth_token in listeners:
            headers = {"Content-Type": "application/json", "User-Agent": "Asaas_Hmlg/3.0"}
            if auth_token:
                headers["asaas-access-token"] = auth_token
            self.sandbox.webhooks.deliver(vendor=VENDOR, url=url, body=raw, headers=headers)

    def _listeners(self, event: str) -> list[tuple[str, str | None]]:
        """(URL, token) of each listener of `event`: see `_fire`."""
        with self.sandbox.state.lock:
            configured = list(self.bucket.webhooks.values())
        listeners: list[tuple[str, str | None]] = [
            (w["url"], w["_authToken"])
            for w in configured
            if w["enabled"] and not w["interrupted"] and event in w["events"]
        ]
        target = self.sandbox.webhook_targets.get(VENDOR)
        if target and all(w["url"] != target for w in configured):
            listeners.append((target, self.credentials["webhook_auth_token"]))
        return listeners


def _in_range(value: str | None, bound: str, day: date) -> bool:
    if value is None:
        return False
    current = date.fromisoformat(value)
    return current >= day if bound == "ge" else current <= day


# -- HTTP ---------------------------------------------------------------------------------------


def asaas_route_class(emulator: AsaasEmulator) -> type[APIRoute]:
    """Routes that authenticate, count the quota and answer AsaasError in Asaas's envelope."""

    class AsaasRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                is_get = request.method == "GET"
                entered = False
                try:
                    emulator.authenticate(request)
                    headers = emulator.admit()
                    if is_get:
                        emulator.enter_get()
                        entered = True
                        if await request.body():
                            raise AsaasError(403)  # "GET precisa ter um body vazio"
                    response = await handler(request)
                except AsaasError as error:
                    return error.response()
                finally:
                    if entered:
                        emulator.leave_get()
                response.headers.update(headers)
                return response

            return route

    return AsaasRoute


async def _json_body(request: Request) -> Any:
    return await json_body(
        request, refuse=lambda: invalid("object", "O corpo da requisição não é um JSON válido.")
    )


def asaas_fault_renderer(status: int, headers: dict[str, str]) -> Response:
    """Injected 429s in Asaas's envelope; injected 5xx come from its gateway as plain text."""
    if status == 429:
        return AsaasError(
            429, "rate_limit_exceeded", "Limite de requisições atingido.", headers
        ).response()
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return Response(
        f"{status} {reason.get(status, 'Gateway Timeout')}",
        status_code=status,
        headers=headers,
        media_type="text/plain",
    )


def render_unknown_route(sandbox: Sandbox, method: str, path: str, status: int) -> Response:
    """The app's answer for an unrouted call under /asaas: Asaas documents 404 with no body."""
    return Response(status_code=404)


Endpoint = Callable[[Request], Awaitable[Response]]


def _with_body(answer: Callable[[Any], Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(answer(await _json_body(request)))

    return endpoint


def _with_query(answer: Callable[[dict[str, str]], Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(answer(dict(request.query_params)))

    return endpoint


def _with_id(answer: Callable[[str], Any]) -> Endpoint:
    """The route's one path parameter (a customer's or a payment's id) is what `answer` takes."""

    async def endpoint(request: Request) -> Response:
        (object_id,) = request.path_params.values()
        return JSONResponse(answer(object_id))

    return endpoint


def build_router(sandbox: Sandbox, limits: AsaasLimits | None = None) -> APIRouter:
    """Asaas v3 as the app mounts it at /asaas (base URL `.../asaas`, paths `/v3/...`)."""
    emulator = AsaasEmulator(sandbox, limits)
    router = emulator.router(asaas_route_class(emulator), asaas_fault_renderer)
    emulator.person("payer", emulator.pending_pix, emulator.payer_accepts, emulator.payer_refuses)

    # Each route hands one thing to the emulator (the JSON body, the query, or the id in the
    # path) and answers with what it returns; its errors are AsaasErrors the route class renders.
    routes: list[tuple[str, str, Endpoint]] = [
        ("POST", "/v3/customers", _with_body(emulator.create_customer)),
        ("GET", "/v3/customers", _with_query(emulator.list_customers)),
        ("GET", "/v3/customers/{customer_id}", _with_id(emulator.get_customer)),
        ("POST", "/v3/payments", _with_body(emulator.create_payment)),
        ("GET", "/v3/payments", _with_query(emulator.list_payments)),
        ("GET", "/v3/payments/{payment_id}", _with_id(emulator.get_payment)),
        ("GET", "/v3/payments/{payment_id}/status", _with_id(emulator.payment_status)),
        ("GET", "/v3/payments/{payment_id}/pixQrCode", _with_id(emulator.pix_qr_code)),
        ("POST", "/v3/webhooks", _with_body(emulator.create_webhook)),
        ("GET", "/v3/webhooks", _with_query(emulator.list_webhooks)),
        ("POST", "/v3/sandbox/payment/{payment_id}/confirm", _with_id(emulator.receive_pix)),
        ("POST", "/v3/sandbox/payment/{payment_id}/overdue", _with_id(emulator.make_overdue)),
    ]
    for method, path, endpoint in routes:
        router.add_api_route(path, endpoint, methods=[method])

    # the payer's invoice page (invoiceUrl); public at Asaas, so outside the API's auth
    invoice_router = APIRouter()

    @invoice_router.get("/i/{number}", response_class=HTMLResponse)
    async def invoice_page(number: str) -> Response:
        try:
            payment = emulator.get_payment(f"pay_{number}")
        except AsaasError:
            return HTMLResponse("<h1>Fatura não encontrada</h1>", status_code=404)
        return HTMLResponse(
            f"<h1>Fatura {payment['invoiceNumber']}</h1>"
            f"<p>Valor: R$ {payment['value']:.2f} — vencimento {payment['dueDate']}</p>"
            f"<p>Situação: {payment['status']}</p>"
        )

    outer = APIRouter()
    outer.include_router(router)
    outer.include_router(invoice_router)
    return outer


def build_admin_router(sandbox: Sandbox) -> APIRouter:
    """Admin (under /__sandbox__/asaas): the quota and concurrency limits, the event log."""
    router = APIRouter()

    @router.put("/limits")
    def set_limits(body: LimitsBody) -> dict[str, Any]:
        with sandbox.state.lock:
            AsaasEmulator.of(sandbox).bucket.limits = AsaasLimits(**body.model_dump())
        return body.model_dump()

    @router.put("/pix-hold")
    def set_pix_hold(body: PixHoldBody) -> dict[str, bool]:
        with sandbox.state.lock:
            AsaasEmulator.of(sandbox).bucket.pix_hold = body.enabled
        return {"enabled": body.enabled}

    @router.post("/pix-hold/release")
    def release_held() -> dict[str, list[str]]:
        return {"released": AsaasEmulator.of(sandbox).release_held()}

    @router.get("/events")
    def events() -> list[dict[str, Any]]:
        with sandbox.state.lock:
            return [dict(event) for event in AsaasEmulator.of(sandbox).bucket.events]

    return router
