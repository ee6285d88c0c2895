"""`leadflow journeys`: one command answers "what happened to this client?", with contact data
masked, and resumes a dead-lettered journey."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_quality.lead import NormalizedLead, PhoneKind
from leadflow.cli import app
from leadflow.settings import reset_settings_cache
from ledger import EffectStateError, JourneyState, Ledger

EMAIL = "maria.silva@exemplo.com.br"
PHONE = "+5511987654321"
CPF = "52998224725"


@pytest.fixture
def journey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ledger, int]]:
    """A client whose Pipedrive writes are done and whose contract was refused for good."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    reset_settings_cache()
    ledger = Ledger(url)
    ledger.upgrade()
    lead_id = ledger.record_lead(
        "facebook", "880000000000042", {"full_name": "Maria Silva"}
    ).lead_id
    lead = NormalizedLead(
        source="facebook",
        source_id="880000000000042",
        full_name="Maria da Silva",
        email=EMAIL,
        phone=PHONE,
        phone_kind=PhoneKind.MOBILE,
        cpf=CPF,
    )
    ledger.pass_gate(lead_id, lead)
    for key, operation, vendor_id in (
        ("pipedrive.person", "upsert_person", "301"),
        ("pipedrive.deal", "create_deal", "401"),
    ):
        ledger.begin_effect(f"lead:{lead_id}:{key}", "pipedrive", operation, lead_id)
        ledger.complete_effect(f"lead:{lead_id}:{key}", vendor_id)
    with pytest.raises(EffectStateError):  # a late worker's deal: kept as an orphan candidate
        ledger.complete_effect(f"lead:{lead_id}:pipedrive.deal", "402")
    for state in (JourneyState.DEAL_OPEN, JourneyState.DEAL_WON):
        ledger.transition(lead_id, state, "reconcile", "moved on")
    key = f"lead:{lead_id}:docusign.envelope"
    ledger.begin_effect(key, "docusign", "create_envelope", lead_id)
    ledger.fail_effect(key, "TEMPLATE_ID_INVALID: Invalid template ID", permanent=True)
    ledger.transition(lead_id, JourneyState.DEAD_LETTERED, "reconcile", "TEMPLATE_ID_INVALID")
    yield ledger, lead_id
    ledger.dispose()
    reset_settings_cache()


@pytest.fixture
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200-column terminal. The CLI's console read the width when its module was first
    imported, by whichever test came first (COLUMNS given to one invoke comes too late)."""
    from leadflow.cli.common import console

    monkeypatch.setattr(console, "width", 200)


@pytest.mark.usefixtures("wide_terminal")
def test_show_tells_the_whole_story_with_contact_data_masked(journey: tuple[Ledger, int]) -> None:
    _, lead_id = journey

    result = CliRunner().invoke(app, ["journeys", "show", str(lead_id)])

    assert result.exit_code == 0, result.output
    for expected in (
        "dead_lettered",
        "deal_won",
        "create_deal",
        "401",
        "402",
        "orphan",
        "TEMPLATE_ID_INVALID",
        "m***@exemplo.com.br",
        "***21",
    ):
        assert expected in result.output, expected
    for secret in (EMAIL, PHONE, CPF, "Maria da Silva"):
        assert secret not in result.output


@pytest.mark.usefixtures("wide_terminal")
def test_list_filters_by_state(journey: tuple[Ledger, int]) -> None:
    _, lead_id = journey

    dead = CliRunner().invoke(app, ["journeys", "list", "--state", "dead_lettered"])
    received = CliRunner().invoke(app, ["journeys", "list", "--state", "received"])

    assert dead.exit_code == 0, dead.output
    assert f"│ {lead_id} " in dead.output
    assert f"│ {lead_id} " not in received.output


def test_retry_resumes_a_dead_lettered_journey_at_its_step(journey: tuple[Ledger, int]) -> None:
    ledger, lead_id = journey

    result = CliRunner().invoke(app, ["journeys", "retry", str(lead_id), "--no-run"])

    assert result.exit_code == 0, result.output
    assert ledger.get_journey(lead_id).state == JourneyState.DEAL_WON
    assert not ledger.get_effect(f"lead:{lead_id}:docusign.envelope").is_permanently_failed


def test_retry_of_a_journey_that_is_not_dead_lettered_says_so(
    journey: tuple[Ledger, int],
) -> None:
    _, lead_id = journey
    CliRunner().invoke(app, ["journeys", "retry", str(lead_id), "--no-run"])

    again = CliRunner().invoke(app, ["journeys", "retry", str(lead_id), "--no-run"])

    assert again.exit_code == 1
    assert "not dead_lettered" in again.output


def test_an_unknown_state_or_an_id_beyond_64_bits_is_one_line_and_exit_2(
    journey: tuple[Ledger, int],
) -> None:
    leadflow = Path(sys.executable).parent / "leadflow"
    for arguments in (["list", "--state", "paid_twice"], ["show", "99999999999999999999"]):
        run = subprocess.run(  # the real console script, as a user types it
            [str(leadflow), "journeys", *arguments], capture_output=True, text=True, check=False
        )
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
