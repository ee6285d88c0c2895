"""`Ledger.session()`: one transaction, committed on success, rolled back on error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ledger import Ledger
from ledger.models import Lead


def _lead_row(source_id: str) -> Lead:
    return Lead(source="manual", source_id=source_id, raw={}, received_at=datetime.now(UTC))


def _count_leads(ledger: Ledger) -> int:
    with ledger.session() as session:
        return session.execute(select(func.count()).select_from(Lead)).scalar_one()


def test_a_session_commits_when_the_block_succeeds(ledger: Ledger) -> None:
    with ledger.session() as session:
        session.add(_lead_row("kept"))
    assert _count_leads(ledger) == 1


def test_a_session_rolls_back_everything_when_the_block_fails(ledger: Ledger) -> None:
    def add_then_fail() -> None:
        with ledger.session() as session:
            session.add(_lead_row("lost"))
            session.flush()
            raise RuntimeError("vendor exploded")

    with pytest.raises(RuntimeError, match="vendor exploded"):
        add_then_fail()
    assert _count_leads(ledger) == 0


def test_views_are_snapshots_that_outlive_their_session(ledger: Ledger) -> None:
    lead_id = ledger.record_lead("facebook", "1", {"nested": {"a": 1}}).lead_id
    view = ledger.get_lead(lead_id)
    view.raw["nested"]["a"] = 2
    assert ledger.get_lead(lead_id).raw == {"nested": {"a": 1}}


def test_a_sqlite_ledger_runs_with_wal_foreign_keys_and_a_busy_timeout(tmp_path) -> None:
    sqlite_ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with sqlite_ledger.engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        sqlite_ledger.dispose()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["foreign_keys"] == 1
    assert pragmas["busy_timeout"] >= 1000


def test_a_missing_folder_for_the_sqlite_file_is_created(tmp_path) -> None:
    sqlite_ledger = Ledger(f"sqlite:///{tmp_path / 'new' / 'folder' / 'ledger.db'}")
    try:
        sqlite_ledger.upgrade()
    finally:
        sqlite_ledger.dispose()
    assert (tmp_path / "new" / "folder" / "ledger.db").is_file()


def test_the_url_the_ledger_shows_hides_the_password() -> None:
    pg_ledger = Ledger("postgresql+psycopg://leadflow:s3cret@db.internal:5432/ledger")
    assert "s3cret" not in pg_ledger.url
    assert "s3cret" not in repr(pg_ledger)
