"""Privacy: the one place that decides how personal data and secrets look when shown (LGPD;
DESIGN.md, principle 9).

Every part of leadflow that prints something a person or a vendor wrote (log lines, Prefect
artifacts, CLI tables, exception messages, inbox headers) goes through this module, so there is
one rule per kind of datum, not one per package:

- e-mail: `m***@exemplo.com.br` (the domain helps debugging, the name does not);
- phone: `***21` (two digits tell two numbers apart, never enough to dial);
- CPF / CNPJ: `***cpf***` / `***cnpj***` (only its kind: a document number is an identity);
- full name: `M. d. S.` (initials: enough to match a ticket, not to identify);
- anything else a person typed: `A…(12)`, its first character and length;
- free text (errors, logs): every e-mail, phone, CPF/CNPJ, bearer/basic credential, `token=`
  value, JWT and bare 32+ character key inside it, masked as above (vendors echo what they
  were sent);
- credential headers: `[redacted]` (the inbox keeps what processing needs, never what would
  let a reader impersonate a vendor).

This module imports nothing of the project: blocks/, ledger/, data_quality/, tasks/, webhooks/
and the CLI all import it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "MaskingFilter",
    "install_masking",
    "mask_document",
    "mask_email",
    "mask_field",
    "mask_name",
    "mask_phone",
    "mask_text",
    "mask_value",
    "redact_secret_headers",
]

REDACTED = "[redacted]"

_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)
# Secrets first: a token may contain digit runs that would otherwise be masked as documents.
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_KEYED_SECRET = re.compile(
    r"(?i)((?:access_?token|refresh_?token|api_?token|api_?key|client_?secret|password|secret|"
    r"token|x-api-token|access_token|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"
)
# a URL's query string may carry anything (search terms are e-mails, phones, tokens): drop it whole
_QUERY = re.compile(r"(https?://[^\s?#\"']+)\?[^\s#\"']*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# a bare 32+ character run of letters AND digits (API keys); UUIDs have hyphens and survive
_LONG_SECRET = re.compile(r"\b(?=[A-Za-z0-9_$]*[A-Za-z])(?=[A-Za-z0-9_$]*\d)[A-Za-z0-9_$]{32,}\b")
_CNPJ = re.compile(r"(?<!\d)\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}(?!\d)")
_CPF = re.compile(r"(?<!\d)\d{3}\.?\d{3}\.?\d{3}-?\d{2}(?!\d)")
# +55 (11) 98765-4321, 5511987654321, (11) 3456-7890, 11987654321 ... at least 8 digits in all.
_PHONE = re.compile(r"(?<![\w])\+?(?:\d[\s().-]{0,2}){8,15}\d(?![\w])")

#: Header names (lower-case fragments) whose values are credentials. Signatures
#: (X-Hub-Signature-256, X-DocuSign-Signature-1) are HMAC outputs, not secrets: kept.
SECRET_HEADER_MARKERS = (
    "authorization",
    "token",
    "secret",
    "password",
    "cookie",
    "api-key",
    "apikey",
)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def mask_email(value: Any) -> str:
    """`joao.silva@example.com` → `j***@example.com`."""
    text = _text(value)
    if not text:
        return ""
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(value: Any) -> str:
    """Keep the last two digits only: `+5511987654321` → `***21`."""
    text = _text(value)
    if not text:
        return ""
    digits = re.sub(r"\D", "", text)
    return f"***{digits[-2:]}" if len(digits) >= 2 else "***"


def mask_document(value: Any) -> str:
    """Nothing of a CPF/CNPJ survives but its kind: `***cpf***` or `***cnpj***`."""
    text = _text(value)
    if not text:
        return ""
    cleaned = re.sub(r"[^0-9A-Za-z]", "", text)
    return "***cnpj***" if len(cleaned) == 14 else "***cpf***"


def mask_name(value: Any) -> str:
    """`Maria da Silva` → `M. d. S.`."""
    return " ".join(f"{word[:1]}." for word in _text(value).split())


def mask_value(value: Any) -> str:
    """Anything else a person typed: its first character and its length, `A…(12)`."""
    text = _text(value)
    return f"{text[:1]}…({len(text)})" if text else ""


#: one rule per lead field; a field not named here is shown through `mask_value`
FIELD_MASKS = {
    "full_name": mask_name,
    "name": mask_name,
    "email": mask_email,
    "phone": mask_phone,
    "phone_number": mask_phone,
    "phone_e164": mask_phone,
    "cpf": mask_document,
    "cnpj": mask_document,
    "cpf_cnpj": mask_document,
    "document": mask_document,
}

#: fields that say nothing about a person and are shown as they are
PUBLIC_FIELDS = frozenset({"phone_kind", "source", "source_id", "lead_id"})


def mask_field(field: str, value: Any) -> str:
    """The masked form of a lead field's value ("" for a blank one)."""
    if field in PUBLIC_FIELDS:
        return _text(value)
    return FIELD_MASKS.get(field, mask_value)(value)


def mask_text(text: Any, *, names: Iterable[str] = ()) -> str:
    """Mask every e-mail, CPF/CNPJ, phone and secret-looking value found in free text.

    A person's name cannot be recognised in free text by its shape, so the names the caller
    knows are in it (the lead's own, when a vendor's message echoes what it was sent) are
    masked too: the whole name as initials, then each of its words of three letters or more.
    """
    text = _text(text)
    for name in names:
        if name and name.strip():
            text = re.sub(re.escape(name.strip()), mask_name(name), text, flags=re.IGNORECASE)
            for word in name.split():
                if len(word) >= 3:
                    pattern = rf"(?<!\w){re.escape(word)}(?!\w)"
                    text = re.sub(pattern, f"{word[:1]}.", text, flags=re.IGNORECASE)
    text = _QUERY.sub(lambda m: f"{m.group(1)}?***", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    text = _KEYED_SECRET.sub(lambda m: f"{m.group(1)}***", text)
    text = _JWT.sub("***jwt***", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _CNPJ.sub(lambda m: mask_document(m.group(0)), text)
    text = _CPF.sub(lambda m: mask_document(m.group(0)), text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _LONG_SECRET.sub("***", text)
    return text


def redact_secret_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """`headers` with every credential-bearing value replaced by `[redacted]` (Asaas sends its
    webhook token in `asaas-access-token`, Pipedrive basic auth in `Authorization`)."""
    return {
        name: REDACTED if any(marker in name.lower() for marker in SECRET_HEADER_MARKERS) else value
        for name, value in headers.items()
    }


class MaskingFilter(logging.Filter):
    """Rewrites each record's message with `mask_text` before any handler sees it.

    The record's arguments are merged into the message first, so a value passed as a `%s`
    argument is masked like one written into the message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format string: mask what is there
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        return True


def install_masking(logger: logging.Logger) -> logging.Logger:
    """Attach one MaskingFilter to `logger` (idempotent) and return the logger."""
    if not any(isinstance(f, MaskingFilter) for f in logger.filters):
        logger.addFilter(MaskingFilter())
    return logger
