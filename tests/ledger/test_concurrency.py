"""Several workers, each with its own connection, on the same journeys at the same time.

On PostgreSQL this is row locks at work (`FOR UPDATE`, and `SKIP LOCKED` for claims); on
SQLite, `BEGIN IMMEDIATE` lets one writer at a time in. Either way every journey goes to exactly
one worker and moves exactly once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from ledger import IllegalTransition, Ledger

JOURNEYS = 1_000
BATCH = 10


def test_two_workers_claim_every_due_journey_exactly_once(ledger: Ledger, ledger_url: str) -> None:
    expected = {
        ledger.record_lead("facebook", f"due-{number}", {"n": number}).lead_id
        for number in range(JOURNEYS)
    }
    workers = ["worker-a", "worker-b"]
    start, first_batch_taken = Barrier(len(workers)), Barrier(len(workers))

    def work(name: str) -> list[int]:
        own = Ledger(ledger_url)  # its own engine, so its own connection
        claimed: list[int] = []
        try:
            start.wait()
            claimed.extend(journey.lead_id for journey in own.claim("received", BATCH, name))
            # Both hold a batch before either goes on: the rest is claimed side by side.
            first_batch_taken.wait()
            while batch := own.claim("received", BATCH, name):
                claimed.extend(journey.lead_id for journey in batch)
        finally:
            own.dispose()
        return claimed

    with ThreadPoolExecutor(len(workers)) as pool:
        per_worker = dict(zip(workers, pool.map(work, workers), strict=True))

    everything = [lead_id for claimed in per_worker.values() for lead_id in claimed]
    assert len(everything) == len(set(everything)) == JOURNEYS, "a journey was claimed twice"
    assert set(everything) == expected
    for name, claimed in per_worker.items():
        assert len(claimed) >= BATCH, f"{name} did not get its first batch"
        assert all(ledger.get_journey(lead_id).claimed_by == name for lead_id in claimed[:5])


def test_racing_transitions_of_one_journey_move_it_exactly_once(
    ledger: Ledger, ledger_url: str
) -> None:
    lead_id = ledger.record_lead("facebook", "raced", {}).lead_id
    workers = 4
    barrier = Barrier(workers)

    def move(number: int) -> str:
        own = Ledger(ledger_url)
        try:
            barrier.wait()
            own.transition(lead_id, "qualified", "webhook", f"worker {number}")
            return "moved"
        except IllegalTransition:
            return "refused"
        finally:
            own.dispose()

    with ThreadPoolExecutor(workers) as pool:
        outcomes = sorted(pool.map(move, range(workers)))
    assert outcomes == ["moved"] + ["refused"] * (workers - 1)
    assert [t.to_state for t in ledger.journey_history(lead_id)] == ["qualified"]
