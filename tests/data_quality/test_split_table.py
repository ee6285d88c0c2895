"""The gate's decisions, case by case: where each lead lands and for which rules.

Each case is a small batch (usually one lead) as a lead form would send it; the expectation is,
per lead, None for clean or the exact list of rule names it is quarantined for.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_quality import FieldMapping, split_leads

CPF = "529.982.247-25"
CNPJ = "11.222.333/0001-81"
ALNUM_CNPJ = "12.ABC.345/01DE-35"
MOBILE = "(11) 98765-4321"
LANDLINE = "(11) 3456-7890"
EMAIL = "ana@exemplo.com.br"


def lead(name: Any = "Ana Souza", email: Any = EMAIL, phone: Any = MOBILE, **more: Any) -> dict:
    return {"full_name": name, "email": email, "phone_number": phone, **more}


CASES: list[tuple[str, list[dict], list[list[str] | None]]] = [
    ("complete lead", [lead()], [None]),
    ("accented name", [lead("José Antônio Conceição")], [None]),
    ("multi-part name with particles", [lead("maria das dores de souza e silva")], [None]),
    ("upper-case name", [lead("JOÃO DA SILVA")], [None]),
    ("hyphenated and apostrophe name", [lead("ana-luíza d'ávila")], [None]),
    ("name with emoji kept without it", [lead("Bruna 🌸✨")], [None]),
    ("emoji-only name", [lead("😀😀")], [["full_name_valid"]]),
    ("name with digits", [lead("Ana 2")], [["full_name_valid"]]),
    ("SQL injection as name", [lead("Robert'); DROP TABLE leads;--")], [["full_name_valid"]]),
    ("script tag as name", [lead("<script>alert(1)</script>")], [["full_name_valid"]]),
    ("formula injection as name", [lead('=HYPERLINK("http://x")')], [["full_name_valid"]]),
    ("missing name", [lead(None)], [["full_name_present"]]),
    ("blank name", [lead("   ")], [["full_name_present"]]),
    ("international-domain e-mail", [lead(email="joão@exemplo.中国")], [None]),
    ("punycode-able domain e-mail", [lead(email="Maria@Açaí.com.br")], [None]),
    ("upper-case e-mail", [lead(email="ANA.SOUZA@EXEMPLO.COM")], [None]),
    ("e-mail without domain", [lead(email="ana@")], [["email_valid"]]),
    ("e-mail with two @", [lead(email="a@b@c.com")], [["email_valid"]]),
    ("injection as e-mail", [lead(email="x' OR 1=1 --")], [["email_valid"]]),
    (
        "invalid e-mail with landline only",
        [lead(email="ana", phone=LANDLINE)],
        [["email_valid", "contact_present", "phone_is_mobile"]],
    ),
    ("mobile without e-mail", [lead(email=None)], [None]),
    ("e-mail without phone", [lead(phone=None)], [None]),
    ("mobile in E.164", [lead(phone="+5511987654321")], [None]),
    ("mobile with country code and spaces", [lead(phone="+55 21 99876 5432")], [None]),
    ("landline with e-mail is clean", [lead(phone=LANDLINE)], [None]),
    (
        "landline without e-mail",
        [lead(email=None, phone=LANDLINE)],
        [["contact_present", "phone_is_mobile"]],
    ),
    ("mobile without the ninth digit", [lead(phone="(11) 8765-4321")], [["phone_valid_br"]]),
    (
        "old mobile and no e-mail",
        [lead(email=None, phone="11 8765-4321")],
        [["phone_valid_br", "contact_present"]],
    ),
    ("mobile dialled with 0 and a carrier code", [lead(phone="0 21 11 98765-4321")], [None]),
    ("mobile with the trunk 0 before the DDD", [lead(phone="(011) 98765-4321")], [None]),
    ("mobile with +55 and no spaces", [lead(email=None, phone="+5521998765432")], [None]),
    ("landline starting with 2 and an e-mail", [lead(phone="(11) 2345-6789")], [None]),
    ("landline starting with 5 and an e-mail", [lead(phone="(11) 5678-1234")], [None]),
    (
        "landline of another DDD without e-mail",
        [lead(email=None, phone="(61) 3345-6789")],
        [["contact_present", "phone_is_mobile"]],
    ),
    (
        "eight digits starting with 9, no ninth digit",
        [lead(phone="(11) 9765-4321")],
        [["phone_valid_br"]],
    ),
    ("nine digits not starting with 9", [lead(phone="+55 11 88765-4321")], [["phone_valid_br"]]),
    (
        "toll-free number and no e-mail",
        [lead(email=None, phone="0800 123 4567")],
        [["contact_present", "phone_is_mobile"]],
    ),
    ("too few digits", [lead(phone="12345")], [["phone_valid_br"]]),
    ("letters as phone", [lead(phone="não tenho")], [["phone_valid_br"]]),
    ("foreign number", [lead(phone="+1 650 253 0000")], [["phone_valid_br"]]),
    ("no contact at all", [lead(email=None, phone=None)], [["contact_present"]]),
    ("nothing at all", [lead(None, None, None)], [["full_name_present", "contact_present"]]),
    ("valid CPF", [lead(cpf=CPF)], [None]),
    ("CPF digits only", [lead(cpf="52998224725")], [None]),
    ("CPF 111.111.111-11", [lead(cpf="111.111.111-11")], [["cpf_valid"]]),
    ("CPF wrong check digit", [lead(cpf="529.982.247-26")], [["cpf_valid"]]),
    ("CPF with letters", [lead(cpf="529.982.247-2X")], [["cpf_valid"]]),
    ("blank CPF is optional", [lead(cpf="")], [None]),
    ("valid CNPJ", [lead(cnpj=CNPJ)], [None]),
    ("valid alphanumeric CNPJ", [lead(cnpj=ALNUM_CNPJ)], [None]),
    ("alphanumeric CNPJ typed in lower case", [lead(cnpj="12abc34501de35")], [None]),
    ("alphanumeric CNPJ wrong check digit", [lead(cnpj="12.ABC.345/01DE-36")], [["cnpj_valid"]]),
    ("CNPJ given as a CPF", [lead(cnpj=CPF)], [["cnpj_valid"]]),
    ("CPF given as a CNPJ", [lead(cpf=CNPJ)], [["cpf_valid"]]),
    ("punycode e-mail domain", [lead(email="Maria@xn--aa-4iaz.com.br")], [None]),
    ("e-mail with an accented local part", [lead(email="josé@são-paulo.com.br")], [None]),
    ("e-mail with a double dot in the domain", [lead(email="ana@açaí..com")], [["email_valid"]]),
    (
        "name with a NUL character",
        [lead("Ana\x00 Souza")],
        [["value_not_text", "full_name_present"]],
    ),
    ("e-mail that is an object", [lead(email={"v": 1})], [["value_not_text"]]),
    (
        "name with a byte that is not UTF-8",
        [lead("Ana \udcff"), lead("Bia Lima", "bia@exemplo.com.br", "(21) 99876-5432")],
        [["value_not_text", "full_name_present"], None],
    ),
    ("CPF that is a list", [lead(cpf=["529.982.247-25"])], [["value_not_text"]]),
    ("CNPJ that is a set", [lead(cnpj={"11.222.333/0001-81"})], [["value_not_text"]]),
    ("phone given as bytes", [lead(phone=b"11987654321")], [["value_not_text"]]),
    ("name that is true", [lead(True)], [["value_not_text", "full_name_present"]]),
    ("e-mail of a million characters", [lead(email="a" * 10**6)], [["value_not_text"]]),
    ("phone that is infinite", [lead(phone=float("inf"))], [["value_not_text"]]),
    ("phone that is NaN is blank", [lead(phone=float("nan"))], [None]),
    ("phone a spreadsheet made a number", [lead(phone=11987654321)], [None]),
    ("CPF a spreadsheet made a float", [lead(cpf=52998224725.0)], [None]),
    ("name with a right-to-left override", [lead("Ana Souza\u202e")], [None]),
    ("name of only a particle", [lead("de")], [None]),
    ("CNPJ of repeated digits", [lead(cnpj="00.000.000/0000-00")], [["cnpj_valid"]]),
    ("CNPJ wrong check digit", [lead(cnpj="11.222.333/0001-82")], [["cnpj_valid"]]),
    (
        "every rule of one lead at once",
        [lead("<b>", "@@", "123", cpf="111.111.111-11", cnpj="1")],
        [
            [
                "full_name_valid",
                "email_valid",
                "phone_valid_br",
                "contact_present",
                "cpf_valid",
                "cnpj_valid",
            ]
        ],
    ),
    (
        "same person twice, different case and formatting",
        [
            lead("ana souza", "Ana@Exemplo.com.BR", "(11) 98765-4321"),
            lead("ANA SOUZA", " ana@exemplo.com.br ", "+55 11 98765 4321"),
        ],
        [None, ["email_unique_in_batch", "phone_unique_in_batch"]],
    ),
    (
        "same e-mail, other phone",
        [lead(phone=MOBILE), lead(phone="(21) 99876-5432")],
        [None, ["email_unique_in_batch"]],
    ),
    (
        "same CPF in three leads keeps the first",
        [
            lead(email="a@x.com", phone=None, cpf=CPF),
            lead(email="b@x.com", phone=None, cpf=CPF),
            lead(email="c@x.com", phone=None, cpf="52998224725"),
        ],
        [None, ["cpf_unique_in_batch"], ["cpf_unique_in_batch"]],
    ),
    (
        "two different people",
        [lead(), lead("Bia Lima", "bia@x.com", "(21) 99876-5432")],
        [None, None],
    ),
]


@pytest.mark.parametrize(("rows", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_lead_lands_where_expected_with_its_reasons(
    rows: list[dict], expected: list[list[str] | None]
) -> None:
    result = split_leads(rows)

    landed: dict[int, list[str] | None] = dict.fromkeys(result.clean["lead_id"].tolist())
    for lead_id, reasons in zip(
        result.quarantined["lead_id"], result.quarantined["reasons"], strict=True
    ):
        landed[int(lead_id)] = reasons
    assert [landed[i + 1] for i in range(len(rows))] == expected


NORMALISED: list[tuple[str, str, str]] = [
    ("full_name", "MARIA DAS GRAÇAS DOS SANTOS", "Maria das Graças dos Santos"),
    ("full_name", "josé de almeida e silva", "José de Almeida e Silva"),
    ("full_name", "  joão   do  carmo ", "João do Carmo"),
    ("full_name", "De Souza Lima", "De Souza Lima"),
    ("full_name", "Pedro Di Giorgio", "Pedro Di Giorgio"),
    ("full_name", "ana-luíza d'ávila", "Ana-Luíza D'Ávila"),
    ("full_name", "Bruna 🌸✨", "Bruna"),
    ("email", " Ana.Souza+lead@Açaí.COM.BR ", "ana.souza+lead@açaí.com.br"),
    ("email", "Maria@xn--aa-4iaz.com.br", "maria@açaí.com.br"),
    ("email", "maria@例え.jp", "maria@例え.jp"),
    ("phone_number", "0 21 11 98765-4321", "+5511987654321"),
    ("phone_number", "(011) 98765-4321", "+5511987654321"),
    ("phone_number", "0xx11 98765-4321", "+5511987654321"),
    ("phone_number", "+55 (11) 98765-4321", "+5511987654321"),
    ("phone_number", "55 11 98765 4321", "+5511987654321"),
    ("phone_number", "(61) 3345-6789", "+556133456789"),
    # DDD 55 (Santa Maria, RS) is also Brazil's country code: neither is mistaken for the other
    ("phone_number", "(55) 98765-4321", "+5555987654321"),
    ("phone_number", "55 3222-1234", "+555532221234"),
    ("phone_number", "+55 55 98765-4321", "+5555987654321"),
    ("cpf", "529 982 247 25", "52998224725"),
    ("cnpj", " 12.abc.345/01de-35 ", "12ABC34501DE35"),
    ("cnpj", "11.222.333/0001-81", "11222333000181"),
]


@pytest.mark.parametrize(("field", "typed", "stored"), NORMALISED, ids=[c[1] for c in NORMALISED])
def test_a_clean_lead_carries_each_field_normalised(field: str, typed: str, stored: str) -> None:
    result = split_leads([{**lead(), field: typed}])

    assert result.quarantined.empty
    assert result.clean.loc[0, field] == stored


def test_the_table_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_an_empty_batch_splits_into_two_empty_tables_with_every_rule_counted() -> None:
    result = split_leads([])

    assert (len(result.clean), len(result.quarantined)) == (0, 0)
    assert set(result.counts.values()) == {0}
    assert "reasons" in result.quarantined.columns


def test_clean_rows_are_normalised_and_quarantined_rows_keep_what_was_typed() -> None:
    result = split_leads(
        [
            lead("  ANA  souza ", " Ana@Exemplo.COM ", "11 98765-4321", cpf="529.982.247-25"),
            lead("Bia", "bia@", "(11) 3456-7890"),
        ]
    )

    assert result.clean.drop(columns="lead_id").to_dict("records") == [
        {
            "full_name": "Ana Souza",
            "email": "ana@exemplo.com",
            "phone_number": "+5511987654321",
            "cpf": "52998224725",
            "cnpj": None,
            "phone_kind": "mobile",
        }
    ]
    quarantined = result.quarantined.to_dict("records")[0]
    assert (quarantined["email"], quarantined["phone_number"]) == ("bia@", "(11) 3456-7890")
    assert result.counts["email_valid"] == 1


def test_a_dataframe_with_custom_form_field_names_is_mapped_before_the_gate() -> None:
    frame = pd.DataFrame({"Nome": ["ana souza"], "WhatsApp": ["11987654321"], "cidade": ["Recife"]})

    result = split_leads(
        frame, FieldMapping(fields={"nome": "full_name", "whatsapp": "phone_number"})
    )

    assert result.clean[["full_name", "phone_number", "cidade"]].to_dict("records") == [
        {"full_name": "Ana Souza", "phone_number": "+5511987654321", "cidade": "Recife"}
    ]


def test_two_columns_feeding_one_lead_field_are_refused() -> None:
    frame = pd.DataFrame({"telefone": ["11987654321"], "celular": ["11987654321"]})

    with pytest.raises(ValueError, match="same lead field"):
        split_leads(frame)


FIELD_TEXT = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(
        [EMAIL, MOBILE, LANDLINE, CPF, CNPJ, ALNUM_CNPJ, "Ana Souza", "maria@açaí.com"]
    ),
)
ARBITRARY_LEAD = st.fixed_dictionaries(
    {field: FIELD_TEXT for field in ("full_name", "email", "phone_number", "cpf", "cnpj")}
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ARBITRARY_LEAD, max_size=6))
def test_every_lead_lands_once_and_the_clean_ones_pass_the_gate_again(rows: list[dict]) -> None:
    result = split_leads(rows)

    landed = [*result.clean["lead_id"], *result.quarantined["lead_id"]]
    assert sorted(landed) == list(range(1, len(rows) + 1))
    assert all(result.quarantined["reasons"].map(len) > 0)
    again = split_leads(result.clean)
    assert again.quarantined.empty
    assert again.clean.equals(result.clean)
