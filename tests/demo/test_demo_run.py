"""The demo at small size, end to end: the sandbox, the webhook service and the journey in this
process, then the accounting and the exit code — 0 when every lead is accounted for and nothing
was made twice, 1 when the books do not balance (a vendor object made behind the ledger's back,
a lead the ledger never got)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from leadflow.demo import DemoOptions, DemoOutcome, run_demo

pytestmark = pytest.mark.integration

LEADS = 12


@pytest.fixture(scope="module")
def first_run(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`leadflow demo --leads 12` once, as a user types it; later tests rerun on its state."""
    from leadflow.cli import app

    state = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "LEADFLOW_DATABASE_URL"):
            patch.delenv(name, raising=False)  # restored afterwards: the command sets them
        result = CliRunner().invoke(
            app, ["demo", "--leads", str(LEADS), "--seed", "3", "--state-dir", str(state)]
        )
    return state, result


def rerun(state: Path, on_sandbox: Any) -> DemoOutcome:
    import asyncio

    options = DemoOptions(leads=LEADS, seed=3, state_dir=state, quiet_seconds=2.5)
    return asyncio.run(run_demo(options, on_sandbox=on_sandbox))


def test_the_demo_accounts_for_every_lead_and_exits_0(first_run: Any) -> None:
    _state, result = first_run

    assert result.exit_code == 0, result.output
    assert f"Every one of the {LEADS} leads is accounted for" in result.output
    assert "✗" not in result.output  # no problem line
    assert "Traceback" not in result.output


def test_a_rerun_continues_and_exits_1_when_the_books_do_not_balance(first_run: Any) -> None:
    """Behind the ledger's back: Pipedrive gets a second deal, and a person fills the form
    while no webhook is sent (and no reconciler round reads it): both fail the books."""
    state, _result = first_run

    def break_the_books(running: Any) -> None:
        token = running.credentials["pipedrive"]["api_token"]
        httpx.post(
            f"{running.base_urls['pipedrive']}/api/v2/deals",
            headers={"x-api-token": token},
            json={"title": "a deal nobody recorded"},
        ).raise_for_status()
        httpx.post(
            f"{running.admin_url}/facebook/leads",
            json={"count": 1, "bad_share": 0, "webhook": False},
        ).raise_for_status()

    outcome = rerun(state, break_the_books)

    assert outcome.resumed
    assert outcome.exit_code == 1
    books = outcome.accounting
    (twice,) = books.created_twice
    assert (twice.vendor, twice.kind) == ("pipedrive", "deal")
    assert twice.created == twice.in_ledger + 1
    assert books.leads_in == LEADS + 1  # the rerun continued: no new lead submitted but ours
    assert books.recorded == LEADS
    assert any("1 lead(s) submitted to the form never reached" in p for p in books.problems)
