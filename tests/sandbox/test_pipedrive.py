"""The Pipedrive emulator behaves as Pipedrive's published v1/v2 contract says.

Each test is one behaviour a leadflow client depends on: auth, the envelope and its error twin,
exact-match search by e-mail, phone and custom field, deal status stamps, pagination, the
burst limit and daily token budget, and the v2 webhook a salesperson's win or loss sends with
HTTP Basic auth. Requests and responses are checked against trimmed copies of Pipedrive's
OpenAPI schemas (tests/contracts/pipedrive/). Requests go through the whole sandbox app
(sandbox/app.py's create_app) in process; a few run over a real loopback socket. The `sandbox`
and `receiver` fixtures come from tests/sandbox/conftest.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.faults import RouteFaults
from sandbox.people import PersonBehaviour
from sandbox.server import running_sandbox
from sandbox.vendors import pipedrive
from tests.contracts import assert_matches
from tests.sandbox.conftest import in_process

if TYPE_CHECKING:
    from tests.sandbox.conftest import ReceivedRequest, WebhookReceiver

TOKEN = pipedrive.DEFAULT_CREDENTIALS["api_token"]
HOOK_USER = "leadflow"
HOOK_PASSWORD = "s3cret-hook-password"


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


def _app(sandbox: Sandbox, limits: pipedrive.PipedriveLimits | None = None) -> FastAPI:
    """The whole sandbox app; `limits` are set the way an operator would, through the state."""
    app = create_app(sandbox)
    if limits is not None:
        with sandbox.state.lock:
            pipedrive.PipedriveEmulator.of(sandbox).bucket.limits = limits
    return app


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(_app(sandbox), "/pipedrive", headers={"x-api-token": TOKEN}) as client:
        yield client


def _payload(request: ReceivedRequest) -> Any:
    return json.loads(request.body)


def _header(request: ReceivedRequest, name: str) -> str | None:
    """A header of a received request, whatever case the sender wrote its name in."""
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)


async def _deal_field(client: httpx.AsyncClient, name: str = "leadflow_id") -> str:
    response = await client.post("/api/v1/dealFields", json={"name": name, "field_type": "varchar"})
    assert response.status_code == 200, response.text
    return response.json()["data"]["key"]


async def _person(client: httpx.AsyncClient, name: str, email: str, phone: str) -> dict[str, Any]:
    body = {
        "name": name,
        "emails": [{"value": email, "primary": True, "label": "work"}],
        "phones": [{"value": phone, "primary": True, "label": "mobile"}],
    }
    response = await client.post("/api/v2/persons", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _found(client: httpx.AsyncClient, entity: str, term: str, field: str) -> list[Any]:
    """The items of an exact v2 search of persons or deals for `term` in `field`."""
    params = {"term": term, "fields": field, "exact_match": "true"}
    response = await client.get(f"/api/v2/{entity}s/search", params=params)
    assert response.status_code == 200, response.text
    assert_matches(response.json(), "pipedrive", f"{entity}_search_response")
    items: list[Any] = response.json()["data"]["items"]
    return items


async def _deal(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v2/deals", json={"title": "Site institucional", **body})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _watched_deal(client: httpx.AsyncClient, receiver: WebhookReceiver) -> dict[str, Any]:
    """A new deal whose every change is sent to `receiver` (subscribed to all events)."""
    await client.post("/api/v1/webhooks", json=_subscription(f"{receiver.url}/pipedrive"))
    return await _deal(client)


async def _stored_status(client: httpx.AsyncClient, deal: dict[str, Any]) -> str:
    """The deal's status as Pipedrive reads it back now."""
    status: str = (await client.get(f"/api/v2/deals/{deal['id']}")).json()["data"]["status"]
    return status


def _assert_pipedrive_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert_matches(body, "pipedrive", "error_response")
    assert body["data"] is None
    assert "detail" not in body
    assert fragment.lower() in body["error"].lower()


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


async def test_request_without_credentials_gets_pipedrive_401_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v2/deals", headers={"x-api-token": ""})
    assert response.status_code == 401
    assert_matches(response.json(), "pipedrive", "unauthorized_response")
    assert response.json()["error"] == "unauthorized access"


async def test_wrong_api_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/deals", headers={"x-api-token": "not-the-token"})
    assert response.status_code == 401
    assert response.json()["errorCode"] == 401


async def test_oauth_bearer_token_is_accepted_in_place_of_api_token(sandbox: Sandbox) -> None:
    bearer = pipedrive.DEFAULT_CREDENTIALS["oauth_access_token"]
    async with in_process(_app(sandbox), "/pipedrive") as client:
        response = await client.get("/api/v2/deals", headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": [],
        "additional_data": {"next_cursor": None},
    }


async def test_configured_credentials_replace_the_defaults(sandbox: Sandbox) -> None:
    sandbox.credentials[pipedrive.VENDOR] = {"api_token": "customer-specific-token"}
    async with in_process(_app(sandbox), "/pipedrive") as client:
        old = await client.get("/api/v2/deals", headers={"x-api-token": TOKEN})
        new = await client.get("/api/v2/deals", headers={"x-api-token": "customer-specific-token"})
    assert (old.status_code, new.status_code) == (401, 200)


# --------------------------------------------------------------------------------------------
# Persons
# --------------------------------------------------------------------------------------------


async def test_create_person_returns_the_v2_person(client: httpx.AsyncClient) -> None:
    body = {
        "name": "Maria Silva",
        "emails": [{"value": "maria@example.com.br", "primary": True, "label": "work"}],
        "phones": [{"value": "+5511987654321", "primary": True, "label": "mobile"}],
    }
    assert_matches(body, "pipedrive", "person_request")
    response = await client.post("/api/v2/persons", json=body)
    assert response.status_code == 200
    assert_matches(response.json(), "pipedrive", "person_response")
    person = response.json()["data"]
    assert (person["first_name"], person["last_name"]) == ("Maria", "Silva")
    assert person["emails"] == body["emails"]


async def test_create_person_without_name_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v2/persons", json={"emails": [{"value": "a@b.co"}]})
    _assert_pipedrive_error(response, 400, "name")


async def test_v1_singular_email_key_is_refused_by_v2(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v2/persons", json={"name": "Ana", "email": "a@b.co"})
    _assert_pipedrive_error(response, 400, "email")


async def test_malformed_json_is_a_pipedrive_error_not_fastapi_detail(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v2/persons", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_pipedrive_error(response, 400, "json")


async def test_person_search_by_email_exact_match_ignores_case(
    client: httpx.AsyncClient,
) -> None:
    maria = await _person(client, "Maria Silva", "maria@example.com.br", "+5511987654321")
    await _person(client, "Mariana Souza", "mariana@example.com.br", "+5521912345678")
    items = await _found(client, "person", "MARIA@example.com.br", "email")
    assert [i["item"]["id"] for i in items] == [maria["id"]]
    assert items[0]["item"]["emails"] == ["maria@example.com.br"]
    assert items[0]["item"]["phones"] == ["+5511987654321"]


async def test_a_restored_state_finds_its_persons_by_exact_search(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """The demo's rerun restores an exported state: leadflow's look-up must still find people."""
    maria = await _person(client, "Maria Silva", "maria@example.com.br", "+5511987654321")
    restored = Sandbox(seed=11)
    restored.state.restore(sandbox.state.export())
    async with in_process(_app(restored), "/pipedrive", headers={"x-api-token": TOKEN}) as other:
        found = await _found(other, "person", "maria@example.com.br", "email")
    restored.close()
    assert [i["item"]["id"] for i in found] == [maria["id"]]


async def test_person_search_exact_match_returns_no_partial_match(
    client: httpx.AsyncClient,
) -> None:
    await _person(client, "Mariana Souza", "mariana@example.com.br", "+5521912345678")
    assert await _found(client, "person", "ana@example.com.br", "email") == []


async def test_person_search_without_exact_match_finds_partial_match(
    client: httpx.AsyncClient,
) -> None:
    mariana = await _person(client, "Mariana Souza", "mariana@example.com.br", "+5521912345678")
    response = await client.get(
        "/api/v2/persons/search", params={"term": "souza", "fields": "name"}
    )
    items = response.json()["data"]["items"]
    assert [(i["item"]["id"], i["result_score"]) for i in items] == [(mariana["id"], 0.5)]


async def test_person_search_by_phone_matches_on_digits(client: httpx.AsyncClient) -> None:
    maria = await _person(client, "Maria Silva", "maria@example.com.br", "+55 11 98765-4321")
    found = await _found(client, "person", "5511987654321", "phone")
    assert [i["item"]["id"] for i in found] == [maria["id"]]


async def test_person_search_by_email_does_not_look_at_names(client: httpx.AsyncClient) -> None:
    await _person(client, "joao@example.com", "other@example.com", "+5511900000000")
    assert await _found(client, "person", "joao@example.com", "email") == []


async def test_person_found_by_new_email_only_after_it_changed(
    client: httpx.AsyncClient,
) -> None:
    maria = await _person(client, "Maria Silva", "maria@old.example", "+5511987654321")
    await client.patch(
        f"/api/v2/persons/{maria['id']}", json={"emails": [{"value": "maria@new.example"}]}
    )
    assert await _found(client, "person", "maria@old.example", "email") == []
    found = await _found(client, "person", "maria@new.example", "email")
    assert [i["item"]["id"] for i in found] == [maria["id"]]


async def test_search_after_a_state_reset_finds_only_new_persons(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await _person(client, "Antes Reset", "same@example.com", "+5511900000001")
    sandbox.state.reset()
    after = await _person(client, "Depois Reset", "other@example.com", "+5511900000002")
    assert await _found(client, "person", "same@example.com", "email") == []
    assert after["id"] == 1


async def test_person_search_needs_a_term(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/persons/search", params={"fields": "email"})
    _assert_pipedrive_error(response, 400, "term")


async def test_person_search_term_of_one_character_needs_exact_match(
    client: httpx.AsyncClient,
) -> None:
    loose = await client.get("/api/v2/persons/search", params={"term": "a"})
    exact = await client.get("/api/v2/persons/search", params={"term": "a", "exact_match": "1"})
    _assert_pipedrive_error(loose, 400, "at least 2")
    assert exact.status_code == 200


async def test_person_search_refuses_an_unknown_field(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v2/persons/search", params={"term": "maria", "fields": "title"}
    )
    _assert_pipedrive_error(response, 400, "fields")


async def test_update_person_changes_only_what_was_sent(client: httpx.AsyncClient) -> None:
    maria = await _person(client, "Maria Silva", "maria@example.com.br", "+5511987654321")
    response = await client.patch(
        f"/api/v2/persons/{maria['id']}", json={"name": "Maria Souza Silva"}
    )
    assert response.status_code == 200
    assert_matches(response.json(), "pipedrive", "person_response")
    updated = response.json()["data"]
    assert updated["name"] == "Maria Souza Silva"
    assert updated["last_name"] == "Souza Silva"
    assert updated["emails"] == maria["emails"]


async def test_reading_an_unknown_person_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/persons/999")
    _assert_pipedrive_error(response, 404, "not found")


async def test_person_list_pages_with_cursor(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await _person(client, f"Pessoa {index}", f"p{index}@example.com", f"+55119000000{index}")
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v2/persons", params=params)
        assert_matches(response.json(), "pipedrive", "person_list_response")
        seen += [p["id"] for p in response.json()["data"]]
        cursor = response.json()["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------------------------
# Deal fields
# --------------------------------------------------------------------------------------------


async def test_create_deal_field_returns_a_40_hex_key(client: httpx.AsyncClient) -> None:
    body = {"name": "leadflow_id", "field_type": "varchar"}
    assert_matches(body, "pipedrive", "deal_field_request")
    response = await client.post("/api/v1/dealFields", json=body)
    assert response.status_code == 200
    assert_matches(response.json(), "pipedrive", "deal_field_response")
    assert re.fullmatch(r"[0-9a-f]{40}", response.json()["data"]["key"])


async def test_deal_field_of_unknown_type_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/dealFields", json={"name": "leadflow_id", "field_type": "string"}
    )
    _assert_pipedrive_error(response, 400, "field_type")


async def test_deal_fields_list_pages_by_offset(client: httpx.AsyncClient) -> None:
    keys = [await _deal_field(client, f"campo {index}") for index in range(3)]
    built_in = len(pipedrive.BUILT_IN_FIELDS["deal"])
    first = await client.get("/api/v1/dealFields", params={"start": "0", "limit": "2"})
    rest = await client.get("/api/v1/dealFields", params={"start": str(built_in), "limit": "500"})
    for response in (first, rest):
        assert_matches(response.json(), "pipedrive", "deal_field_list_response")
    pagination = first.json()["additional_data"]["pagination"]
    assert pagination == {"start": 0, "limit": 2, "more_items_in_collection": True, "next_start": 2}
    assert [f["key"] for f in rest.json()["data"]] == keys
    assert rest.json()["additional_data"]["pagination"]["more_items_in_collection"] is False


@pytest.mark.parametrize(
    ("path", "entity"), [("/api/v1/dealFields", "deal"), ("/api/v1/personFields", "person")]
)
async def test_the_built_in_fields_are_listed_before_any_custom_one(
    client: httpx.AsyncClient, path: str, entity: str
) -> None:
    """Real Pipedrive always lists title, value, currency... (name, email, phone... for people)."""
    response = await client.get(path, params={"limit": "500"})
    assert_matches(response.json(), "pipedrive", "deal_field_list_response")
    fields = {f["key"]: f for f in response.json()["data"]}
    expected = {"title", "value", "currency"} if entity == "deal" else {"name", "email", "phone"}
    assert expected <= set(fields)
    assert all(not f["edit_flag"] for f in fields.values())
    v2 = await client.get(path.replace("/v1/", "/v2/"), params={"limit": "500"})
    v2_fields = {f["field_code"]: f for f in v2.json()["data"]}
    assert expected <= set(v2_fields)
    assert not any(v2_fields[key]["is_custom_field"] for key in expected)


async def test_built_in_fields_are_not_counted_as_created(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await client.get("/api/v1/dealFields")
    assert "deal_field" not in sandbox.state.counters().get("pipedrive", {})


async def test_person_custom_field_holds_leadflow_id_and_is_searchable(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/api/v1/personFields", json={"name": "leadflow_id", "field_type": "varchar"}
    )
    assert_matches(created.json(), "pipedrive", "deal_field_response")
    key = created.json()["data"]["key"]
    response = await client.post(
        "/api/v2/persons", json={"name": "Maria Silva", "custom_fields": {key: "lead-000123"}}
    )
    assert response.json()["data"]["custom_fields"] == {key: "lead-000123"}
    found = await _found(client, "person", "lead-000123", "custom_fields")
    assert [i["item"]["id"] for i in found] == [response.json()["data"]["id"]]


async def test_deal_field_key_is_unknown_on_a_person(client: httpx.AsyncClient) -> None:
    key = await _deal_field(client)
    response = await client.post(
        "/api/v2/persons", json={"name": "Maria Silva", "custom_fields": {key: "lead-1"}}
    )
    _assert_pipedrive_error(response, 400, "does not exist")


@pytest.mark.parametrize("entity", ["deal", "person"])
async def test_v2_field_list_gives_each_custom_fields_code(
    client: httpx.AsyncClient, entity: str
) -> None:
    created = await client.post(
        f"/api/v1/{entity}Fields", json={"name": "leadflow_id", "field_type": "varchar"}
    )
    response = await client.get(f"/api/v2/{entity}Fields", params={"limit": "500"})
    assert_matches(response.json(), "pipedrive", "field_v2_list_response")
    [field] = [f for f in response.json()["data"] if f["is_custom_field"]]
    assert (field["field_name"], field["field_code"], field["is_custom_field"]) == (
        "leadflow_id",
        created.json()["data"]["key"],
        True,
    )


# --------------------------------------------------------------------------------------------
# Deals
# --------------------------------------------------------------------------------------------


async def test_create_deal_with_custom_field_returns_the_v2_deal(
    client: httpx.AsyncClient,
) -> None:
    key = await _deal_field(client)
    maria = await _person(client, "Maria Silva", "maria@example.com.br", "+5511987654321")
    body = {
        "title": "Site institucional — Maria Silva",
        "person_id": maria["id"],
        "value": 2500.0,
        "currency": "BRL",
        "custom_fields": {key: "lead-000123"},
    }
    assert_matches(body, "pipedrive", "deal_request")
    response = await client.post("/api/v2/deals", json=body)
    assert response.status_code == 200
    assert_matches(response.json(), "pipedrive", "deal_response")
    deal = response.json()["data"]
    assert (deal["status"], deal["won_time"], deal["custom_fields"][key]) == (
        "open",
        None,
        "lead-000123",
    )


async def test_deal_without_title_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v2/deals", json={"value": 10})
    _assert_pipedrive_error(response, 400, "title")


async def test_custom_field_key_that_is_not_a_40_hex_hash_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v2/deals", json={"title": "x", "custom_fields": {"leadflow_id": "lead-1"}}
    )
    _assert_pipedrive_error(response, 400, "40-character")


async def test_custom_field_that_does_not_exist_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v2/deals", json={"title": "x", "custom_fields": {"a" * 40: "lead-1"}}
    )
    _assert_pipedrive_error(response, 400, "does not exist")


async def test_enum_custom_field_takes_an_option_id_not_its_label(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/api/v1/dealFields",
        json={"name": "origem", "field_type": "enum", "options": [{"label": "Facebook"}]},
    )
    field = created.json()["data"]
    [option] = field["options"]
    by_label = await client.post(
        "/api/v2/deals", json={"title": "x", "custom_fields": {field["key"]: "Facebook"}}
    )
    by_id = await client.post(
        "/api/v2/deals", json={"title": "x", "custom_fields": {field["key"]: option["id"]}}
    )
    _assert_pipedrive_error(by_label, 400, "option ids")
    assert by_id.json()["data"]["custom_fields"][field["key"]] == option["id"]


async def test_deal_for_a_missing_person_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v2/deals", json={"title": "x", "person_id": 404})
    _assert_pipedrive_error(response, 400, "person")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"currency": "real"}, "currency"),
        ({"value": "2500"}, "value"),
        ({"expected_close_date": "31/12/2026"}, "YYYY-MM-DD"),
        ({"status": "closed"}, "status"),
        ({"lost_reason": "caro demais"}, "lost_reason"),
    ],
)
async def test_deal_with_invalid_value_is_refused(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    response = await client.post("/api/v2/deals", json={"title": "x", **body})
    _assert_pipedrive_error(response, 400, fragment)


async def test_read_deal_returns_what_was_created(client: httpx.AsyncClient) -> None:
    deal = await _deal(client, value=990, currency="BRL")
    response = await client.get(f"/api/v2/deals/{deal['id']}")
    assert_matches(response.json(), "pipedrive", "deal_response")
    assert response.json()["data"] == deal


async def test_marking_a_deal_won_stamps_won_and_close_time(client: httpx.AsyncClient) -> None:
    deal = await _deal(client)
    assert_matches({"status": "won"}, "pipedrive", "deal_update_request")
    response = await client.patch(f"/api/v2/deals/{deal['id']}", json={"status": "won"})
    assert_matches(response.json(), "pipedrive", "deal_response")
    won = response.json()["data"]
    assert won["status"] == "won"
    assert won["won_time"] is not None
    assert won["close_time"] == won["won_time"]
    assert won["lost_time"] is None


async def test_marking_a_deal_lost_keeps_the_lost_reason(client: httpx.AsyncClient) -> None:
    deal = await _deal(client)
    response = await client.patch(
        f"/api/v2/deals/{deal['id']}", json={"status": "lost", "lost_reason": "Sem orçamento"}
    )
    lost = response.json()["data"]
    assert (lost["status"], lost["lost_reason"]) == ("lost", "Sem orçamento")
    assert lost["lost_time"] is not None
    assert lost["won_time"] is None


async def test_update_cannot_blank_a_deals_title(client: httpx.AsyncClient) -> None:
    deal = await _deal(client)
    response = await client.patch(f"/api/v2/deals/{deal['id']}", json={"title": None})
    _assert_pipedrive_error(response, 400, "title")


async def test_updating_an_unknown_deal_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/v2/deals/77", json={"status": "won"})
    _assert_pipedrive_error(response, 404, "not found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/v2/persons/999", {"name": "Outro Nome"}),
        ("GET", "/api/v2/deals/999", None),
        ("DELETE", "/api/v1/webhooks/999", None),
    ],
)
async def test_acting_on_an_object_that_does_not_exist_is_404(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, path, json=body)
    _assert_pipedrive_error(response, 404, "not found")


async def test_deal_search_by_custom_field_exact_match_finds_that_deal(
    client: httpx.AsyncClient,
) -> None:
    key = await _deal_field(client)
    wanted = await _deal(client, custom_fields={key: "lead-000123"})
    await _deal(client, custom_fields={key: "lead-0001234"})
    items = await _found(client, "deal", "lead-000123", "custom_fields")
    assert [i["item"]["id"] for i in items] == [wanted["id"]]
    assert items[0]["item"]["custom_fields"] == ["lead-000123"]


async def test_deal_search_answers_an_integer_value_as_the_spec_says(
    client: httpx.AsyncClient,
) -> None:
    await _deal(client, value=1490.0)
    response = await client.get("/api/v2/deals/search", params={"term": "Site institucional"})
    (item,) = [i["item"] for i in response.json()["data"]["items"]]
    assert item["value"] == 1490
    assert isinstance(item["value"], int)
    assert '"value":1490,' in response.text


async def test_deal_search_filters_by_status(client: httpx.AsyncClient) -> None:
    open_deal = await _deal(client, title="Loja virtual")
    won_deal = await _deal(client, title="Loja virtual")
    await client.patch(f"/api/v2/deals/{won_deal['id']}", json={"status": "won"})
    response = await client.get(
        "/api/v2/deals/search", params={"term": "Loja virtual", "status": "open"}
    )
    assert [i["item"]["id"] for i in response.json()["data"]["items"]] == [open_deal["id"]]


async def test_deal_list_filters_by_person_and_status(client: httpx.AsyncClient) -> None:
    maria = await _person(client, "Maria Silva", "maria@example.com.br", "+5511987654321")
    joao = await _person(client, "João Lima", "joao@example.com.br", "+5511912345678")
    mine = await _deal(client, person_id=maria["id"])
    await _deal(client, person_id=joao["id"])
    closed = await _deal(client, person_id=maria["id"])
    await client.patch(f"/api/v2/deals/{closed['id']}", json={"status": "won"})
    response = await client.get(
        "/api/v2/deals", params={"person_id": str(maria["id"]), "status": "open"}
    )
    assert_matches(response.json(), "pipedrive", "deal_list_response")
    assert [d["id"] for d in response.json()["data"]] == [mine["id"]]


async def test_deal_list_cursor_visits_every_deal_once(client: httpx.AsyncClient) -> None:
    created = [(await _deal(client, title=f"Deal {index}"))["id"] for index in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v2/deals", params=params)
        seen += [d["id"] for d in response.json()["data"]]
        cursor = response.json()["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == created


async def test_garbled_cursor_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/deals", params={"cursor": "%%%"})
    _assert_pipedrive_error(response, 400, "cursor")


async def test_limit_above_500_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/deals", params={"limit": "501"})
    _assert_pipedrive_error(response, 400, "limit")


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------


async def test_note_on_a_deal_is_listed_by_deal_id(client: httpx.AsyncClient) -> None:
    deal = await _deal(client)
    other = await _deal(client)
    body = {"content": "[leadflow:lead-1] Lead qualificado", "deal_id": deal["id"]}
    assert_matches(body, "pipedrive", "note_request")
    created = await client.post("/api/v1/notes", json=body)
    await client.post("/api/v1/notes", json={"content": "outro", "deal_id": other["id"]})
    assert created.status_code == 200
    assert_matches(created.json(), "pipedrive", "note_response")
    listed = await client.get("/api/v1/notes", params={"deal_id": str(deal["id"])})
    assert_matches(listed.json(), "pipedrive", "note_list_response")
    assert [n["content"] for n in listed.json()["data"]] == [body["content"]]


async def test_note_attached_to_nothing_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/notes", json={"content": "solta"})
    _assert_pipedrive_error(response, 400, "attached")


async def test_note_without_content_is_refused(client: httpx.AsyncClient) -> None:
    deal = await _deal(client)
    response = await client.post("/api/v1/notes", json={"deal_id": deal["id"]})
    _assert_pipedrive_error(response, 400, "content")


# --------------------------------------------------------------------------------------------
# Webhook subscriptions
# --------------------------------------------------------------------------------------------


def _subscription(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "subscription_url": url,
        "event_action": "change",
        "event_object": "deal",
        "name": "leadflow deals",
        "http_auth_user": HOOK_USER,
        "http_auth_password": HOOK_PASSWORD,
        "version": "2.0",
        **extra,
    }


async def test_webhook_subscription_is_created(client: httpx.AsyncClient) -> None:
    body = _subscription("https://leadflow.example/webhooks/pipedrive")
    assert_matches(body, "pipedrive", "webhook_request")
    response = await client.post("/api/v1/webhooks", json=body)
    assert response.status_code == 201
    assert_matches(response.json(), "pipedrive", "webhook_response")
    listed = await client.get("/api/v1/webhooks")
    assert [h["id"] for h in listed.json()["data"]] == [response.json()["data"]["id"]]


@pytest.mark.parametrize(
    ("change", "field_name"),
    [
        ({"subscription_url": "not a url"}, "subscription_url"),
        ({"event_action": "updated"}, "event_action"),
        ({"version": "3.0"}, "version"),
    ],
)
async def test_bad_webhook_subscription_gets_the_errors_body(
    client: httpx.AsyncClient, change: dict[str, str], field_name: str
) -> None:
    response = await client.post(
        "/api/v1/webhooks", json=_subscription("https://leadflow.example/h", **change)
    )
    assert response.status_code == 400
    assert_matches(response.json(), "pipedrive", "webhook_bad_request_response")
    assert field_name in response.json()["errors"]


async def test_webhook_subscription_needs_a_name(client: httpx.AsyncClient) -> None:
    body = _subscription("https://leadflow.example/h")
    del body["name"]
    response = await client.post("/api/v1/webhooks", json=body)
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


# --------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------


async def test_every_response_carries_the_burst_headers(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v2/deals")
    second = await client.post("/api/v2/deals", json={"title": "x"})
    assert first.headers["x-ratelimit-limit"] == str(pipedrive.PipedriveLimits().burst_limit)
    remaining = [int(r.headers["x-ratelimit-remaining"]) for r in (first, second)]
    assert remaining[0] - remaining[1] == 1
    assert int(first.headers["x-ratelimit-reset"]) >= 1
    assert "x-daily-requests-left" in second.headers


async def test_daily_requests_left_counts_writes_only(client: httpx.AsyncClient) -> None:
    first = await client.post("/api/v2/deals", json={"title": "x"})
    read = await client.get("/api/v2/deals")
    second = await client.post("/api/v2/deals", json={"title": "y"})
    left = [int(r.headers["x-daily-requests-left"]) for r in (first, read, second)]
    assert left[0] == left[1] == left[2] + 1


async def test_burst_over_the_limit_gets_429_with_retry_after(sandbox: Sandbox) -> None:
    limits = pipedrive.PipedriveLimits(burst_limit=3, window_seconds=60)
    async with in_process(
        _app(sandbox, limits), "/pipedrive", headers={"x-api-token": TOKEN}
    ) as client:
        statuses = [(await client.get("/api/v2/deals")).status_code for _ in range(4)]
        throttled = await client.get("/api/v2/deals")
    assert statuses == [200, 200, 200, 429]
    assert throttled.json()["success"] is False
    assert throttled.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60


async def test_daily_token_budget_spends_each_operations_token_cost(sandbox: Sandbox) -> None:
    limits = pipedrive.PipedriveLimits(daily_token_budget=25)
    async with in_process(
        _app(sandbox, limits), "/pipedrive", headers={"x-api-token": TOKEN}
    ) as client:
        deal = await client.post("/api/v2/deals", json={"title": "x"})  # costs 5
        search = await client.get("/api/v2/deals/search", params={"term": "xy"})  # costs 20
        over = await client.get(f"/api/v2/deals/{deal.json()['data']['id']}")  # costs 1
    assert (deal.status_code, search.status_code, over.status_code) == (200, 200, 429)
    assert over.json()["error"] == "Daily API token budget exceeded"
    assert 1 <= int(over.headers["retry-after"]) <= 86_400


async def test_limits_can_be_lowered_at_run_time_through_state(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    await client.get("/api/v2/deals")
    with sandbox.state.lock:
        pipedrive.PipedriveEmulator.of(sandbox).bucket.limits.burst_limit = 1
    response = await client.get("/api/v2/deals")
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("rule", "status"),
    [({"throttle_rate": 1.0}, 429), ({"error_rate": 1.0, "error_statuses": [500]}, 500)],
)
async def test_injected_fault_answers_in_pipedrives_body_and_writes_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient, rule: dict[str, Any], status: int
) -> None:
    sandbox.faults.configure(pipedrive.VENDOR, RouteFaults(**rule), route="POST /api/v2/deals")
    response = await client.post("/api/v2/deals", json={"title": "x"})
    assert response.status_code == status
    assert response.json()["success"] is False
    assert response.json()["errorCode"] == status
    assert "deal" not in sandbox.state.counters().get(pipedrive.VENDOR, {})


# --------------------------------------------------------------------------------------------
# The salesperson and the v2 webhook (delivered over loopback)
# --------------------------------------------------------------------------------------------


def _basic_auth_ok(request: ReceivedRequest) -> bool:
    expected = "Basic " + base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    return _header(request, "authorization") == expected


async def test_salesperson_pending_lists_open_deals_only(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    first = await _deal(client)
    second = await _deal(client)
    await client.patch(f"/api/v2/deals/{second['id']}", json={"status": "lost"})
    assert sandbox.roles["salesperson"].pending() == [str(first["id"])]


async def test_people_engine_salesperson_wins_every_open_deal(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    deals = [await _deal(client, title=f"Deal {index}") for index in range(3)]
    always_wins = PersonBehaviour(accept_probability=1, refuse_probability=0, delay_seconds=0)
    sandbox.people.configure("salesperson", always_wins)
    sandbox.people.tick()  # with no delay, the tick that plans also acts
    for deal in deals:
        assert await _stored_status(client, deal) == "won"
    assert sandbox.roles["salesperson"].pending() == []


async def test_salesperson_cannot_close_a_deal_twice(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    deal = await _deal(client)
    sandbox.roles["salesperson"].accept(str(deal["id"]))
    refuse = sandbox.roles["salesperson"].refuse
    assert refuse is not None
    with pytest.raises(pipedrive.PipedriveError, match="not open"):
        refuse(str(deal["id"]))
    assert await _stored_status(client, deal) == "won"


async def test_salesperson_win_sends_deal_change_webhook_with_basic_auth(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    deal = await _watched_deal(client, receiver)
    sandbox.roles["salesperson"].accept(str(deal["id"]))
    [delivery] = receiver.wait_for(1)
    assert _basic_auth_ok(delivery)
    payload = _payload(delivery)
    assert_matches(payload, "pipedrive", "webhook_v2_payload")
    meta = payload["meta"]
    assert (meta["action"], meta["entity"], meta["entity_id"]) == (
        "change",
        "deal",
        str(deal["id"]),
    )
    assert payload["data"]["status"] == "won"
    assert payload["previous"]["status"] == "open"
    assert await _stored_status(client, deal) == "won"


async def test_salesperson_loss_sends_the_lost_reason(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    deal = await _watched_deal(client, receiver)
    assert sandbox.roles["salesperson"].refuse is not None
    sandbox.roles["salesperson"].refuse(str(deal["id"]))
    [delivery] = receiver.wait_for(1)
    data = _payload(delivery)["data"]
    assert data["status"] == "lost"
    assert data["lost_reason"] in pipedrive.LOST_REASONS
    assert _payload(delivery)["previous"]["lost_reason"] is None


async def test_webhook_is_sent_only_to_matching_subscriptions(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await client.post(
        "/api/v1/webhooks",
        json=_subscription(f"{receiver.url}/persons", event_object="person"),
    )
    await client.post(
        "/api/v1/webhooks",
        json=_subscription(f"{receiver.url}/creates", event_action="create"),
    )
    deal = await _deal(client)
    await client.patch(f"/api/v2/deals/{deal['id']}", json={"status": "won"})
    deliveries = receiver.wait_for(1)
    assert sandbox.webhooks.wait_idle()
    assert [(d.path, _payload(d)["meta"]["action"]) for d in receiver.posts()] == [
        ("/hook/creates", "create")
    ]
    assert _payload(deliveries[0])["previous"] is None


async def test_deleted_webhook_subscription_receives_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    created = await client.post(
        "/api/v1/webhooks", json=_subscription(f"{receiver.url}/gone", event_action="*")
    )
    await client.delete(f"/api/v1/webhooks/{created.json()['data']['id']}")
    await _deal(client)
    assert sandbox.webhooks.wait_idle()
    assert receiver.posts() == []


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------


async def test_50_concurrent_creates_and_searches_lose_and_duplicate_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    key = await _deal_field(client)

    async def create_and_find(index: int) -> tuple[int, int, list[int]]:
        person = await _person(
            client, f"Cliente {index}", f"cliente{index}@example.com", f"+55119{index:08d}"
        )
        deal = await _deal(client, person_id=person["id"], custom_fields={key: f"lead-{index}"})
        found = await client.get(
            "/api/v2/deals/search",
            params={"term": f"lead-{index}", "fields": "custom_fields", "exact_match": "true"},
        )
        return person["id"], deal["id"], [i["item"]["id"] for i in found.json()["data"]["items"]]

    results = await asyncio.gather(*(create_and_find(index) for index in range(50)))
    person_ids = {person_id for person_id, _, _ in results}
    deal_ids = {deal_id for _, deal_id, _ in results}
    assert len(person_ids) == len(deal_ids) == 50
    assert all(found == [deal_id] for _, deal_id, found in results)
    assert sandbox.state.counters()["pipedrive"]["person"] == 50
    assert sandbox.state.counters()["pipedrive"]["deal"] == 50
    listed = await client.get("/api/v2/deals", params={"limit": "500"})
    assert sorted(d["id"] for d in listed.json()["data"]) == sorted(deal_ids)


# --------------------------------------------------------------------------------------------
# Over real HTTP
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_lead_to_won_deal_over_loopback(sandbox: Sandbox, receiver: WebhookReceiver) -> None:
    """leadflow's whole Pipedrive stage against the sandbox served on a real socket."""
    with running_sandbox(sandbox=sandbox) as running:
        credentials = running.credentials[pipedrive.VENDOR]
        async with httpx.AsyncClient(
            base_url=running.base_urls[pipedrive.VENDOR],
            headers={"x-api-token": credentials["api_token"]},
        ) as client:
            await client.post(
                "/api/v1/webhooks",
                json=_subscription(f"{receiver.url}/pipedrive", event_action="*", event_object="*"),
            )
            key = await _deal_field(client)
            search = {"term": "maria@example.com.br", "fields": "email", "exact_match": "true"}
            before = await client.get("/api/v2/persons/search", params=search)
            person = await _person(client, "Maria Silva", "maria@example.com.br", "+5511987654321")
            after = await client.get("/api/v2/persons/search", params=search)
            deal = await _deal(client, person_id=person["id"], custom_fields={key: "lead-42"})
            note = await client.post(
                "/api/v1/notes", json={"content": "[leadflow:lead-42]", "deal_id": deal["id"]}
            )
            await asyncio.to_thread(sandbox.roles["salesperson"].accept, str(deal["id"]))
            won = (await client.get(f"/api/v2/deals/{deal['id']}")).json()["data"]
            deliveries = await asyncio.to_thread(receiver.wait_for, 4)
    assert before.json()["data"]["items"] == []
    assert [i["item"]["id"] for i in after.json()["data"]["items"]] == [person["id"]]
    assert note.status_code == 200
    actions = [(_payload(d)["meta"]["entity"], _payload(d)["meta"]["action"]) for d in deliveries]
    assert actions == [("person", "create"), ("deal", "create"), ("note", "create"),
                       ("deal", "change")]  # fmt: skip
    assert all(_basic_auth_ok(d) for d in deliveries)
    assert _payload(deliveries[-1])["data"] == won


@pytest.mark.integration
async def test_shared_loopback_sandbox_serves_pipedrive(sandbox_urls: dict[str, str]) -> None:
    """The session's sandbox (tests/conftest.py) answers at its Pipedrive base URL."""
    email = f"loopback-{time.time_ns()}@example.com"
    async with httpx.AsyncClient(
        base_url=sandbox_urls[pipedrive.VENDOR], headers={"x-api-token": TOKEN}
    ) as client:
        person = await _person(client, "Teste Loopback", email, "+5511955554444")
        found = await client.get(
            "/api/v2/persons/search",
            params={"term": email, "fields": "email", "exact_match": "true"},
        )
    assert [i["item"]["id"] for i in found.json()["data"]["items"]] == [person["id"]]
