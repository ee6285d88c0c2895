"""Malformed vendor answers of the kind tests/blocks/test_unreadable_answers.py does not send:
a 2xx whose JSON has the vendor's field names with values of the wrong type (a list where an
object was, a number for an id, null for a status, ...). For every method of every client the
call either reads a value or raises an error of the vendor error tree: UnknownOutcomeError for
a write (it may have happened: look it up before sending again), TransientError for a read.
Never a TypeError, KeyError or ValidationError, which the journey's error handling would miss
(and which would lose the effect's outcome)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from blocks import TransientError, UnknownOutcomeError
from blocks.docusign import forget_access_tokens
from blocks.errors import PermanentError, VendorError
from blocks.http import HttpPolicy, RateLimit
from tests.blocks.conftest import new_signing_key
from tests.blocks.test_unreadable_answers import AUTH, METHODS, Method, _blocks
from tests.fuzz.budget import fuzz_settings

#: the names the clients read from the vendors' answers (and their envelopes)
FIELD_NAMES = [
    "id",
    "data",
    "success",
    "items",
    "additional_data",
    "pagination",
    "more_items_in_collection",
    "envelopeId",
    "status",
    "statusDateTime",
    "customFields",
    "textCustomFields",
    "name",
    "value",
    "messages",
    "contacts",
    "wa_id",
    "paging",
    "cursors",
    "next",
    "field_data",
    "values",
    "created_time",
    "object",
    "deleted",
    "hasMore",
    "totalCount",
    "offset",
    "limit",
    "key",
    "encodedImage",
    "payload",
    "expirationDate",
    "externalReference",
    "cpfCnpj",
    "dueDate",
    "domain",
    "is_enabled",
    "order_id",
    "vhost",
    "meta",
    "errors",
    "error",
    "access_token",
    "person_id",
    "org_id",
    "deal_id",
    "title",
    "email",
    "phone",
    "form_id",
    "leads",
    "recipients",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
WRONG_TYPES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=6)
    ),
    max_leaves=12,
)
BODIES = st.dictionaries(st.sampled_from(FIELD_NAMES), WRONG_TYPES, max_size=8) | WRONG_TYPES

PEM = new_signing_key()[0]


async def _no_sleep(_: float) -> None:
    return None


def _answer(method: Method, body: Any) -> None:
    """Call `method` against a vendor answering `body` (HTTP 200, JSON), reading its outcome."""
    policy = HttpPolicy(
        connect_timeout=1.0,
        read_timeout=1.0,
        total_timeout=10.0,
        max_attempts=2,
        backoff_base=0.0,
        backoff_cap=0.0,
        sleep=_no_sleep,
    )

    async def run() -> Any:
        client = _blocks(PEM)[method.vendor].get_client(
            policy=policy, rate_limit=RateLimit(1000, 1, 1000)
        )
        try:
            return await method.call(client)
        finally:
            await client.aclose()

    forget_access_tokens()
    with respx.mock(using="keepalive", assert_all_called=False) as router:
        router.post(f"{AUTH}/oauth/token").respond(
            200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
        )
        router.route(host="vendor.test").mock(return_value=httpx.Response(200, json=body))
        error: VendorError | None = None
        try:
            asyncio.run(run())
        except VendorError as raised:
            error = raised
    forget_access_tokens()
    if error is not None and _refusal(method, body):
        assert isinstance(error, PermanentError), f"{type(error).__name__}: {error}"
    elif error is not None:
        expected = UnknownOutcomeError if method.writes else TransientError
        assert isinstance(error, expected), f"{type(error).__name__}: {error}"
        assert error.vendor == method.vendor


def _refusal(method: Method, body: Any) -> bool:
    """Pipedrive's envelope saying `success: false` is the vendor refusing, even under a 200:
    a readable answer, dead-lettered with its message (blocks/pipedrive.py)."""
    return method.vendor == "pipedrive" and isinstance(body, dict) and body.get("success") is False


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.vendor}.{m.name}")
def test_a_success_with_fields_of_the_wrong_type_is_read_or_an_error_of_the_tree(
    method: Method,
) -> None:
    @given(body=BODIES)
    @fuzz_settings(6, suppress=HealthCheck)
    def answers(body: Any) -> None:
        _answer(method, body)

    answers()
