"""Which lead-form field feeds which lead field: the mapping the gate applies first.

Lead forms name their questions as the agency wrote them (Facebook's standard `full_name`,
`email`, `phone_number`; custom ones such as `nome_completo`, `whatsapp`, `cpf`). The gate
works on five lead fields; this mapping, configurable per form, turns one into the other. It
reads both a flat dict and Facebook's Lead Ads shape (`field_data: [{name, values}]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

LEAD_FIELDS: tuple[str, ...] = ("full_name", "email", "phone_number", "cpf", "cnpj")
"""The lead fields the gate normalises and validates, in the lead-form names Facebook uses."""

DEFAULT_FORM_FIELDS: dict[str, str] = {
    "full_name": "full_name",
    "nome": "full_name",
    "nome_completo": "full_name",
    "name": "full_name",
    "email": "email",
    "e-mail": "email",
    "phone_number": "phone_number",
    "phone": "phone_number",
    "telefone": "phone_number",
    "celular": "phone_number",
    "whatsapp": "phone_number",
    "cpf": "cpf",
    "cnpj": "cnpj",
}


class FieldMapping(BaseModel):
    """Form field name (compared case-insensitively) → lead field.

    Unknown form fields are kept under their own name (they are not validated); a form field
    mapped to a name outside LEAD_FIELDS is refused at configuration time, not at run time.
    """

    model_config = ConfigDict(frozen=True)

    fields: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FORM_FIELDS))

    @field_validator("fields")
    @classmethod
    def _targets_are_lead_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted({target for target in value.values() if target not in LEAD_FIELDS})
        if unknown:
            raise ValueError(f"unknown lead field(s) {unknown}; use one of {list(LEAD_FIELDS)}")
        return {name.strip().lower(): target for name, target in value.items()}

    def lead_field(self, form_field: str) -> str:
        """The lead field a form field feeds (itself when not mapped)."""
        return self.fields.get(form_field.strip().lower(), form_field)

    def map_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One lead form answer as lead fields; the first non-blank answer wins when two form
        fields feed the same lead field (say `phone_number` and `whatsapp`)."""
        answers = _flatten_facebook(row)
        mapped: dict[str, Any] = {}
        for name, value in answers.items():
            target = self.lead_field(str(name))
            if target in mapped and not _is_blank(mapped[target]):
                continue
            mapped[target] = value
        return mapped


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _flatten_facebook(row: Mapping[str, Any]) -> dict[str, Any]:
    """Facebook Lead Ads send `field_data: [{"name": ..., "values": [...]}]`; other sources
    send flat dicts. Both become {name: first value}."""
    field_data = row.get("field_data")
    if not isinstance(field_data, list):
        return dict(row)
    flat: dict[str, Any] = {k: v for k, v in row.items() if k != "field_data"}
    for item in field_data:
        if not isinstance(item, Mapping) or "name" not in item:
            continue
        values = item.get("values") or [None]
        flat[str(item["name"])] = values[0] if isinstance(values, list) else values
    return flat
