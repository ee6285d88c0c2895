"""The business's own choices, in one typed place: which forms feed leadflow, what each sells,
which pipeline, template, due date, hosting product and WhatsApp templates the journey uses.

Secrets are not here (they live in Prefect Blocks, blocks/); process knobs are not here either
(they are `LEADFLOW_*` settings, leadflow/settings.py). This is what an agency edits once when it
adopts leadflow: `leadflow.toml` in the working directory (or the file `LEADFLOW_BUSINESS_FILE`
names). `leadflow setup --sandbox URL` writes a coherent one for the sandbox.

    [pipedrive]
    lead_id_field = "leadflow lead id"

    [[forms]]
    id = "1234567890"
    name = "Site institucional"
    deal_title = "{full_name} — Site institucional"
    value = "1490.00"
    product = "site"

    [products.site]
    order_id = 1001
    domain = "{slug}-{lead_id}.clientes.agencia.com.br"

    [docusign]
    template_id = "2e4f6a8c-…"

Every key has a default except the ones only the business can know (the DocuSign template, the
hosting order): a step that needs one of those stops with a clear line naming the key.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadflow.settings import ConfigError, get_settings

__all__ = [
    "DEFAULT_FORM",
    "AsaasChoices",
    "BusinessConfig",
    "DocuSignChoices",
    "FormChoices",
    "PipedriveChoices",
    "ProductChoices",
    "TimingChoices",
    "WhatsAppChoices",
    "get_business",
    "load_business",
    "reset_business_cache",
    "slugify",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class FormChoices(_Section):
    """One Facebook lead form: what a lead from it buys and where its deal goes."""

    id: str = Field(min_length=1, description="The Lead Ads form id.")
    name: str = ""
    deal_title: str = Field("{full_name}", description="Deal title; {full_name}, {form} filled.")
    value: Money | None = Field(None, description="Deal value and the PIX charge, in `currency`.")
    currency: str = Field("BRL", pattern=r"^[A-Z]{3}$")
    pipeline_id: int | None = None
    stage_id: int | None = None
    product: str | None = Field(None, description="Key into [products]: what is activated.")


#: the form an ad-hoc lead (from Python, not from Facebook) is treated as coming from
DEFAULT_FORM = FormChoices(id="adhoc", name="ad-hoc")


class PipedriveChoices(_Section):
    lead_id_field: str = Field(
        "leadflow lead id", description="Deal custom field holding leadflow's lead id."
    )
    welcome_stage_id: int | None = Field(
        None, description="Stage the deal moves to once the client is welcomed (none: stays)."
    )


class DocuSignChoices(_Section):
    template_id: str | None = None
    signer_role: str = "Cliente"
    cpf_tab_label: str = Field("cpf", description="The template's text tab holding the CPF/CNPJ.")
    email_subject: str = Field("Contrato de prestação de serviços", max_length=100)


class AsaasChoices(_Section):
    due_days: int = Field(3, ge=0, le=365, description="Days from the charge to its due date.")
    description: str = Field("{deal_title}", max_length=500)


class ProductChoices(_Section):
    """What `activate_service` does at Hostinger for a deal of this product: build the client's
    website on a hosting order the agency already owns (Hostinger's "activation" model A,
    contracts README §5.3). leadflow never buys plans by itself: purchases spend money and have
    no look-up that makes them exactly-once."""

    order_id: int = Field(gt=0, description="The agency's Hostinger hosting order.")
    domain: str = Field(
        "{slug}-{lead_id}.example.com.br",
        description="Domain of the client's site; {slug}, {lead_id} and {first_name} filled.",
    )
    datacenter_code: str | None = None


class WhatsAppChoices(_Section):
    """Approved templates: `pix_template`'s body takes {{1}} the first name and {{2}} the PIX
    copy-and-paste code; `welcome_template`'s body takes {{1}} the first name."""

    pix_template: str = "pix_cobranca"
    welcome_template: str = "boas_vindas"
    welcome_text: str = Field(
        "Olá, {first_name}! Seu site {domain} já está no ar. Seja bem-vindo(a)!",
        description="Free text sent instead of the template when the client wrote in 24 h.",
    )
    language: str = "pt_BR"


class TimingChoices(_Section):
    """How the journey paces itself. Every wait is a `due_at` in the ledger, never a sleep."""

    retry_base_seconds: float = Field(30.0, gt=0)
    retry_cap_seconds: float = Field(3600.0, gt=0)
    waiting_recheck_seconds: float = Field(
        900.0, gt=0, description="How often the reconciler reads a deal/envelope/charge."
    )
    activation_poll_seconds: float = Field(60.0, gt=0)
    activation_poll_cap_seconds: float = Field(1800.0, gt=0)
    claim_lease_seconds: float = Field(
        300.0, gt=0, description="How long a worker holds the journeys it claimed."
    )
    effect_lease_seconds: float = Field(
        300.0,
        gt=0,
        description="How long one attempt at a vendor write is exclusive; must outlast a call "
        "with its retries (LEADFLOW_HTTP_TOTAL_TIMEOUT).",
    )


class BusinessConfig(_Section):
    """The whole of `leadflow.toml`."""

    blocks: str = Field("default", description="Name of every vendor's Block document.")
    concurrency: int = Field(
        10,
        ge=1,
        le=200,
        description="Vendor calls in flight per step (on up to twice as many leads at once).",
    )
    batch_size: int = Field(100, ge=1, le=5000, description="Journeys a stage claims at once.")
    forms: tuple[FormChoices, ...] = ()
    products: dict[str, ProductChoices] = Field(default_factory=dict)
    pipedrive: PipedriveChoices = PipedriveChoices()
    docusign: DocuSignChoices = DocuSignChoices()
    asaas: AsaasChoices = AsaasChoices()
    whatsapp: WhatsAppChoices = WhatsAppChoices()
    timing: TimingChoices = TimingChoices()

    @field_validator("forms")
    @classmethod
    def _form_ids_unique(cls, forms: tuple[FormChoices, ...]) -> tuple[FormChoices, ...]:
        ids = [form.id for form in forms]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"form ids appear twice: {repeated}")
        return forms

    def form(self, form_id: str | None) -> FormChoices:
        """The choices for a form (the ad-hoc defaults for an unknown or missing one)."""
        for form in self.forms:
            if form.id == form_id:
                return form
        return DEFAULT_FORM

    def product(self, form: FormChoices) -> ProductChoices:
        """The product a form's deals activate; ConfigError naming the key when missing."""
        name = form.product or (next(iter(self.products)) if len(self.products) == 1 else None)
        if name is None or name not in self.products:
            raise ConfigError(
                f"leadflow.toml: form {form.id!r} names no product in [products] "
                f"(set forms.product and a [products.<name>] section)"
            )
        return self.products[name]


def slugify(text: str) -> str:
    """`Maria da Conceição` → `maria-da-conceicao` (for domain names)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:40].strip("-") or "cliente"


def _describe(exc: ValidationError, path: Path) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(file)"
        parts.append(f"{where}: {error['msg']}")
    return f"{path}: " + "; ".join(parts)


def load_business(path: Path | None) -> BusinessConfig:
    """Read a business file; None or a missing default file gives the defaults."""
    if path is None or not path.exists():
        return BusinessConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return BusinessConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


@lru_cache(maxsize=1)
def get_business() -> BusinessConfig:
    """This process's business configuration (read once)."""
    return load_business(get_settings().business_file)


def reset_business_cache() -> None:
    get_business.cache_clear()
