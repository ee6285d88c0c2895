"""Every place that prints a lead shows its personal data masked (LGPD; DESIGN.md, principle
9; issue 9.3): one known person is fed through each "printer" and none of her CPF, e-mail,
phone or name may appear in clear in what it prints.

To cover a new place that prints a lead (a journey artifact, a flow's log line), add a
function to PRINTERS: it receives the world below (a ledger holding the person, gated and
quarantined) and returns all the text that place printed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow import privacy
from leadflow.cli import app as leadflow_app
from leadflow.settings import reset_settings_cache
from ledger import Ledger
from tasks.quality_gate import GateOutcome, artifact_table, run_gate

NAME = "Carla Dias Nogueira"
EMAIL = "carla.dias@exemplo.com.br"
PHONE = "(21) 99876-5432"
CPF = "529.982.247-25"

IN_CLEAR = [
    NAME,
    "Carla",
    "Nogueira",
    EMAIL,
    "carla.dias",
    PHONE,
    "99876-5432",
    "998765432",
    "+5521998765432",
    CPF,
    "52998224725",
    "982.247",
]
"""Every form in which the person's data would be readable, as typed and as normalised."""


@dataclass
class World:
    """A ledger holding the person: quarantined once (a broken CNPJ beside her valid CPF,
    e-mail, phone and name), with the gate run's outcome and its log."""

    ledger: Ledger
    lead_id: int
    record_id: int
    outcome: GateOutcome
    gate_log: str


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    reset_settings_cache()
    ledger = Ledger(url)
    ledger.upgrade()
    answers = {"full_name": NAME, "email": EMAIL, "phone_number": PHONE, "cpf": CPF, "cnpj": "1"}
    raw = {"id": "fb-1", "field_data": [{"name": k, "values": [v]} for k, v in answers.items()]}
    lead_id = ledger.record_lead("facebook", "fb-1", raw).lead_id
    with caplog.at_level(logging.INFO, logger="tasks.quality_gate"):
        outcome = run_gate(ledger, [lead_id])
    gate_log = "\n".join(record.getMessage() for record in caplog.records)
    yield World(ledger, lead_id, outcome.quarantined[lead_id], outcome, gate_log)
    ledger.dispose()
    reset_settings_cache()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(leadflow_app, ["quarantine", *args])
    return result.output


def gate_artifact(world: World) -> str:
    return json.dumps(artifact_table(world.outcome), ensure_ascii=False)


def gate_log_lines(world: World) -> str:
    assert "quarantined" in world.gate_log  # the gate did log the lead
    return world.gate_log


def quarantine_list(world: World) -> str:
    return _cli("list") + _cli("list", "--all")


def quarantine_show(world: World) -> str:
    _cli("fix", str(world.record_id), f"email={EMAIL}")  # a fix is shown too
    return _cli("show", str(world.record_id))


def quarantine_cli_errors(world: World) -> str:
    """Each way a person can mistype a command while pasting the lead's data."""
    record = str(world.record_id)
    return "\n".join(
        [
            _cli("fix", record, EMAIL),  # no '='
            _cli("fix", record, f"{EMAIL}={CPF}"),  # data as the field name
            _cli("fix", record, f"={EMAIL}"),
            _cli("fix", record, f"email={EMAIL}\x1b"),  # a control character
            _cli("fix", record, f"cpf={CPF}", f"cpf={CPF}"),
            _cli("show", CPF),  # the CPF where the record id goes
            _cli("show", "52998224725"),
            _cli("replay", record, PHONE),
            _cli("fix", "99999999999999999999", f"email={EMAIL}"),
            _cli("fix", "424242", f"email={EMAIL}"),  # unknown record
        ]
    )


def quarantine_fix_and_replay(world: World) -> str:
    fixed = _cli("fix", str(world.record_id), "cnpj=", f"full_name={NAME}")
    return fixed + _cli("replay", str(world.record_id))


def journeys_show_and_list(world: World) -> str:
    """The journey CLI, once the person passed the gate: contact data, history, vendor ids."""
    quarantine_fix_and_replay(world)
    shown = CliRunner().invoke(leadflow_app, ["journeys", "show", str(world.lead_id)])
    listed = CliRunner().invoke(leadflow_app, ["journeys", "list"])
    assert "qualified" in shown.output  # the lead passed: its contact data is there to mask
    return shown.output + listed.output


def stage_report(world: World) -> str:
    """A stage run's markdown artifact, where a vendor's message echoes what it was sent."""
    from blocks import PermanentError
    from tasks.effects import vendor_message
    from tasks.journey import Move
    from tasks.report import StageReport

    said = f"cliente {NAME} ({EMAIL}, {PHONE}) com CPF {CPF} já existe"
    echoed = vendor_message(PermanentError("asaas", 400, "invalid", said), (NAME,))
    report = StageReport(
        "billing",
        [
            Move.dead_letter(world.lead_id, echoed),
            Move.retry(world.lead_id, echoed, 30),
            Move.wait(world.lead_id, echoed, 60),
        ],
    )
    assert "já existe" in report.markdown()  # the vendor's words are there, the person's not
    return report.markdown() + report.summary()


PRINTERS: list[Callable[[World], str]] = [
    gate_artifact,
    gate_log_lines,
    quarantine_list,
    quarantine_show,
    quarantine_cli_errors,
    quarantine_fix_and_replay,
    journeys_show_and_list,
    stage_report,
]


@pytest.mark.parametrize("printer", PRINTERS, ids=lambda printer: printer.__name__)
def test_no_printer_shows_the_persons_data_in_clear(
    world: World, printer: Callable[[World], str]
) -> None:
    printed = printer(world)

    assert printed.strip(), "the printer printed nothing: the test would prove nothing"
    flat = re.sub(r"\s+", " ", printed)
    for clear in IN_CLEAR:
        assert clear not in printed, f"{printer.__name__} printed {clear!r}"
        assert clear not in flat, f"{printer.__name__} printed {clear!r} across lines"


def test_the_revealed_show_is_the_one_place_in_clear(world: World) -> None:
    """The walk above could pass because nothing was printed at all: the one printer meant to
    show the data (show --reveal) does show it."""
    revealed = _cli("show", str(world.record_id), "--reveal")

    assert EMAIL in revealed
    assert CPF in revealed


@pytest.mark.parametrize(
    ("field", "value", "masked"),
    [
        ("email", EMAIL, "c***@exemplo.com.br"),
        ("phone_number", PHONE, "***32"),
        ("phone", "+5521998765432", "***32"),
        ("cpf", CPF, "***cpf***"),
        ("cnpj", "11.222.333/0001-81", "***cnpj***"),
        ("full_name", NAME, "C. D. N."),
        ("nickname", "Cacá", "C…(4)"),
        ("email", None, ""),
        ("phone_kind", "mobile", "mobile"),
    ],
)
def test_one_rule_per_datum(field: str, value: str | None, masked: str) -> None:
    assert privacy.mask_field(field, value) == masked


def test_free_text_masks_every_datum_inside_it() -> None:
    text = f"lead {NAME} <{EMAIL}> tel {PHONE} cpf {CPF} token=abc123secret"

    masked = privacy.mask_text(text)

    for clear in (EMAIL, PHONE, CPF, "abc123secret", "99876"):
        assert clear not in masked
