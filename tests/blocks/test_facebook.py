"""The Facebook Lead Ads client against respx: forms, leads since a time with paging, one lead."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from blocks.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
    VendorError,
)
from blocks.facebook import FacebookLeadAdsClient, FacebookLeadAdsCredentials, Lead
from blocks.http import HttpPolicy
from tests.contracts import assert_matches

BASE = "https://graph.facebook.com"
TOKEN = "EAAtestPageToken0123456789abcdef"
PAGE = "104857600000001"
FORM = "771200000000001"


def lead(lead_id: str | int = "555971704561545", **overrides: Any) -> dict[str, Any]:
    return {
        "id": lead_id,
        "created_time": "2026-11-29T04:00:00+0000",
        "field_data": [
            {"name": "full_name", "values": ["Maria Souza"]},
            {"name": "email", "values": ["maria@example.com"]},
            {"name": "phone_number", "values": ["+5511987654321"]},
        ],
        "form_id": FORM,
        "is_organic": False,
        "platform": "fb",
        **overrides,
    }


@pytest.fixture
async def facebook(policy: HttpPolicy) -> FacebookLeadAdsClient:
    credentials = FacebookLeadAdsCredentials(page_id=PAGE, page_access_token=TOKEN)
    async with credentials.get_client(policy=policy) as client:
        yield client


async def test_list_forms_of_the_page(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    page = {
        "data": [
            {"id": FORM, "name": "Orçamento site", "status": "ACTIVE", "locale": "pt_BR"},
            {"id": 771200000000002, "name": "Antigo", "status": "ARCHIVED"},
        ],
        "paging": {"cursors": {"before": "QVFI", "after": "QVFJ"}},
    }
    route = mock.get(f"/v23.0/{PAGE}/leadgen_forms").mock(
        return_value=httpx.Response(200, json=page)
    )
    forms = await facebook.list_forms()
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in str(request.url)
    assert [(f.id, f.status) for f in forms] == [
        (FORM, "ACTIVE"),
        ("771200000000002", "ARCHIVED"),
    ]
    page["data"][1]["id"] = "771200000000002"
    assert_matches(page, "facebook", "client_forms_page")


async def test_list_leads_since_a_time_filters_on_time_created(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    answer = {"data": [lead()], "paging": {"cursors": {"before": "a", "after": "b"}}}
    assert_matches(answer, "facebook", "client_leads_page")
    route = mock.get(f"/v23.0/{FORM}/leads").mock(return_value=httpx.Response(200, json=answer))
    since = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    leads = await facebook.list_leads(FORM, since=since)
    params = route.calls.last.request.url.params
    assert json.loads(params["filtering"]) == [
        {"field": "time_created", "operator": "GREATER_THAN", "value": int(since.timestamp())}
    ]
    assert params["limit"] == "100"
    assert "field_data" in params["fields"].split(",")
    assert [item.id for item in leads] == ["555971704561545"]


async def test_list_leads_follows_paging_next_until_it_is_absent(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    next_url = f"{BASE}/v23.0/{FORM}/leads?access_token={TOKEN}&fields=id&limit=1&after=CURSOR2"
    pages = [
        {"data": [lead("1001")], "paging": {"cursors": {"after": "CURSOR2"}, "next": next_url}},
        # a short page is not the end: only a missing `next` is
        {"data": [], "paging": {"cursors": {"after": "CURSOR3"}, "next": next_url + "x"}},
        {"data": [lead(1003)], "paging": {"cursors": {"before": "CURSOR3"}}},
    ]
    route = mock.get(f"/v23.0/{FORM}/leads").mock(
        side_effect=[httpx.Response(200, json=page) for page in pages]
    )
    leads = await facebook.list_leads(FORM)
    assert [item.id for item in leads] == ["1001", "1003"]
    assert route.call_count == 3
    second = route.calls[1].request
    assert second.url.params["after"] == "CURSOR2"
    assert "access_token" not in str(second.url)  # the token stays in the header


async def test_get_lead_parses_answers_and_keeps_ids_as_strings(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    answer = lead()
    assert_matches(answer, "facebook", "client_lead")
    mock.get("/v23.0/555971704561545").mock(return_value=httpx.Response(200, json=answer))
    got = await facebook.get_lead(555971704561545)
    assert got.id == "555971704561545"
    assert got.created_time == datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    assert got.answers() == {
        "full_name": "Maria Souza",
        "email": "maria@example.com",
        "phone_number": "+5511987654321",
    }


def test_a_17_digit_numeric_id_is_kept_exactly() -> None:
    parsed = Lead.model_validate(lead(12345678901234567, form_id=98765432109876543))
    assert (parsed.id, parsed.form_id) == ("12345678901234567", "98765432109876543")


async def test_an_aware_time_is_required_for_the_filter(facebook: FacebookLeadAdsClient) -> None:
    with pytest.raises(ValueError, match="aware"):
        await facebook.list_leads(FORM, since=datetime(2026, 11, 29))


def graph_error(code: int, message: str, status: int = 400) -> httpx.Response:
    body = {
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A"}
    }
    assert_matches(body, "whatsapp", "client_graph_error")
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("lead_id", "code", "message", "expected"),
    [
        pytest.param(
            "1", 190, "Error validating access token", AuthenticationError, id="expired-page-token"
        ),
        pytest.param("9", 100, "Unsupported get request", PermanentError, id="unknown-lead"),
    ],
)
async def test_a_graph_error_on_a_lead_is_the_class_its_code_means_and_carries_the_code(
    mock: respx.MockRouter,
    facebook: FacebookLeadAdsClient,
    lead_id: str,
    code: int,
    message: str,
    expected: type[PermanentError],
) -> None:
    """An expired page token is an authentication error; an unknown lead is permanent."""
    mock.get(f"/v23.0/{lead_id}").mock(return_value=graph_error(code, message))
    with pytest.raises(expected) as caught:
        await facebook.get_lead(lead_id)
    assert caught.value.code == str(code)


async def test_graph_throttling_is_retried_then_rate_limited(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient, policy: HttpPolicy
) -> None:
    route = mock.get("/v23.0/1").mock(return_value=graph_error(4, "(#4) Application request limit"))
    with pytest.raises(RateLimitedError):
        await facebook.get_lead("1")
    assert route.call_count == policy.max_attempts


async def test_a_success_that_is_not_json_is_transient(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    mock.get("/v23.0/1").mock(
        return_value=httpx.Response(
            200, text="<html>login</html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(TransientError, match="not JSON"):
        await facebook.get_lead("1")


# ------------------------------------------------------- every operation: request and failures

CALLS: dict[str, Callable[[FacebookLeadAdsClient], Awaitable[Any]]] = {
    "list_forms": lambda c: c.list_forms(),
    "list_leads": lambda c: c.list_leads(FORM, since=datetime(2026, 11, 29, tzinfo=UTC)),
    "get_lead": lambda c: c.get_lead("555971704561545"),
    "check_access": lambda c: c.check_access(),
}
#: operation -> (path sent, path template carried by errors and logs)
PATHS = {
    "list_forms": (f"/v23.0/{PAGE}/leadgen_forms", "/{version}/{page_id}/leadgen_forms"),
    "list_leads": (f"/v23.0/{FORM}/leads", "/{version}/{form_id}/leads"),
    "get_lead": ("/v23.0/555971704561545", "/{version}/{lead_id}"),
    "check_access": (f"/v23.0/{PAGE}/leadgen_forms", "/{version}/{page_id}/leadgen_forms"),
}


@pytest.mark.parametrize("operation", CALLS)
async def test_every_read_sends_the_page_token_as_bearer_and_asks_for_named_fields(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient, operation: str
) -> None:
    path, _ = PATHS[operation]
    answer = lead() if operation == "get_lead" else {"data": [], "paging": {}}
    route = mock.get(path).mock(return_value=httpx.Response(200, json=answer))
    await CALLS[operation](facebook)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in str(request.url)
    assert request.url.params["fields"]


GRAPH_FAILURES = [
    pytest.param(400, 100, PermanentError, 1, id="400-invalid-parameter"),
    pytest.param(401, 190, AuthenticationError, 1, id="401-expired-token"),
    pytest.param(400, 190, AuthenticationError, 1, id="400-expired-token"),
    pytest.param(403, 10, AuthenticationError, 1, id="403-permission"),
    pytest.param(404, 803, NotFoundError, 1, id="404"),
    pytest.param(400, 4, RateLimitedError, 5, id="400-app-throttled"),
    pytest.param(400, 17, RateLimitedError, 5, id="400-user-throttled"),
    pytest.param(400, 80004, RateLimitedError, 5, id="400-business-use-case"),
    pytest.param(429, 32, RateLimitedError, 5, id="429-page-throttled"),
    pytest.param(500, 1, TransientError, 5, id="500-unknown"),
    pytest.param(503, 2, TransientError, 5, id="503-service"),
]


@pytest.mark.parametrize(("status", "code", "expected", "attempts"), GRAPH_FAILURES)
@pytest.mark.parametrize("operation", CALLS)
async def test_every_read_raises_the_error_class_of_each_graph_failure(
    mock: respx.MockRouter,
    facebook: FacebookLeadAdsClient,
    operation: str,
    status: int,
    code: int,
    expected: type[Exception],
    attempts: int,
) -> None:
    path, template = PATHS[operation]
    route = mock.get(path).mock(return_value=graph_error(code, "Graph says no", status=status))
    with pytest.raises(VendorError) as caught:
        await CALLS[operation](facebook)
    error = caught.value
    assert type(error) is expected
    assert (error.vendor, error.method, error.path, error.status, error.code) == (
        "facebook",
        "GET",
        template,
        status,
        str(code),
    )
    assert error.message == "Graph says no"
    assert route.call_count == attempts


async def test_a_next_link_that_repeats_the_page_stops_the_paging(
    mock: respx.MockRouter, facebook: FacebookLeadAdsClient
) -> None:
    same = f"{BASE}/v23.0/{FORM}/leads?fields=id&limit=1&after=CURSOR2"
    page = {"data": [lead("1001")], "paging": {"next": same}}
    route = mock.get(f"/v23.0/{FORM}/leads").mock(return_value=httpx.Response(200, json=page))
    with pytest.raises(TransientError, match="repeats"):
        await facebook.list_leads(FORM)
    assert route.call_count == 2
