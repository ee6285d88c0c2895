"""Group commit: one transaction per batch, and still exactly one row per (vendor, event id)."""

from __future__ import annotations

import asyncio

from ledger import Ledger
from tests.webhooks.conftest import inbox_rows
from webhooks.inbox_writer import InboxWriter, store_inbox_many


def test_a_batch_stores_each_new_event_once_even_when_it_repeats_inside_the_batch(
    ledger: Ledger,
) -> None:
    assert store_inbox_many(ledger, [("asaas", "evt_1", b"{}", {})])[0] is not None
    ids = store_inbox_many(
        ledger,
        [
            ("asaas", "evt_1", b"{}", {}),  # stored by the earlier batch
            ("asaas", "evt_2", b"{}", {}),
            ("asaas", "evt_2", b"{}", {}),  # the same event twice in one batch
            ("docusign", "evt_2", b"{}", {}),  # another vendor's id space
        ],
    )
    assert ids[0] is None
    assert ids[1] is not None
    assert ids[2] is None
    assert ids[3] is not None
    assert ids[1] != ids[3]
    assert inbox_rows(ledger) == [("asaas", "evt_1"), ("asaas", "evt_2"), ("docusign", "evt_2")]


async def test_concurrent_stores_share_transactions_and_each_gets_its_own_answer(
    ledger: Ledger,
) -> None:
    writer = InboxWriter(ledger)
    await writer.start()
    try:
        keys = [f"evt_{n % 30}" for n in range(90)]  # each event three times, all at once
        ids = await asyncio.gather(*(writer.store("asaas", k, b"{}", {}) for k in keys))
    finally:
        await writer.stop()
    stored = [i for i in ids if i is not None]
    assert len(stored) == len(set(stored)) == 30
    assert len(inbox_rows(ledger)) == 30
    # without start(), each store is its own transaction (tools and tests without lifespan)
    assert await InboxWriter(ledger).store("asaas", "evt_late", b"{}", {}) is not None
