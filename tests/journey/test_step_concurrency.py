"""A step's concurrency is the vendor calls it keeps in flight; it works on twice as many leads
at once, so that one lead's ledger writes overlap another lead's call (tasks/journey.py)."""

from __future__ import annotations

import asyncio

import httpx

from blocks.http import VendorHTTP
from tasks.journey import LEADS_PER_CALL, Move, for_each


class SlowVendor(httpx.AsyncBaseTransport):
    """Answers every request after 10 ms, counting the requests in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1
        return httpx.Response(200, json={})


async def test_a_step_keeps_its_concurrency_of_calls_in_flight_on_twice_as_many_leads() -> None:
    vendor = SlowVendor()
    http = VendorHTTP("acme", "https://api.acme.test", transport=vendor)
    working = peak_working = 0

    async def step(lead_id: int) -> Move:
        nonlocal working, peak_working
        working += 1
        peak_working = max(peak_working, working)
        await asyncio.sleep(0.005)  # the lead's ledger write
        await http.request("GET", "/things")
        working -= 1
        return Move.wait(lead_id, "called", recheck_in=60)

    moves = await for_each(range(1, 61), step, concurrency=5)

    assert [move.lead_id for move in moves] == list(range(1, 61))
    assert vendor.peak == 5
    assert peak_working == 5 * LEADS_PER_CALL == 10
    await http.aclose()


async def test_calls_outside_a_step_are_not_held_to_its_concurrency() -> None:
    vendor = SlowVendor()
    http = VendorHTTP("acme", "https://api.acme.test", transport=vendor)

    async def step(lead_id: int) -> Move:
        await http.request("GET", "/things")
        return Move.wait(lead_id, "called", recheck_in=60)

    await for_each(range(1, 11), step, concurrency=2)
    await asyncio.gather(*(http.request("GET", "/things") for _ in range(8)))

    assert vendor.peak == 8
    await http.aclose()
