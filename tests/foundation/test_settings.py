"""Settings: LEADFLOW_* variables and .env, with a broken setting named in one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from leadflow.settings import ConfigError, get_settings, reset_settings_cache


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Each case reads settings anew, from a working directory of its own."""
    names = ("LEADFLOW_DATABASE_URL", "LEADFLOW_HTTP_READ_TIMEOUT", "LEADFLOW_HTTP_MAX_ATTEMPTS")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    reset_settings_cache()
    yield tmp_path
    reset_settings_cache()


def test_database_defaults_to_a_sqlite_file_under_dot_leadflow(fresh_settings: Path) -> None:
    expected = fresh_settings / ".leadflow" / "ledger.db"
    assert get_settings().database_url == f"sqlite:///{expected}"


def test_environment_variable_with_prefix_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", "postgresql+psycopg://u@db:5432/leadflow")
    assert get_settings().database_url == "postgresql+psycopg://u@db:5432/leadflow"


def test_dot_env_file_in_the_working_directory_is_read(fresh_settings: Path) -> None:
    (fresh_settings / ".env").write_text("LEADFLOW_HTTP_MAX_ATTEMPTS=7\n", encoding="utf-8")
    assert get_settings().http_max_attempts == 7


def test_malformed_number_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_HTTP_READ_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="LEADFLOW_HTTP_READ_TIMEOUT"):
        get_settings()


def test_unsupported_database_backend_names_the_setting_and_the_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", "mysql://root@localhost/leadflow")
    with pytest.raises(ConfigError, match=r"LEADFLOW_DATABASE_URL.*'mysql'"):
        get_settings()


def test_text_that_is_not_a_url_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", "not a url")
    with pytest.raises(ConfigError, match=r"LEADFLOW_DATABASE_URL: .*not a database URL"):
        get_settings()
