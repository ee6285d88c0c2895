"""The shared HTTP policy: what is retried, how long it waits, what it raises, what it logs."""

from __future__ import annotations

import asyncio
import http.server
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from blocks import errors
from blocks.http import (
    HttpPolicy,
    RateLimit,
    RateLimitWaitTooLong,
    VendorHTTP,
    credential_fingerprint,
    parse_retry_after,
    shared_rate_limit,
)
from tests.blocks.conftest import RecordedSleeps

Handler = Callable[[httpx.Request], httpx.Response]
NOW = 1_700_000_000.0


def scripted(*steps: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering each request with the next step (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = steps[min(len(seen), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step

    return httpx.MockTransport(handle), seen


def client(transport: httpx.MockTransport, policy: HttpPolicy, **kwargs: object) -> VendorHTTP:
    return VendorHTTP("acme", "https://api.acme.test", transport=transport, policy=policy, **kwargs)


# ------------------------------------------------------------------------------- Retry-After


async def test_retry_after_in_seconds_is_waited_before_the_next_attempt(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    transport, seen = scripted(
        httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200, json={})
    )
    async with client(transport, policy) as http:
        response = await http.request("GET", "/things")
    assert response.status_code == 200
    assert len(seen) == 2
    assert sleeps.waits == [7.0]


async def test_retry_after_as_an_http_date_is_waited_until_that_date(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 30, tz=UTC), usegmt=True)
    transport, _ = scripted(
        httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json={})
    )
    async with client(transport, policy) as http:
        await http.request("GET", "/things")
    assert sleeps.waits == [30.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("-5", 0.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parses_both_forms_and_ignores_nonsense(
    header: str | None, seconds: float | None
) -> None:
    # NOW is 2023-11-14 22:13:20 UTC
    assert parse_retry_after(header, now=NOW) == seconds


async def test_a_retry_after_beyond_the_total_budget_raises_at_once_with_the_capped_hint(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    transport, seen = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    async with client(transport, policy) as http:
        with pytest.raises(errors.RateLimitedError) as caught:
            await http.request("GET", "/things")
    assert caught.value.retry_after == 120.0  # LEADFLOW_HTTP_MAX_RATE_LIMIT_PAUSE, not an hour
    assert len(seen) == 1
    assert sleeps.waits == []


# ------------------------------------------------------------------------- what is retried


@pytest.mark.parametrize("status", [400, 409, 422])
async def test_a_validation_error_is_never_retried(policy: HttpPolicy, status: int) -> None:
    body = {"error": {"code": "invalid_field", "message": "name is required"}}
    transport, seen = scripted(httpx.Response(status, json=body))
    async with client(transport, policy) as http:
        with pytest.raises(errors.PermanentError) as caught:
            await http.request("GET", "/things/{id}", path_params={"id": 7})
    error = caught.value
    assert len(seen) == 1
    assert type(error) is errors.PermanentError
    assert (error.vendor, error.status, error.code, error.message) == (
        "acme",
        status,
        "invalid_field",
        "name is required",
    )
    assert (error.method, error.path) == ("GET", "/things/{id}")
    assert error.details == body


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
        (404, errors.NotFoundError),
    ],
)
async def test_auth_and_missing_objects_have_their_own_classes(
    policy: HttpPolicy, status: int, error_class: type[errors.PermanentError]
) -> None:
    transport, seen = scripted(httpx.Response(status, json={"message": "nope"}))
    async with client(transport, policy) as http:
        with pytest.raises(error_class):
            await http.request("GET", "/things")
    assert len(seen) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_on_idempotent_requests(
    policy: HttpPolicy, status: int
) -> None:
    transport, seen = scripted(httpx.Response(status), httpx.Response(200, json={"ok": True}))
    async with client(transport, policy) as http:
        response = await http.request("PUT", "/things/1", json={"a": 1})
    assert response.json() == {"ok": True}
    assert len(seen) == 2


async def test_attempts_stop_at_the_cap_and_raise_the_last_transient_error(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    transport, seen = scripted(httpx.Response(502, json={"message": "bad gateway"}))
    async with client(transport, policy) as http:
        with pytest.raises(errors.TransientError) as caught:
            await http.request("GET", "/things")
    assert len(seen) == policy.max_attempts == 5
    assert caught.value.status == 502
    assert len(sleeps.waits) == 4


async def test_backoff_doubles_from_the_base_and_never_exceeds_the_cap(
    sleeps: RecordedSleeps, policy: HttpPolicy
) -> None:
    longer = replace(policy, max_attempts=8)
    transport, _ = scripted(httpx.Response(500))
    async with client(transport, longer) as http:
        with pytest.raises(errors.TransientError):
            await http.request("GET", "/things")
    # jitter is pinned at its ceiling: 0.5 * 2**n, capped at 8
    assert sleeps.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_full_jitter_draws_each_wait_between_zero_and_the_capped_exponential(
    policy: HttpPolicy,
) -> None:
    policy = replace(policy, backoff_cap=30.0, jitter=random.uniform)  # the default jitter
    assert policy.backoff_base == 0.5
    for attempt in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(0.0 <= wait <= ceiling for wait in waits)
    assert len({policy.backoff(10) for _ in range(20)}) > 1  # jittered, not fixed


async def test_network_errors_on_idempotent_requests_are_retried(policy: HttpPolicy) -> None:
    transport, seen = scripted(
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed"),
        httpx.Response(200, json={}),
    )
    async with client(transport, policy) as http:
        await http.request("GET", "/things")
    assert len(seen) == 3


# ----------------------------------------------------------------- non-idempotent requests


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("peer closed"), httpx.WriteError("x")],
)
async def test_a_post_whose_answer_never_came_raises_unknown_outcome_without_retrying(
    policy: HttpPolicy, failure: Exception
) -> None:
    transport, seen = scripted(failure, httpx.Response(201, json={}))
    async with client(transport, policy) as http:
        with pytest.raises(errors.UnknownOutcomeError) as caught:
            await http.request("POST", "/deals", json={"title": "x"})
    assert len(seen) == 1
    assert caught.value.retryable is False


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_post_answered_with_a_server_error_is_an_unknown_outcome(
    policy: HttpPolicy, status: int
) -> None:
    transport, seen = scripted(httpx.Response(status), httpx.Response(201, json={}))
    async with client(transport, policy) as http:
        with pytest.raises(errors.UnknownOutcomeError) as caught:
            await http.request("POST", "/deals", json={"title": "x"})
    assert len(seen) == 1
    assert caught.value.status == status


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")],
)
async def test_a_post_that_never_connected_is_retried(
    policy: HttpPolicy, failure: Exception
) -> None:
    transport, seen = scripted(failure, httpx.Response(201, json={"id": 1}))
    async with client(transport, policy) as http:
        response = await http.request("POST", "/deals", json={"title": "x"})
    assert response.status_code == 201
    assert len(seen) == 2


async def test_a_post_refused_with_429_is_retried(policy: HttpPolicy) -> None:
    transport, seen = scripted(httpx.Response(429), httpx.Response(201, json={"id": 1}))
    async with client(transport, policy) as http:
        await http.request("POST", "/deals", json={"title": "x"})
    assert len(seen) == 2


async def test_a_post_declared_idempotent_is_retried_after_a_timeout(policy: HttpPolicy) -> None:
    transport, seen = scripted(httpx.ReadTimeout("slow"), httpx.Response(200, json={}))
    async with client(transport, policy) as http:
        await http.request("POST", "/search", json={}, idempotent=True)
    assert len(seen) == 2


async def test_a_patch_is_idempotent_by_default(policy: HttpPolicy) -> None:
    transport, seen = scripted(httpx.ReadTimeout("slow"), httpx.Response(200, json={}))
    async with client(transport, policy) as http:
        await http.request("PATCH", "/deals/1", json={"status": "won"})
    assert len(seen) == 2


# ---------------------------------------------------------------------------- request shape


async def test_path_parameters_are_quoted_into_the_template(policy: HttpPolicy) -> None:
    transport, seen = scripted(httpx.Response(200, json={}))
    async with client(transport, policy) as http:
        await http.request("GET", "/forms/{id}/leads", path_params={"id": "a/b c"})
    assert seen[0].url.raw_path == b"/forms/a%2Fb%20c/leads"


async def test_every_request_carries_the_policys_timeouts_and_leadflows_headers(
    policy: HttpPolicy,
) -> None:
    transport, seen = scripted(httpx.Response(200, json={}))
    async with client(transport, policy, headers={"x-api-token": "t"}) as http:
        await http.request("POST", "/deals", params={"a": "1"}, json={"b": 2})
        await http.request("GET", "/deals", headers={"x-request": "r"})
    assert [r.extensions["timeout"] for r in seen] == [policy.timeout().as_dict()] * 2
    assert seen[0].url == "https://api.acme.test/deals?a=1"
    assert seen[0].headers["content-type"] == "application/json"
    assert all(r.headers["user-agent"].startswith("leadflow/") for r in seen)
    assert all(r.headers["x-api-token"] == "t" for r in seen)
    assert seen[1].headers["x-request"] == "r"
    assert "x-request" not in seen[0].headers


async def test_the_total_timeout_bounds_all_attempts_together(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    short = replace(policy, total_timeout=3.0)
    transport, seen = scripted(httpx.Response(503))
    async with client(transport, short) as http:
        with pytest.raises(errors.TransientError):
            await http.request("GET", "/things")
    assert sum(sleeps.waits) < 3.0
    assert len(seen) < short.max_attempts


# ------------------------------------------------------------------------------ rate limits


async def test_concurrent_callers_are_admitted_within_the_bucket_budget() -> None:
    """30 callers at once on a 10/s bucket with burst 5: the k-th waits for its token."""
    frozen = 50.0
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    bucket = RateLimit(rate=10, per=1.0, burst=5, clock=lambda: frozen, sleep=record)
    admitted = await asyncio.gather(*(bucket.acquire() for _ in range(30)))
    admitted_at = sorted(frozen + wait for wait in admitted)
    for k, moment in enumerate(admitted_at):
        # at most burst + rate * elapsed tokens can have been spent by `moment`
        assert k + 1 <= 5 + 10 * (moment - frozen) + 1e-9
    assert admitted_at[4] == frozen  # the burst goes through at once
    assert admitted_at[-1] == pytest.approx(frozen + 2.5)  # (30 - 5) / 10


async def test_concurrent_requests_through_one_client_stay_within_the_budget() -> None:
    """25 requests at once on a 100/s bucket with burst 5, with the real clock and sleep."""
    import time

    arrivals: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        arrivals.append(time.monotonic())
        return httpx.Response(200, json={})

    bucket = RateLimit(rate=100, per=1.0, burst=5)
    started = time.monotonic()
    http = VendorHTTP(
        "acme",
        "https://api.acme.test",
        transport=httpx.MockTransport(handle),
        rate_limit=bucket,
        policy=HttpPolicy.from_settings(),
    )
    async with http:
        await asyncio.gather(*(http.request("GET", "/things") for _ in range(25)))
    assert len(arrivals) == 25
    for k, moment in enumerate(sorted(arrivals)):
        # +1: the event loop may wake a sleeper up to one clock tick early
        assert k + 1 <= 5 + 100 * (moment - started) + 1


async def test_tokens_come_back_with_time() -> None:
    now = [0.0]
    bucket = RateLimit(rate=2, per=1.0, burst=2, clock=lambda: now[0], sleep=asyncio.sleep)
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == 0.0
    now[0] = 1.0  # two tokens earned back
    assert await bucket.acquire() == 0.0
    assert await bucket.acquire() == 0.0


async def test_one_bucket_per_vendor_and_credential_in_the_process() -> None:
    fingerprint = credential_fingerprint("token-a")
    first = shared_rate_limit("pipedrive", fingerprint, rate=20, per=2, burst=20)
    again = shared_rate_limit("pipedrive", fingerprint, rate=20, per=2, burst=20)
    other_token = shared_rate_limit(
        "pipedrive", credential_fingerprint("token-b"), rate=20, per=2, burst=20
    )
    other_vendor = shared_rate_limit("asaas", fingerprint, rate=20, per=2, burst=20)
    assert first is again
    assert first is not other_token
    assert first is not other_vendor
    assert "token-a" not in fingerprint


async def test_every_request_spends_a_token_of_the_shared_bucket(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    bucket = RateLimit(rate=1, per=1.0, burst=2, clock=lambda: 0.0)
    transport, _ = scripted(httpx.Response(200, json={}))
    async with client(transport, policy, rate_limit=bucket) as http:
        for _ in range(4):
            await http.request("GET", "/things")
    assert sleeps.waits == [1.0, 2.0]  # burst of 2 free, then one per second (policy's sleep)


async def test_an_exhausted_vendor_budget_holds_every_caller_until_the_reset(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    bucket = RateLimit(rate=100, per=1.0, burst=100, clock=lambda: 0.0)
    spent = httpx.Response(
        200, json={}, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}
    )
    transport, _ = scripted(spent)
    async with client(transport, policy, rate_limit=bucket) as http:
        await http.request("GET", "/things")
        await http.request("GET", "/things")
    assert sleeps.waits == [2.0]


async def test_a_429_holds_the_shared_bucket_for_other_callers(
    policy: HttpPolicy, sleeps: RecordedSleeps, bucket: RateLimit
) -> None:
    transport, _ = scripted(
        httpx.Response(429, headers={"Retry-After": "4"}), httpx.Response(200, json={})
    )
    async with client(transport, policy, rate_limit=bucket) as http:
        await http.request("GET", "/things")
    # the retry itself waited 4 s; the bucket had been held for those same 4 s, not more
    assert sleeps.waits[0] == 4.0
    assert sum(sleeps.waits) <= 8.0
    assert await bucket.acquire() == 0.0


# ------------------------------------------------------------------------------------ logs


async def test_one_log_line_per_attempt_with_the_path_template(
    policy: HttpPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    transport, _ = scripted(httpx.Response(503), httpx.Response(200, json={}))
    with caplog.at_level(logging.INFO, logger="leadflow.http"):
        async with client(transport, policy) as http:
            await http.request("GET", "/deals/{id}", path_params={"id": 123456})
    records = [r for r in caplog.records if r.name == "leadflow.http"]
    assert [r.attempt for r in records] == [1, 2]  # type: ignore[attr-defined]
    assert [r.status for r in records] == [503, 200]  # type: ignore[attr-defined]
    for record in records:
        message = record.getMessage()
        assert "vendor=acme" in message
        assert "method=GET" in message
        assert "path=/deals/{id}" in message
        assert "duration_ms=" in message
        assert "123456" not in message


async def test_no_secret_or_personal_datum_reaches_the_logs(
    policy: HttpPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    personal = ["maria.souza@example.com", "+5511987654321", "123.456.789-09", "12345678909"]
    error_body = {
        "error": {
            "code": 100,
            "message": "Invalid parameter: maria.souza@example.com / 5511987654321 / "
            "CPF 123.456.789-09 / token=" + secret,
        }
    }
    transport, _ = scripted(httpx.ReadTimeout("slow"), httpx.Response(400, json=error_body))
    with caplog.at_level(logging.DEBUG):
        async with client(transport, policy, headers={"Authorization": f"Bearer {secret}"}) as http:
            with pytest.raises(errors.PermanentError) as caught:
                await http.request(
                    "GET",
                    "/persons/search",
                    params={"term": "maria.souza@example.com", "cpf": "12345678909"},
                    headers={"x-api-token": secret},
                )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    logged += "\n" + str(caught.value) + "\n" + caught.value.message
    assert caplog.records, "the calls were not logged at all"
    for value in [secret, *personal]:
        assert value not in logged


# ------------------------------------------------------------------- budgets and rate limits


async def test_a_rate_limit_wait_beyond_the_time_budget_raises_without_waiting_or_booking(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    bucket = RateLimit(rate=100, per=1.0, burst=100, clock=lambda: 0.0)
    bucket.hold(3600)  # e.g. the vendor said its hourly budget is spent
    transport, seen = scripted(httpx.Response(200, json={}))
    async with client(transport, policy, rate_limit=bucket) as http:
        with pytest.raises(errors.RateLimitedError) as caught:
            await http.request("GET", "/things")
    assert caught.value.retry_after == 3600.0
    assert seen == []
    assert sleeps.waits == []


def test_a_wait_longer_than_allowed_books_nothing() -> None:
    bucket = RateLimit(rate=1, per=10.0, burst=1, clock=lambda: 0.0)
    assert asyncio.run(bucket.acquire()) == 0.0
    with pytest.raises(RateLimitWaitTooLong) as caught:
        asyncio.run(bucket.acquire(max_wait=5.0))
    assert caught.value.wait == 10.0
    # the refused caller left no debt: the next one waits the same 10 s, not 20
    with pytest.raises(RateLimitWaitTooLong) as again:
        asyncio.run(bucket.acquire(max_wait=5.0))
    assert again.value.wait == 10.0


async def test_a_hold_placed_while_a_caller_waits_keeps_that_caller_out_too() -> None:
    """A caller is booked for t=1; while it sleeps, a 429 elsewhere holds the bucket to t=5."""
    now = [0.0]
    slept: list[float] = []
    bucket = RateLimit(rate=1, per=1.0, burst=1, clock=lambda: now[0])

    async def sleep(seconds: float) -> None:
        if not slept:
            bucket.hold(5.0)
        slept.append(seconds)
        now[0] += seconds

    await bucket.acquire(sleep=sleep)  # t=0: the one token of the burst
    await bucket.acquire(sleep=sleep)
    assert slept == [1.0, 4.0]  # booked for t=1, then kept out until the hold ended at t=5


async def test_after_a_hold_the_burst_comes_back_then_the_rate() -> None:
    bucket = RateLimit(rate=10, per=1.0, burst=3, clock=lambda: 0.0)
    bucket.hold(2.0)
    waits = [bucket._reserve(1, None)[0] for _ in range(5)]
    assert waits == pytest.approx([2.0, 2.0, 2.0, 2.1, 2.2])


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}, 2.0),
        ({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "2"}, None),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 40)}, 40.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 40)}, 0.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "-3"}, 0.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "nan"}, None),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "5"}, 5.0),
        ({"x-ratelimit-remaining": "soon"}, None),
        ({}, None),
    ],
)
def test_vendor_rate_limit_headers_give_a_wait_that_is_never_negative(
    headers: dict[str, str], seconds: float | None
) -> None:
    from blocks.http import _rate_limit_reset

    assert _rate_limit_reset(httpx.Response(200, headers=headers), now=NOW) == seconds


async def test_an_http_date_retry_after_already_past_retries_at_once(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    past = format_datetime(datetime.fromtimestamp(NOW - 3600, tz=UTC), usegmt=True)
    transport, seen = scripted(
        httpx.Response(503, headers={"Retry-After": past}), httpx.Response(200, json={})
    )
    async with client(transport, policy) as http:
        await http.request("GET", "/things")
    assert sleeps.waits == [0.0]
    assert len(seen) == 2


async def test_a_retry_after_longer_than_what_is_left_of_the_budget_is_not_slept(
    policy: HttpPolicy, sleeps: RecordedSleeps
) -> None:
    tight = replace(policy, total_timeout=10.0)
    transport, seen = scripted(
        httpx.Response(503, headers={"Retry-After": "6"}),
        httpx.Response(503, headers={"Retry-After": "6"}),  # only 4 s are left by now
        httpx.Response(200, json={}),
    )
    async with client(transport, tight) as http:
        with pytest.raises(errors.TransientError) as caught:
            await http.request("GET", "/things")
    assert caught.value.retry_after == 6.0
    assert sleeps.waits == [6.0]
    assert len(seen) == 2


# -------------------------------------------------------------------------- event loops


class _KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep connections open, as real vendors do

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def keep_alive_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_one_client_serves_calls_from_successive_event_loops(keep_alive_server: str) -> None:
    """A Block's client built once and used by two `asyncio.run`s (two sync Prefect tasks).

    An httpx pool's kept-alive connection belongs to the loop that opened it; reusing it from
    the next loop fails. Each loop must get its own pool.
    """
    vendor = VendorHTTP("acme", keep_alive_server, policy=HttpPolicy.from_settings())

    async def call() -> int:
        return (await vendor.request("GET", "/things")).status_code

    assert asyncio.run(call()) == 200
    assert asyncio.run(call()) == 200  # the first loop is closed by now
    assert asyncio.run(asyncio.wait_for(call(), 10)) == 200

    async def close() -> None:
        await vendor.aclose()

    asyncio.run(close())
    assert vendor.is_closed


async def test_concurrent_loops_in_threads_each_get_a_pool(keep_alive_server: str) -> None:
    vendor = VendorHTTP("acme", keep_alive_server, policy=HttpPolicy.from_settings())

    def in_own_loop() -> int:
        async def call() -> int:
            async with vendor:
                return (await vendor.request("GET", "/things")).status_code

        return asyncio.run(call())

    results = await asyncio.gather(*(asyncio.to_thread(in_own_loop) for _ in range(4)))
    assert (await vendor.request("GET", "/things")).status_code == 200
    assert results == [200] * 4
    await vendor.aclose()


async def _hang(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(30)
    return httpx.Response(200, json={})


async def test_a_hanging_post_is_cut_at_the_total_budget_as_an_unknown_outcome() -> None:
    calls: list[httpx.Request] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return await _hang(request)

    policy = HttpPolicy.from_settings(total_timeout=0.2, read_timeout=30.0)
    async with client(httpx.MockTransport(hang), policy) as http:
        with pytest.raises(errors.UnknownOutcomeError):
            await http.request("POST", "/deals", json={"title": "x"})
    assert len(calls) == 1


async def test_a_hanging_read_gives_up_as_transient_when_the_total_budget_is_spent() -> None:
    policy = HttpPolicy.from_settings(total_timeout=0.2, read_timeout=30.0, backoff_base=0.0)
    async with client(httpx.MockTransport(_hang), policy) as http:
        with pytest.raises(errors.TransientError) as caught:
            await http.request("GET", "/things")
    assert not isinstance(caught.value, errors.UnknownOutcomeError)


BUILT_REQUESTS = [
    ("GET", "/search", {"params": {"term": "maria silva+1@exemplo.com.br", "exact": True}}),
    ("GET", "/search", {"params": {"ids": [1, 2], "empty": None, "text": "ção ü/&="}}),
    ("GET", "/deals/12", {"params": {}}),
    ("GET", "/search", {"params": {"none": []}}),
    ("GET", "/search", {"params": [("term", "+55 (11) 98765-4321"), ("term", "~a_b.c-d")]}),
    ("GET", "/deals?start=0", {"params": {"limit": 5}}),
    ("POST", "/persons", {"json": {"name": "João", "value": 1.5, "list": [True, None]}}),
    ("POST", "/persons", {}),
    ("POST", "/persons", {"json": {"a": 1}, "headers": {"Content-Type": "application/json; x=1"}}),
    ("POST", "/oauth/token", {"data": {"grant_type": "refresh_token", "token": "a b"}}),
    ("DELETE", "/deals/3", {}),
    ("PATCH", "/deals/3", {"json": []}),
    ("GET", "https://other.example.com:8443/next?page=2", {}),
    ("GET", "/envelopes/9f0e-AB_c.d~e/form_data", {}),
    ("GET", "/deals/a%2Fb%20c%C3%A7", {"params": {"x": "1"}}),
    ("GET", "/deals/ção", {}),
    ("GET", "/deals/a b", {}),
    ("GET", "/deals/./1", {}),
    ("GET", "/deals/x/../1", {}),
    ("GET", "/deals/%zz", {}),
    ("GET", "/", {}),
]


@pytest.mark.parametrize(("method", "url", "options"), BUILT_REQUESTS)
def test_a_request_is_built_to_the_same_url_headers_and_body_as_httpx_builds_it(
    method: str, url: str, options: dict[str, Any]
) -> None:
    """VendorHTTP builds its requests itself (a third of httpx's CPU): byte for byte what
    `httpx.Request` makes of the same arguments, header order included."""
    http = VendorHTTP("pipedrive", "http://127.0.0.1:8080/pipedrive", headers={"x-api-token": "t"})
    headers = options.get("headers")
    built = http._build_request(
        method, url, options.get("params"), options.get("json"), options.get("data"), headers
    )
    expected_headers = http._headers.copy()
    expected_headers.update(headers or {})
    expected = httpx.Request(
        method,
        url if "://" in url else http.base_url + url,
        params=options.get("params"),
        json=options.get("json"),
        data=options.get("data"),
        headers=expected_headers,
    )
    assert str(built.url) == str(expected.url)
    assert built.url == expected.url
    assert built.url.path == expected.url.path
    assert built.url.raw_path == expected.url.raw_path
    assert built.url.params == expected.url.params
    assert built.headers.raw == expected.headers.raw
    assert built.read() == expected.read()


@pytest.mark.parametrize(
    "base_url", ["https://API.Example.com:443", "http://[::1]:8080/api/v2", "https://x.com/a%20b"]
)
def test_a_vendor_object_url_is_built_as_httpx_parses_it_whatever_the_base(base_url: str) -> None:
    """A vendor object's URL is the parsed base with the path appended (`_with_path`): the
    same URL httpx parses from the whole string, for a base with no path, an IPv6 host, a
    default port or an escape of its own."""
    http = VendorHTTP("pipedrive", base_url)
    built = http._build_request("GET", "/deals/7-a_b", None, None, None, None)
    expected = httpx.Request("GET", http.base_url + "/deals/7-a_b", headers=http._headers)
    assert built.url == expected.url
    assert str(built.url) == str(expected.url)
    assert built.headers.raw == expected.headers.raw
