"""Masks for personal data shown in artifacts, the CLI's lists and logs (LGPD; DESIGN.md,
principle 9): enough of a value to recognise it, never enough to use it.

Part of the quality gate's output side: the gate's Prefect table artifact
(tasks/quality_gate.py) and `leadflow quarantine list` show quarantined leads through these
masks, so people triaging the quarantine see which rule failed without seeing whose data it is.
"""

from __future__ import annotations

from typing import Any


def mask_email(value: Any) -> str:
    """ "maria.silva@exemplo.com.br" → "m***@exemplo.com.br"."""
    text = "" if value is None else str(value)
    if "@" not in text:
        return mask_text(text)
    local, _, domain = text.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(value: Any) -> str:
    """ "+5511987654321" → "+55*******4321"."""
    text = "" if value is None else str(value)
    if len(text) <= 4:
        return "*" * len(text)
    keep = 3 if text.startswith("+") else 0
    return text[:keep] + "*" * (len(text) - keep - 4) + text[-4:]


def mask_document(value: Any) -> str:
    """A CPF/CNPJ: only its last two characters."""
    text = "" if value is None else str(value)
    return "*" * max(len(text) - 2, 0) + text[-2:]


def mask_name(value: Any) -> str:
    """ "Maria da Silva" → "M. d. S."."""
    text = "" if value is None else str(value)
    return " ".join(f"{word[:1]}." for word in text.split()) or ""


def mask_text(value: Any) -> str:
    """Anything else that may be personal: its first character and its length."""
    text = "" if value is None else str(value)
    return f"{text[:1]}…({len(text)})" if text else ""


MASKS = {
    "full_name": mask_name,
    "email": mask_email,
    "phone_number": mask_phone,
    "cpf": mask_document,
    "cnpj": mask_document,
}


def mask_field(field: str, value: Any) -> str:
    """The masked form of a lead field's value ("" for a blank one)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return MASKS.get(field, mask_text)(value)
