"""Normalisers: turn what a person typed into a lead form into the values leadflow stores.

First step of the quality gate (DESIGN.md, principle 3): each lead field is normalised before
the Great Expectations suite judges it, and the clean values are what Pipedrive, Asaas and
WhatsApp later receive (E.164 phone, lower-case e-mail, digits-only CPF/CNPJ, tidy names).

Every normaliser takes arbitrary text and never raises: it returns `Normalized(value, reason)`,
with `reason` the stable name of the rule the text broke (the same name the suite reports) or
`MISSING` when there was nothing to normalise. Each is idempotent — feeding a normalised value
back in returns it unchanged — so a replayed lead is normalised the same way twice. They are
cached per distinct value: a batch of 100,000 leads holds far fewer distinct values.
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType
from validate_docbr import CNPJ, CPF, DocumentBase

MISSING = "missing"
"""The reason for a blank field: not a broken rule by itself (the suite decides if it matters)."""

FULL_NAME_VALID = "full_name_valid"
EMAIL_VALID = "email_valid"
PHONE_VALID_BR = "phone_valid_br"
CPF_VALID = "cpf_valid"
CNPJ_VALID = "cnpj_valid"
VALUE_NOT_TEXT = "value_not_text"

MAX_TEXT_LENGTH = 1_000
"""The longest answer the gate reads: four times the longest e-mail address a mail server
accepts. Anything longer is not something a person typed into a lead form."""

PhoneKind = Literal["mobile", "landline", "other"]

_CACHE_SIZE = 1 << 17
# Portuguese particles only: Italian or French ones (Di, Del, Du) keep the capital their
# families usually write ("Pedro Di Giorgio").
_NAME_PARTICLES = frozenset({"da", "das", "de", "do", "dos", "e"})
_NAME_JOINERS = frozenset("'’-.")
_SPACES = re.compile(r"\s+")
_DOCUMENT_PUNCTUATION = re.compile(r"[\s./\-]")
_MAX_NAME_LENGTH = 200
_MAX_FIELD_LENGTH = 320
_CPF = CPF()
_CNPJ = CNPJ()


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normaliser's answer: the normalised value, or why there is none.

    Exactly one of the two is set: `value` when the text was valid, `reason` (a rule name, or
    `MISSING`) when it was blank or broke a rule.
    """

    value: str | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


# NUL cannot be stored by PostgreSQL; a lone surrogate is a byte that was not UTF-8 (Python's
# surrogateescape), which neither GX nor the database can encode
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_LONGEST_NUMBER = 10**40


def not_text(value: Any) -> str | None:
    """Why `value` cannot be read as an answer a person typed, or None when it can.

    Readable: text (at most MAX_TEXT_LENGTH characters, no NUL, no lone surrogate), a blank
    (None, NaN), or a number (a spreadsheet turns a phone or a CPF into one). Everything else
    a webhook or a spreadsheet may hand the gate (objects, lists, sets, bytes, true/false,
    infinities, dates) is quarantined by the `value_not_text` rule rather than guessed at or
    crashing the batch. The answer names only the kind of value, never the value (it ends
    up in a quarantine record's reasons, which `quarantine list` shows)."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > MAX_TEXT_LENGTH:
            return f"longer than {MAX_TEXT_LENGTH:,} characters"
        if _UNSTORABLE.search(value):
            return "holds a NUL character or bytes that are not UTF-8"
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true/false, not text"
    if isinstance(value, numbers.Integral):
        return None if abs(int(value)) < _LONGEST_NUMBER else "a number too long to be typed"
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number) or abs(number) >= _LONGEST_NUMBER:
            return "a number too large to be typed"
        return None
    if type(value).__name__ in {"NAType", "NaTType"}:
        return None  # pandas' blanks
    kind = type(value).__name__
    return f"{_KIND_NAMES.get(kind, f'a {kind}')}, not text"


_KIND_NAMES = {"dict": "an object", "bytes": "bytes", "bytearray": "bytes", "list": "a list"}


def _blank(text: str | None) -> bool:
    return text is None or not str(text).strip()


def _dropped_from_name(char: str) -> bool:
    """Emoji, symbols like ✨, zero-width joiners and variation selectors carry no part of a
    name that a contract or an invoice could print: they are dropped, not rejected."""
    category = unicodedata.category(char)
    return category in {"So", "Sk", "Cf", "Co", "Cs", "Cn"} or 0xFE00 <= ord(char) <= 0xFE0F


def _allowed_in_name(char: str) -> bool:
    return (
        char.isalpha()
        or char == " "
        or char in _NAME_JOINERS
        or unicodedata.category(char).startswith("M")
    )


def _capitalise_word(word: str, first: bool) -> str:
    lower = word.lower()
    if not first and lower in _NAME_PARTICLES:
        return lower
    parts = re.split(r"([-'’])", lower)
    return "".join(part[:1].upper() + part[1:] if part not in "-'’" else part for part in parts)


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_name(text: str | None) -> Normalized:
    """A person's name: trimmed, inner spaces collapsed, each word capitalised, Portuguese
    particles (da, de, do, dos, e, ...) kept lower-case: "  MARIA  DOS santos " → "Maria dos
    Santos". Emoji and other pictographs are dropped; a name with digits or markup-like
    punctuation (<, ;, =, parentheses) is refused as `full_name_valid`: no real name needs
    them, and an injection attempt should not reach a CRM or a contract."""
    if _blank(text):
        return Normalized(None, MISSING)
    cleaned = unicodedata.normalize("NFC", str(text))
    cleaned = "".join(" " if ch.isspace() else ch for ch in cleaned if not _dropped_from_name(ch))
    cleaned = _SPACES.sub(" ", cleaned).strip()
    if not cleaned:
        return Normalized(None, MISSING)
    if len(cleaned) > _MAX_NAME_LENGTH or not all(_allowed_in_name(ch) for ch in cleaned):
        return Normalized(None, FULL_NAME_VALID)
    if not any(ch.isalpha() for ch in cleaned):
        return Normalized(None, FULL_NAME_VALID)
    words = cleaned.split(" ")
    result = " ".join(_capitalise_word(word, i == 0) for i, word in enumerate(words))
    result = unicodedata.normalize("NFC", result)
    # Case mapping can change a string's shape (ß → Ss, İ → i̇): settle on a fixed point so a
    # stored name, normalised again at replay, is the same name.
    for _ in range(3):
        again = unicodedata.normalize(
            "NFC", " ".join(_capitalise_word(w, i == 0) for i, w in enumerate(result.split(" ")))
        )
        if again == result:
            break
        result = again
    if not all(_allowed_in_name(ch) for ch in result) or result != result.strip():
        return Normalized(None, FULL_NAME_VALID)
    return Normalized(result, None)


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_email(text: str | None) -> Normalized:
    """An e-mail address checked for syntax by email-validator (no DNS look-up: the gate runs
    offline and a slow resolver must not hold a batch), international domains accepted in
    their Unicode form, the whole address lower-cased so the same person is found again."""
    if _blank(text):
        return Normalized(None, MISSING)
    candidate = str(text).strip()
    if len(candidate) > _MAX_FIELD_LENGTH:
        return Normalized(None, EMAIL_VALID)
    return _plain_ascii_email(candidate) or validated_email(candidate)


def validated_email(candidate: str) -> Normalized:
    """The whole address through email-validator, lower-cased (normalize_email's slow path,
    which it takes for anything but a plain ASCII address)."""
    try:
        checked = validate_email(candidate, check_deliverability=False)
        value = checked.normalized.lower()
        # Lower-casing Unicode may produce something the validator refuses or rewrites (rare):
        # such a value is validated again, so only a fixed point is stored (idempotence).
        # Lower-casing ASCII cannot, and skipping the second check halves the cost.
        again = (
            value
            if value.isascii()
            else validate_email(value, check_deliverability=False).normalized.lower()
        )
    except (EmailNotValidError, ValueError, UnicodeError):
        return Normalized(None, EMAIL_VALID)
    if again != value:
        return Normalized(None, EMAIL_VALID)
    return Normalized(value, None)


_PLAIN_LOCAL_PART = re.compile(r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*")


@lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    """email-validator's verdict on a domain, normalised (None when refused); cached per
    domain, as a batch of leads shares few of them (checking the domain is two thirds of
    validating an address)."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain.lower()
    except (EmailNotValidError, ValueError, UnicodeError):
        return None


def _plain_ascii_email(candidate: str) -> Normalized | None:
    """The common case, decided without validating the whole address again: an ASCII local
    part of letters, digits and `._%+-` (a subset of what email-validator accepts, with the
    same limits: 64 characters, no leading, trailing or doubled dot) at a domain
    email-validator accepted. Anything else returns None and gets the full validation;
    tests check both paths agree."""
    local, at, domain = candidate.rpartition("@")
    if not at or not candidate.isascii() or len(candidate) > 254 or len(local) > 64:
        return None
    if not _PLAIN_LOCAL_PART.fullmatch(local):
        return None
    checked_domain = _checked_domain(domain.lower())
    if checked_domain is None:
        return None  # the full validation names the problem the same way: email_valid
    return Normalized(f"{local.lower()}@{checked_domain}", None)


@lru_cache(maxsize=_CACHE_SIZE)
def _parse_br_phone(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, "BR")
    except (NumberParseException, ValueError, UnicodeError):
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return number


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_phone(text: str | None) -> Normalized:
    """A phone number in E.164, read as Brazilian unless it carries another country code.

    Nothing is invented: an old eight-digit mobile ("(11) 8765-4321", before the ninth digit)
    is refused as `phone_valid_br` rather than guessed into a number that may belong to
    someone else. Mobiles and landlines both pass here; `phone_kind` tells them apart
    (WhatsApp reaches only mobiles)."""
    if _blank(text):
        return Normalized(None, MISSING)
    candidate = str(text).strip()
    if len(candidate) > 40:
        return Normalized(None, PHONE_VALID_BR)
    number = _parse_br_phone(candidate)
    if number is None or number.country_code != 55:
        return Normalized(None, PHONE_VALID_BR)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # the suite asks the kind of every normalised number next: parsing is the costly part
    # (about 15 µs), so the kind is settled now, while the parsed number is at hand
    if len(_KIND_BY_E164) < _CACHE_SIZE:
        _KIND_BY_E164[e164] = _kind(number)
    return Normalized(e164, None)


_KIND_BY_E164: dict[str, PhoneKind] = {}


def _kind(number: phonenumbers.PhoneNumber) -> PhoneKind:
    kind = phonenumbers.number_type(number)
    if kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return "mobile"
    if kind == PhoneNumberType.FIXED_LINE:
        return "landline"
    return "other"


def phone_kind(e164: str | None) -> PhoneKind | None:
    """Whether a normalised Brazilian number is a mobile or a landline; None if not a valid
    Brazilian number."""
    if _blank(e164):
        return None
    text = str(e164).strip()
    known = _KIND_BY_E164.get(text)
    if known is not None:
        return known
    number = _parse_br_phone(text)
    if number is None or number.country_code != 55:
        return None
    if len(_KIND_BY_E164) < _CACHE_SIZE:
        _KIND_BY_E164[text] = _kind(number)
    return _kind(number)


def is_brazilian_mobile(e164: str | None) -> bool:
    """True for a valid Brazilian mobile number (the only kind WhatsApp can reach)."""
    return phone_kind(e164) == "mobile"


def _document_text(text: str, allow_letters: bool) -> str | None:
    stripped = _DOCUMENT_PUNCTUATION.sub("", text.strip())
    if allow_letters:
        stripped = stripped.upper()
        return stripped if stripped.isascii() and stripped.isalnum() else None
    return stripped if stripped.isascii() and stripped.isdigit() else None


def _repeated(value: str) -> bool:
    return len(set(value)) == 1


def _document(
    text: str | None, *, length: int, allow_letters: bool, check: DocumentBase, rule: str
) -> Normalized:
    """A Receita Federal document (CPF, CNPJ) as its bare characters: punctuation removed, the
    length and check digits verified, and a sequence of one repeated character refused (it
    passes the arithmetic, but is never issued)."""
    if _blank(text):
        return Normalized(None, MISSING)
    chars = _document_text(str(text), allow_letters)
    if chars is None or len(chars) != length or _repeated(chars) or not check.validate(chars):
        return Normalized(None, rule)
    return Normalized(chars, None)


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_cpf(text: str | None) -> Normalized:
    """A CPF as its 11 digits, check digits verified by validate-docbr; punctuation (dots,
    dash, spaces) removed; a sequence of one repeated digit (111.111.111-11 passes the
    arithmetic) refused, as the Receita Federal never issues one."""
    return _document(text, length=11, allow_letters=False, check=_CPF, rule=CPF_VALID)


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_cnpj(text: str | None) -> Normalized:
    """A CNPJ as its 14 characters — digits, or upper-case letters and digits for the
    alphanumeric CNPJ issued from 2026 — check digits verified by validate-docbr; repeated
    sequences refused."""
    return _document(text, length=14, allow_letters=True, check=_CNPJ, rule=CNPJ_VALID)


#: lead field -> its normaliser: the gate normalises each field with it, the suite judges each
#: field by it, and a corrected quarantine value is checked against it
NORMALISERS: dict[str, Callable[[str | None], Normalized]] = {
    "full_name": normalize_name,
    "email": normalize_email,
    "phone_number": normalize_phone,
    "cpf": normalize_cpf,
    "cnpj": normalize_cnpj,
}
