"""The admin API under /__sandbox__/ shows what a client needs and steers the sandbox."""

from __future__ import annotations

import httpx

from sandbox.core import PersonRole, Sandbox
from sandbox.faults import RouteFaults
from sandbox.vendors import facebook, whatsapp

ADMIN = "/__sandbox__"
WA_AUTH = {"Authorization": f"Bearer {whatsapp.DEFAULT_CREDENTIALS['access_token']}"}
WA_MESSAGES = f"/whatsapp/v23.0/{whatsapp.DEFAULT_CREDENTIALS['phone_number_id']}/messages"
HELLO = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "5511987654321",
    "type": "template",
    "template": {"name": "hello_world", "language": {"policy": "deterministic", "code": "en_US"}},
}


async def test_the_overview_gives_each_vendors_base_url_and_credentials(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    overview = (await app_client.get(f"{ADMIN}/")).json()
    assert overview["seed"] == sandbox.seed
    assert overview["vendors"]["facebook"] == {
        "base_url": f"{sandbox.public_base_url}/facebook",
        "credentials": facebook.DEFAULT_CREDENTIALS,
    }
    assert {"facebook", "whatsapp"} <= set(overview["vendors"])


async def test_overridden_credentials_replace_the_defaults_everywhere(
    app_client: httpx.AsyncClient,
) -> None:
    await app_client.put(f"{ADMIN}/credentials/whatsapp", json={"access_token": "EAAmine"})
    old = await app_client.post(WA_MESSAGES, json=HELLO, headers=WA_AUTH)
    new = await app_client.post(
        WA_MESSAGES, json=HELLO, headers={"Authorization": "Bearer EAAmine"}
    )
    assert (old.status_code, new.status_code) == (400, 200)
    overview = (await app_client.get(f"{ADMIN}/")).json()
    assert overview["vendors"]["whatsapp"]["credentials"]["access_token"] == "EAAmine"


async def test_an_unknown_vendor_is_404(app_client: httpx.AsyncClient) -> None:
    response = await app_client.put(f"{ADMIN}/faults/stripe", json={"error_rate": 0.5})
    assert response.status_code == 404


async def test_counters_and_state_show_what_was_created(app_client: httpx.AsyncClient) -> None:
    await app_client.post(f"{ADMIN}/facebook/leads", json={"count": 3})
    assert (await app_client.get(f"{ADMIN}/counters")).json() == {"facebook": {"lead": 3}}
    state = (await app_client.get(f"{ADMIN}/state")).json()
    assert len(state["facebook"]["leads"]) == 3


async def test_reset_forgets_objects_counters_and_faults(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    await app_client.post(f"{ADMIN}/facebook/leads", json={"count": 2})
    await app_client.put(f"{ADMIN}/faults/whatsapp", json={"error_rate": 1.0})
    assert (await app_client.post(f"{ADMIN}/reset")).status_code == 200
    assert (await app_client.get(f"{ADMIN}/counters")).json() == {}
    assert (await app_client.post(WA_MESSAGES, json=HELLO, headers=WA_AUTH)).status_code == 200
    leads = await app_client.get(
        f"/facebook/v23.0/{facebook.DEFAULT_CREDENTIALS['form_id']}/leads",
        params={"access_token": facebook.DEFAULT_CREDENTIALS["page_access_token"]},
    )
    assert leads.json() == {"data": []}


async def test_faults_are_configured_per_vendor_and_per_route(
    app_client: httpx.AsyncClient,
) -> None:
    await app_client.put(f"{ADMIN}/faults/whatsapp", json={"error_rate": 1.0})
    await app_client.put(
        f"{ADMIN}/faults/whatsapp/routes",
        json={"route": "POST /{version}/{phone_number_id}/messages", "faults": {}},
    )
    assert (await app_client.post(WA_MESSAGES, json=HELLO, headers=WA_AUTH)).status_code == 200
    described = (await app_client.get(f"{ADMIN}/faults")).json()
    assert described["vendors"]["whatsapp"]["error_rate"] == 1.0
    await app_client.delete(f"{ADMIN}/faults/whatsapp")
    assert (await app_client.get(f"{ADMIN}/faults")).json()["vendors"] == {}


async def test_an_incoherent_fault_rule_is_422(app_client: httpx.AsyncClient) -> None:
    response = await app_client.put(
        f"{ADMIN}/faults/whatsapp", json={"error_rate": 0.9, "throttle_rate": 0.9}
    )
    assert response.status_code == 422


async def test_the_admin_api_itself_is_never_faulted(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    for vendor in sandbox.default_credentials:
        sandbox.faults.configure(vendor, RouteFaults(error_rate=1.0))
    assert (await app_client.get(f"{ADMIN}/counters")).status_code == 200


async def test_webhook_targets_are_set_listed_and_removed(app_client: httpx.AsyncClient) -> None:
    await app_client.put(
        f"{ADMIN}/webhook-targets/whatsapp", json={"url": "http://127.0.0.1:9999/wa"}
    )
    assert (await app_client.get(f"{ADMIN}/webhook-targets")).json() == {
        "whatsapp": "http://127.0.0.1:9999/wa"
    }
    await app_client.delete(f"{ADMIN}/webhook-targets/whatsapp")
    assert (await app_client.get(f"{ADMIN}/webhook-targets")).json() == {}


async def test_a_webhook_target_must_be_an_http_url(app_client: httpx.AsyncClient) -> None:
    response = await app_client.put(f"{ADMIN}/webhook-targets/whatsapp", json={"url": "nope"})
    assert response.status_code == 422


async def test_the_delivery_log_lists_each_webhook(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    sandbox.webhook_targets["whatsapp"] = "http://127.0.0.1:9/unreachable"
    sandbox.webhooks.retry_delays = ()
    await app_client.post(f"{ADMIN}/whatsapp/inbound", json={"from": "5511987654321"})
    assert (await app_client.post(f"{ADMIN}/webhooks/wait", json={})).json() == {"idle": True}
    (record,) = (await app_client.get(f"{ADMIN}/webhooks", params={"vendor": "whatsapp"})).json()
    assert (record["vendor"], record["outcome"]) == ("whatsapp", "failed")


async def test_people_are_listed_configured_and_act_on_demand(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    charges = {"pay_1": "PENDING"}
    sandbox.register_role(
        PersonRole(
            "payer",
            "asaas",
            pending=lambda: [c for c, s in charges.items() if s == "PENDING"],
            accept=lambda c: charges.__setitem__(c, "RECEIVED") or {"id": c},
        )
    )
    people = (await app_client.get(f"{ADMIN}/people")).json()
    assert people["roles"]["payer"]["pending"] == ["pay_1"]
    assert people["roles"]["payer"]["can_refuse"] is False
    configured = await app_client.put(
        f"{ADMIN}/people/payer", json={"accept_probability": 0.5, "refuse_probability": 0}
    )
    assert configured.json()["roles"]["payer"]["behaviour"]["accept_probability"] == 0.5
    paid = await app_client.post(f"{ADMIN}/people/payer/accept/pay_1")
    assert paid.status_code == 200
    assert charges == {"pay_1": "RECEIVED"}
    again = await app_client.post(f"{ADMIN}/people/payer/accept/pay_1")
    assert again.status_code == 409
    refuse = await app_client.post(f"{ADMIN}/people/payer/refuse/pay_1")
    assert refuse.status_code == 409
    unknown = await app_client.post(f"{ADMIN}/people/ghost/accept/1")
    assert unknown.status_code == 404


async def test_people_are_switched_on_and_off(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    assert (await app_client.post(f"{ADMIN}/people/start")).json()["running"] is True
    assert (await app_client.post(f"{ADMIN}/people/stop")).json()["running"] is False
