"""The gate on the ledger: journeys move, bad leads are quarantined and can be fixed and
replayed, the same person never gets a second journey, and each run publishes a masked artifact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest

from data_quality.lead import NormalizedLead, PhoneKind
from leadflow.settings import reset_settings_cache
from ledger import LeadHasNoJourney, Ledger, QuarantineClosed
from tasks.quality_gate import ARTIFACT_KEY, gate_leads, replay_quarantined, run_gate

ANA = {"full_name": "ana souza", "email": "Ana@Exemplo.com", "phone_number": "(11) 98765-4321"}


def test_a_clean_lead_is_qualified_with_its_normalised_fields(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    lead_id = record_lead(**ANA, cpf="529.982.247-25")

    outcome = run_gate(ledger, [lead_id])

    assert outcome.qualified == [lead_id]
    assert ledger.journey_state(lead_id) == "qualified"
    assert ledger.get_lead(lead_id).normalized == NormalizedLead(
        source="facebook",
        source_id="fb-1",
        full_name="Ana Souza",
        email="ana@exemplo.com",
        phone="+5511987654321",
        phone_kind=PhoneKind.MOBILE,
        cpf="52998224725",
    )


def test_a_bad_lead_is_quarantined_with_every_rule_it_broke(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    lead_id = record_lead(full_name="Ana", email="ana@", phone_number="(11) 3456-7890")

    outcome = run_gate(ledger, [lead_id])

    record = ledger.get_quarantine(outcome.quarantined[lead_id])
    assert [r["rule"] for r in record.reasons] == [
        "email_valid",
        "contact_present",
        "phone_is_mobile",
    ]
    assert record.values["email"] == "ana@"
    assert ledger.journey_state(lead_id) == "quarantined"


def test_a_fixed_lead_is_replayed_through_the_gate_and_qualified_once(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    lead_id = record_lead(full_name="Ana Souza", email="ana@", phone_number="1234")
    record_id = run_gate(ledger, [lead_id]).quarantined[lead_id]

    ledger.fix_quarantine(record_id, "email", "ana@exemplo.com")
    outcome = replay_quarantined(ledger, [record_id])

    assert outcome.qualified == []  # the phone is still wrong: the fix did not bypass the gate
    second_id = outcome.quarantined[lead_id]
    assert [r["rule"] for r in ledger.get_quarantine(second_id).reasons] == ["phone_valid_br"]

    ledger.fix_quarantine(second_id, "phone_number", "11 98765-4321")
    outcome = replay_quarantined(ledger, [second_id])

    assert outcome.qualified == [lead_id]
    assert [t.to_state for t in ledger.journey_history(lead_id)] == [
        "quarantined",
        "received",
        "quarantined",
        "received",
        "qualified",
    ]
    assert ledger.list_quarantine() == []
    assert len(ledger.list_quarantine(include_replayed=True)) == 2
    assert ledger.find_lead_by_contact("ana@exemplo.com", None, None) == lead_id
    with pytest.raises(QuarantineClosed):
        replay_quarantined(ledger, [second_id])
    assert run_gate(ledger, [lead_id]).skipped == [lead_id]


def test_a_lead_repeating_an_earlier_one_is_attached_to_its_journey(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    first = record_lead(**ANA)
    run_gate(ledger, [first])
    again = record_lead(full_name="ANA SOUZA", email=" ana@EXEMPLO.com ", phone_number=None)

    outcome = run_gate(ledger, [again])

    assert outcome.duplicates == {again: first}
    assert ledger.get_lead(again).duplicate_of == first
    with pytest.raises(LeadHasNoJourney):
        ledger.journey_state(again)
    assert ledger.journey_state(first) == "qualified"


def test_the_same_person_twice_in_one_batch_keeps_one_journey(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    first = record_lead(**ANA)
    second = record_lead(full_name="Ana Souza", email="ana@exemplo.com", phone_number=None)

    outcome = run_gate(ledger, [second, first])

    assert outcome.qualified == [first]
    assert outcome.duplicates == {second: first}
    assert outcome.quarantined == {}


def test_a_duplicate_of_a_quarantined_lead_is_quarantined_too(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    first = record_lead(**ANA, cpf="111.111.111-11")
    second = record_lead(**ANA)

    outcome = run_gate(ledger, [first, second])

    assert set(outcome.quarantined) == {first, second}
    reasons = [r["rule"] for r in ledger.get_quarantine(outcome.quarantined[second]).reasons]
    assert reasons == ["email_unique_in_batch", "phone_unique_in_batch"]


def test_the_gate_writes_data_docs_without_personal_data(
    ledger: Ledger, record_lead: Callable[..., int], tmp_path: Path
) -> None:
    lead_id = record_lead(full_name="Zacarias 7", email="segredo@exemplo.com")

    run_gate(ledger, [lead_id], data_docs_dir=tmp_path / "docs")

    pages = list((tmp_path / "docs").rglob("*.html"))
    validation_pages = [p for p in pages if "validations" in p.parts]
    assert (tmp_path / "docs" / "index.html") in pages
    assert len(validation_pages) == 1
    report = validation_pages[0].read_text(encoding="utf-8")
    assert "full_name_valid: the name has letters" in report
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "segredo" not in text
        assert "Zacarias" not in text


async def test_the_task_publishes_a_masked_table_artifact(
    prefect_server: None,
    ledger_url: str,
    ledger: Ledger,
    record_lead: Callable[..., int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.context import get_run_context

    good = record_lead(**ANA)
    bad = record_lead(
        full_name="Bia 2",
        email="bia.lima@exemplo.com",
        phone_number="(21) 99876-5432",
        cpf="111.444.777-3",
    )

    monkeypatch.setenv("LEADFLOW_DATA_DOCS_DIR", str(tmp_path / "docs"))
    reset_settings_cache()

    @flow
    async def gate_flow() -> UUID:
        await gate_leads(ledger_url, [good, bad])
        return get_run_context().flow_run.id

    flow_run_id = await gate_flow()
    reset_settings_cache()

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    assert len(artifacts) == 1
    assert (tmp_path / "docs" / "index.html").exists()
    table = artifacts[0].data
    rows = json.loads(table) if isinstance(table, str) else table
    leads_by_rule = {row["rule"]: row["leads"] for row in rows}
    assert leads_by_rule["qualified"] == 1
    assert leads_by_rule["quarantined"] == 1
    assert leads_by_rule["full_name_valid"] == 1
    assert leads_by_rule["cpf_valid"] == 1
    assert leads_by_rule["email_valid"] == 0
    text = str(table)
    for personal in ("bia.lima", "99876", "5511987654321", "21998765432", "111.444", "1114447"):
        assert personal not in text
    assert "b***@exemplo.com" in text
    assert ledger.journey_state(good) == "qualified"
    assert ledger.journey_state(bad) == "quarantined"


@pytest.mark.parametrize(
    "again",
    [
        {"full_name": "Ana S.", "email": "outro@exemplo.com", "phone_number": "+55 11 98765 4321"},
        {"full_name": "Ana", "email": "outra@exemplo.com", "cpf": "52998224725"},
        {"full_name": "Ana", "email": " ANA@exemplo.com ", "phone_number": "(21) 99876-5432"},
    ],
    ids=["same phone", "same CPF", "same e-mail"],
)
def test_one_shared_contact_attaches_the_later_lead_and_keeps_its_payload(
    ledger: Ledger, record_lead: Callable[..., int], again: dict[str, str]
) -> None:
    first = record_lead(**ANA, cpf="529.982.247-25")
    run_gate(ledger, [first])
    later = record_lead(**again)

    outcome = run_gate(ledger, [later])

    assert outcome.duplicates == {later: first}
    assert outcome.qualified == []
    stored = ledger.get_lead(later)
    assert stored.duplicate_of == first
    assert {d["name"]: d["values"][0] for d in stored.raw["field_data"]} == again


def test_a_replayed_lead_that_turns_out_to_repeat_a_qualified_one_is_attached(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    first = record_lead(**ANA)
    run_gate(ledger, [first])
    typo = record_lead(full_name="Ana Souza", email="ana@exemplo", phone_number=None)
    record_id = run_gate(ledger, [typo]).quarantined[typo]

    ledger.fix_quarantine(record_id, "email", "ANA@exemplo.com")
    outcome = replay_quarantined(ledger, [record_id])

    assert outcome.duplicates == {typo: first}
    assert ledger.get_lead(typo).duplicate_of == first
    assert ledger.journey_state(first) == "qualified"
    assert ledger.list_quarantine() == []


def test_a_gate_crash_during_replay_leaves_every_record_open_and_replayable(
    ledger: Ledger, record_lead: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8.1: the records close and the journeys move only with the gate's decision."""
    leads = [record_lead(full_name="Ana Souza", email=f"ana{i}@") for i in (1, 2)]
    records = run_gate(ledger, leads).quarantined
    for lead_id, record_id in records.items():
        ledger.fix_quarantine(record_id, "email", f"ana{lead_id}@exemplo.com")
    before = ledger.list_quarantine()

    def gate_crashes(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the gate crashed")

    with monkeypatch.context() as patch:
        patch.setattr("tasks.quality_gate.split_leads", gate_crashes)
        with pytest.raises(RuntimeError, match="the gate crashed"):
            replay_quarantined(ledger)

    assert ledger.list_quarantine() == before
    assert [ledger.journey_state(i) for i in leads] == ["quarantined", "quarantined"]
    outcome = replay_quarantined(ledger)
    assert outcome.qualified == leads
    assert ledger.list_quarantine() == []
    assert [t.to_state for t in ledger.journey_history(leads[0])] == [
        "quarantined",
        "received",
        "qualified",
    ]


def test_a_value_that_is_not_text_quarantines_its_lead_and_names_the_field(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    odd = record_lead(full_name="Ana Souza", email={"v": 1}, phone_number="(11) 98765-4321")
    good = record_lead(full_name="Bia Lima", email="bia@exemplo.com.br")

    outcome = run_gate(ledger, [odd, good])

    assert outcome.qualified == [good]
    record = ledger.get_quarantine(outcome.quarantined[odd])
    assert [r["rule"] for r in record.reasons] == ["value_not_text"]
    assert "email: an object, not text" in record.reasons[0]["description"]
    assert record.values["email"] == "[not text: an object, not text]"


def test_a_replay_that_is_refused_moves_nothing(
    ledger: Ledger, record_lead: Callable[..., int]
) -> None:
    """A closed record among those named stops the replay before any lead is gated."""
    first = record_lead(full_name="Ana Souza", email="ana@")
    second = record_lead(full_name="Bia Lima", email="bia@")
    records = run_gate(ledger, [first, second]).quarantined
    ledger.fix_quarantine(records[first], "email", "ana@exemplo.com")
    replay_quarantined(ledger, [records[first]])

    with pytest.raises(QuarantineClosed):
        replay_quarantined(ledger, [records[second], records[first]])

    assert ledger.journey_state(second) == "quarantined"
    assert [r.id for r in ledger.list_quarantine()] == [records[second]]
