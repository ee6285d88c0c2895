"""The privacy rules the vendor clients rely on (leadflow/privacy.py), as blocks/ uses them.

The clients' errors and the "leadflow.http" log lines go through leadflow.privacy (blocks had a
masking module of its own before; one module now holds one rule per datum): these are the
rules those lines depend on, checked on what vendors echo back.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks.http import logger as http_logger
from leadflow.privacy import (
    MaskingFilter,
    install_masking,
    mask_document,
    mask_email,
    mask_phone,
    mask_text,
)


def test_an_email_keeps_its_first_letter_and_domain() -> None:
    assert mask_email("joao.silva@example.com") == "j***@example.com"


def test_a_phone_keeps_its_last_two_digits() -> None:
    assert mask_phone("+55 (11) 98765-4321") == "***21"


@pytest.mark.parametrize(
    ("document", "masked"),
    [("123.456.789-09", "***cpf***"), ("12.345.678/0001-95", "***cnpj***")],
)
def test_a_cpf_or_cnpj_keeps_only_its_kind(document: str, masked: str) -> None:
    assert mask_document(document) == masked


def test_the_vendor_http_logger_and_httpx_carry_the_one_masking_filter() -> None:
    for logger in (http_logger, logging.getLogger("httpx")):
        assert any(isinstance(f, MaskingFilter) for f in logger.filters), logger.name


def test_blocks_keeps_no_masking_module_of_its_own() -> None:
    import importlib.util

    assert importlib.util.find_spec("blocks.masking") is None


@pytest.mark.parametrize(
    "secret",
    [
        "maria.souza@example.com",
        "+55 11 98765-4321",
        "5511987654321",
        "(11) 98765-4321",
        "123.456.789-09",
        "12345678909",
        "12.345.678/0001-95",
        "12345678000195",
        "Bearer abc.def-ghi",
        "access_token=EAAB0123",
        '"api_token": "0123456789abcdef0123456789abcdef01234567"',
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "https://api.test/search?term=maria%40example.com",
    ],
)
def test_free_text_loses_every_personal_datum_and_secret(secret: str) -> None:
    masked = mask_text(f"before {secret} after")
    core = secret.split("=")[-1].split(" ")[-1].strip('"')
    assert core not in masked
    assert masked.startswith("before ")
    assert masked.endswith(" after")


@pytest.mark.parametrize(
    "harmless",
    [
        "vendor=pipedrive method=GET path=/api/v2/deals/{id} status=200 attempt=1 duration_ms=12",
        "deal 42 created at 2026-11-29",
        "envelope 4f1c2b6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f sent",
    ],
)
def test_ordinary_log_lines_are_left_alone(harmless: str) -> None:
    assert mask_text(harmless) == harmless


def test_the_filter_masks_values_passed_as_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = install_masking(logging.getLogger("leadflow.test.masking"))
    with caplog.at_level(logging.INFO, logger="leadflow.test.masking"):
        logger.info("person %s with phone %s", "maria@example.com", "+5511987654321")
    assert caplog.records[-1].getMessage() == "person m***@example.com with phone ***21"


def test_installing_the_filter_twice_adds_it_once() -> None:
    logger = logging.getLogger("leadflow.test.masking.twice")
    install_masking(logger)
    install_masking(logger)
    assert sum(isinstance(f, MaskingFilter) for f in logger.filters) == 1


_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def brazilian_phones(draw: st.DrawFn) -> str:
    ddd = draw(st.integers(11, 99))
    number = draw(st.integers(900_000_000, 999_999_999))
    style = draw(st.sampled_from(["e164", "digits", "pretty", "spaced"]))
    text = str(number)
    return {
        "e164": f"+55{ddd}{text}",
        "digits": f"{ddd}{text}",
        "pretty": f"+55 ({ddd}) {text[:5]}-{text[5:]}",
        "spaced": f"55 {ddd} {text[:5]} {text[5:]}",
    }[style]


@st.composite
def cpfs(draw: st.DrawFn) -> str:
    digits = "".join(draw(_digits) for _ in range(11))
    if draw(st.booleans()):
        return f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"
    return digits


emails = st.from_regex(
    r"[a-z0-9][a-z0-9._%+-]{0,20}@[a-z0-9-]{1,15}\.(com|com\.br|org)", fullmatch=True
)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(brazilian_phones(), cpfs(), emails), words=st.sampled_from(["id", "de"]))
def test_no_phone_cpf_or_email_survives_masking_in_any_common_format(
    value: str, words: str
) -> None:
    masked = mask_text(f"lead {words} {value}, fim")
    digits = "".join(ch for ch in value if ch.isdigit())
    assert value not in masked
    if "@" not in value:
        assert digits not in "".join(ch for ch in masked if ch.isdigit())
