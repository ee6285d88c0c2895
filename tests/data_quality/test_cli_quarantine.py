"""`leadflow quarantine list | show | fix | replay`, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from leadflow.cli import app as leadflow_app
from leadflow.settings import reset_settings_cache
from ledger import Ledger
from tasks.quality_gate import run_gate


@pytest.fixture(autouse=True)
def configured_ledger(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", ledger_url)
    reset_settings_cache()
    yield
    reset_settings_cache()


def _run(*args: str) -> Result:
    return CliRunner().invoke(leadflow_app, ["quarantine", *args])


@pytest.fixture
def quarantined(ledger: Ledger, record_lead: Callable[..., int]) -> tuple[int, int]:
    """(lead id, quarantine id) of a lead with a valid mobile but a broken e-mail and CPF."""
    lead_id = record_lead(
        full_name="Carla Dias",
        email="carla.dias@",
        phone_number="(21) 99876-5432",
        cpf="111.111.111-11",
    )
    return lead_id, run_gate(ledger, [lead_id]).quarantined[lead_id]


def test_list_shows_rules_and_masks_personal_data(quarantined: tuple[int, int]) -> None:
    result = _run("list")

    assert result.exit_code == 0, result.output
    assert "email_valid" in result.output
    assert "cpf_valid" in result.output
    assert "carla.dias@" not in result.output
    assert "99876-5432" not in result.output
    assert "111.111.111-11" not in result.output


def test_show_masks_the_record_unless_asked_to_reveal_it(quarantined: tuple[int, int]) -> None:
    masked = _run("show", str(quarantined[1]))
    revealed = _run("show", str(quarantined[1]), "--reveal")

    assert masked.exit_code == 0, masked.output
    assert "carla.dias@" not in masked.output
    assert "111.111.111-11" not in masked.output
    assert "c***@" in masked.output
    assert revealed.exit_code == 0, revealed.output
    assert "carla.dias@" in revealed.output
    assert "111.111.111-11" in revealed.output


def test_fix_then_replay_qualifies_the_lead(ledger: Ledger, quarantined: tuple[int, int]) -> None:
    lead_id, record_id = quarantined

    fixed = _run("fix", str(record_id), "email=carla@exemplo.com.br", "cpf=529.982.247-25")
    replayed = _run("replay", str(record_id))

    assert fixed.exit_code == 0, fixed.output
    assert replayed.exit_code == 0, replayed.output
    assert "qualified" in replayed.output
    assert ledger.journey_state(lead_id) == "qualified"
    assert _run("list").output.strip() == "No quarantined leads."


def test_replay_without_a_fix_quarantines_again(
    ledger: Ledger, quarantined: tuple[int, int]
) -> None:
    result = _run("replay")

    assert result.exit_code == 0, result.output
    assert "quarantined again" in result.output
    assert ledger.journey_state(quarantined[0]) == "quarantined"


def test_fix_refuses_a_field_that_is_not_a_lead_field(quarantined: tuple[int, int]) -> None:
    result = _run("fix", str(quarantined[1]), "nickname=Cacá")

    assert result.exit_code == 2
    assert "full_name" in result.output


def test_an_unknown_record_is_one_line_and_exit_code_one(ledger: Ledger) -> None:
    result = _run("show", "999")

    assert result.exit_code == 1
    assert "999" in result.output


def test_a_ledger_without_schema_is_one_line_and_exit_code_one() -> None:
    result = _run("list")

    assert result.exit_code == 1
    assert "leadflow db upgrade" in result.output


def test_list_shows_a_recognisable_masked_form_of_each_value(
    quarantined: tuple[int, int],
) -> None:
    result = _run("list")

    assert "C. D." in result.output  # Carla Dias
    assert "c***@" in result.output
    assert "phone_number=**" in result.output  # ***32, wrapped in a narrow table
    assert "cpf=*" in result.output


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("email", "'email' has no '='"),
        ("carla@exemplo.com.br", "an argument has no '='"),
        ("=carla@exemplo.com.br", "a field name is missing before '='"),
        ("nickname=Cacá", "unknown field 'nickname'"),
    ],
)
def test_fix_explains_a_malformed_assignment_without_echoing_the_value(
    quarantined: tuple[int, int], argument: str, message: str
) -> None:
    result = _run("fix", str(quarantined[1]), argument)

    assert result.exit_code == 2
    assert message in result.output
    assert "carla@exemplo.com.br" not in result.output


def test_fix_refuses_the_same_field_twice(quarantined: tuple[int, int]) -> None:
    result = _run("fix", str(quarantined[1]), "email=a@x.com", "email=b@x.com")

    assert result.exit_code == 2
    assert "email given more than once" in result.output


def test_fix_of_an_unknown_record_is_one_line_and_exit_code_one(ledger: Ledger) -> None:
    result = _run("fix", "999", "email=carla@exemplo.com.br")

    assert result.exit_code == 1
    assert result.output.strip() == "leadflow quarantine: no quarantine record 999"


def test_fix_of_a_replayed_record_is_refused(quarantined: tuple[int, int]) -> None:
    _run("replay", str(quarantined[1]))

    result = _run("fix", str(quarantined[1]), "email=carla@exemplo.com.br")

    assert result.exit_code == 1
    assert "already replayed" in result.output


def test_replay_with_an_unknown_record_moves_no_journey(
    ledger: Ledger, quarantined: tuple[int, int]
) -> None:
    lead_id, record_id = quarantined

    result = _run("replay", str(record_id), "999")

    assert result.exit_code == 1
    assert "999" in result.output
    assert ledger.journey_state(lead_id) == "quarantined"
    assert [r.id for r in ledger.list_quarantine()] == [record_id]


def test_replay_of_a_record_named_twice_gates_it_once(
    ledger: Ledger, quarantined: tuple[int, int]
) -> None:
    lead_id, record_id = quarantined
    _run("fix", str(record_id), "email=carla@exemplo.com.br", "cpf=")

    result = _run("replay", str(record_id), str(record_id))

    assert result.exit_code == 0, result.output
    assert ledger.journey_state(lead_id) == "qualified"
    assert len(ledger.list_quarantine(include_replayed=True)) == 1


LEADFLOW = Path(sys.executable).with_name("leadflow")


def _console(*args: str | bytes, ledger_url: str) -> subprocess.CompletedProcess[bytes]:
    """The real console script, as a person runs it in a terminal."""
    env = {**os.environ, "LEADFLOW_DATABASE_URL": ledger_url}
    return subprocess.run(
        [str(LEADFLOW), "quarantine", *args], capture_output=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ("show", "99999999999999999999"),
        ("fix", "99999999999999999999", "email=ana@exemplo.com.br"),
        ("replay", "1", "99999999999999999999"),
    ],
    ids=["show", "fix", "replay"],
)
def test_an_id_beyond_64_bits_is_one_line_and_exit_code_two(
    ledger: Ledger, ledger_url: str, args: tuple[str, ...]
) -> None:
    result = _console(*args, ledger_url=ledger_url)

    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "99999999999999999999 is not a record id" in lines[0]
    assert "64 bits" in lines[0]


def test_a_fix_with_a_byte_that_is_not_utf8_is_refused_in_one_line_and_stores_nothing(
    ledger: Ledger, ledger_url: str, quarantined: tuple[int, int]
) -> None:
    """Issue 8.1: `fix ID "email=j<0xff>@exemplo.com.br"` used to be stored, then lost the lead."""
    lead_id, record_id = quarantined
    before = ledger.get_quarantine(record_id)

    result = _console("fix", str(record_id), b"email=j\xff@exemplo.com.br", ledger_url=ledger_url)

    assert result.returncode == 2
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1, lines
    assert "email" in lines[0]
    assert "UTF-8" in lines[0]
    assert b"Traceback" not in result.stderr
    assert ledger.get_quarantine(record_id) == before
    replayed = _console("replay", str(record_id), ledger_url=ledger_url)
    assert replayed.returncode == 0, replayed.stderr
    assert ledger.journey_state(lead_id) == "quarantined"  # gated again, still broken
    assert len(ledger.list_quarantine()) == 1


def test_a_fix_with_a_control_character_is_refused(quarantined: tuple[int, int]) -> None:
    result = _run("fix", str(quarantined[1]), "email=carla\x1b@exemplo.com.br")

    assert result.exit_code == 2
    assert "control character" in result.output


def test_show_on_a_narrow_terminal_folds_a_value_instead_of_cutting_it_short(
    quarantined: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadflow.cli.common import console

    monkeypatch.setattr(console, "width", 24)
    result = _run("show", str(quarantined[1]), "--reveal")

    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "carla.dias@" in result.output.replace("│", "").replace(" ", "").replace("\n", "")
