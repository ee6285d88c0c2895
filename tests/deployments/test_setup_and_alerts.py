"""`setup_prefect` is idempotent, and each alert arrives once at a local receiver, naming the
journey or the run and no person."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deployments.limits import VENDOR_LIMITS
from deployments.setup import setup_prefect
from leadflow.settings import Settings

pytestmark = pytest.mark.usefixtures("prefect_server")

#: what the test put in: a name, an e-mail local part, a phone, a CPF (the masked e-mail keeps its
#: domain by leadflow.privacy's rule)
PERSONAL = re.compile(r"maria|98765|4321|123\.?456\.?789|789-09", re.IGNORECASE)


@pytest.fixture(scope="module")
async def configured(alert_receiver: Any) -> list[str]:
    settings = Settings(alert_webhook_url=alert_receiver.url)
    return await setup_prefect(settings)


async def test_setup_creates_limits_block_automations_then_changes_nothing(
    configured: list[str], alert_receiver: Any
) -> None:
    from prefect import get_client
    from prefect.automations import Automation

    assert any("automation 'leadflow: journey dead-lettered'" in line for line in configured)
    async with get_client() as client:
        for vendor, limit in VENDOR_LIMITS.items():
            saved = await client.read_global_concurrency_limit_by_name(vendor)
            assert saved.limit == limit.slots
    assert (await Automation.aread(name="leadflow: flow run failed or crashed")).enabled

    assert await setup_prefect(Settings(alert_webhook_url=alert_receiver.url)) == []

    changed = await setup_prefect(
        Settings(alert_webhook_url=alert_receiver.url), vendor_slots={"pipedrive": 40}
    )
    assert changed == ["concurrency limit pipedrive = 40 slots (changed from 20)"]
    assert await setup_prefect(Settings(alert_webhook_url=alert_receiver.url)) != []


def _count(receiver: Any, needle: str) -> int:
    texts = [alert.get("text", "") + alert.get("subject", "") for alert in receiver.alerts]
    return sum(needle in text for text in texts)


async def test_each_alert_arrives_once_naming_journey_or_run_not_person(
    configured: list[str], alert_receiver: Any
) -> None:
    from prefect import flow, get_client
    from prefect.states import Crashed

    from deployments.alerts import alert_dead_lettered, alert_quarantine_past_threshold

    await alert_dead_lettered(
        4242, "billing", "Asaas 400: cpfCnpj 123.456.789-09 of maria@exemplo.com.br invalid"
    )
    await alert_quarantine_past_threshold(7, 5, {"email_valid": 4, "phone_e164": 3})

    @flow(name="alert-test-fails")
    async def fails() -> None:
        raise ValueError("lead maria@exemplo.com.br, phone +5511987654321")

    failed = await fails(return_state=True)
    assert failed.is_failed()

    @flow(name="alert-test-crashes")
    async def crashes() -> None:
        return None

    crashed = await crashes(return_state=True)
    crashed_id = crashed.state_details.flow_run_id
    assert crashed_id is not None
    async with get_client() as client:
        await client.set_flow_run_state(crashed_id, Crashed(), force=True)
    crashed_run = str(crashed_id)
    failed_run = str(failed.state_details.flow_run_id)

    alert_receiver.wait_for(lambda a: "journey 4242 dead-lettered" in a.get("subject", ""))
    alert_receiver.wait_for(lambda a: "7 leads in quarantine" in a.get("subject", ""))
    alert_receiver.wait_for(lambda a: failed_run in a.get("text", ""))
    alert_receiver.wait_for(lambda a: crashed_run in a.get("text", ""))
    # a last alert after the others: once it is in, any duplicate of the earlier ones would be
    await alert_dead_lettered(9999, "welcome", "sentinel")
    alert_receiver.wait_for(lambda a: "journey 9999" in a.get("subject", ""))

    assert _count(alert_receiver, "Journey 4242 dead-lettered at step billing") == 1
    assert _count(alert_receiver, "7 open quarantine records") == 1
    assert _count(alert_receiver, failed_run) == 1
    assert _count(alert_receiver, crashed_run) == 1
    crashed_alert = next(a for a in alert_receiver.alerts if crashed_run in a["text"])
    assert "Crashed" in crashed_alert["subject"]
    assert "alert-test-crashes" in crashed_alert["text"]
    for alert in alert_receiver.alerts:
        assert not PERSONAL.search(str(alert)), alert


async def test_nightly_report_counts_by_rule_and_alerts_once_past_threshold(
    configured: list[str], alert_receiver: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.quarantine_report import quarantine_report
    from leadflow.settings import reset_settings_cache
    from ledger import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.upgrade()
    email = {"rule": "email_valid", "description": "a valid e-mail"}
    phone = {"rule": "phone_e164", "description": "a Brazilian phone"}
    broken = [[email], [email, phone], [phone]]
    for number, reasons in enumerate(broken):
        lead = ledger.record_lead("facebook", f"q{number}", {"email": "maria@exemplo.com.br"})
        ledger.quarantine_at_gate(lead.lead_id, reasons, {"email": "maria@exemplo.com.br"})
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    reset_settings_cache()
    try:
        below = await quarantine_report(threshold=3)
        past = await quarantine_report(threshold=2)
    finally:
        monkeypatch.delenv("LEADFLOW_DATABASE_URL")
        reset_settings_cache()

    assert below == {"open": 3, "threshold": 3, "email_valid": 2, "phone_e164": 2}
    assert past["threshold"] == 2
    alert_receiver.wait_for(lambda a: "3 leads in quarantine" in a.get("subject", ""))
    await alert_dead_lettered_sentinel(alert_receiver, 9998)
    alerts = [a for a in alert_receiver.alerts if "3 open quarantine records" in a["text"]]
    assert len(alerts) == 1
    assert "threshold 2" in alerts[0]["text"]
    assert "email_valid" in alerts[0]["text"]
    assert not PERSONAL.search(str(alerts[0]))


async def alert_dead_lettered_sentinel(receiver: Any, lead_id: int) -> None:
    """An alert sent last: once it arrived, a duplicate of an earlier one would have too."""
    from deployments.alerts import alert_dead_lettered

    await alert_dead_lettered(lead_id, "welcome", "sentinel")
    receiver.wait_for(lambda a: f"journey {lead_id} " in a.get("subject", ""))


async def test_vendor_slot_holds_slots_across_processes_and_frees_them(
    configured: list[str],
) -> None:
    from prefect import get_client

    from deployments.limits import vendor_slot

    async def active(vendor: str) -> int:
        async with get_client() as client:
            return (await client.read_global_concurrency_limit_by_name(vendor)).active_slots

    assert await active("asaas") == 0
    async with vendor_slot("asaas", occupy=10):
        assert await active("asaas") == 10
        async with vendor_slot("asaas", occupy=15):
            assert await active("asaas") == 25
    assert await active("asaas") == 0
    async with vendor_slot("hostinger", occupy=500):  # never more than the whole limit
        assert await active("hostinger") == 10
    assert await active("hostinger") == 0
    with pytest.raises(KeyError, match="known"):
        async with vendor_slot("mercadopago"):
            pass
