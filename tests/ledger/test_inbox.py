"""The inbox: every webhook delivery stored once per vendor event, then marked processed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from ledger import Ledger
from ledger.errors import UnknownInboxEntry

BODY = b'{"event":"PAYMENT_RECEIVED","payment":{"id":"pay_1"}}'
HEADERS = {"x-hub-signature-256": "sha256=4f2c", "content-type": "application/json"}


def test_a_delivery_is_stored_with_its_exact_body_and_headers(ledger: Ledger) -> None:
    assert ledger.store_inbox("asaas", "evt_1", BODY, HEADERS) is True
    (entry,) = ledger.unprocessed_inbox()
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
    assert ledger.store_inbox("asaas", "evt_1", b"{}", {}) is False
    (entry,) = ledger.unprocessed_inbox()
    assert entry.body == BODY


def test_the_same_event_id_from_another_vendor_is_another_delivery(ledger: Ledger) -> None:
    ledger.store_inbox("asaas", "evt_1", BODY, HEADERS)
    assert ledger.store_inbox("docusign", "evt_1", BODY, HEADERS) is True


def test_concurrent_redeliveries_store_the_event_exactly_once(
    ledger: Ledger, ledger_url: str
) -> None:
    workers = 6
    barrier = Barrier(workers)
    ledgers = [Ledger(ledger_url) for _ in range(workers)]

    def deliver(own: Ledger) -> bool:
        barrier.wait()
        return own.store_inbox("pipedrive", "evt-race", BODY, HEADERS)

    try:
        with ThreadPoolExecutor(workers) as pool:
            stored = list(pool.map(deliver, ledgers))
    finally:
        for own in ledgers:
            own.dispose()
    assert sorted(stored) == [False] * (workers - 1) + [True]
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
