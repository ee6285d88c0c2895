"""`leadflow webhooks register|serve` from the command line, against the sandbox."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from sandbox.server import running_sandbox

pytestmark = pytest.mark.integration


def test_register_subscribes_once_and_prints_what_a_person_must_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADFLOW_WEBHOOK_PIPEDRIVE_USER", "leadflow")
    monkeypatch.setenv("LEADFLOW_WEBHOOK_PIPEDRIVE_PASSWORD", "cli-password")
    monkeypatch.setenv("LEADFLOW_WEBHOOK_ASAAS_TOKEN", "cli-asaas-token")
    runner = CliRunner()
    arguments = ["webhooks", "register", "--public-url", "https://hooks.example.com.br"]
    with running_sandbox(seed=3) as sandbox:
        first = runner.invoke(app, [*arguments, "--sandbox", sandbox.url], catch_exceptions=False)
        second = runner.invoke(app, [*arguments, "--sandbox", sandbox.url])
        hooks = httpx.get(
            sandbox.base_urls["pipedrive"] + "/api/v1/webhooks",
            headers={"x-api-token": sandbox.credentials["pipedrive"]["api_token"]},
        ).json()["data"]
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "already subscribed" in second.output
    assert [h["subscription_url"] for h in hooks] == [
        "https://hooks.example.com.br/webhooks/pipedrive"
    ]
    assert hooks[0]["version"] == "2.0"
    assert "Still to do by hand" in first.output
    for vendor in ("facebook", "docusign", "whatsapp"):
        assert f"https://hooks.example.com.br/webhooks/{vendor}" in first.output
    assert "cli-password" not in first.output
    assert "cli-asaas-token" not in first.output


def test_register_refuses_a_url_that_is_not_http() -> None:
    result = CliRunner().invoke(
        app, ["webhooks", "register", "--public-url", "hooks.example.com", "--sandbox", "x"]
    )
    assert result.exit_code != 0


def test_serve_offers_host_and_port() -> None:
    result = CliRunner().invoke(app, ["webhooks", "serve", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output
    assert "--port" in result.output
