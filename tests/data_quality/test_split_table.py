"""The gate's decisions, case by case: where each lead lands and for which rules.

Each case is a small batch (usually one lead) as a lead form would send it; the expectation is,
per lead, None for clean or the exact list of rule names it is quarantined for.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

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
