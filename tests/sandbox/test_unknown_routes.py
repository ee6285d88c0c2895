"""A wrong path or method under a vendor's prefix fails in that vendor's own error envelope.

A client that calls a path the vendor does not have must fail against the sandbox exactly as it
would fail against the vendor (same status, same error body), never with FastAPI's
`{"detail": "Not Found"}`, which no real vendor sends. Bodies are checked against the trimmed
vendor schemas in tests/contracts/.
"""

from __future__ import annotations

import httpx
import pytest

from tests.contracts import assert_matches

GRAPH_PATHS = [
    ("facebook", "GET", "/facebook/v23.0/1234/no_such_edge/deeper"),
    ("whatsapp", "GET", "/whatsapp/v23.0/1234/no_such_edge/deeper"),
]


@pytest.mark.parametrize(("vendor", "method", "path"), GRAPH_PATHS)
async def test_graph_answers_an_unknown_edge_with_error_2500(
    app_client: httpx.AsyncClient, vendor: str, method: str, path: str
) -> None:
    response = await app_client.request(method, path)

    assert response.status_code == 400
    assert_matches(response.json(), vendor, "graph_error")
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("OAuthException", 2500)
    assert error["message"] == "Unknown path components: /no_such_edge/deeper"


@pytest.mark.parametrize(
    ("vendor", "method", "path", "node"),
    [
        ("facebook", "DELETE", "/facebook/v23.0/777/leads", "777"),
        ("whatsapp", "GET", "/whatsapp/v23.0/555/messages", "555"),
    ],
)
async def test_graph_answers_an_unsupported_method_with_graph_method_exception(
    app_client: httpx.AsyncClient, vendor: str, method: str, path: str, node: str
) -> None:
    response = await app_client.request(method, path)

    assert response.status_code == 400
    assert_matches(response.json(), vendor, "graph_error")
    error = response.json()["error"]
    assert (error["type"], error["code"], error["error_subcode"]) == (
        "GraphMethodException",
        100,
        33,
    )
    assert error["message"].startswith(
        f"Unsupported {method.lower()} request. Object with ID '{node}'"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/pipedrive/api/v2/no_such_thing"), ("PUT", "/pipedrive/api/v2/persons")],
)
async def test_pipedrive_answers_any_unrouted_call_with_unknown_method(
    app_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await app_client.request(method, path)

    assert response.status_code == 404
    assert_matches(response.json(), "pipedrive", "error_response")
    assert response.json()["success"] is False
    assert response.json()["error"] == "Unknown method ."


async def test_docusign_api_answers_an_unknown_path_with_error_details(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/docusign/restapi/v2.1/no_such_resource")

    assert response.status_code == 404
    assert_matches(response.json(), "docusign", "error_details")
    assert response.json()["errorCode"] == "RESOURCE_NOT_FOUND"


async def test_docusign_api_answers_a_wrong_method_with_error_details(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.delete("/docusign/restapi/v2.1/accounts/any/envelopes")

    assert response.status_code == 405
    assert_matches(response.json(), "docusign", "error_details")


async def test_docusign_oauth_server_answers_an_unknown_path_with_an_oauth_error(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/docusign/oauth/no_such_endpoint")

    assert response.status_code == 404
    assert_matches(response.json(), "docusign", "oauth_error")


async def test_paths_outside_every_vendor_keep_the_plain_not_found(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/__sandbox__/no_such_admin_route")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("vendor", ["pipedrive", "docusign"])
async def test_a_vendors_bare_base_url_is_that_vendors_not_found_not_a_redirect(
    app_client: httpx.AsyncClient, vendor: str
) -> None:
    bare, slashed = await app_client.get(f"/{vendor}"), await app_client.get(f"/{vendor}/")

    assert bare.status_code == 404
    assert (bare.status_code, bare.content) == (slashed.status_code, slashed.content)


async def test_a_path_of_another_vendors_layout_is_unknown_under_this_vendor(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/pipedrive/v3/customers")  # Asaas's path, Pipedrive's prefix

    assert response.status_code == 404
    assert_matches(response.json(), "pipedrive", "error_response")
