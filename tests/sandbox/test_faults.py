"""Fault injection hits its configured rates, is reproducible from a seed, and fails like a network.

Rates are checked over seeded runs of several thousand draws with a stated tolerance (±0.02
absolute, over four standard deviations for these sample sizes). "The answer was lost" is
proven end to end: the object exists at the vendor while the client saw a dropped connection.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from sandbox.core import Sandbox
from sandbox.faults import ConnectionDropped, FaultInjector, RouteFaults, WebhookFaults
from sandbox.server import RunningSandbox
from sandbox.vendors import whatsapp

ROUTE = "POST /{version}/{phone_number_id}/messages"
TOLERANCE = 0.02
DRAWS = 5000


def _share(decisions: list[str | None], kind: str) -> float:
    return decisions.count(kind) / len(decisions)


def test_each_fault_kind_hits_its_configured_rate_over_a_seeded_run() -> None:
    faults = FaultInjector(seed=42)
    faults.configure(
        "asaas",
        RouteFaults(
            error_rate=0.10,
            throttle_rate=0.05,
            gateway_timeout_rate=0.04,
            hang_rate=0.03,
            drop_rate=0.06,
            lost_answer_rate=0.07,
        ),
    )
    kinds = [faults.decide("asaas", "POST /v3/payments").kind for _ in range(DRAWS)]
    assert _share(kinds, "error") == pytest.approx(0.10, abs=TOLERANCE)
    assert _share(kinds, "throttle") == pytest.approx(0.05, abs=TOLERANCE)
    assert _share(kinds, "gateway_timeout") == pytest.approx(0.04, abs=TOLERANCE)
    assert _share(kinds, "hang") == pytest.approx(0.03, abs=TOLERANCE)
    assert _share(kinds, "drop") == pytest.approx(0.06, abs=TOLERANCE)
    assert _share(kinds, "lost_answer") == pytest.approx(0.07, abs=TOLERANCE)


def test_the_old_timeout_names_still_configure_a_hang() -> None:
    rule = RouteFaults.model_validate({"timeout_rate": 0.5, "timeout_seconds": 2})
    assert (rule.hang_rate, rule.hang_seconds) == (0.5, 2.0)


def test_error_statuses_are_drawn_from_the_configured_list() -> None:
    faults = FaultInjector(seed=1)
    faults.configure("asaas", RouteFaults(error_rate=1.0, error_statuses=[502, 503]))
    statuses = {faults.decide("asaas", "GET /v3/payments").status for _ in range(200)}
    assert statuses == {502, 503}


def test_the_same_seed_replays_the_same_faults() -> None:
    def run(seed: int) -> list[str | None]:
        faults = FaultInjector(seed=seed)
        faults.configure("asaas", RouteFaults(error_rate=0.3, lost_answer_rate=0.2))
        return [faults.decide("asaas", "POST /v3/payments").kind for _ in range(300)]

    assert run(9) == run(9)
    assert run(9) != run(10)


def test_traffic_on_another_route_does_not_change_a_routes_fault_sequence() -> None:
    quiet, busy = FaultInjector(seed=3), FaultInjector(seed=3)
    for faults in (quiet, busy):
        faults.configure("asaas", RouteFaults(error_rate=0.5))
    sequence_quiet = [quiet.decide("asaas", "POST /v3/payments").kind for _ in range(100)]
    sequence_busy = []
    for _ in range(100):
        busy.decide("asaas", "GET /v3/customers")
        sequence_busy.append(busy.decide("asaas", "POST /v3/payments").kind)
    assert sequence_quiet == sequence_busy


def test_a_route_rule_overrides_the_vendor_rule() -> None:
    faults = FaultInjector(seed=0)
    faults.configure("asaas", RouteFaults(error_rate=1.0))
    faults.configure("asaas", RouteFaults(), route="get /v3/customers")
    assert faults.decide("asaas", "GET /v3/customers").kind is None
    assert faults.decide("asaas", "POST /v3/payments").kind == "error"


def test_rates_adding_up_to_more_than_one_are_refused() -> None:
    with pytest.raises(ValidationError, match="more than 1"):
        RouteFaults(error_rate=0.6, lost_answer_rate=0.5)


def test_only_server_error_statuses_can_be_injected() -> None:
    with pytest.raises(ValidationError, match="error_statuses"):
        RouteFaults(error_rate=0.1, error_statuses=[404])


def test_webhook_faults_hit_their_rates_over_a_seeded_run() -> None:
    faults = FaultInjector(seed=8)
    faults.configure_webhooks(
        "asaas", WebhookFaults(drop_rate=0.1, duplicate_rate=0.2, delay_rate=0.3)
    )
    decisions = [faults.decide_webhook("asaas") for _ in range(DRAWS)]
    dropped = sum(d.drop for d in decisions) / DRAWS
    duplicated = sum(d.copies == 2 for d in decisions) / DRAWS
    delayed = sum(d.delay_seconds > 0 for d in decisions) / DRAWS
    assert dropped == pytest.approx(0.1, abs=TOLERANCE)
    assert duplicated == pytest.approx(0.2, abs=TOLERANCE)
    assert delayed == pytest.approx(0.3, abs=TOLERANCE)


def _whatsapp_template(to: str = "5511987654321") -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": "hello_world",
            "language": {"policy": "deterministic", "code": "en_US"},
        },
    }


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {whatsapp.DEFAULT_CREDENTIALS['access_token']}"}


def _messages_path() -> str:
    return f"/whatsapp/v23.0/{whatsapp.DEFAULT_CREDENTIALS['phone_number_id']}/messages"


async def test_an_injected_error_answers_before_the_handler_and_writes_nothing(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure("whatsapp", RouteFaults(error_rate=1.0, error_statuses=[503]))
    response = await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
    assert response.status_code == 503
    assert response.headers["X-Sandbox-Fault"] == "error"
    assert response.json()["error"]["is_transient"] is True
    assert sandbox.state.counters().get("whatsapp", {}).get("message", 0) == 0


async def test_an_injected_throttle_is_a_429_with_retry_after(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure(
        "whatsapp", RouteFaults(throttle_rate=1.0, retry_after_seconds=7), route=ROUTE
    )
    response = await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


async def test_a_lost_answer_in_process_raises_the_same_error_type_as_over_a_socket(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure("whatsapp", RouteFaults(lost_answer_rate=1.0), route=ROUTE)
    with pytest.raises(httpx.RemoteProtocolError) as raised:
        await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
    assert isinstance(raised.value, ConnectionDropped)
    assert sandbox.state.counters()["whatsapp"]["message"] == 1


def _faulty_messages_url(served: RunningSandbox, faults: RouteFaults) -> str:
    """The served WhatsApp send URL, after giving its route `faults`."""
    served.sandbox.faults.configure("whatsapp", faults, route=ROUTE)
    return served.base_urls["whatsapp"] + _messages_path().removeprefix("/whatsapp")


def test_a_lost_answer_commits_the_write_then_drops_the_connection(served: RunningSandbox) -> None:
    url = _faulty_messages_url(served, RouteFaults(lost_answer_rate=1.0))
    with httpx.Client(timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(url, json=_whatsapp_template(), headers=_auth())
        served.sandbox.faults.clear()
        state = client.get(served.admin_url + "/state").json()
    messages = state["whatsapp"]["messages"]
    assert len(messages) == 1
    assert next(iter(messages.values()))["wa_id"] == "5511987654321"


def test_a_hang_holds_the_request_past_the_clients_read_timeout_without_writing(
    served: RunningSandbox,
) -> None:
    url = _faulty_messages_url(served, RouteFaults(hang_rate=1.0, hang_seconds=30))
    with httpx.Client() as client, pytest.raises(httpx.ReadTimeout):
        client.post(url, json=_whatsapp_template(), headers=_auth(), timeout=0.2)
    assert served.sandbox.state.counters().get("whatsapp", {}).get("message", 0) == 0


def test_a_hang_ends_in_a_closed_connection_with_no_answer_once_its_bound_passes(
    served: RunningSandbox,
) -> None:
    url = _faulty_messages_url(served, RouteFaults(hang_rate=1.0, hang_seconds=0.2))
    with (
        httpx.Client(timeout=10) as client,
        pytest.raises(httpx.RemoteProtocolError, match="without sending a response"),
    ):
        client.post(url, json=_whatsapp_template(), headers=_auth())
    assert served.sandbox.state.counters().get("whatsapp", {}).get("message", 0) == 0


def test_a_drop_closes_the_connection_before_the_handler_runs(served: RunningSandbox) -> None:
    url = _faulty_messages_url(served, RouteFaults(drop_rate=1.0))
    with httpx.Client(timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            client.post(url, json=_whatsapp_template(), headers=_auth())
        served.sandbox.faults.clear()
        assert client.post(url, json=_whatsapp_template(), headers=_auth()).status_code == 200
    assert served.sandbox.state.counters()["whatsapp"]["message"] == 1


async def test_a_drop_in_process_raises_the_same_error_type_and_writes_nothing(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure("whatsapp", RouteFaults(drop_rate=1.0), route=ROUTE)
    with pytest.raises(ConnectionDropped):
        await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
    assert sandbox.state.counters().get("whatsapp", {}).get("message", 0) == 0


async def test_a_gateway_timeout_is_a_complete_504_and_writes_nothing(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure("whatsapp", RouteFaults(gateway_timeout_rate=1.0), route=ROUTE)
    response = await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
    assert response.status_code == 504
    assert response.headers["X-Sandbox-Fault"] == "gateway_timeout"
    assert sandbox.state.counters().get("whatsapp", {}).get("message", 0) == 0


async def test_added_latency_is_part_of_the_decision(sandbox: Sandbox) -> None:
    sandbox.faults.configure("hostinger", RouteFaults(latency_ms=250, latency_jitter_ms=50))
    decision = sandbox.faults.decide("hostinger", "GET /api/hosting/v1/websites")
    assert decision.kind is None
    assert 0.25 <= decision.latency_seconds <= 0.30


async def test_injected_faults_are_counted_per_route(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure("whatsapp", RouteFaults(error_rate=1.0), route=ROUTE)
    for _ in range(3):
        await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
    described = sandbox.faults.describe()
    assert described["injected"]["whatsapp"][ROUTE] == {"error": 3}
    assert described["requests"]["whatsapp"][ROUTE] == 3


async def test_over_http_the_share_of_injected_503s_matches_the_rate(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.faults.configure(
        "whatsapp", RouteFaults(error_rate=0.25, error_statuses=[503]), route=ROUTE
    )
    statuses = [
        (
            await app_client.post(_messages_path(), json=_whatsapp_template(), headers=_auth())
        ).status_code
        for _ in range(600)
    ]
    assert statuses.count(503) / 600 == pytest.approx(0.25, abs=0.06)
    assert set(statuses) == {200, 503}
    assert sandbox.state.counters()["whatsapp"]["message"] == statuses.count(200)
