"""The data-quality gate: normalise leads, validate them with GX, quarantine the bad ones.

    from data_quality import split_leads
    result = split_leads(rows)      # rows: a DataFrame or dicts with lead-form field names
    result.clean, result.quarantined, result.counts

Personal data is masked by leadflow.privacy (the one privacy module), not here. Imports
nothing else of the project; Great Expectations is imported on the first validation, and
pandas when `split_leads` is first looked up (so `leadflow --help` stays fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data_quality.fields import DEFAULT_FORM_FIELDS, LEAD_FIELDS, FieldMapping
from data_quality.normalize import (
    MISSING,
    NORMALISERS,
    Normalized,
    is_brazilian_mobile,
    normalize_cnpj,
    normalize_cpf,
    normalize_email,
    normalize_name,
    normalize_phone,
    phone_kind,
)

if TYPE_CHECKING:
    from data_quality.gate import GateResult, split_leads


def __getattr__(name: str) -> Any:
    if name in {"GateResult", "split_leads"}:
        from data_quality import gate

        return getattr(gate, name)
    raise AttributeError(f"module 'data_quality' has no attribute {name!r}")


__all__ = [
    "DEFAULT_FORM_FIELDS",
    "LEAD_FIELDS",
    "MISSING",
    "NORMALISERS",
    "FieldMapping",
    "GateResult",
    "Normalized",
    "is_brazilian_mobile",
    "normalize_cnpj",
    "normalize_cpf",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "phone_kind",
    "split_leads",
]
