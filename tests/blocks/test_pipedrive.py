"""The Pipedrive client against respx: each operation's request, its parsing, and its errors."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from blocks import errors
from blocks.http import HttpPolicy, RateLimit, VendorHTTP
from blocks.pipedrive import (
    PipedriveClient,
    PipedriveCredentials,
    PipedriveOAuth,
    pipedrive_error,
)
from blocks.pipedrive_models import (
    ContactEntry,
    DealCreate,
    DealFieldCreate,
    DealUpdate,
    NoteCreate,
    PersonCreate,
    PersonUpdate,
)
from tests.blocks.conftest import RecordedSleeps
from tests.contracts import assert_matches

BASE = "https://acme.pipedrive.com"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
LEAD_FIELD = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e"


def person(**overrides: Any) -> dict[str, Any]:
    return {
        "id": 11,
        "name": "Maria Souza",
        "owner_id": 1,
        "org_id": None,
        "add_time": "2026-11-29T04:00:00Z",
        "update_time": "2026-11-29T04:00:00Z",
        "emails": [{"value": "maria@example.com", "primary": True, "label": "work"}],
        "phones": [{"value": "+5511987654321", "primary": True, "label": "mobile"}],
        "custom_fields": {},
        **overrides,
    }


def deal(**overrides: Any) -> dict[str, Any]:
    return {
        "id": 31,
        "title": "Site + hospedagem — Maria Souza",
        "value": 1990.0,
        "currency": "BRL",
        "status": "open",
        "person_id": 11,
        "add_time": "2026-11-29T04:00:00Z",
        "update_time": "2026-11-29T04:00:00Z",
        "close_time": None,
        "won_time": None,
        "lost_time": None,
        "lost_reason": None,
        "custom_fields": {LEAD_FIELD: "lead-abc"},
        **overrides,
    }


def ok(data: Any, additional_data: Any = None) -> httpx.Response:
    return httpx.Response(
        200, json={"success": True, "data": data, "additional_data": additional_data}
    )


def search_answer(item: dict[str, Any]) -> dict[str, Any]:
    """A v2 search's answer with one exact hit and no further page."""
    return {
        "success": True,
        "data": {"items": [{"result_score": 1.0, "item": item}]},
        "additional_data": {"next_cursor": None},
    }


def sent_json(route: respx.Route, call: int = 0) -> Any:
    return json.loads(route.calls[call].request.content)


@pytest.fixture
async def pipedrive(policy: HttpPolicy) -> PipedriveClient:
    credentials = PipedriveCredentials(base_url=BASE, api_token=TOKEN)
    async with credentials.get_client(policy=policy) as client:
        yield client


# ---------------------------------------------------------------------------------- persons


async def test_search_persons_by_email_is_exact_and_authenticated_by_header(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    answer = search_answer(
        {
            "id": 11,
            "type": "person",
            "name": "Maria Souza",
            "phones": ["+5511987654321"],
            "emails": ["maria@example.com"],
            "custom_fields": [],
        }
    )
    assert_matches(answer, "pipedrive", "person_search_response")
    route = mock.get("/api/v2/persons/search").mock(return_value=httpx.Response(200, json=answer))
    page = await pipedrive.search_persons("maria@example.com", field="email")
    request = route.calls.last.request
    assert request.headers["x-api-token"] == TOKEN
    assert "api_token" not in str(request.url)
    assert dict(request.url.params) == {
        "term": "maria@example.com",
        "fields": "email",
        "exact_match": "true",
        "limit": "10",
    }
    assert [(m.id, m.emails, m.phones) for m in page.items] == [
        (11, ["maria@example.com"], ["+5511987654321"])
    ]
    assert page.next_cursor is None


async def test_search_persons_returns_the_next_cursor(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    mock.get("/api/v2/persons/search").mock(
        return_value=ok({"items": []}, {"next_cursor": "eyJpZCI6MTF9"})
    )
    page = await pipedrive.search_persons("5511987654321", field="phone", cursor="abc")
    assert page.next_cursor == "eyJpZCI6MTF9"
    assert mock.calls.last.request.url.params["cursor"] == "abc"


async def test_create_person_sends_the_v2_body(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    assert_matches({"success": True, "data": person()}, "pipedrive", "person_response")
    route = mock.post("/api/v2/persons").mock(return_value=ok(person()))
    created = await pipedrive.create_person(
        PersonCreate(
            name="Maria Souza",
            emails=[ContactEntry(value="maria@example.com", primary=True)],
            phones=[ContactEntry(value="+5511987654321", primary=True, label="mobile")],
            custom_fields={LEAD_FIELD: "lead-abc"},
        )
    )
    body = sent_json(route)
    assert_matches(body, "pipedrive", "person_request")
    assert body["emails"] == [{"value": "maria@example.com", "primary": True, "label": "work"}]
    assert body["custom_fields"] == {LEAD_FIELD: "lead-abc"}
    assert created.id == 11
    assert created.emails[0].value == "maria@example.com"


async def test_update_person_patches_only_the_given_fields(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    route = mock.patch("/api/v2/persons/11").mock(return_value=ok(person(name="Maria S.")))
    updated = await pipedrive.update_person(11, PersonUpdate(name="Maria S."))
    assert sent_json(route) == {"name": "Maria S."}
    assert updated.name == "Maria S."


async def test_get_person_parses_the_person(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    mock.get("/api/v2/persons/11").mock(return_value=ok(person()))
    assert (await pipedrive.get_person(11)).phones[0].value == "+5511987654321"


# ------------------------------------------------------------------------------------ deals


async def test_search_deals_by_the_lead_id_custom_field(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    answer = search_answer(
        {
            "id": 31,
            "type": "deal",
            "title": "Site",
            "status": "open",
            "value": 1990,
            "currency": "BRL",
            "person": {"id": 11, "name": "Maria Souza"},
            "custom_fields": ["lead-abc"],
        }
    )
    assert_matches(answer, "pipedrive", "deal_search_response")
    route = mock.get("/api/v2/deals/search").mock(return_value=httpx.Response(200, json=answer))
    page = await pipedrive.search_deals("lead-abc", status="open")
    params = dict(route.calls.last.request.url.params)
    assert params["term"] == "lead-abc"
    assert params["fields"] == "custom_fields"
    assert params["exact_match"] == "true"
    assert params["status"] == "open"
    assert page.items[0].id == 31
    assert page.items[0].person is not None
    assert page.items[0].person.id == 11


async def test_create_deal_sends_the_v2_body(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    assert_matches({"success": True, "data": deal()}, "pipedrive", "deal_response")
    route = mock.post("/api/v2/deals").mock(return_value=ok(deal()))
    created = await pipedrive.create_deal(
        DealCreate(
            title="Site + hospedagem — Maria Souza",
            person_id=11,
            value=1990.0,
            currency="BRL",
            custom_fields={LEAD_FIELD: "lead-abc"},
        )
    )
    body = sent_json(route)
    assert_matches(body, "pipedrive", "deal_request")
    assert body == {
        "title": "Site + hospedagem — Maria Souza",
        "person_id": 11,
        "value": 1990.0,
        "currency": "BRL",
        "custom_fields": {LEAD_FIELD: "lead-abc"},
    }
    assert created.custom_fields[LEAD_FIELD] == "lead-abc"


async def test_update_deal_marks_it_won(mock: respx.MockRouter, pipedrive: PipedriveClient) -> None:
    won = deal(status="won", won_time="2026-11-29T05:00:00Z")
    route = mock.patch("/api/v2/deals/31").mock(return_value=ok(won))
    updated = await pipedrive.update_deal(31, DealUpdate(status="won"))
    assert sent_json(route) == {"status": "won"}
    assert_matches(sent_json(route), "pipedrive", "deal_update_request")
    assert (updated.status, updated.won_time) == ("won", "2026-11-29T05:00:00Z")


async def test_update_deal_marks_it_lost_with_a_reason(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    route = mock.patch("/api/v2/deals/31").mock(
        return_value=ok(deal(status="lost", lost_reason="Sem resposta"))
    )
    updated = await pipedrive.update_deal(31, DealUpdate(status="lost", lost_reason="Sem resposta"))
    assert sent_json(route) == {"status": "lost", "lost_reason": "Sem resposta"}
    assert updated.lost_reason == "Sem resposta"


def test_a_deal_status_outside_open_won_lost_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="status"):
        DealUpdate(status="deleted")  # type: ignore[arg-type]


async def test_get_deal_parses_the_deal(mock: respx.MockRouter, pipedrive: PipedriveClient) -> None:
    mock.get("/api/v2/deals/31").mock(return_value=ok(deal()))
    assert (await pipedrive.get_deal(31)).value == 1990.0


# ------------------------------------------------------------------------- deal fields (v1)


def deal_field(key: str, name: str, field_type: str = "varchar") -> dict[str, Any]:
    return {"id": 12500, "key": key, "name": name, "field_type": field_type, "edit_flag": True}


async def test_list_deal_fields_follows_v1_offset_pages(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    first = {
        "success": True,
        "data": [deal_field("title", "Title")],
        "additional_data": {
            "pagination": {
                "start": 0,
                "limit": 500,
                "more_items_in_collection": True,
                "next_start": 1,
            }
        },
    }
    second = {
        "success": True,
        "data": [deal_field(LEAD_FIELD, "leadflow lead id")],
        "additional_data": {
            "pagination": {"start": 1, "limit": 500, "more_items_in_collection": False}
        },
    }
    assert_matches(first, "pipedrive", "deal_field_list_response")
    route = mock.get("/api/v1/dealFields").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)]
    )
    fields = await pipedrive.list_deal_fields()
    assert [f.key for f in fields] == ["title", LEAD_FIELD]
    assert [f.is_custom_key for f in fields] == [False, True]
    assert [c.request.url.params["start"] for c in route.calls] == ["0", "1"]


async def test_create_deal_field_returns_its_40_hex_key(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    route = mock.post("/api/v1/dealFields").mock(
        return_value=ok(deal_field(LEAD_FIELD, "leadflow lead id"))
    )
    field = await pipedrive.create_deal_field(
        DealFieldCreate(name="leadflow lead id", field_type="varchar")
    )
    assert_matches(sent_json(route), "pipedrive", "deal_field_request")
    assert field.key == LEAD_FIELD


# ------------------------------------------------------------------------------- notes (v1)


def note(content: str = "[leadflow:lead-abc] contrato enviado") -> dict[str, Any]:
    return {
        "id": 71,
        "content": content,
        "deal_id": 31,
        "person_id": 11,
        "active_flag": True,
        "add_time": "2026-11-29 04:00:00",
    }


async def test_list_notes_of_a_deal(mock: respx.MockRouter, pipedrive: PipedriveClient) -> None:
    answer = {
        "success": True,
        "data": [note()],
        "additional_data": {
            "pagination": {
                "start": 0,
                "limit": 100,
                "more_items_in_collection": True,
                "next_start": 100,
            }
        },
    }
    assert_matches(answer, "pipedrive", "note_list_response")
    route = mock.get("/api/v1/notes").mock(return_value=httpx.Response(200, json=answer))
    page = await pipedrive.list_notes(deal_id=31)
    assert route.calls.last.request.url.params["deal_id"] == "31"
    assert page.items[0].content.startswith("[leadflow:lead-abc]")
    assert page.next_start == 100


async def test_create_note_on_a_deal(mock: respx.MockRouter, pipedrive: PipedriveClient) -> None:
    assert_matches({"success": True, "data": note()}, "pipedrive", "note_response")
    route = mock.post("/api/v1/notes").mock(return_value=ok(note()))
    created = await pipedrive.create_note(NoteCreate(content=note()["content"], deal_id=31))
    assert_matches(sent_json(route), "pipedrive", "note_request")
    assert created.id == 71


# ----------------------------------------------------------------------------------- errors


async def test_a_validation_error_is_permanent_with_pipedrive_message(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    body = {
        "success": False,
        "error": "Unknown custom field key",
        "error_info": "Please check developers.pipedrive.com",
        "data": None,
        "additional_data": None,
    }
    assert_matches(body, "pipedrive", "error_response")
    route = mock.post("/api/v2/deals").mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(errors.PermanentError) as caught:
        await pipedrive.create_deal(DealCreate(title="x"))
    assert route.call_count == 1
    assert (caught.value.status, caught.value.message) == (400, "Unknown custom field key")
    assert caught.value.path == "/api/v2/deals"


async def test_a_rejected_token_is_an_authentication_error(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    body = {"success": False, "error": "unauthorized access", "errorCode": 401}
    assert_matches(body, "pipedrive", "unauthorized_response")
    mock.get("/api/v2/deals/31").mock(return_value=httpx.Response(401, json=body))
    with pytest.raises(errors.AuthenticationError) as caught:
        await pipedrive.get_deal(31)
    assert caught.value.code == "401"


async def test_a_missing_deal_is_not_found(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    mock.get("/api/v2/deals/999").mock(
        return_value=httpx.Response(404, json={"success": False, "error": "Deal not found"})
    )
    with pytest.raises(errors.NotFoundError):
        await pipedrive.get_deal(999)


async def test_a_burst_429_is_retried_after_the_window_resets(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    throttled = httpx.Response(
        429,
        json={"success": False, "error": "Too many requests"},
        headers={"x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"},
    )
    route = mock.get("/api/v2/deals/31").mock(side_effect=[throttled, ok(deal())])
    assert (await pipedrive.get_deal(31)).id == 31
    assert route.call_count == 2


async def test_a_create_deal_timeout_is_an_unknown_outcome_not_a_second_deal(
    mock: respx.MockRouter, pipedrive: PipedriveClient
) -> None:
    route = mock.post("/api/v2/deals").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(errors.UnknownOutcomeError):
        await pipedrive.create_deal(DealCreate(title="x"))
    assert route.call_count == 1


# ------------------------------------------------------------------------------------ OAuth


def oauth_credentials(expires_at: float | None) -> PipedriveCredentials:
    return PipedriveCredentials(
        base_url=BASE,
        oauth_access_token="old-access",
        oauth_refresh_token="refresh-1",
        oauth_client_id="client-id",
        oauth_client_secret="client-secret",
        oauth_expires_at=expires_at,
    )


FRESH_TOKENS = {
    "access_token": "new-access",
    "refresh_token": "refresh-2",
    "token_type": "Bearer",
    "expires_in": 3599,
    "scope": "deals:full contacts:full",
    "api_domain": BASE,
}


def token_endpoint(mock: respx.MockRouter) -> respx.Route:
    return mock.post("https://oauth.pipedrive.com/oauth/token").mock(
        return_value=httpx.Response(200, json=FRESH_TOKENS)
    )


async def test_an_expired_oauth_token_is_refreshed_before_the_call(
    mock: respx.MockRouter, policy: HttpPolicy
) -> None:
    credentials = oauth_credentials(expires_at=time.time() - 10)
    refresh = token_endpoint(mock)
    deals = mock.get("/api/v2/deals/31").mock(return_value=ok(deal()))
    async with credentials.get_client(policy=policy) as client:
        await client.get_deal(31)
    token_request = refresh.calls.last.request
    assert token_request.headers["authorization"] == (
        "Basic " + base64.b64encode(b"client-id:client-secret").decode()
    )
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-1"],
    }
    assert deals.calls.last.request.headers["authorization"] == "Bearer new-access"
    # the Block keeps the rotated tokens for the next client
    assert credentials.oauth_access_token is not None
    assert credentials.oauth_access_token.get_secret_value() == "new-access"
    assert credentials.oauth_refresh_token is not None
    assert credentials.oauth_refresh_token.get_secret_value() == "refresh-2"


async def test_a_401_refreshes_the_oauth_token_once_and_repeats_the_call(
    mock: respx.MockRouter, policy: HttpPolicy
) -> None:
    credentials = oauth_credentials(expires_at=None)
    refresh = token_endpoint(mock)
    unauthorized = httpx.Response(401, json={"success": False, "error": "unauthorized access"})
    deals = mock.get("/api/v2/deals/31").mock(side_effect=[unauthorized, ok(deal())])
    async with credentials.get_client(policy=policy) as client:
        assert (await client.get_deal(31)).id == 31
    assert refresh.call_count == 1
    assert [c.request.headers["authorization"] for c in deals.calls] == [
        "Bearer old-access",
        "Bearer new-access",
    ]


async def test_a_failed_refresh_is_an_authentication_error(
    mock: respx.MockRouter, policy: HttpPolicy
) -> None:
    credentials = oauth_credentials(expires_at=time.time() - 10)
    mock.post("https://oauth.pipedrive.com/oauth/token").mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "Invalid refresh token"}
        )
    )
    deals = mock.get("/api/v2/deals/31").mock(return_value=ok(deal()))
    async with credentials.get_client(policy=policy) as client:
        with pytest.raises(errors.AuthenticationError) as caught:
            await client.get_deal(31)
    assert caught.value.code == "invalid_grant"
    assert deals.call_count == 0


async def test_a_401_after_a_fresh_token_is_not_refreshed_again(
    mock: respx.MockRouter, policy: HttpPolicy
) -> None:
    credentials = oauth_credentials(expires_at=None)
    refresh = token_endpoint(mock)
    unauthorized = httpx.Response(401, json={"success": False, "error": "unauthorized access"})
    mock.get("/api/v2/deals/31").mock(return_value=unauthorized)
    async with credentials.get_client(policy=policy) as client:
        with pytest.raises(errors.AuthenticationError):
            await client.get_deal(31)
    assert refresh.call_count == 1


# ------------------------------------------------------------------------------------ Block


@pytest.mark.parametrize(
    "fields",
    [{}, {"api_token": "a", "oauth_access_token": "b"}],
    ids=["neither", "both"],
)
def test_the_block_needs_exactly_one_way_to_authenticate(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PipedriveCredentials(**fields)


def test_the_block_defaults_to_pipedrive_production() -> None:
    assert PipedriveCredentials(api_token="t").base_url == "https://api.pipedrive.com"


async def test_a_spent_daily_token_budget_is_rate_limited_without_sleeping_for_hours(
    mock: respx.MockRouter, policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    """Budget 25 a day: a search (20) and a create (5) pass; the next call would wait ~1 h."""
    credentials = PipedriveCredentials(base_url=BASE, api_token=TOKEN, daily_token_budget=25)
    mock.get("/api/v2/persons/search").mock(return_value=ok({"items": []}, {"next_cursor": None}))
    mock.post("/api/v2/persons").mock(return_value=ok(person()))
    fetch = mock.get("/api/v2/persons/11").mock(return_value=ok(person()))
    async with credentials.get_client(policy=policy) as client:
        await client.search_persons("maria@example.com")
        await client.create_person(PersonCreate(name="Maria Souza"))
        with pytest.raises(errors.RateLimitedError) as caught:
            await client.get_person(11)  # costs 1 more than is left
    assert caught.value.retry_after == pytest.approx(86_400 / 25, rel=0.01)
    assert fetch.call_count == 0
    assert sleeps.waits == []


class CostSpy(RateLimit):
    """A daily budget that records what each call books."""

    def __init__(self) -> None:
        super().__init__(rate=1_000_000, per=86_400.0, burst=1_000_000)
        self.booked: list[float] = []

    async def acquire(self, tokens: float = 1.0, **kwargs: Any) -> float:
        self.booked.append(tokens)
        return await super().acquire(tokens, **kwargs)


#: x-token-cost of each operation in Pipedrive's OpenAPI files (shared/contracts/pipedrive/
#: v2.yaml and v1.yaml at the commit named in tests/contracts/pipedrive/SOURCE.md)
SPEC_TOKEN_COSTS = [
    ("search_persons", 20),
    ("get_person", 1),
    ("create_person", 5),
    ("update_person", 5),
    ("search_deals", 20),
    ("get_deal", 1),
    ("create_deal", 5),
    ("update_deal", 5),
    ("list_deal_fields", 20),
    ("create_deal_field", 10),
    ("list_notes", 20),
    ("create_note", 10),
]


@pytest.mark.parametrize(("operation", "cost"), SPEC_TOKEN_COSTS)
async def test_each_operation_spends_its_published_token_cost(
    mock: respx.MockRouter, policy: HttpPolicy, operation: str, cost: int
) -> None:
    mock.route(host="acme.pipedrive.com").mock(
        side_effect=lambda request: ok(
            {"items": []}
            if request.url.path.endswith("/search")
            else []
            if request.method == "GET" and request.url.path.startswith("/api/v1/")
            else deal_field(LEAD_FIELD, "x")
            if request.url.path == "/api/v1/dealFields"
            else note()
            if request.url.path == "/api/v1/notes"
            else deal()
            if "/deals" in request.url.path
            else person()
        )
    )
    spy = CostSpy()
    credentials = PipedriveCredentials(base_url=BASE, api_token=TOKEN)
    client = credentials.get_client(policy=policy)
    async with PipedriveClient(client._http, daily_budget=spy) as pipedrive:
        await CALLS[operation](pipedrive)
    assert spy.booked == [cost]


async def test_concurrent_401s_share_one_refresh(
    mock: respx.MockRouter, policy: HttpPolicy
) -> None:
    credentials = oauth_credentials(expires_at=None)
    refresh = token_endpoint(mock)

    def by_token(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer old-access":
            return httpx.Response(401, json={"success": False, "error": "unauthorized access"})
        return ok(deal())

    mock.get("/api/v2/deals/31").mock(side_effect=by_token)
    async with credentials.get_client(policy=policy) as client:
        results = await asyncio.gather(*(client.get_deal(31) for _ in range(5)))
    assert [deal.id for deal in results] == [31] * 5
    assert refresh.call_count == 1


# ------------------------------------------------------- every operation: request and failures

CALLS: dict[str, Callable[[PipedriveClient], Awaitable[Any]]] = {
    "search_persons": lambda c: c.search_persons("maria@example.com"),
    "get_person": lambda c: c.get_person(11),
    "create_person": lambda c: c.create_person(PersonCreate(name="Maria Souza")),
    "update_person": lambda c: c.update_person(11, PersonUpdate(name="Maria S.")),
    "search_deals": lambda c: c.search_deals("lead-abc"),
    "get_deal": lambda c: c.get_deal(31),
    "create_deal": lambda c: c.create_deal(DealCreate(title="Site")),
    "update_deal": lambda c: c.update_deal(31, DealUpdate(status="won")),
    "list_deal_fields": lambda c: c.list_deal_fields(),
    "create_deal_field": lambda c: c.create_deal_field(
        DealFieldCreate(name="leadflow lead id", field_type="varchar")
    ),
    "list_notes": lambda c: c.list_notes(deal_id=31),
    "create_note": lambda c: c.create_note(NoteCreate(content="[leadflow:x] ok", deal_id=31)),
}

#: operation -> (HTTP method, path sent, path template logged and carried by errors)
ROUTES: dict[str, tuple[str, str, str]] = {
    "search_persons": ("GET", "/api/v2/persons/search", "/api/v2/persons/search"),
    "get_person": ("GET", "/api/v2/persons/11", "/api/v2/persons/{id}"),
    "create_person": ("POST", "/api/v2/persons", "/api/v2/persons"),
    "update_person": ("PATCH", "/api/v2/persons/11", "/api/v2/persons/{id}"),
    "search_deals": ("GET", "/api/v2/deals/search", "/api/v2/deals/search"),
    "get_deal": ("GET", "/api/v2/deals/31", "/api/v2/deals/{id}"),
    "create_deal": ("POST", "/api/v2/deals", "/api/v2/deals"),
    "update_deal": ("PATCH", "/api/v2/deals/31", "/api/v2/deals/{id}"),
    "list_deal_fields": ("GET", "/api/v1/dealFields", "/api/v1/dealFields"),
    "create_deal_field": ("POST", "/api/v1/dealFields", "/api/v1/dealFields"),
    "list_notes": ("GET", "/api/v1/notes", "/api/v1/notes"),
    "create_note": ("POST", "/api/v1/notes", "/api/v1/notes"),
}

#: the request schema each write's body must match (tests/contracts/pipedrive/)
REQUEST_SCHEMAS = {
    "create_person": "person_request",
    "update_person": "person_request",
    "create_deal": "deal_request",
    "update_deal": "deal_update_request",
    "create_deal_field": "deal_field_request",
    "create_note": "note_request",
}


@pytest.mark.parametrize("operation", CALLS)
async def test_every_operation_sends_the_token_header_to_its_documented_path(
    mock: respx.MockRouter, pipedrive: PipedriveClient, operation: str
) -> None:
    method, path, _ = ROUTES[operation]
    answer = (
        ok({"items": []}, {"next_cursor": None})
        if path.endswith("/search")
        else ok([], {"pagination": {"more_items_in_collection": False}})
        if method == "GET" and path.startswith("/api/v1/")
        else ok(deal_field(LEAD_FIELD, "leadflow lead id"))
        if path == "/api/v1/dealFields"
        else ok(note())
        if path == "/api/v1/notes"
        else ok(deal() if "/deals" in path else person())
    )
    route = mock.route(method=method, path=path).mock(return_value=answer)
    await CALLS[operation](pipedrive)
    request = route.calls.last.request
    assert request.headers["x-api-token"] == TOKEN
    assert "api_token" not in str(request.url)
    assert "authorization" not in request.headers
    if operation in REQUEST_SCHEMAS:
        assert request.headers["content-type"] == "application/json"
        assert_matches(sent_json(route), "pipedrive", REQUEST_SCHEMAS[operation])


def test_request_models_only_use_field_names_the_contract_declares() -> None:
    from tests.contracts import load_schema

    for model, schema in [
        (PersonCreate, "person_request"),
        (PersonUpdate, "person_request"),
        (DealCreate, "deal_request"),
        (DealUpdate, "deal_update_request"),
        (DealFieldCreate, "deal_field_request"),
        (NoteCreate, "note_request"),
    ]:
        declared = _declared_properties(load_schema("pipedrive", schema))
        assert set(model.model_fields) <= declared, (model.__name__, set(model.model_fields))


def _declared_properties(schema: dict[str, Any]) -> set[str]:
    names = set(schema.get("properties", {}))
    definitions = schema.get("$defs") or schema.get("components", {}).get("schemas", {})
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            if "$ref" in part:
                part = definitions[part["$ref"].rsplit("/", 1)[-1]]
            names |= _declared_properties({**part, "$defs": definitions})
    return names


FAILURES = [
    pytest.param(
        400,
        {"success": False, "error": "Bad request", "error_info": "Check the docs"},
        errors.PermanentError,
        id="400",
    ),
    pytest.param(
        401,
        {"success": False, "error": "unauthorized access", "errorCode": 401},
        errors.AuthenticationError,
        id="401",
    ),
    pytest.param(
        403, {"success": False, "error": "Forbidden"}, errors.AuthenticationError, id="403"
    ),
    pytest.param(404, {"success": False, "error": "Not found"}, errors.NotFoundError, id="404"),
    pytest.param(
        429, {"success": False, "error": "Too many requests"}, errors.RateLimitedError, id="429"
    ),
    pytest.param(
        503, {"success": False, "error": "Service unavailable"}, errors.TransientError, id="503"
    ),
]


@pytest.mark.parametrize(("status", "body", "expected"), FAILURES)
@pytest.mark.parametrize("operation", CALLS)
async def test_every_operation_raises_the_error_class_of_each_failure(
    mock: respx.MockRouter,
    pipedrive: PipedriveClient,
    policy: HttpPolicy,
    operation: str,
    status: int,
    body: dict[str, Any],
    expected: type[Exception],
) -> None:
    method, path, template = ROUTES[operation]
    route = mock.route(method=method, path=path).mock(
        return_value=httpx.Response(status, json=body)
    )
    if status == 503 and method == "POST":
        expected = errors.UnknownOutcomeError  # a create that may have happened is never re-sent
    with pytest.raises(errors.VendorError) as caught:
        await CALLS[operation](pipedrive)
    error = caught.value
    assert type(error) is expected
    assert (error.vendor, error.method, error.path, error.status) == (
        "pipedrive",
        method,
        template,
        status,
    )
    assert error.message.startswith(body["error"])  # the vendor's own words
    retried = status == 429 or (status == 503 and method != "POST")
    assert route.call_count == (policy.max_attempts if retried else 1)


@pytest.mark.parametrize("status", [500, 503])
async def test_a_token_endpoint_outage_is_transient_not_bad_credentials(
    mock: respx.MockRouter, policy: HttpPolicy, status: int
) -> None:
    credentials = oauth_credentials(expires_at=time.time() - 10)
    mock.post("https://oauth.pipedrive.com/oauth/token").mock(
        return_value=httpx.Response(status, text="upstream down")
    )
    deals = mock.get("/api/v2/deals/31").mock(return_value=ok(deal()))
    async with credentials.get_client(policy=policy) as client:
        with pytest.raises(errors.TransientError) as caught:
            await client.get_deal(31)
    assert not isinstance(caught.value, errors.AuthenticationError)
    assert caught.value.status == status
    assert deals.call_count == 0


def test_oauth_refreshes_work_from_successive_event_loops(
    mock: respx.MockRouter, policy: HttpPolicy
) -> None:
    """Concurrent refreshes in one `asyncio.run`, then again in the next (two sync tasks).

    The token endpoint takes a moment, so the other calls queue on the refresh lock: a lock
    from the first loop would refuse to serve the second.
    """
    now = [0.0]

    async def slow_token_endpoint(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json=FRESH_TOKENS)

    refresh = mock.post("https://oauth.pipedrive.com/oauth/token").mock(
        side_effect=slow_token_endpoint
    )
    mock.get("/api/v2/deals/31").mock(return_value=ok(deal()))
    auth = PipedriveOAuth(
        access_token="old-access",
        refresh_token="refresh-1",
        client_id="client-id",
        client_secret="client-secret",
        expires_at=0.0,
        clock=lambda: now[0],
    )
    pipedrive = PipedriveClient(
        VendorHTTP("pipedrive", BASE, auth=auth, policy=policy, error_parser=pipedrive_error)
    )

    async def three_at_once() -> None:
        await asyncio.gather(*(pipedrive.get_deal(31) for _ in range(3)))

    asyncio.run(three_at_once())
    now[0] += 7_200  # the refreshed token has expired as well
    asyncio.run(three_at_once())
    assert refresh.call_count == 2


@pytest.mark.parametrize(
    ("fields", "per_2s"),
    [
        ({"api_token": "t"}, 20),
        ({"oauth_access_token": "a"}, 80),
        ({"api_token": "t", "burst_limit": 40}, 40),
    ],
    ids=["api-token", "oauth", "configured"],
)
def test_the_burst_limit_defaults_to_the_published_one_for_the_kind_of_token(
    fields: dict[str, Any], per_2s: int
) -> None:
    credentials = PipedriveCredentials(base_url=BASE, **fields)
    bucket = credentials.get_client()._http.rate_limit
    assert bucket is not None
    assert (bucket.rate, bucket.per, bucket.burst) == (per_2s, 2.0, per_2s)


async def test_rotated_oauth_tokens_are_saved_back_to_the_block_document(
    prefect_server: None, policy: HttpPolicy
) -> None:
    name = f"oauth-{uuid.uuid4().hex[:8]}"
    await oauth_credentials(expires_at=None).asave(name)
    loaded = await PipedriveCredentials.aload(name)
    with respx.mock(using="keepalive", assert_all_called=False) as router:
        router.route(host="127.0.0.1").pass_through()  # the Prefect API
        refresh = token_endpoint(router)
        unauthorized = httpx.Response(401, json={"success": False, "error": "unauthorized"})
        router.get(f"{BASE}/api/v2/deals/31").mock(side_effect=[unauthorized, ok(deal())])
        async with loaded.get_client(policy=policy) as client:
            await client.get_deal(31)
    assert refresh.call_count == 1
    saved = await PipedriveCredentials.aload(name)
    assert saved.oauth_refresh_token is not None
    assert saved.oauth_refresh_token.get_secret_value() == "refresh-2"
    assert saved.oauth_access_token is not None
    assert saved.oauth_access_token.get_secret_value() == "new-access"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.search_persons("x@example.com", field="organization"),
        lambda c: c.search_deals("lead-abc", field="email"),
        lambda c: c.search_deals("lead-abc", status="deleted"),
    ],
    ids=["person-field", "deal-field", "deal-status"],
)
async def test_a_search_pipedrive_does_not_offer_is_refused_before_sending(
    mock: respx.MockRouter,
    pipedrive: PipedriveClient,
    call: Callable[[PipedriveClient], Awaitable[Any]],
) -> None:
    route = mock.route(host="acme.pipedrive.com")
    with pytest.raises(ValueError, match=r"search|status"):
        await call(pipedrive)
    assert route.call_count == 0
