"""The ledger's schema migrations on an empty database, up and back down, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import Barrier

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from ledger import Ledger, LedgerUnavailable, MigrationError
from ledger.migrate import VERSION_TABLE, head_revision
from ledger.models import Base
from tests.ledger.conftest import BACKENDS, empty_database

LEDGER_TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture(params=BACKENDS)
def empty_ledger(request: pytest.FixtureRequest, tmp_path) -> Iterator[Ledger]:
    """A Ledger on a database nobody has touched yet."""
    with empty_database(request.param, request, tmp_path) as url:
        ledger = Ledger(url)
        yield ledger
        ledger.dispose()


def _tables(ledger: Ledger) -> set[str]:
    with ledger.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_an_untouched_database_has_no_revision(empty_ledger: Ledger) -> None:
    assert empty_ledger.current_revision() is None


def test_upgrade_creates_every_table_at_the_newest_revision(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    assert _tables(empty_ledger) == LEDGER_TABLES | {VERSION_TABLE}
    assert empty_ledger.current_revision() == head_revision()


def test_upgrading_an_up_to_date_ledger_changes_nothing(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    lead = empty_ledger.record_lead("facebook", "1", {"kept": True})
    empty_ledger.upgrade()
    assert empty_ledger.get_lead(lead.lead_id).raw == {"kept": True}
    assert empty_ledger.current_revision() == head_revision()


def test_downgrade_to_base_leaves_no_table(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    empty_ledger.record_lead("facebook", "1", {})
    empty_ledger.downgrade("base")
    assert _tables(empty_ledger) == set()
    assert empty_ledger.current_revision() is None


def test_processes_starting_together_can_all_upgrade_the_same_database(
    empty_ledger: Ledger,
) -> None:
    starters = 4
    barrier = Barrier(starters)
    url = empty_ledger.engine.url.render_as_string(hide_password=False)

    def start(_: int) -> str | None:
        own = Ledger(url)
        try:
            barrier.wait()
            own.upgrade()
            return own.current_revision()
        finally:
            own.dispose()

    with ThreadPoolExecutor(starters) as pool:
        revisions = list(pool.map(start, range(starters)))
    assert revisions == [head_revision()] * starters
    assert _tables(empty_ledger) == LEDGER_TABLES | {VERSION_TABLE}


def test_the_migrations_build_exactly_what_the_models_describe(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    with empty_ledger.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_json_documents_are_jsonb_on_postgresql_and_json_on_sqlite(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    with empty_ledger.engine.connect() as connection:
        columns = {column["name"]: column for column in inspect(connection).get_columns("leads")}
        dialect = connection.dialect.name
    expected = "JSONB" if dialect == "postgresql" else "JSON"
    assert type(columns["raw"]["type"]).__name__ == expected


def test_the_ledger_shares_a_database_with_another_alembic_user(empty_ledger: Ledger) -> None:
    with empty_ledger.engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('prefect_rev')"))
    empty_ledger.upgrade()
    empty_ledger.downgrade("base")
    with empty_ledger.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            ("prefect_rev",)
        ]
    assert _tables(empty_ledger) == {"alembic_version"}


def test_an_unknown_revision_is_a_migration_error(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    with pytest.raises(MigrationError, match="'9999'"):
        empty_ledger.downgrade("9999")
    assert empty_ledger.current_revision() == head_revision()


def test_an_unreachable_server_is_one_line_with_the_password_masked() -> None:
    ledger = Ledger("postgresql+psycopg://leadflow:s3cret@127.0.0.1:1/ledger")
    with pytest.raises(LedgerUnavailable) as raised:
        ledger.upgrade()
    message = str(raised.value)
    assert "s3cret" not in message
    assert "127.0.0.1:1" in message
    assert "\n" not in message


def test_a_sqlite_file_that_cannot_be_created_is_unavailable(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LedgerUnavailable, match="cannot create the folder"):
        Ledger(f"sqlite:///{blocker}/ledger.db")


def test_an_unsupported_backend_is_unavailable() -> None:
    with pytest.raises(LedgerUnavailable, match="'mysql'"):
        Ledger("mysql://root@localhost/ledger")


def test_using_a_database_that_was_never_migrated_says_to_run_db_upgrade(
    empty_ledger: Ledger,
) -> None:
    with pytest.raises(LedgerUnavailable, match=r"no ledger schema yet: run `leadflow db upgrade`"):
        empty_ledger.record_lead("facebook", "1", raw={})


def test_effects_begun_before_leases_existed_are_handed_over_after_the_upgrade(
    empty_ledger: Ledger,
) -> None:
    empty_ledger.upgrade("0001")
    with empty_ledger.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO effects (key, vendor, operation, status, attempts, permanent, "
                "created_at, updated_at) VALUES ('lead:1:asaas.payment', 'asaas', "
                "'create_pix_charge', 'pending', 1, false, :now, :now)"
            ),
            {"now": datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)},
        )
    empty_ledger.upgrade()
    resumed = empty_ledger.begin_effect("lead:1:asaas.payment", "asaas", "create_pix_charge", None)
    assert (resumed.status, resumed.attempts, resumed.needs_lookup) == ("pending", 2, True)
    assert resumed.lease_token is not None


def test_downgrading_the_lease_revision_keeps_every_effect(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    empty_ledger.begin_effect("lead:1:asaas.payment", "asaas", "create_pix_charge", None)
    empty_ledger.downgrade("0001")
    with empty_ledger.engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("effects")}
        keys = connection.execute(text("SELECT key, status FROM effects")).all()
    assert {"lease_token", "leased_until"}.isdisjoint(columns)
    assert keys == [("lead:1:asaas.payment", "pending")]


def test_deliveries_processed_before_inbox_outcomes_existed_read_as_processed(
    empty_ledger: Ledger,
) -> None:
    empty_ledger.upgrade("0002")
    now = datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)
    with empty_ledger.engine.begin() as connection:
        for event_id, processed in (("done", now), ("waiting", None)):
            connection.execute(
                text(
                    "INSERT INTO inbox (vendor, event_id, body, headers, received_at, "
                    "processed_at) VALUES ('asaas', :event_id, :body, '{}', :now, :processed)"
                ),
                {"event_id": event_id, "body": b"{}", "now": now, "processed": processed},
            )
    empty_ledger.upgrade()
    (waiting,) = empty_ledger.unprocessed_inbox()
    assert (waiting.event_id, waiting.outcome) == ("waiting", None)
    assert empty_ledger.get_inbox(waiting.id - 1).outcome == "processed"
    assert [entry.event_id for entry in empty_ledger.claim_inbox(10, "w")] == ["waiting"]


def test_downgrading_the_inbox_claims_revision_keeps_every_delivery(empty_ledger: Ledger) -> None:
    empty_ledger.upgrade()
    empty_ledger.store_inbox("asaas", "evt", b"{}", {})
    empty_ledger.set_cursor("facebook:form:1", "abc")
    empty_ledger.downgrade("0002")
    with empty_ledger.engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("inbox")}
        events = connection.execute(text("SELECT event_id FROM inbox")).scalars().all()
        tables = set(inspect(connection).get_table_names())
    assert {"outcome", "reason", "claimed_by", "claimed_until"}.isdisjoint(columns)
    assert events == ["evt"]
    assert "cursors" not in tables
