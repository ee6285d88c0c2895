"""SQLite and PostgreSQL accept and refuse the same inputs (issue 8 point 3), and a database
error never prints personal data (issue 8 point 6). Every test runs on both databases."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import text

from ledger import DatabaseRefused, InvalidValue, Ledger
from tests.ledger.conftest import new_lead

#: What a hostile or broken vendor may send: NUL, lone surrogates (bytes that were not UTF-8),
#: our own escape character, in keys and values, nested.
AWKWARD = {
    "nul": "before\x00after",
    "surrogate": "Ana \udcff",
    "high surrogate": "\ud800",
    "escape char": "\ue000 and \ue0000041",
    "key with \x00 NUL": ["\x00", {"deep \udcff": "\x00\ue000\udfff"}],
    "plain": "José da Conceição 🇧🇷",
    "a backslash, then what looks like the escape": "\\ue000 \\uE000",
    "numbers": [1, 2.5, None, True],
}


def test_a_raw_payload_with_nul_and_lone_surrogates_is_stored_losslessly(ledger: Ledger) -> None:
    lead_id = ledger.record_lead("facebook", "awkward", AWKWARD).lead_id
    assert ledger.get_lead(lead_id).raw == AWKWARD


def test_quarantine_values_and_reasons_with_nul_and_surrogates_read_back_equal(
    ledger: Ledger,
) -> None:
    lead_id = new_lead(ledger)
    reasons = [{"rule": "name_valid", "value": "Ana \udcff"}]
    record_id = ledger.quarantine_at_gate(lead_id, reasons, AWKWARD)
    record = ledger.get_quarantine(record_id)
    assert (record.reasons, record.values) == (reasons, AWKWARD)


def test_effect_responses_errors_and_inbox_headers_keep_awkward_text(ledger: Ledger) -> None:
    ledger.begin_effect("k1", "asaas", "create_customer", None)
    failed = ledger.fail_effect("k1", "vendor said \x00\udcff", permanent=False)
    assert failed.last_error == "vendor said \x00\udcff"
    done = ledger.complete_effect("k1", "cus_1", AWKWARD)
    assert done.response == AWKWARD
    inbox_id = ledger.store_inbox("asaas", "evt", b"\x00\xff", {"x-odd": "\x00\udcff"})
    assert inbox_id is not None
    entry = ledger.get_inbox(inbox_id)
    assert (entry.body, entry.headers) == (b"\x00\xff", {"x-odd": "\x00\udcff"})


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("source_id", lambda ledger: ledger.record_lead("facebook", "x" * 256, {})),
        ("source", lambda ledger: ledger.record_lead("f" * 65, "1", {})),
        ("source_id", lambda ledger: ledger.record_lead("facebook", "a\x00b", {})),
        ("source_id", lambda ledger: ledger.record_lead("facebook", "a\udcffb", {})),
        ("effect key", lambda ledger: ledger.begin_effect("k" * 256, "asaas", "op", None)),
        ("vendor", lambda ledger: ledger.begin_effect("k", "v" * 65, "op", None)),
        ("event_id", lambda ledger: ledger.store_inbox("asaas", "e" * 256, b"", {})),
        ("worker", lambda ledger: ledger.claim("received", 1, "w" * 256)),
    ],
    ids=[
        "long-source-id",
        "long-source",
        "nul-source-id",
        "surrogate-source-id",
        "long-effect-key",
        "long-vendor",
        "long-event-id",
        "long-worker",
    ],
)
def test_a_value_a_column_cannot_hold_is_refused_alike_naming_the_field(
    ledger: Ledger, field: str, call
) -> None:
    with pytest.raises(InvalidValue) as refused:
        call(ledger)
    assert refused.value.field == field
    assert field in str(refused.value)


def test_an_over_long_vendor_object_id_is_refused_and_the_effect_stays_pending(
    ledger: Ledger,
) -> None:
    ledger.begin_effect("k1", "asaas", "create_customer", None)
    with pytest.raises(InvalidValue, match="vendor object id"):
        ledger.complete_effect("k1", "c" * 256)
    assert ledger.get_effect("k1").status == "pending"
    assert ledger.complete_effect("k1", "c" * 255).vendor_object_id == "c" * 255


def test_identifiers_at_their_column_length_are_accepted_on_both(ledger: Ledger) -> None:
    recorded = ledger.record_lead("f" * 64, "x" * 255, {})
    assert ledger.get_lead(recorded.lead_id).source_id == "x" * 255
    assert ledger.begin_effect("k" * 255, "v" * 64, "o" * 128, None).attempts == 1


CPF = "52998224725"
EMAIL = "ana.souza@exemplo.com.br"


@pytest.fixture
def refusing_leads(ledger: Ledger) -> Iterator[Ledger]:
    """The leads table made to refuse every insert, as a database can (a full disk, a
    constraint added by an operator): the driver's error then carries the statement's values."""
    with ledger.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("ALTER TABLE leads ADD CONSTRAINT test_refuse CHECK (source = 'never')")
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON leads "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
    try:
        yield ledger
    finally:
        with ledger.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE leads DROP CONSTRAINT test_refuse"))
            else:
                connection.execute(text("DROP TRIGGER test_refuse"))


def test_a_database_error_carries_no_cpf_or_email_in_its_message_or_traceback(
    refusing_leads: Ledger,
) -> None:
    raw = {"field_data": [{"name": "cpf", "values": [CPF]}, {"name": "email", "values": [EMAIL]}]}
    with pytest.raises(DatabaseRefused) as refused:
        refusing_leads.record_lead("facebook", f"{CPF}-{EMAIL}", raw)
    printed = "".join(traceback.format_exception(refused.value))
    for secret in (CPF, EMAIL, "ana.souza", "529.982"):
        assert secret not in printed
    assert "refused" in str(refused.value)


def test_values_json_cannot_hold_are_stored_alike_instead_of_losing_the_quarantined_row(
    ledger: Ledger,
) -> None:
    """Issue 8 point 2's values (NaN, bytes, sets, any object) reach the quarantine: both
    databases keep the row, in the same shape."""
    lead_id = new_lead(ledger)
    values = {
        "nan": float("nan"),
        "inf": float("inf"),
        "minus_inf": float("-inf"),
        "bytes": b"J\xc3\xa3o \xff",
        "set": {"b", "a"},
        "tuple": ("x", 1),
        "decimal": Decimal("1490.00"),
        1: "an int key",
    }
    record_id = ledger.quarantine_at_gate(lead_id, [{"rule": "anything"}], values)
    stored = ledger.get_quarantine(record_id).values
    assert stored == {
        "nan": "NaN",
        "inf": "Infinity",
        "minus_inf": "-Infinity",
        "bytes": "Jão \udcff",
        "set": ["a", "b"],
        "tuple": ["x", 1],
        "decimal": "1490.00",
        "1": "an int key",
    }
