"""The Facebook Lead Ads emulator behaves as Meta's Graph contract says.

Responses are checked against schemas written from Meta's SDK codegen spec
(tests/contracts/facebook/); the leadgen webhook is verified with Meta's published scheme
(HMAC-SHA256 of the raw body keyed with the app secret) computed here with `hmac`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from sandbox.core import Sandbox
from sandbox.server import RunningSandbox
from sandbox.vendors import facebook
from tests.contracts import assert_matches
from tests.sandbox.conftest import WebhookReceiver, subscribe_receiver

CREDENTIALS = facebook.DEFAULT_CREDENTIALS
TOKEN = CREDENTIALS["page_access_token"]
FORM = CREDENTIALS["form_id"]
PAGE = CREDENTIALS["page_id"]
LEADS = f"/facebook/v23.0/{FORM}/leads"
EMAIL = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$")
MOBILE = re.compile(r"^(\+55 ?)?\(?\d{2}\)? ?9\d{4}-?\d{4}$")


def submit(sandbox: Sandbox, count: int, **options: Any) -> list[dict[str, Any]]:
    """People fill the form (through the emulator the app built, or one built here)."""
    if "facebook" not in sandbox.emulators:
        facebook.build_router(sandbox)
    emulator = facebook.FacebookEmulator.of(sandbox)
    return emulator.submit_leads(facebook.LeadSubmission(count=count, **options))


async def lead_page(client: httpx.AsyncClient, **params: Any) -> Any:
    """One page of the form's leads (JSON), asked with the page's token and `params`."""
    return (await client.get(LEADS, params={"access_token": TOKEN, **params})).json()


def stored_state(sandbox: Sandbox) -> facebook.FacebookState:
    """What the emulator keeps (its typed bucket), read directly."""
    emulator = facebook.FacebookEmulator.of(sandbox)
    return emulator.bucket


def answers(lead: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["values"][0] for item in lead["field_data"]}


async def test_a_missing_access_token_is_oauth_exception_190(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get(LEADS)
    assert response.status_code == 400
    assert_matches(response.json(), "facebook", "graph_error")
    assert response.json()["error"]["code"] == 190
    assert response.json()["error"]["type"] == "OAuthException"


async def test_a_wrong_access_token_is_oauth_exception_190(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(LEADS, params={"access_token": "EAAwrong"})
    assert response.status_code == 400
    assert_matches(response.json(), "facebook", "graph_error")
    assert response.json()["error"]["code"] == 190
    assert response.headers["WWW-Authenticate"].startswith(
        'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token'
    )


async def test_a_bearer_header_is_accepted_as_the_token(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.get(LEADS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {"data": []}


async def test_the_page_lists_its_lead_form_with_the_question_keys(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get(
        f"/facebook/v23.0/{PAGE}/leadgen_forms",
        params={"access_token": TOKEN, "fields": "id,name,status,questions"},
    )
    assert response.status_code == 200
    assert_matches(response.json(), "facebook", "leadgen_form_list_response")
    (form,) = response.json()["data"]
    assert form["id"] == FORM
    assert [q["key"] for q in form["questions"]] == ["full_name", "email", "phone_number"]


async def test_a_lead_is_read_with_its_field_data(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    (created,) = submit(sandbox, 1, bad_share=0.0)
    response = await app_client.get(
        f"/facebook/v23.0/{created['id']}", params={"access_token": TOKEN}
    )
    assert response.status_code == 200
    lead = response.json()
    assert_matches(lead, "facebook", "lead")
    assert set(lead) == {"id", "created_time", "field_data"}
    assert set(answers(lead)) == {"full_name", "email", "phone_number"}


async def test_requested_fields_are_returned_and_only_those(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    (created,) = submit(sandbox, 1)
    response = await app_client.get(
        f"/facebook/v23.0/{created['id']}",
        params={"access_token": TOKEN, "fields": "id,form_id,ad_id,is_organic"},
    )
    assert_matches(response.json(), "facebook", "lead")
    assert set(response.json()) == {"id", "form_id", "ad_id", "is_organic"}
    assert response.json()["form_id"] == FORM


async def test_a_nonexisting_field_is_error_100(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    (created,) = submit(sandbox, 1)
    response = await app_client.get(
        f"/facebook/v23.0/{created['id']}", params={"access_token": TOKEN, "fields": "id,salary"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert "salary" in response.json()["error"]["message"]


async def test_an_unknown_object_is_graph_method_exception_100_subcode_33(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/facebook/v23.0/999999", params={"access_token": TOKEN})
    assert response.status_code == 400
    assert_matches(response.json(), "facebook", "graph_error")
    error = response.json()["error"]
    assert (error["type"], error["code"], error["error_subcode"]) == (
        "GraphMethodException",
        100,
        33,
    )


@pytest.mark.parametrize(
    "path", ["/facebook/v23.0/999999/leads", "/facebook/v23.0/999999/leadgen_forms"]
)
async def test_an_edge_of_an_unknown_object_is_graph_method_exception_100_subcode_33(
    app_client: httpx.AsyncClient, path: str
) -> None:
    response = await app_client.get(path, params={"access_token": TOKEN})
    assert response.status_code == 400
    assert_matches(response.json(), "facebook", "graph_error")
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert "'999999'" in error["message"]


async def test_following_next_pages_through_every_lead_once_newest_first(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    created = submit(sandbox, 23)
    seen: list[str] = []
    url: str | None = f"http://sandbox{LEADS}?access_token={TOKEN}&limit=5"
    while url:
        response = await app_client.get(url.replace(sandbox.public_base_url, "http://sandbox"))
        assert response.status_code == 200
        assert_matches(response.json(), "facebook", "lead_list_response")
        seen += [lead["id"] for lead in response.json()["data"]]
        url = response.json().get("paging", {}).get("next")
    assert seen == [lead["id"] for lead in reversed(created)]


async def test_the_previous_cursor_goes_back_one_page(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    submit(sandbox, 6)
    first = await lead_page(app_client, limit=3)
    second = await lead_page(app_client, limit=3, after=first["paging"]["cursors"]["after"])
    assert "next" not in second["paging"]
    back = await lead_page(app_client, limit=3, before=second["paging"]["cursors"]["before"])
    assert [lead["id"] for lead in back["data"]] == [lead["id"] for lead in first["data"]]


async def test_filtering_on_time_created_keeps_the_window(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    for moment in (1_700_000_000, 1_700_000_100, 1_700_000_200):
        submit(sandbox, 1, created_time=moment)
    rules = [
        {"field": "time_created", "operator": "GREATER_THAN", "value": 1_700_000_000},
        {"field": "time_created", "operator": "LESS_THAN", "value": 1_700_000_200},
    ]
    response = await app_client.get(
        LEADS,
        params={"access_token": TOKEN, "filtering": json.dumps(rules), "fields": "created_time"},
    )
    assert [lead["created_time"] for lead in response.json()["data"]] == [
        "2023-11-14T22:15:00+0000"
    ]


async def test_malformed_filtering_is_error_100(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(
        LEADS, params={"access_token": TOKEN, "filtering": '{"field":"time_created"}'}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


def test_good_leads_have_a_valid_email_and_a_mobile(sandbox: Sandbox) -> None:
    submit(sandbox, 100, bad_share=0.0)
    for lead in stored_state(sandbox).leads.values():
        given = answers(lead)
        assert EMAIL.match(given["email"]), given["email"]
        assert MOBILE.match(given["phone_number"]), given["phone_number"]
        assert len(given["full_name"].split()) >= 2


def test_the_bad_share_is_respected_and_each_bad_lead_is_really_bad(sandbox: Sandbox) -> None:
    created = submit(sandbox, 600, bad_share=0.3)
    bad = [lead for lead in created if lead["quality"] != "good"]
    assert len(bad) / len(created) == pytest.approx(0.3, abs=0.06)
    stored = stored_state(sandbox).leads
    for summary in bad:
        given = answers(stored[summary["id"]])
        if summary["quality"] == "malformed_email":
            assert not EMAIL.match(given["email"])
        elif summary["quality"] == "landline":
            assert not MOBILE.match(given["phone_number"])
            assert re.search(r" [2-5]\d{3}-\d{4}$", given["phone_number"])
            assert "email" not in given
        else:
            assert "full_name" not in given or not {"email", "phone_number"} & set(given)
    assert {lead["quality"] for lead in bad} == set(facebook.BAD_KINDS)


def test_the_quality_gate_quarantines_exactly_the_bad_leads(sandbox: Sandbox) -> None:
    from data_quality import split_leads

    created = submit(sandbox, 120, bad_share=0.4)
    stored = stored_state(sandbox).leads
    rows = [{"lead_id": lead["id"], **answers(stored[lead["id"]])} for lead in created]
    result = split_leads(rows)
    bad_ids = {lead["id"] for lead in created if lead["quality"] != "good"}
    assert set(result.quarantined["lead_id"]) == bad_ids


def test_the_same_seed_generates_the_same_leads() -> None:
    first, second = Sandbox(seed=21), Sandbox(seed=21)
    names = [
        [answers(lead) for lead in _stored(sandbox, submit(sandbox, 5, bad_share=0.5))]
        for sandbox in (first, second)
    ]
    assert names[0] == names[1]


def _stored(sandbox: Sandbox, created: list[dict[str, Any]]) -> list[facebook.Lead]:
    return [stored_state(sandbox).leads[lead["id"]] for lead in created]


def _subscribe_the_page(served: RunningSandbox) -> None:
    """The page installs the app for `leadgen`, as every page must before Meta calls back."""
    response = httpx.post(
        f"{served.base_urls['facebook']}/v23.0/{PAGE}/subscribed_apps",
        params={"subscribed_fields": "leadgen", "access_token": TOKEN},
    )
    assert response.json() == {"success": True}


def test_no_leadgen_reaches_a_page_that_never_subscribed_the_app(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["facebook"] = receiver.url
    httpx.post(served.admin_url + "/facebook/leads", json={"count": 2})
    assert served.sandbox.webhooks.wait_idle(5)
    assert receiver.posts() == []
    _subscribe_the_page(served)
    httpx.post(served.admin_url + "/facebook/leads", json={"count": 1})
    assert len(receiver.wait_for(1)) == 1


def test_submitting_leads_fires_a_signed_leadgen_webhook_per_lead(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["facebook"] = receiver.url
    _subscribe_the_page(served)
    created = httpx.post(served.admin_url + "/facebook/leads", json={"count": 2}).json()["leads"]
    deliveries = receiver.wait_for(2)
    secret = CREDENTIALS["app_secret"].encode()
    for delivery, lead in zip(deliveries, created, strict=True):
        expected = hmac.new(secret, delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers["X-Hub-Signature-256"] == f"sha256={expected}"
        expected_sha1 = hmac.new(secret, delivery.body, hashlib.sha1).hexdigest()
        assert delivery.headers["X-Hub-Signature"] == f"sha1={expected_sha1}"
        payload = json.loads(delivery.body)
        assert_matches(payload, "facebook", "leadgen_webhook")
        value = payload["entry"][0]["changes"][0]["value"]
        assert (value["leadgen_id"], value["form_id"], value["page_id"]) == (lead["id"], FORM, PAGE)


def test_the_webhook_body_escapes_non_ascii_as_meta_does(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    served.sandbox.webhook_targets["facebook"] = receiver.url
    _subscribe_the_page(served)
    served.sandbox.emulators["facebook"].fire_leadgen(
        {"id": "1", "page_id": PAGE, "form_id": "ção", "ad_id": "3", "created_time": 1}
    )
    (delivery,) = receiver.wait_for(1)
    assert b"\\u00e7\\u00e3o" in delivery.body


def test_the_subscription_handshake_echoes_the_challenge_before_the_target_is_set(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    response = subscribe_receiver(served, "facebook", receiver.url)
    assert response.status_code == 200
    (handshake,) = [r for r in receiver.requests if r.method == "GET"]
    assert handshake.query["hub.mode"] == ["subscribe"]
    assert handshake.query["hub.verify_token"] == [CREDENTIALS["verify_token"]]
    assert served.sandbox.webhook_targets["facebook"] == receiver.url


def test_a_receiver_that_fails_the_handshake_is_not_subscribed(
    served: RunningSandbox, receiver: WebhookReceiver
) -> None:
    receiver.verify_token = "another-token"
    response = subscribe_receiver(served, "facebook", receiver.url)
    assert response.status_code == 400
    assert "facebook" not in served.sandbox.webhook_targets


async def test_subscribing_the_app_to_leadgen_succeeds(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.post(
        f"/facebook/v23.0/{PAGE}/subscribed_apps",
        params={"access_token": TOKEN, "subscribed_fields": "leadgen"},
    )
    assert response.json() == {"success": True}
    assert stored_state(sandbox).pages[PAGE]["subscribed"] == ["leadgen"]


async def test_subscribing_with_a_form_encoded_body_is_the_same_as_the_query(
    sandbox: Sandbox, app_client: httpx.AsyncClient
) -> None:
    response = await app_client.post(
        f"/facebook/v23.0/{PAGE}/subscribed_apps",
        params={"access_token": TOKEN},
        data={"subscribed_fields": "leadgen,leadgen_update"},
    )
    assert response.json() == {"success": True}
    assert stored_state(sandbox).pages[PAGE]["subscribed"] == [
        "leadgen",
        "leadgen_update",
    ]


async def test_subscribing_without_subscribed_fields_is_error_100(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post(
        f"/facebook/v23.0/{PAGE}/subscribed_apps", params={"access_token": TOKEN}
    )
    assert response.status_code == 400
    assert_matches(response.json(), "facebook", "graph_error")
    assert response.json()["error"]["code"] == 100


async def test_the_call_budget_answers_error_4_when_spent(app_client: httpx.AsyncClient) -> None:
    app = app_client._transport.app  # type: ignore[attr-defined]
    app.state.sandbox.emulators["facebook"].limits = facebook.FacebookLimits(calls_per_hour=2)
    statuses = [
        (await app_client.get(LEADS, params={"access_token": TOKEN})).json() for _ in range(3)
    ]
    assert statuses[2]["error"]["code"] == 4


async def test_50_concurrent_submissions_and_listings_lose_and_duplicate_nothing(
    served: RunningSandbox,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:

        async def submit_one() -> str:
            response = await client.post(served.admin_url + "/facebook/leads", json={"count": 1})
            return response.json()["leads"][0]["id"]

        async def list_all() -> int:
            response = await client.get(
                served.base_urls["facebook"] + f"/v23.0/{FORM}/leads",
                params={"access_token": TOKEN, "limit": 100},
            )
            assert response.status_code == 200
            return len(response.json()["data"])

        results = await asyncio.gather(
            *[submit_one() for _ in range(50)], *[list_all() for _ in range(50)]
        )
        created = results[:50]
        final = await client.get(
            served.base_urls["facebook"] + f"/v23.0/{FORM}/leads",
            params={"access_token": TOKEN, "limit": 100},
        )
    listed = [lead["id"] for lead in final.json()["data"]]
    assert len(set(created)) == 50
    assert sorted(listed) == sorted(created)
    assert served.sandbox.state.counters()["facebook"]["lead"] == 50
