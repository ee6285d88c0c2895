"""What a vendor's limit may do to leadflow: pause no longer than the cap, only where it applies.

And what a 2xx that cannot be read becomes (an error of the tree, never a decode error), the
User-Agent every vendor sees, and the limit shapes Asaas publishes (a rolling window, a cap on
concurrent GETs).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from pydantic import BaseModel

import leadflow
from blocks.errors import RateLimitedError, TransientError, UnknownOutcomeError
from blocks.http import (
    ConcurrencyCap,
    HttpPolicy,
    RateLimit,
    RateLimitWaitTooLong,
    RollingWindow,
    VendorHTTP,
    calls_in_flight,
)
from leadflow.settings import get_settings, reset_settings_cache
from tests.blocks.conftest import RecordedSleeps


def answering(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    return httpx.MockTransport(handle), seen


def vendor(transport: httpx.MockTransport, policy: HttpPolicy, **kwargs: object) -> VendorHTTP:
    return VendorHTTP("acme", "https://api.acme.test", transport=transport, policy=policy, **kwargs)


def slow_route_refused(request: httpx.Request) -> httpx.Response:
    """A vendor that refuses `/slow` with a 429 asking for a minute, and answers the rest."""
    if request.url.path == "/slow":
        return httpx.Response(429, headers={"Retry-After": "60"})
    return httpx.Response(200, json={})


# -------------------------------------------------------------------------------- the cap


def test_the_pause_cap_is_a_setting_of_120_seconds_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reset_settings_cache()
    assert get_settings().http_max_rate_limit_pause == 120.0
    assert HttpPolicy.from_settings().max_rate_limit_pause == 120.0
    monkeypatch.setenv("LEADFLOW_HTTP_MAX_RATE_LIMIT_PAUSE", "15")
    reset_settings_cache()
    try:
        assert HttpPolicy.from_settings().max_rate_limit_pause == 15.0
    finally:
        monkeypatch.delenv("LEADFLOW_HTTP_MAX_RATE_LIMIT_PAUSE")
        reset_settings_cache()


async def test_an_hour_long_retry_after_pauses_the_route_for_the_cap_only(
    policy: HttpPolicy, sleeps: RecordedSleeps, bucket: RateLimit
) -> None:
    roomy = replace(policy, total_timeout=1_000.0)
    transport, seen = answering(
        httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200, json={})
    )
    async with vendor(transport, roomy, rate_limit=bucket) as http:
        await http.request("GET", "/things")
    assert sleeps.waits == [120.0]
    assert len(seen) == 2


async def test_a_pause_longer_than_the_call_budget_is_raised_not_slept_and_holds_only_the_cap(
    policy: HttpPolicy, sleeps: RecordedSleeps, bucket: RateLimit
) -> None:
    tight = replace(policy, total_timeout=30.0)
    transport, _ = answering(httpx.Response(429, headers={"Retry-After": "99999999"}))
    async with vendor(transport, tight, rate_limit=bucket) as http:
        with pytest.raises(RateLimitedError) as caught:
            await http.request("GET", "/things")
    assert caught.value.retry_after == 120.0
    assert sleeps.waits == []
    with pytest.raises(RateLimitWaitTooLong) as held:
        await bucket.acquire(scope="GET /things", max_wait=100.0)  # still held...
    assert held.value.wait == pytest.approx(120.0)  # ...but for the cap, not for three years
    sleeps.now += 120.0
    assert await bucket.acquire(scope="GET /things") == 0.0


async def test_a_spent_rate_limit_header_pauses_no_longer_than_the_cap(
    policy: HttpPolicy, sleeps: RecordedSleeps, bucket: RateLimit
) -> None:
    spent = httpx.Response(
        200, json={}, headers={"ratelimit-remaining": "0", "ratelimit-reset": "86400"}
    )
    transport, _ = answering(spent)
    async with vendor(transport, replace(policy, total_timeout=500.0), rate_limit=bucket) as http:
        await http.request("GET", "/things")
        await http.request("GET", "/things")
    assert sleeps.waits == [120.0]


# ------------------------------------------------------------------------------- the scope


async def test_a_429_on_one_route_does_not_pause_another_route_of_a_per_route_vendor(
    policy: HttpPolicy, sleeps: RecordedSleeps, bucket: RateLimit
) -> None:

    tight = replace(policy, total_timeout=30.0)
    async with vendor(httpx.MockTransport(slow_route_refused), tight, rate_limit=bucket) as http:
        with pytest.raises(RateLimitedError):
            await http.request("GET", "/slow")
        await http.request("GET", "/other")  # its own budget is untouched
        with pytest.raises(RateLimitedError) as again:
            await http.request("GET", "/slow")  # the held route refuses at once
    assert sleeps.waits == []
    assert again.value.retry_after == pytest.approx(60.0)


async def test_a_429_of_a_vendor_wide_limit_pauses_every_route(
    policy: HttpPolicy, sleeps: RecordedSleeps, bucket: RateLimit
) -> None:

    tight = replace(policy, total_timeout=30.0)
    transport = httpx.MockTransport(slow_route_refused)
    async with vendor(transport, tight, rate_limit=bucket, rate_limit_scope="vendor") as http:
        with pytest.raises(RateLimitedError):
            await http.request("GET", "/slow")
        with pytest.raises(RateLimitedError):
            await http.request("GET", "/other")


# --------------------------------------------------------------------- unreadable answers


class Thing(BaseModel):
    id: str
    value: int


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>captive portal</html>"),
        httpx.Response(200, content=b'{"id": "t_1", "val'),  # cut short
        httpx.Response(200, content=b""),
        httpx.Response(201, json={"id": "t_1"}),  # a required field missing
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["html", "truncated", "empty", "missing-field", "wrong-shape"],
)
@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", TransientError), ("POST", UnknownOutcomeError), ("PATCH", UnknownOutcomeError)],
)
async def test_a_success_that_cannot_be_read_is_transient_for_a_read_unknown_for_a_write(
    policy: HttpPolicy, answer: httpx.Response, method: str, expected: type[Exception]
) -> None:
    transport, seen = answering(answer)
    async with vendor(transport, policy) as http:
        with pytest.raises(TransientError) as caught:
            await http.request_parsed(method, "/things", Thing.model_validate)
    assert type(caught.value) is expected
    assert len(seen) == 1
    assert "t_1" not in str(caught.value)


# ------------------------------------------------------------------------------ User-Agent


async def test_every_request_names_leadflow_and_its_version(policy: HttpPolicy) -> None:
    transport, seen = answering(httpx.Response(200, json={}))
    async with vendor(transport, policy) as http:
        await http.request("GET", "/things")
    assert seen[0].headers["user-agent"] == f"leadflow/{leadflow.__version__}"
    assert leadflow.__version__.count(".") == 2


# ------------------------------------------------------------ Asaas-shaped limits, arithmetic


async def test_a_rolling_window_lets_its_whole_quota_through_then_waits_for_the_oldest(
    sleeps: RecordedSleeps,
) -> None:
    window = RollingWindow(5, 100.0, clock=sleeps.clock, sleep=sleeps.sleep)
    for _ in range(5):
        assert await window.acquire() == 0.0
        sleeps.now += 1.0  # calls at 1000, 1001, ..., 1004
    assert await window.acquire() == pytest.approx(95.0)  # the call of 1000 leaves at 1100
    assert sleeps.now == pytest.approx(1_100.0)
    assert await window.acquire() == pytest.approx(1.0)  # then the one of 1001, at 1101


async def test_a_rolling_window_refuses_a_wait_past_max_wait_and_books_nothing(
    sleeps: RecordedSleeps,
) -> None:
    window = RollingWindow(1, 3_600.0, clock=sleeps.clock, sleep=sleeps.sleep)
    await window.acquire()
    with pytest.raises(RateLimitWaitTooLong):
        await window.acquire(max_wait=60.0)
    sleeps.now += 3_600.0
    assert await window.acquire(max_wait=0.0) == 0.0


async def test_a_concurrency_cap_keeps_at_most_its_limit_of_gets_in_flight() -> None:
    cap = ConcurrencyCap(3)
    peak = 0
    release = asyncio.Event()

    async def one_get() -> None:
        nonlocal peak
        async with cap.slot("GET"):
            peak = max(peak, cap.in_flight)
            await release.wait()

    tasks = [asyncio.create_task(one_get()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert cap.in_flight == 3
    async with cap.slot("POST"):  # writes are not what the vendor counts
        assert cap.in_flight == 3
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 3
    assert cap.in_flight == 0


async def test_a_cancelled_waiter_gives_its_slot_to_the_next_one() -> None:
    cap = ConcurrencyCap(1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with cap.slot("GET"):
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(hold())
    patient = asyncio.create_task(hold())
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await asyncio.gather(holder, patient)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert cap.in_flight == 0


# ------------------------------------------------------------- a caller's calls in flight


class HeldAnswers(httpx.AsyncBaseTransport):
    """A vendor that holds every request until released, counting those it holds."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0
        self.released = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.held += 1
        self.peak = max(self.peak, self.held)
        try:
            await self.released.wait()
        finally:
            self.held -= 1
        return httpx.Response(200, json={})


async def until_quiet() -> None:
    """Every task started so far has gone as far as it can without the vendor answering."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_calls_in_flight_caps_the_calls_of_the_tasks_started_inside_it(
    policy: HttpPolicy,
) -> None:
    transport = HeldAnswers()
    http = VendorHTTP("acme", "https://api.acme.test", transport=transport, policy=policy)
    with calls_in_flight(3):
        capped = [asyncio.create_task(http.request("GET", "/things")) for _ in range(10)]
    free = [asyncio.create_task(http.request("GET", "/things")) for _ in range(2)]

    await until_quiet()
    assert transport.held == 3 + 2  # three of the capped calls, and both calls started outside
    transport.released.set()
    await asyncio.gather(*capped, *free)
    assert transport.peak == 5
    await http.aclose()


async def test_a_call_waiting_to_retry_leaves_its_slot_to_another_call(
    policy: HttpPolicy,
) -> None:
    other_answered = asyncio.Event()

    async def backoff_until_the_other_is_answered(seconds: float) -> None:
        await other_answered.wait()

    transport, seen = answering(
        httpx.Response(503), httpx.Response(200, json={}), httpx.Response(200, json={})
    )
    waiting = replace(policy, sleep=backoff_until_the_other_is_answered)
    http = vendor(transport, waiting)

    async def other() -> None:
        await http.request("GET", "/other")
        other_answered.set()

    with calls_in_flight(1):
        retried = asyncio.create_task(http.request("GET", "/retried"))
        await until_quiet()
        await asyncio.wait_for(asyncio.gather(retried, asyncio.create_task(other())), 5)
    assert [request.url.path for request in seen] == ["/retried", "/other", "/retried"]
    await http.aclose()
