"""How a Ledger opens its database, and what its views are: snapshots, never live rows.

Callers get no Session (issue 9 point 4): each operation is its own transaction.
"""

from __future__ import annotations

from ledger import Ledger


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


def test_a_ledger_hands_out_no_raw_session(ledger: Ledger) -> None:
    assert not hasattr(ledger, "session")
