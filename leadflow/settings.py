"""Process-wide configuration, read from `LEADFLOW_*` environment variables and `.env`.

Every part of leadflow may read these settings (DESIGN.md: blocks import "nothing of the project
but config"). Credentials do not live here: they live in Prefect Blocks (blocks/) or, for the
webhook service, in the environment as SecretStr.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LEADFLOW_"


def _default_database_url() -> str:
    """A SQLite file under `.leadflow/` in the working directory: the embedded default."""
    return f"sqlite:///{Path.cwd() / '.leadflow' / 'ledger.db'}"


def env_settings(prefix: str, *, populate_by_name: bool = False) -> SettingsConfigDict:
    """How every leadflow settings class reads its values: `<prefix><NAME>` from the
    environment or a UTF-8 `.env`, other variables ignored (the flows' and the webhook
    service's settings share one `.env`)."""
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=populate_by_name,
    )


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the setting and what is wrong."""


class Settings(BaseSettings):
    """leadflow's settings. Each field is `LEADFLOW_<NAME>` in the environment or `.env`."""

    model_config = env_settings(ENV_PREFIX)

    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL of the ledger (SQLite by default, PostgreSQL in production).",
    )
    http_connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    http_read_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a response.")
    http_total_timeout: float = Field(
        60.0, gt=0, description="Seconds one vendor call may take, all retries included."
    )
    http_max_attempts: int = Field(5, ge=1, le=20, description="Attempts per transient failure.")
    http_backoff_base: float = Field(0.5, ge=0, description="First backoff in seconds.")
    http_backoff_cap: float = Field(30.0, ge=0, description="Longest single backoff in seconds.")
    http_max_rate_limit_pause: float = Field(
        120.0,
        gt=0,
        description="Longest pause one 429 or rate-limit header may impose, whatever it asks.",
    )
    data_docs_dir: Path = Field(
        Path(".leadflow/data_docs"), description="Where Great Expectations Data Docs are written."
    )
    business_file: Path = Field(
        Path("leadflow.toml"),
        description="The business's choices (forms, products, template...): leadflow/business.py.",
    )
    alert_channel: Literal["webhook", "slack", "email"] = Field(
        "webhook",
        description="Where alerts go (deployments/setup.py): a generic webhook, Slack, or e-mail.",
    )
    alert_webhook_url: SecretStr | None = Field(
        None,
        description="The alert webhook (generic POST of JSON, or a Slack incoming webhook).",
    )
    alert_email_to: list[str] = Field(
        default_factory=list, description="Alert recipients when alert_channel is email."
    )
    alert_email_from: str | None = Field(None, description="Alert sender (SendGrid-verified).")
    alert_sendgrid_api_key: SecretStr | None = Field(
        None, description="SendGrid API key for e-mail alerts."
    )
    quarantine_alert_threshold: int = Field(
        50, ge=0, description="Open quarantine records past which the nightly report alerts."
    )

    @field_validator("database_url")
    @classmethod
    def _database_url_is_sqlalchemy_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(
                f"backend {url.get_backend_name()!r} is not supported; use sqlite or postgresql"
            )
        return value


def _describe(exc: ValidationError) -> str:
    """One line per broken setting, naming it as the user wrote it (LEADFLOW_...)."""
    lines = []
    for error in exc.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}: {error['msg']}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once; a broken setting raises ConfigError."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid setting — {_describe(exc)}") from None
    except UnicodeDecodeError as exc:
        # pydantic-settings reads .env as UTF-8; a file saved in Latin-1 (a "ç" typed on an
        # old editor) would otherwise end the command in a codec traceback
        raise ConfigError(
            f".env is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}): save it as UTF-8"
        ) from None


def reset_settings_cache() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
