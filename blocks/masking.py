"""Masking of personal data and secrets in log lines (LGPD), applied to every vendor-call log.

Where it sits: blocks/http.py logs one line per vendor call through the "leadflow.http" logger and
installs `MaskingFilter` on it; clients mask vendor error messages with `mask_text` before they are
put into an exception (exceptions end up in Prefect logs and the ledger). Anything else in leadflow
that logs text it did not write itself can use the same filter.

What is masked: URL query strings (whole), e-mail addresses, CPF and CNPJ numbers (formatted or
bare), Brazilian and international phone numbers, bearer tokens, `token=`/`api_token=`-style
values, JWT-shaped strings and bare 32+ character keys. The masks keep just enough to tell two
values apart in a log (first letter and domain of an e-mail, last two digits of a phone), never
enough to identify the person.
"""

from __future__ import annotations

import logging
import re

__all__ = [
    "MaskingFilter",
    "install_masking",
    "mask_cpf_cnpj",
    "mask_email",
    "mask_phone",
    "mask_text",
]

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


def mask_email(email: str) -> str:
    """`joao.silva@example.com` → `j***@example.com`: the domain helps debugging, the name not."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """Keep the last two digits only: `+5511987654321` → `***21`."""
    digits = re.sub(r"\D", "", phone)
    return f"***{digits[-2:]}" if len(digits) >= 2 else "***"


def mask_cpf_cnpj(document: str) -> str:
    """Nothing of a CPF/CNPJ survives but its kind: `***cpf***` or `***cnpj***`."""
    digits = re.sub(r"\D", "", document)
    return "***cnpj***" if len(digits) == 14 else "***cpf***"


def mask_text(text: str) -> str:
    """Mask every e-mail, CPF/CNPJ, phone and secret-looking value found in free text."""
    text = _QUERY.sub(lambda m: f"{m.group(1)}?***", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    text = _KEYED_SECRET.sub(lambda m: f"{m.group(1)}***", text)
    text = _JWT.sub("***jwt***", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _CNPJ.sub(lambda m: mask_cpf_cnpj(m.group(0)), text)
    text = _CPF.sub(lambda m: mask_cpf_cnpj(m.group(0)), text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _LONG_SECRET.sub("***", text)
    return text


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
