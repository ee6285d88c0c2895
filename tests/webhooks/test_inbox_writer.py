"""Group commit: one transaction per batch, and still exactly one row per (vendor, event id)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from ledger import InvalidValue, Ledger
from tests.webhooks.conftest import inbox_rows
from webhooks.inbox_writer import InboxWriter, store_inbox_many


@pytest.fixture
async def writer(ledger: Ledger) -> AsyncIterator[InboxWriter]:
    """The ledger's InboxWriter, started (concurrent stores share a transaction) and stopped
    after the test."""
    writer = InboxWriter(ledger)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


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
    ledger: Ledger, writer: InboxWriter
) -> None:
    keys = [f"evt_{n % 30}" for n in range(90)]  # each event three times, all at once
    ids = await asyncio.gather(*(writer.store("asaas", k, b"{}", {}) for k in keys))
    stored = [i for i in ids if i is not None]
    assert len(stored) == len(set(stored)) == 30
    assert len(inbox_rows(ledger)) == 30
    # without start(), each store is its own transaction (tools and tests without lifespan)
    assert await InboxWriter(ledger).store("asaas", "evt_late", b"{}", {}) is not None


async def test_an_event_id_no_database_can_key_is_refused_alone_and_its_batch_is_stored(
    ledger: Ledger, writer: InboxWriter
) -> None:
    answers = await asyncio.gather(
        writer.store("asaas", "evt_1", b"{}", {}),
        writer.store("asaas", "evt_\x00", b"{}", {}),  # PostgreSQL refuses NUL in text
        writer.store("asaas", "evt_2", b"{}", {}),
        return_exceptions=True,
    )
    assert isinstance(answers[1], InvalidValue)
    assert isinstance(answers[0], int)
    assert isinstance(answers[2], int)
    assert inbox_rows(ledger) == [("asaas", "evt_1"), ("asaas", "evt_2")]


@pytest.mark.parametrize(
    "ledger_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_batch_after_postgresql_dropped_the_writers_connections_is_still_stored(
    ledger: Ledger, writer: InboxWriter
) -> None:
    assert await writer.store("asaas", "evt_before", b"{}", {}) is not None
    with ledger.engine.connect() as connection:  # what a server restart does to them
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert await writer.store("asaas", "evt_after", b"{}", {}) is not None
    assert inbox_rows(ledger) == [("asaas", "evt_before"), ("asaas", "evt_after")]
