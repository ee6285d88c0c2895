"""Simulated people act on what waits for them, with seeded probabilities and delays.

The engine is exercised on a small in-test role (a ledger of invoices a person pays or refuses)
so its rules are visible, and end to end on Pipedrive's salesperson, whose win fires the real
deal webhook.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import ValidationError

from sandbox.core import PersonRole, Sandbox
from sandbox.people import PersonBehaviour
from sandbox.server import RunningSandbox
from tests.sandbox.conftest import WebhookReceiver


@dataclass
class Invoices:
    """What a payer role acts on: open invoices that become paid or refused."""

    status: dict[str, str] = field(default_factory=dict)

    def pending(self) -> list[str]:
        return sorted(i for i, s in self.status.items() if s == "open")

    def pay(self, invoice: str) -> dict[str, str]:
        if self.status.get(invoice) != "open":
            raise LookupError(f"{invoice} is not open")
        self.status[invoice] = "paid"
        return {"id": invoice, "status": "paid"}

    def refuse(self, invoice: str) -> dict[str, str]:
        self.status[invoice] = "refused"
        return {"id": invoice, "status": "refused"}


def with_invoices(seed: int, count: int) -> tuple[Sandbox, Invoices]:
    sandbox = Sandbox(seed=seed)
    invoices = Invoices({f"inv{i:04d}": "open" for i in range(count)})
    sandbox.register_role(
        PersonRole("payer", "asaas", invoices.pending, invoices.pay, invoices.refuse)
    )
    return sandbox, invoices


def test_a_person_accepts_and_refuses_at_the_configured_rates() -> None:
    sandbox, invoices = with_invoices(seed=2, count=2000)
    sandbox.people.configure(
        "payer", PersonBehaviour(accept_probability=0.6, refuse_probability=0.3, delay_seconds=0)
    )
    sandbox.people.tick()
    outcomes = Counter(invoices.status.values())
    assert outcomes["paid"] / 2000 == pytest.approx(0.6, abs=0.04)
    assert outcomes["refused"] / 2000 == pytest.approx(0.3, abs=0.04)
    assert outcomes["open"] / 2000 == pytest.approx(0.1, abs=0.04)  # never acts


def test_the_same_seed_makes_the_same_people_decisions() -> None:
    results = []
    for _ in range(2):
        sandbox, invoices = with_invoices(seed=7, count=50)
        sandbox.people.configure("payer", PersonBehaviour(delay_seconds=0))
        sandbox.people.tick()
        results.append(dict(invoices.status))
    assert results[0] == results[1]


def test_a_person_waits_for_the_delay_before_acting() -> None:
    sandbox, invoices = with_invoices(seed=1, count=1)
    sandbox.people.configure(
        "payer", PersonBehaviour(accept_probability=1, refuse_probability=0, delay_seconds=30)
    )
    now = time.monotonic()
    assert sandbox.people.tick(now) == 0
    assert sandbox.people.tick(now + 29) == 0
    assert sandbox.people.tick(now + 31) == 1
    assert invoices.status == {"inv0000": "paid"}


def test_a_disabled_person_does_nothing() -> None:
    sandbox, invoices = with_invoices(seed=1, count=5)
    sandbox.people.configure("payer", PersonBehaviour(enabled=False, delay_seconds=0))
    assert sandbox.people.tick() == 0
    assert invoices.pending() == sorted(invoices.status)


def test_an_on_demand_action_is_logged_and_not_repeated_by_the_engine() -> None:
    sandbox, _ = with_invoices(seed=1, count=1)
    sandbox.people.configure(
        "payer", PersonBehaviour(accept_probability=0, refuse_probability=1, delay_seconds=0)
    )
    assert sandbox.people.act("payer", "inv0000", "accept") == {"id": "inv0000", "status": "paid"}
    assert sandbox.people.tick() == 0
    (action,) = sandbox.people.actions()
    assert (action["outcome"], action["on_demand"], action["ok"]) == ("accept", True, True)


def test_a_failed_action_is_logged_with_its_error() -> None:
    sandbox, invoices = with_invoices(seed=1, count=1)
    invoices.status["inv0000"] = "paid"
    with pytest.raises(LookupError):
        sandbox.people.act("payer", "inv0000", "accept")
    (action,) = sandbox.people.actions()
    assert action["ok"] is False
    assert "not open" in action["error"]


def test_a_role_without_refusal_cannot_be_asked_to_refuse() -> None:
    sandbox = Sandbox()
    invoices = Invoices({"a": "open"})
    sandbox.register_role(PersonRole("payer", "asaas", invoices.pending, invoices.pay))
    with pytest.raises(ValueError, match="cannot refuse"):
        sandbox.people.act("payer", "a", "refuse")
    assert sandbox.people.behaviour("payer").refuse_probability == 0


def test_probabilities_above_one_are_refused() -> None:
    with pytest.raises(ValidationError):
        PersonBehaviour(accept_probability=0.8, refuse_probability=0.3)


def test_the_background_thread_acts_without_being_asked() -> None:
    sandbox, invoices = with_invoices(seed=1, count=3)
    sandbox.people.configure(
        "payer", PersonBehaviour(accept_probability=1, refuse_probability=0, delay_seconds=0)
    )
    sandbox.people.start()
    try:
        deadline = time.monotonic() + 5
        while invoices.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sandbox.people.stop()
    assert set(invoices.status.values()) == {"paid"}
    assert not sandbox.people.running


def test_the_salesperson_wins_a_pipedrive_deal_and_the_webhook_fires(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    pipedrive = served.base_urls["pipedrive"]
    token = {"x-api-token": served.credentials["pipedrive"]["api_token"]}
    with httpx.Client(timeout=10, headers=token) as client:
        client.post(
            pipedrive + "/api/v1/webhooks",
            json={
                "subscription_url": receiver.url,
                "event_action": "change",
                "event_object": "deal",
                "version": "2.0",
                "name": "leadflow deals",
            },
        ).raise_for_status()
        deal = client.post(pipedrive + "/api/v2/deals", json={"title": "Site"}).json()["data"]
        response = client.post(
            served.admin_url + f"/people/salesperson/accept/{deal['id']}", headers={}
        )
        assert response.status_code == 200
        won = client.get(pipedrive + f"/api/v2/deals/{deal['id']}").json()["data"]
    assert won["status"] == "won"
    (delivery,) = receiver.wait_for(1)
    assert b'"won"' in delivery.body
