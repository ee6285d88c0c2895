"""`leadflow db upgrade | downgrade REV | current`, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow.cli.db import app
from leadflow.settings import reset_settings_cache
from ledger.migrate import head_revision
from tests.ledger.conftest import fresh_postgres_database

LEADFLOW = Path(sys.executable).with_name("leadflow")


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """LEADFLOW_DATABASE_URL pointing at a fresh SQLite file, for the CLI's settings."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    reset_settings_cache()
    yield url
    reset_settings_cache()


def _run(*args: str, answer: str | None = None):
    return CliRunner().invoke(app, list(args), input=answer)


def test_current_on_a_new_database_says_there_is_no_schema_yet(database_url: str) -> None:
    result = _run("current")
    assert result.exit_code == 0, result.output
    assert "no ledger schema yet" in result.output
    assert "leadflow db upgrade" in result.output


def test_upgrade_creates_the_schema_and_current_reports_the_newest(database_url: str) -> None:
    upgraded = _run("upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {head_revision()}" in upgraded.output
    current = _run("current")
    assert current.output.strip() == f"{head_revision()} (newest)"


def test_downgrade_to_base_removes_the_schema(database_url: str) -> None:
    _run("upgrade")
    downgraded = _run("downgrade", "base", "--yes")
    assert downgraded.exit_code == 0, downgraded.output
    assert "base (no ledger tables)" in downgraded.output
    assert "no ledger schema yet" in _run("current").output


def test_downgrade_asks_first_and_a_no_keeps_the_schema(database_url: str) -> None:
    _run("upgrade")
    declined = _run("downgrade", "base", answer="n\n")
    assert declined.exit_code == 1
    assert "drops what newer revisions created" in declined.output
    assert _run("current").output.strip() == f"{head_revision()} (newest)"


def test_downgrade_goes_ahead_when_the_user_confirms(database_url: str) -> None:
    _run("upgrade")
    confirmed = _run("downgrade", "base", answer="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "no ledger schema yet" in _run("current").output


def test_downgrade_needs_a_revision(database_url: str) -> None:
    assert _run("downgrade").exit_code != 0


def test_an_unknown_revision_is_one_line_and_exit_code_1(database_url: str) -> None:
    _run("upgrade")
    result = _run("downgrade", "9999", "--yes")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "'9999'" in result.output


def test_an_unreachable_database_is_one_clear_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(LEADFLOW), "db", "upgrade"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "LEADFLOW_DATABASE_URL": "postgresql+psycopg://leadflow:s3cret@127.0.0.1:1/ledger",
        },
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot use the ledger database" in lines[0]
    assert "127.0.0.1:1" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout


def _console(
    tmp_path: Path, url: str | None, *args: str, env_file: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """`leadflow ARGS` through the real console script, in a folder of its own."""
    env = {key: value for key, value in os.environ.items() if key != "LEADFLOW_DATABASE_URL"}
    if url is not None:
        env["LEADFLOW_DATABASE_URL"] = url
    if env_file is not None:
        (tmp_path / ".env").write_bytes(env_file)
    return subprocess.run(
        [str(LEADFLOW), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////etc/passwd", "is not a SQLite database"),
        ("postgresql+asyncpg://leadflow@127.0.0.1/ledger", "use postgresql+psycopg://"),
        ("postgresql+psycopg2://leadflow@127.0.0.1/ledger", "psycopg2 driver is not installed"),
        ("sqlite:///", "in-memory SQLite database: nothing would be kept"),
    ],
    ids=["not-a-database", "asyncpg", "psycopg2", "in-memory"],
)
def test_a_database_url_the_ledger_cannot_use_is_one_line_and_exit_code_2(
    tmp_path: Path, url: str, expected: str
) -> None:
    result = _console(tmp_path, url, "db", "upgrade")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_downgrade_refuses_an_unusable_url_before_asking_anything(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://leadflow@127.0.0.1/ledger"
    result = _console(tmp_path, url, "db", "downgrade", "base")
    assert result.returncode == 2
    assert "Continue?" not in result.stdout
    assert "asyncpg" in result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///ledger.db", "use sqlite:///"),
        ("sqlite:///:memory:", "nothing would be kept"),
        ("postgresql://leadflow@127.0.0.1:1/ledger", "cannot use the ledger database"),
    ],
    ids=["aiosqlite", "memory-by-name", "bare-postgresql-means-psycopg"],
)
def test_other_urls_get_the_same_one_line_treatment(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    reset_settings_cache()
    try:
        result = _run("upgrade")
    finally:
        reset_settings_cache()
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_env_file_that_is_not_utf8_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = _console(
        tmp_path, None, "db", "upgrade", env_file=b"LEADFLOW_DATABASE_URL=sqlite:///a\xff.db\n"
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert ".env is not UTF-8" in lines[0]
    assert "Traceback" not in result.stderr


def test_upgrade_and_downgrade_work_on_postgresql(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_postgres_database(postgres_url) as url:
        monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
        reset_settings_cache()
        try:
            assert _run("upgrade").exit_code == 0
            assert _run("current").output.strip() == f"{head_revision()} (newest)"
            assert _run("downgrade", "base", "--yes").exit_code == 0
            assert "no ledger schema yet" in _run("current").output
        finally:
            reset_settings_cache()
