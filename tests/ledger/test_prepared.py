"""Statements run on the driver's cursor (ledger/prepared.py) read and write exactly what
SQLAlchemy's own execution of them does, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ledger import Ledger
from ledger.effects import EFFECTS
from ledger.prepared import Prepared
from tests.ledger.conftest import new_lead

AWKWARD = {"name": "Jo\x00ão \ud800 \ue000", "n": 1.5, "ok": True, "list": ["ç", None]}
BY_KEY = select(EFFECTS).where(EFFECTS.c.key == bindparam("wanted_key"))
COLUMNS = ("key", "vendor", "operation", "lead_id", "status", "attempts", "permanent")
COLUMNS += ("lease_token", "leased_until", "created_at", "updated_at", "response")
NEW_EFFECT = insert(EFFECTS).values({name: bindparam(name) for name in COLUMNS})


def _effect_values(lead_id: int, key: str) -> dict[str, object]:
    now = datetime(2026, 12, 3, 12, 30, 45, 123456, tzinfo=UTC)
    return {
        "key": key,
        "vendor": "asaas",
        "operation": "create_pix_charge",
        "lead_id": lead_id,
        "status": "pending",
        "attempts": 1,
        "permanent": False,
        "lease_token": "token",
        "leased_until": now + timedelta(minutes=5),
        "created_at": now,
        "updated_at": now,
    }


def test_a_prepared_insert_returns_the_row_sqlalchemy_reads_back(ledger: Ledger) -> None:
    values = _effect_values(new_lead(ledger), "lead:1:asaas.pix_charge")
    prepared = Prepared(lambda _: NEW_EFFECT.returning(*EFFECTS.c))
    with ledger.engine.begin() as connection:
        returned = prepared.first(connection, {**values, "response": AWKWARD})
        read = connection.execute(BY_KEY, {"wanted_key": values["key"]}).one()
    assert tuple(returned) == tuple(read)
    assert returned.response == AWKWARD
    assert returned.created_at == values["created_at"]
    assert returned.created_at.tzinfo is UTC


def test_a_prepared_select_reads_what_sqlalchemy_reads(ledger: Ledger) -> None:
    values = _effect_values(new_lead(ledger), "lead:2:pipedrive.deal")
    with ledger.engine.begin() as connection:
        connection.execute(insert(EFFECTS), {**values, "response": AWKWARD})
        prepared = Prepared(lambda _: BY_KEY).all(connection, {"wanted_key": values["key"]})
        expected = connection.execute(BY_KEY, {"wanted_key": values["key"]}).all()
    assert [tuple(row) for row in prepared] == [tuple(row) for row in expected]
    assert prepared[0].key == values["key"]


def test_the_statements_own_values_are_bound_beside_the_callers(ledger: Ledger) -> None:
    values = _effect_values(new_lead(ledger), "lead:3:docusign.envelope")
    done = Prepared(
        lambda _: (
            update(EFFECTS)
            .where(EFFECTS.c.key == bindparam("wanted_key"))
            .values(status="done", lease_token=None, vendor_object_id=bindparam("object_id"))
            .returning(EFFECTS.c.status, EFFECTS.c.lease_token, EFFECTS.c.vendor_object_id)
        )
    )
    with ledger.engine.begin() as connection:
        connection.execute(insert(EFFECTS), values)
        row = done.first(connection, {"wanted_key": values["key"], "object_id": "env-1"})
    assert tuple(row) == ("done", None, "env-1")


def test_a_statement_that_returns_nothing_gives_none(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection:
        assert Prepared(lambda _: BY_KEY).first(connection, {"wanted_key": "nobody"}) is None


def test_a_driver_error_reaches_the_ledger_as_sqlalchemys(ledger: Ledger) -> None:
    values = _effect_values(new_lead(ledger), "lead:4:hostinger.website")
    prepared = Prepared(lambda _: NEW_EFFECT)
    with pytest.raises(IntegrityError), ledger.engine.begin() as connection:
        prepared.all(connection, {**values, "response": None, "lead_id": 987_654_321})


def test_a_call_that_leaves_out_a_parameter_is_refused_rather_than_sent_as_null(
    ledger: Ledger,
) -> None:
    values = _effect_values(new_lead(ledger), "lead:5:whatsapp.pix_code")
    prepared = Prepared(lambda _: NEW_EFFECT)
    with pytest.raises(ValueError, match="response"), ledger.engine.begin() as connection:
        prepared.all(connection, values)


def test_a_statement_with_an_expanding_parameter_is_refused(ledger: Ledger) -> None:
    many = Prepared(lambda _: select(EFFECTS).where(EFFECTS.c.key.in_(bindparam("keys"))))
    with pytest.raises(ValueError, match="plainly bound"), ledger.engine.begin() as connection:
        many.all(connection, {"keys": ["a", "b"]})


def test_a_statement_whose_table_computes_a_default_is_refused() -> None:
    table = Table("counted", MetaData(), Column("id", Integer, primary_key=True))
    table.append_column(Column("hits", Integer, default=0))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    counted = Prepared(lambda _: insert(table).values(id=bindparam("id")))
    with pytest.raises(ValueError, match="defaults"), engine.begin() as connection:
        counted.all(connection, {"id": 1})
