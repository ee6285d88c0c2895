"""Several workers, each with its own connection, on the same journeys at the same time.

On PostgreSQL this is row locks at work (`FOR UPDATE`, and `SKIP LOCKED` for claims); on
SQLite, `BEGIN IMMEDIATE` lets one writer at a time in. Either way every journey goes to exactly
one worker and moves exactly once, and every effect attempt (a vendor call) to exactly one.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import text

from ledger import EffectInFlight, IllegalTransition, Ledger
from tests.ledger.conftest import fresh_postgres_database

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


def _race_to_begin(ledger_url: str, key: str, workers: int) -> list[str | None]:
    """Every worker begins the effect at the same moment; each answers the lease token it got,
    or None when it was told the effect is in flight."""
    barrier = Barrier(workers)

    def begin(_: int) -> str | None:
        own = Ledger(ledger_url)
        try:
            barrier.wait()
            return own.begin_effect(key, "asaas", "create_pix_charge", None).lease_token
        except EffectInFlight:
            return None
        finally:
            own.dispose()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(begin, range(workers)))


def test_racing_begins_of_a_new_effect_let_exactly_one_worker_call_the_vendor(
    ledger: Ledger, ledger_url: str
) -> None:
    tokens = _race_to_begin(ledger_url, "lead:1:asaas.payment", workers=4)
    holders = [token for token in tokens if token is not None]
    assert len(holders) == 1, f"{len(holders)} workers were allowed to call the vendor"
    effect = ledger.get_effect("lead:1:asaas.payment")
    assert (effect.attempts, effect.lease_token) == (1, holders[0])


def test_racing_retries_of_a_failed_effect_let_exactly_one_worker_call_the_vendor(
    ledger: Ledger, ledger_url: str
) -> None:
    first = ledger.begin_effect("lead:1:asaas.payment", "asaas", "create_pix_charge", None)
    ledger.fail_effect("lead:1:asaas.payment", "503", permanent=False, token=first.lease_token)
    tokens = _race_to_begin(ledger_url, "lead:1:asaas.payment", workers=4)
    holders = [token for token in tokens if token is not None]
    assert len(holders) == 1, f"{len(holders)} workers were allowed to call the vendor"
    effect = ledger.get_effect("lead:1:asaas.payment")
    assert (effect.status, effect.attempts, effect.lease_token) == ("pending", 2, holders[0])


@pytest.fixture(scope="module")
def postgres_ledger(postgres_url: str) -> Iterator[Ledger]:
    """A migrated ledger on its own PostgreSQL database (row locks are PostgreSQL's alone)."""
    with fresh_postgres_database(postgres_url) as url:
        ledger = Ledger(url)
        ledger.upgrade()
        yield ledger
        ledger.dispose()


def test_on_postgresql_a_claim_skips_a_locked_journey_instead_of_waiting_for_it(
    postgres_ledger: Ledger,
) -> None:
    leads = [postgres_ledger.record_lead("facebook", f"skip-{n}", {}).lead_id for n in range(3)]
    with postgres_ledger.engine.connect() as holder:
        # Another worker is in the middle of moving the oldest journey: its row is locked.
        holder.execute(
            text("SELECT id FROM journeys WHERE lead_id = :lead FOR UPDATE"), {"lead": leads[0]}
        )
        with ThreadPoolExecutor(1) as pool:
            claiming = pool.submit(postgres_ledger.claim, "received", 10, "worker-b")
            try:
                # Without SKIP LOCKED the claim would wait for the holder, which never commits
                # before this answer: the wait ends in TimeoutError and the test fails.
                claimed = claiming.result(timeout=10)
            finally:
                holder.rollback()
    assert [journey.lead_id for journey in claimed] == leads[1:]
