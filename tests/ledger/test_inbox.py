"""The inbox: every webhook delivery stored once per vendor event, claimed by one worker,
finished as processed or ignored."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from ledger import ClaimLost, InboxOutcome, Ledger
from ledger.errors import UnknownInboxEntry
from tests.ledger.conftest import Clock

BODY = b'{"event":"PAYMENT_RECEIVED","payment":{"id":"pay_1"}}'
HEADERS = {"x-hub-signature-256": "sha256=4f2c", "content-type": "application/json"}


def test_a_delivery_is_stored_with_its_exact_body_and_headers(ledger: Ledger) -> None:
    inbox_id = ledger.store_inbox("asaas", "evt_1", BODY, HEADERS)
    assert isinstance(inbox_id, int)
    (entry,) = ledger.unprocessed_inbox()
    assert entry.id == inbox_id
    assert (entry.vendor, entry.event_id, entry.body, entry.headers) == (
        "asaas",
        "evt_1",
        BODY,
        HEADERS,
    )
    assert entry.received_at.tzinfo is not None
    assert entry.processed_at is None


def test_a_redelivery_of_the_same_event_is_a_quiet_no_op(ledger: Ledger) -> None:
    ledger.store_inbox("asaas", "evt_1", BODY, HEADERS)
    assert ledger.store_inbox("asaas", "evt_1", b"{}", {}) is None
    (entry,) = ledger.unprocessed_inbox()
    assert entry.body == BODY


def test_the_same_event_id_from_another_vendor_is_another_delivery(ledger: Ledger) -> None:
    ledger.store_inbox("asaas", "evt_1", BODY, HEADERS)
    assert ledger.store_inbox("docusign", "evt_1", BODY, HEADERS) is not None


def test_concurrent_redeliveries_store_the_event_exactly_once(
    ledger: Ledger, ledger_url: str
) -> None:
    workers = 6
    barrier = Barrier(workers)
    ledgers = [Ledger(ledger_url) for _ in range(workers)]

    def deliver(own: Ledger) -> int | None:
        barrier.wait()
        return own.store_inbox("pipedrive", "evt-race", BODY, HEADERS)

    try:
        with ThreadPoolExecutor(workers) as pool:
            stored = list(pool.map(deliver, ledgers))
    finally:
        for own in ledgers:
            own.dispose()
    assert sorted(inbox_id is not None for inbox_id in stored) == [False] * (workers - 1) + [True]
    assert len(ledger.unprocessed_inbox()) == 1


def test_unprocessed_deliveries_come_oldest_first_filtered_and_limited(ledger: Ledger) -> None:
    for number in range(3):
        ledger.store_inbox("asaas", f"a{number}", BODY, {})
        ledger.store_inbox("docusign", f"d{number}", BODY, {})
    assert [e.event_id for e in ledger.unprocessed_inbox()] == ["a0", "d0", "a1", "d1", "a2", "d2"]
    assert [e.event_id for e in ledger.unprocessed_inbox("asaas", limit=2)] == ["a0", "a1"]


def test_a_processed_delivery_leaves_the_unprocessed_list(ledger: Ledger) -> None:
    ledger.store_inbox("asaas", "a0", BODY, {})
    ledger.store_inbox("asaas", "a1", BODY, {})
    first = ledger.unprocessed_inbox()[0]
    ledger.mark_inbox_processed(first.id)
    assert [e.event_id for e in ledger.unprocessed_inbox()] == ["a1"]
    assert ledger.get_inbox(first.id).processed_at is not None


def test_marking_a_delivery_processed_twice_keeps_the_first_time(ledger: Ledger, clock) -> None:
    ledger.store_inbox("asaas", "a0", BODY, {})
    entry_id = ledger.unprocessed_inbox()[0].id
    ledger.mark_inbox_processed(entry_id)
    first_time = ledger.get_inbox(entry_id).processed_at
    clock.advance(60)
    ledger.mark_inbox_processed(entry_id)
    assert ledger.get_inbox(entry_id).processed_at == first_time


def test_marking_an_unknown_delivery_raises_unknown_inbox_entry(ledger: Ledger) -> None:
    with pytest.raises(UnknownInboxEntry):
        ledger.mark_inbox_processed(99999)


def test_credential_headers_are_never_stored_but_signatures_are(ledger: Ledger) -> None:
    ledger.store_inbox(
        "asaas",
        "evt_1",
        BODY,
        {
            "asaas-access-token": "whsec_live_token",
            "Authorization": "Basic dXNlcjpwYXNz",
            "X-DocuSign-Signature-1": "bWFj",
            "Content-Type": "application/json",
        },
    )
    (entry,) = ledger.unprocessed_inbox()
    assert entry.headers == {
        "asaas-access-token": "[redacted]",
        "Authorization": "[redacted]",
        "X-DocuSign-Signature-1": "bWFj",
        "Content-Type": "application/json",
    }


def stored(ledger: Ledger, *event_ids: str, vendor: str = "asaas") -> list[int]:
    ids = [ledger.store_inbox(vendor, event_id, BODY, {}) for event_id in event_ids]
    assert all(inbox_id is not None for inbox_id in ids)
    return [inbox_id for inbox_id in ids if inbox_id is not None]


def test_a_claim_takes_unfinished_deliveries_oldest_first_for_one_worker(ledger: Ledger) -> None:
    first, second, third = stored(ledger, "e1", "e2", "e3")
    claimed = ledger.claim_inbox(2, "web-1")
    assert [entry.id for entry in claimed] == [first, second]
    assert {entry.claimed_by for entry in claimed} == {"web-1"}
    assert [entry.id for entry in ledger.claim_inbox(10, "web-2")] == [third]
    assert ledger.claim_inbox(10, "web-3") == []


def test_a_claim_can_name_the_rows_and_the_vendor(ledger: Ledger) -> None:
    first, second = stored(ledger, "e1", "e2")
    (docusign,) = stored(ledger, "d1", vendor="docusign")
    assert [e.id for e in ledger.claim_inbox(10, "web-1", ids=[second, 2**70])] == [second]
    assert [e.id for e in ledger.claim_inbox(10, "web-1", vendor="docusign")] == [docusign]
    assert [e.id for e in ledger.claim_inbox(10, "web-1")] == [first]


def test_an_expired_claim_is_claimable_again_but_a_finished_delivery_never(
    ledger: Ledger, clock: Clock
) -> None:
    first, second = stored(ledger, "e1", "e2")
    ledger.claim_inbox(10, "crashed", lease_seconds=30)
    done = ledger.finish_inbox(second, "crashed", InboxOutcome.PROCESSED)
    assert (done.outcome, done.processed_at is not None) == (InboxOutcome.PROCESSED, True)
    assert ledger.claim_inbox(10, "web-2") == []
    clock.advance(31)
    assert [e.id for e in ledger.claim_inbox(10, "web-2")] == [first]
    assert ledger.unprocessed_inbox()[0].claimed_by == "web-2"


def test_finishing_records_the_outcome_and_reason_and_leaves_the_catch_up_list(
    ledger: Ledger,
) -> None:
    (inbox_id,) = stored(ledger, "e1")
    ledger.claim_inbox(1, "web-1")
    finished = ledger.finish_inbox(inbox_id, "web-1", "ignored", "event for a deleted deal")
    assert (finished.outcome, finished.reason) == ("ignored", "event for a deleted deal")
    assert ledger.get_inbox(inbox_id).outcome is InboxOutcome.IGNORED
    assert ledger.unprocessed_inbox() == []


def test_only_the_worker_holding_a_delivery_may_finish_it(ledger: Ledger, clock: Clock) -> None:
    (inbox_id,) = stored(ledger, "e1")
    with pytest.raises(ClaimLost, match="not claimed"):
        ledger.finish_inbox(inbox_id, "web-1", InboxOutcome.PROCESSED)
    ledger.claim_inbox(1, "stalled", lease_seconds=10)
    clock.advance(11)
    ledger.claim_inbox(1, "web-2")
    with pytest.raises(ClaimLost, match="web-2"):
        ledger.finish_inbox(inbox_id, "stalled", InboxOutcome.PROCESSED)
    ledger.finish_inbox(inbox_id, "web-2", InboxOutcome.PROCESSED)
    with pytest.raises(ClaimLost, match="finished as processed"):
        ledger.finish_inbox(inbox_id, "web-2", InboxOutcome.IGNORED)
    assert ledger.get_inbox(inbox_id).outcome == "processed"


def test_an_unknown_outcome_is_refused(ledger: Ledger) -> None:
    (inbox_id,) = stored(ledger, "e1")
    ledger.claim_inbox(1, "web-1")
    with pytest.raises(ValueError, match="processed, ignored"):
        ledger.finish_inbox(inbox_id, "web-1", "done")


def test_concurrent_inbox_claims_hand_each_delivery_to_exactly_one_worker(
    ledger: Ledger, ledger_url: str
) -> None:
    stored(ledger, *(f"e{number}" for number in range(12)))
    workers = 4
    barrier = Barrier(workers)
    ledgers = [Ledger(ledger_url) for _ in range(workers)]

    def claim(own: Ledger) -> list[int]:
        barrier.wait()
        return [entry.id for entry in own.claim_inbox(5, f"w{id(own)}")]

    try:
        with ThreadPoolExecutor(workers) as pool:
            claimed = [inbox_id for batch in pool.map(claim, ledgers) for inbox_id in batch]
    finally:
        for own in ledgers:
            own.dispose()
    assert len(claimed) == len(set(claimed)) == 12


def test_a_batch_of_deliveries_is_stored_in_one_call_each_once(ledger: Ledger) -> None:
    (earlier,) = stored(ledger, "e0")
    rows = [
        ("asaas", "e1", b"1", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("asaas", "e0", b"again", {}),
        ("asaas", "e1", b"same batch", {}),
        ("docusign", "e1", b"other vendor", {}),
    ]
    ids = ledger.store_inbox_many(rows)
    assert ids[1] is None
    assert ids[2] is None
    assert ids[0] is not None
    assert ids[3] is not None
    assert len({earlier, ids[0], ids[3]}) == 3
    first = ledger.get_inbox(ids[0])
    assert (first.body, first.headers) == (b"1", {"Authorization": "[redacted]"})
    assert ledger.store_inbox_many([]) == []


def test_a_released_delivery_is_claimable_again_at_once(ledger: Ledger) -> None:
    (inbox_id,) = stored(ledger, "e1")
    ledger.claim_inbox(1, "web-1")
    with pytest.raises(ClaimLost):
        ledger.release_inbox(inbox_id, "web-2")
    ledger.release_inbox(inbox_id, "web-1")
    assert ledger.get_inbox(inbox_id).claimed_by is None
    assert [entry.id for entry in ledger.claim_inbox(1, "web-2")] == [inbox_id]
    ledger.finish_inbox(inbox_id, "web-2", InboxOutcome.PROCESSED)
    with pytest.raises(ClaimLost, match="finished"):
        ledger.release_inbox(inbox_id, "web-2")
