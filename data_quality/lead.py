"""The lead as the rest of leadflow sees it once the gate has passed it: one typed value.

Produced by the gate (tasks/quality_gate.py builds it from a clean row of `split_leads`), stored
and returned by the ledger (`LeadView.normalized`), read by every task after the gate. Its values
are already normalised, so no other package normalises again: the ledger compares `email`,
`phone` and `document` as they are for de-duplication, the Pipedrive task searches by them, the
Asaas task sends `document` as `cpfCnpj`.

This module imports pydantic only, so the ledger can depend on it without pulling in the gate.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PhoneKind(StrEnum):
    """WhatsApp reaches mobiles only: a landline lead is contacted another way."""

    MOBILE = "mobile"
    LANDLINE = "landline"


class NormalizedLead(BaseModel):
    """A lead that passed the gate.

    `phone` is E.164 (`+5511987654321`), `email` lower-case, `cpf` 11 digits, `cnpj` 14
    characters (digits, or the alphanumeric CNPJ upper-cased). A field the form did not ask for
    is None (DESIGN.md, principle 3): the step that needs it checks for it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, max_length=64)
    source_id: str = Field(min_length=1, max_length=255)
    full_name: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None
    phone_kind: PhoneKind | None = None
    cpf: str | None = None
    cnpj: str | None = None

    @property
    def document(self) -> str | None:
        """The CPF, else the CNPJ: what Asaas takes as `cpfCnpj`."""
        return self.cpf or self.cnpj

    @property
    def first_name(self) -> str:
        return self.full_name.split()[0]

    @property
    def reachable_on_whatsapp(self) -> bool:
        return self.phone is not None and self.phone_kind is PhoneKind.MOBILE

    @classmethod
    def from_gate_row(cls, row: dict[str, Any], *, source: str, source_id: str) -> NormalizedLead:
        """A clean row of `split_leads` (lead-form field names: `phone_number`) as a lead."""

        def present(name: str) -> Any:
            value = row.get(name)
            if value is None or (isinstance(value, float) and value != value):
                return None
            return value

        return cls(
            source=source,
            source_id=source_id,
            full_name=row["full_name"],
            email=present("email"),
            phone=present("phone_number"),
            phone_kind=present("phone_kind"),
            cpf=present("cpf"),
            cnpj=present("cnpj"),
        )
