"""`register_all` against the real sandbox over loopback, run twice as an operator would.

Each vendor ends with exactly one subscription pointing at the service, read back from the
sandbox's admin state (not from what registration reports); the second run finds them all; what
only a person can do is still printed; and a registered Asaas webhook then delivers the payment
events to the registered URL with its token, without any admin-set target.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from benchmarks.bench_sandbox import _cpf
from blocks import DocuSignCredentials
from blocks.docusign import forget_access_tokens
from leadflow.sandbox_blocks import sandbox_credentials
from sandbox.server import RunningSandbox, running_sandbox
from tests.blocks.conftest import new_signing_key
from tests.sandbox.conftest import WebhookReceiver, receiving_webhooks
from tests.webhooks.conftest import (
    ASAAS_TOKEN,
    create_pix_payment,
    sandbox_asaas,
    webhook_settings,
)
from webhooks.registration import (
    Outcome,
    Registration,
    endpoint,
    register_all,
    register_docusign,
)

pytestmark = pytest.mark.integration


@dataclass
class Registered:
    """A sandbox where `register_all` ran twice for a service listening at `public_url`."""

    sandbox: RunningSandbox
    receiver: WebhookReceiver
    first: dict[str, Registration]
    second: dict[str, Registration]

    @property
    def public_url(self) -> str:
        return self.receiver.url

    def state(self, vendor: str) -> dict[str, Any]:
        """The vendor's objects as the sandbox's admin API shows them."""
        state = httpx.get(f"{self.sandbox.admin_url}/state", timeout=10).raise_for_status()
        return state.json()[vendor]


@pytest.fixture(scope="module")
def service() -> Iterator[WebhookReceiver]:
    """Where the service would listen: a loopback server recording what vendors post."""
    with receiving_webhooks() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def registered(service: WebhookReceiver) -> Iterator[Registered]:
    """Registered twice, once for the whole module: the runs are what every test reads."""
    settings = webhook_settings()
    with running_sandbox(seed=17) as sandbox:
        blocks = sandbox_credentials(sandbox.url)
        runs = [
            {r.vendor: r for r in asyncio.run(register_all(service.url, blocks, settings))}
            for _ in range(2)
        ]
        yield Registered(sandbox, service, runs[0], runs[1])


def _subscriptions(registered: Registered, vendor: str) -> list[Any]:
    """What the vendor holds that points at the service's URL for it."""
    url = endpoint(registered.public_url, vendor)
    state = registered.state(vendor)
    if vendor == "pipedrive":
        return [h for h in state["webhooks"].values() if h["subscription_url"] == url]
    if vendor == "asaas":
        return [h for h in state["webhooks"].values() if h["url"] == url]
    if vendor == "docusign":
        configurations = state["connect_configurations"].values()
        return [c for c in configurations if c["urlToPublishTo"] == url]
    return [field for page in state["pages"].values() for field in page["subscribed"]]


@pytest.mark.parametrize("vendor", ["pipedrive", "asaas", "docusign", "facebook"])
def test_two_runs_leave_exactly_one_subscription_at_each_vendor(
    registered: Registered, vendor: str
) -> None:
    assert registered.first[vendor].outcome is Outcome.SUBSCRIBED, registered.first[vendor]
    found = _subscriptions(registered, vendor)
    if vendor == "facebook":  # the page's subscribed fields
        assert found == ["leadgen"]
    else:
        assert len(found) == 1, found


def test_the_second_run_finds_the_subscriptions_already_made(registered: Registered) -> None:
    outcomes = {vendor: r.outcome for vendor, r in registered.second.items()}
    assert outcomes == {
        "facebook": Outcome.SUBSCRIBED,  # Meta keeps one subscription per app and page
        "pipedrive": Outcome.ALREADY,
        "docusign": Outcome.ALREADY,
        "asaas": Outcome.ALREADY,
        "whatsapp": Outcome.MANUAL,
    }


def test_the_docusign_hmac_key_is_left_to_a_person(registered: Registered) -> None:
    [step] = registered.first["docusign"].manual_steps
    assert "LEADFLOW_WEBHOOK_DOCUSIGN_HMAC_KEYS" in step
    assert "Connect Keys" in step


def test_the_meta_dashboard_steps_are_still_printed(registered: Registered) -> None:
    steps = " ".join(registered.first["facebook"].manual_steps)
    assert endpoint(registered.public_url, "facebook") in steps
    assert "LEADFLOW_WEBHOOK_FACEBOOK_VERIFY_TOKEN" in steps


def test_a_registered_asaas_webhook_delivers_the_payment_with_its_token(
    registered: Registered,
) -> None:
    sandbox, receiver = registered.sandbox, registered.receiver
    assert not sandbox.sandbox.webhook_targets  # no admin-set target: only the registration
    with sandbox_asaas(sandbox) as asaas:
        payment = create_pix_payment(asaas, _cpf(7))
    [delivery] = receiver.wait_for(1)
    assert delivery.path == "/hook/webhooks/asaas"
    assert delivery.headers["asaas-access-token"] == ASAAS_TOKEN
    event = json.loads(delivery.body)
    assert (event["event"], event["payment"]["id"]) == ("PAYMENT_CREATED", payment["id"])


def test_a_docusign_user_who_may_not_manage_connect_gets_the_console_steps() -> None:
    """DocuSign lets only an account admin touch Connect: a refusal becomes steps for a person."""
    block = DocuSignCredentials(
        base_url="https://demo.docusign.net",
        auth_server="https://account-d.docusign.com",
        integration_key="ik",
        user_id="uid",
        account_id="acc",
        private_key=SecretStr(new_signing_key()[0]),
    )
    forget_access_tokens()
    with respx.mock(using="keepalive", assert_all_called=True) as vendor:
        vendor.post("https://account-d.docusign.com/oauth/token").respond(
            200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
        )
        vendor.get("https://demo.docusign.net/restapi/v2.1/accounts/acc/connect").respond(
            400,
            json={"errorCode": "USER_LACKS_PERMISSIONS", "message": "This user lacks permission."},
        )
        result = asyncio.run(register_docusign(block, "https://hooks.example", webhook_settings()))
    forget_access_tokens()
    assert result.outcome is Outcome.MANUAL
    console, keys = result.manual_steps
    assert "https://hooks.example/webhooks/docusign" in console
    assert "LEADFLOW_WEBHOOK_DOCUSIGN_HMAC_KEYS" in keys
