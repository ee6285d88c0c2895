"""The normalisers: what each makes of typical input, and two properties over arbitrary text —
they never raise, and normalising a normalised value changes nothing."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import data_quality as dq

# any code point at all: lone surrogates (what a broken JSON decoder lets through), control
# characters, unassigned and private-use code points — st.text() alone excludes surrogates
ANY_CHARACTER = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(categories=["Cs", "Cc", "Cf"]),  # made frequent: rare in the whole range
)
ARBITRARY = st.text(alphabet=ANY_CHARACTER)
CONTROL_HEAVY = st.text(alphabet=st.sampled_from("\x00\x07\x1b\x7f\u200b\u202e\ufeff\n\t a1@+"))
VERY_LONG = st.text(alphabet=ANY_CHARACTER, min_size=2_000, max_size=20_000)

# text that looks like each field, so the properties also reach the "valid" branch
FIELD_LIKE = st.one_of(
    ARBITRARY,
    CONTROL_HEAVY,
    VERY_LONG,
    st.from_regex(r"\A\s*[A-Za-zÀ-ÿ' -]{1,30}\s*\Z"),
    st.emails(),
    st.from_regex(r"\A\+?55? ?\(?[1-9]{2}\)? ?9?[2-9]\d{3}-?\d{4}\Z"),
    st.from_regex(r"\A\d{3}\.?\d{3}\.?\d{3}-?\d{2}\Z"),
    st.from_regex(r"\A\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}\Z"),
    st.from_regex(r"\A[0-9A-Za-z]{2}\.?[0-9A-Za-z]{3}\.?[0-9A-Za-z]{3}/?[0-9A-Za-z]{4}-?\d{2}\Z"),
)
# a field-like value with arbitrary text around it (a valid value plus a stray control char)
FIELD_LIKE = st.one_of(FIELD_LIKE, st.tuples(ARBITRARY, FIELD_LIKE, ARBITRARY).map("".join))


@pytest.mark.parametrize("name", dq.NORMALISERS)
@settings(max_examples=150, deadline=None)
@given(text=FIELD_LIKE)
def test_a_normaliser_never_raises_and_answers_a_value_or_a_reason(name: str, text: str) -> None:
    result = dq.NORMALISERS[name](text)

    assert (result.value is None) != (result.reason is None)
    if result.value is not None:  # a stored value can always be written to a database and JSON
        result.value.encode("utf-8")


def test_the_arbitrary_text_strategy_reaches_surrogates_and_control_characters() -> None:
    """Guards the properties above: they are only as strong as the text they are fed."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(text=ARBITRARY)
    def collect(text: str) -> None:
        seen.update(unicodedata.category(ch) for ch in text)

    collect()
    assert {"Cs", "Cc"} <= seen


@pytest.mark.parametrize("name", dq.NORMALISERS)
@settings(max_examples=150, deadline=None)
@given(text=FIELD_LIKE)
def test_a_normaliser_is_idempotent(name: str, text: str) -> None:
    normaliser = dq.NORMALISERS[name]
    first = normaliser(text)

    if first.value is not None:
        assert normaliser(first.value) == first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  MARIA  DOS   santos ", "Maria dos Santos"),
        ("joão da silva e souza", "João da Silva e Souza"),
        ("ana-luíza d'ávila", "Ana-Luíza D'Ávila"),
        ("De Souza", "De Souza"),
        ("Bruna 🌸", "Bruna"),
        ("e", "E"),
    ],
)
def test_names_are_trimmed_and_capitalised_with_particles_lower_case(
    text: str, expected: str
) -> None:
    assert dq.normalize_name(text) == dq.Normalized(expected, None)


def test_a_blank_field_is_missing_not_invalid() -> None:
    for normaliser in dq.NORMALISERS.values():
        assert normaliser("  \t ") == dq.Normalized(None, dq.MISSING)
        assert normaliser(None) == dq.Normalized(None, dq.MISSING)


def test_emails_are_lower_cased_and_keep_an_international_domain() -> None:
    assert dq.normalize_email(" Ana@Exemplo.COM ").value == "ana@exemplo.com"
    assert dq.normalize_email("joão@exemplo.中国").value == "joão@exemplo.中国"


def test_phones_become_e164_and_are_told_apart() -> None:
    mobile = dq.normalize_phone("(11) 98765-4321").value
    landline = dq.normalize_phone("(11) 3456-7890").value

    assert (mobile, dq.phone_kind(mobile)) == ("+5511987654321", "mobile")
    assert (landline, dq.phone_kind(landline)) == ("+551134567890", "landline")


def test_a_mobile_without_the_ninth_digit_is_refused_not_completed() -> None:
    assert dq.normalize_phone("(11) 8765-4321") == dq.Normalized(None, "phone_valid_br")


def test_documents_keep_only_their_digits_and_refuse_repeated_sequences() -> None:
    assert dq.normalize_cpf("529.982.247-25").value == "52998224725"
    assert dq.normalize_cpf("111.111.111-11").reason == "cpf_valid"
    assert dq.normalize_cnpj("11.222.333/0001-81").value == "11222333000181"
    assert dq.normalize_cnpj("12.abc.345/01de-35").value == "12ABC34501DE35"
    assert dq.normalize_cnpj("11.111.111/1111-11").reason == "cnpj_valid"


def test_the_field_mapping_reads_custom_names_and_facebook_field_data() -> None:
    mapping = dq.FieldMapping(fields={"Nome Completo": "full_name", "WhatsApp": "phone_number"})
    raw = {
        "id": "lead-1",
        "field_data": [
            {"name": "nome completo", "values": ["Ana"]},
            {"name": "whatsapp", "values": ["11987654321"]},
            {"name": "cidade", "values": ["Recife"]},
        ],
    }

    assert mapping.map_row(raw) == {
        "id": "lead-1",
        "full_name": "Ana",
        "phone_number": "11987654321",
        "cidade": "Recife",
    }


def test_a_mapping_to_an_unknown_lead_field_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lead field"):
        dq.FieldMapping(fields={"fone": "telephone"})


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.emails(),
        st.from_regex(r"\A[A-Za-z0-9._%+\-]{1,70}@[A-Za-z0-9.\-]{1,70}\Z"),
    )
)
def test_the_fast_path_for_plain_emails_agrees_with_email_validator(text: str) -> None:
    from data_quality.normalize import _plain_ascii_email, validated_email

    fast = _plain_ascii_email(text)

    if fast is not None:
        assert fast == validated_email(text)


@pytest.mark.parametrize("name", dq.NORMALISERS)
@pytest.mark.parametrize("text", ["\ud800", "a\udfff@x.com", "\x00", "١٢٣٤٥٦٧٨٩٠١", "9" * 10_000])
def test_a_normaliser_refuses_text_hypothesis_does_not_generate(name: str, text: str) -> None:
    assert dq.NORMALISERS[name](text).value is None
