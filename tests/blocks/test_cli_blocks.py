"""`leadflow blocks init --sandbox` and `leadflow blocks check` against the in-process sandbox."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blocks.facebook import FacebookLeadAdsCredentials
from blocks.pipedrive import PipedriveCredentials
from blocks.whatsapp import WhatsAppCredentials
from leadflow.cli.blocks import app
from leadflow.sandbox_blocks import SANDBOX_BLOCKS

runner = CliRunner()
VENDORS = ("facebook", "pipedrive", "docusign", "asaas", "hostinger", "whatsapp")
MINE = ["--vendor", "facebook", "--vendor", "pipedrive", "--vendor", "whatsapp"]


@pytest.fixture(scope="module")
def sandbox_root(sandbox_urls: dict[str, str]) -> str:
    return next(iter(sandbox_urls.values())).rsplit("/", 1)[0]


@pytest.fixture(scope="module")
def saved_name(prefect_server: None, sandbox_root: str) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = runner.invoke(app, ["init", "--sandbox", sandbox_root, "--name", name])
    assert result.exit_code == 0, result.output
    return name


def test_init_saves_one_block_per_vendor_pointing_at_the_sandbox(
    saved_name: str, sandbox_urls: dict[str, str]
) -> None:
    async def load() -> tuple[object, ...]:
        return (
            await PipedriveCredentials.aload(saved_name),
            await FacebookLeadAdsCredentials.aload(saved_name),
            await WhatsAppCredentials.aload(saved_name),
        )

    pipedrive, facebook, whatsapp = asyncio.run(load())
    assert pipedrive.base_url == sandbox_urls["pipedrive"]  # type: ignore[attr-defined]
    assert facebook.base_url == sandbox_urls["facebook"]  # type: ignore[attr-defined]
    assert whatsapp.base_url == sandbox_urls["whatsapp"]  # type: ignore[attr-defined]


def test_init_prints_no_secret(prefect_server: None, sandbox_root: str) -> None:
    result = runner.invoke(app, ["init", "--sandbox", sandbox_root, "--name", "cli-secrets", *MINE])
    assert result.exit_code == 0, result.output
    assert "sandbox-pipedrive-api-token" not in result.output
    assert "EAAsandbox" not in result.output


def test_check_reports_every_vendor_of_a_sandbox_set_working_and_exits_zero(
    saved_name: str,
) -> None:
    result = runner.invoke(app, ["check", "--name", saved_name])
    assert result.exit_code == 0, result.output
    for vendor in VENDORS:
        assert vendor in result.output
    assert "FAILED" not in result.output


def test_check_names_the_failing_vendor_and_its_error_and_exits_non_zero(
    prefect_server: None, sandbox_urls: dict[str, str]
) -> None:
    name = f"cli-bad-{uuid.uuid4().hex[:8]}"
    bad = PipedriveCredentials(base_url=sandbox_urls["pipedrive"], api_token="wrong-token")
    asyncio.run(bad.asave(name))
    result = runner.invoke(app, ["check", "--name", name, "--vendor", "pipedrive"])
    assert result.exit_code == 1, result.output
    assert "pipedrive" in result.output
    assert "FAILED" in result.output
    assert "AuthenticationError" in result.output


def test_check_of_an_unsaved_name_fails_for_that_vendor(prefect_server: None) -> None:
    result = runner.invoke(app, ["check", "--name", "never-saved", "--vendor", "facebook"])
    assert result.exit_code == 1
    assert "never-saved" in result.output


def test_init_against_nothing_is_one_clear_error(prefect_server: None) -> None:
    result = runner.invoke(app, ["init", "--sandbox", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot read the sandbox" in result.output


def test_init_saves_the_other_vendors_when_one_block_cannot_be_built(
    prefect_server: None, sandbox_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(base_url: str, credentials: dict[str, str]) -> WhatsAppCredentials:
        return WhatsAppCredentials(base_url=base_url, access_token=credentials["access_token"])

    monkeypatch.setitem(SANDBOX_BLOCKS, "whatsapp", refuse)
    name = f"cli-partial-{uuid.uuid4().hex[:8]}"
    result = runner.invoke(app, ["init", "--sandbox", sandbox_root, "--name", name, *MINE])
    assert result.exit_code == 1
    assert "not saved" in result.output
    assert "phone_number_id" in result.output  # the missing field is named
    assert "EAAsandbox" not in result.output  # its neighbours' values are not
    assert asyncio.run(PipedriveCredentials.aload(name)).base_url.endswith("/pipedrive")


def test_the_vendor_registries_are_static_and_name_every_vendor_in_journey_order() -> None:
    import blocks
    from leadflow.cli.blocks import vendor_blocks

    assert [item.vendor for item in vendor_blocks()] == list(blocks.VENDOR_MODULES)
    assert [item.block.__module__ for item in vendor_blocks()] == [
        f"blocks.{vendor}" for vendor in blocks.VENDOR_MODULES
    ]
    assert list(SANDBOX_BLOCKS) == list(blocks.VENDOR_MODULES)


def test_an_unknown_vendor_is_refused() -> None:
    result = runner.invoke(app, ["check", "--vendor", "myspace"])
    assert result.exit_code == 2


# ------------------------------------------------------------- the Prefect API is unreachable

LEADFLOW = Path(sys.executable).with_name("leadflow")


def run_with_prefect_at_nothing(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console script, with PREFECT_API_URL pointing at a port nobody listens on."""
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    return subprocess.run(
        [str(LEADFLOW), "blocks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", [["check"], ["register"]], ids=lambda c: c[0])
def test_an_unreachable_prefect_api_is_one_line_and_exit_2(command: list[str]) -> None:
    result = run_with_prefect_at_nothing(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Prefect API at http://127.0.0.1:9/api cannot be reached" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
