"""Bad input from a person or from the Graph API, where tests/data_quality does not already
fuzz it: the form-field mapping over any answer shape Meta could send, the phone kind over any
text, `not_text` over any Python value, and the contract between the normalisers and
NormalizedLead (whatever the normalisers accept, the typed lead accepts)."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import data_quality as dq
from data_quality.lead import NormalizedLead
from data_quality.normalize import is_brazilian_mobile, not_text
from tests.fuzz.budget import fuzz_settings

FUZZ = fuzz_settings(150)

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=10,
)
#: Meta's `field_data: [{"name": ..., "values": [...]}]`, with any part of it of any type
FIELD_DATA = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["full_name", "email", "phone_number", "cpf"]) | ANY_TEXT},
            optional={"values": JSON_VALUES},
        ),
        JSON_VALUES,
    ),
    max_size=5,
)
ANY_PYTHON = st.one_of(
    JSON_VALUES,
    st.binary(max_size=10),
    st.sets(st.integers(), max_size=3),
    st.decimals(),
    st.datetimes(),
    st.complex_numbers(),
    st.just(object()),
    st.integers(min_value=10**39, max_value=10**60),
)


@FUZZ
@given(
    field_data=st.one_of(FIELD_DATA, JSON_VALUES),
    extra=st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3),
)
def test_any_answer_shape_maps_to_lead_fields(field_data: Any, extra: dict[str, Any]) -> None:
    mapped = dq.FieldMapping().map_row({**extra, "field_data": field_data})
    assert isinstance(mapped, dict)
    assert all(isinstance(name, str) for name in mapped)


@FUZZ
@given(text=st.none() | ANY_TEXT | st.from_regex(r"\A\+55[1-9]{2}9?\d{8}\Z"))
def test_a_phone_kind_is_known_or_none_for_any_text(text: str | None) -> None:
    kind = dq.phone_kind(text)
    assert kind in (None, "mobile", "landline", "other")
    assert is_brazilian_mobile(text) is (kind == "mobile")


@FUZZ
@given(text=ANY_TEXT | st.from_regex(r"\A\(?[1-9]{2}\)? ?9?[2-9]\d{3}-?\d{4}\Z"))
def test_a_phone_the_gate_accepts_has_a_kind(text: str) -> None:
    phone = dq.normalize_phone(text)
    if phone.ok:
        assert dq.phone_kind(phone.value) is not None


@FUZZ
@given(value=ANY_PYTHON)
def test_not_text_names_the_kind_of_any_value(value: Any) -> None:
    reason = not_text(value)
    assert reason is None or (isinstance(reason, str) and reason)
    if isinstance(value, (bytes, set, datetime.datetime, complex)) or type(value) is object:
        assert reason is not None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e30:
        assert reason is None  # a spreadsheet's number: read (a CPF or phone typed as one)


@FUZZ
@given(
    name=ANY_TEXT | st.from_regex(r"\A[A-Za-zÀ-ÿ' -]{1,30}\Z"),
    email=ANY_TEXT | st.emails(),
    phone=ANY_TEXT | st.from_regex(r"\A\(?[1-9]{2}\)? ?9?[2-9]\d{3}-?\d{4}\Z"),
    cpf=ANY_TEXT | st.from_regex(r"\A\d{3}\.?\d{3}\.?\d{3}-?\d{2}\Z"),
    cnpj=ANY_TEXT | st.from_regex(r"\A\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}\Z"),
)
def test_what_the_normalisers_accept_the_typed_lead_accepts(
    name: str, email: str, phone: str, cpf: str, cnpj: str
) -> None:
    full_name = dq.normalize_name(name)
    if not full_name.ok:
        return
    e164 = dq.normalize_phone(phone).value
    kind = dq.phone_kind(e164)
    lead = NormalizedLead(
        source="facebook",
        source_id="880000000000001",
        full_name=full_name.value,
        email=dq.normalize_email(email).value,
        phone=e164,
        phone_kind=kind if kind in ("mobile", "landline") else None,
        cpf=dq.normalize_cpf(cpf).value,
        cnpj=dq.normalize_cnpj(cnpj).value,
    )
    assert lead.first_name
    assert lead.document in (lead.cpf or lead.cnpj, None)
