"""Group commit for the inbox: deliveries arriving together are stored in one transaction.

One `store_inbox` per delivery costs a transaction (about 1 ms of this process's CPU on
PostgreSQL, measured), which alone would cap a one-process service near 1,000 deliveries/s.
Here each request hands its delivery to one writer task and waits; while the writer is busy
writing a batch, the next batch gathers. Every request still answers only after ITS row is
committed (DESIGN.md, principle 2): a batch is one INSERT ... ON CONFLICT DO NOTHING RETURNING,
so a redelivery — even one in the same batch as its original — gets no id and stores nothing.

The batch is written here, on the ledger's engine and inbox model, rather than with
`Ledger.store_inbox_many`: that one builds a multi-VALUES statement in an ORM session for each
batch, which measured 364 µs of CPU per row against 86-126 µs for the cached statement below
(batches of 8, SQLite and PostgreSQL) — the difference between the figures in
benchmarks/bench_webhooks.py and half of them. Headers arrive already redacted
(leadflow.privacy.redact_secret_headers) and event ids are at most 255 characters
(events.delivery_event_id).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from ledger import Ledger
from ledger.models import InboxEntry

MAX_BATCH = 256
#: batches committed at once on PostgreSQL (SQLite: one, it has a single writer)
MAX_IN_FLIGHT = 2


@dataclass
class _Pending:
    vendor: str
    event_id: str
    body: bytes
    headers: dict[str, Any]
    future: asyncio.Future[int | None] = field(repr=False)


class InboxWriter:
    """Stores deliveries in batches from one task in the service's loop."""

    def __init__(
        self, ledger: Ledger, max_batch: int = MAX_BATCH, max_in_flight: int | None = None
    ) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        if max_in_flight is None:
            # SQLite has one writer at a time: a second batch would only wait on its lock
            sqlite_ledger = ledger.engine.dialect.name == "sqlite"
            max_in_flight = 1 if sqlite_ledger else MAX_IN_FLIGHT
        self._max_in_flight = max_in_flight
        self._pending: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="webhooks-inbox-writer")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = self._wakeup = None
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the webhook service is stopping"))
        self._pending.clear()

    async def store(
        self, vendor: str, event_id: str, body: bytes, headers: dict[str, Any]
    ) -> int | None:
        """The new inbox id once committed, or None for a redelivery."""
        if self._task is None or self._wakeup is None:  # not started: one transaction each
            return await asyncio.to_thread(
                _store_one, self._ledger, vendor, event_id, body, headers
            )
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(vendor, event_id, body, headers, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        """Start a batch whenever deliveries wait and fewer than `max_in_flight` batches are
        being committed: a commit mostly waits for the database's disk, so a second batch
        overlaps it instead of queueing behind it."""
        assert self._wakeup is not None
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and len(in_flight) < self._max_in_flight:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                task = asyncio.create_task(self._commit(batch))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(self._wake)

    def _wake(self, _committed: asyncio.Task[None]) -> None:
        """A finished commit frees a slot: the loop looks at the queue again."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            ids = await asyncio.to_thread(self._write, batch)
        except Exception as exc:  # each waiting request answers 503, nothing is lost
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, inbox_id in zip(batch, ids, strict=True):
            if not pending.future.done():
                pending.future.set_result(inbox_id)

    def _write(self, batch: list[_Pending]) -> list[int | None]:
        rows = [(p.vendor, p.event_id, p.body, p.headers) for p in batch]
        return store_inbox_many(self._ledger, rows)


def _store_one(
    ledger: Ledger, vendor: str, event_id: str, body: bytes, headers: dict[str, Any]
) -> int | None:
    stored = ledger.store_inbox(vendor, event_id, body, headers)
    return None if stored is None or stored is False else int(stored)


def store_inbox_many(
    ledger: Ledger, rows: list[tuple[str, str, bytes, dict[str, Any]]]
) -> list[int | None]:
    """Store `rows` (vendor, event id, body, redacted headers) in one transaction; for each,
    its new id, or None when that (vendor, event id) was already stored or came earlier in
    the same batch."""
    now = datetime.now(UTC)
    first: dict[tuple[str, str], int] = {}
    values = []
    for index, (vendor, event_id, body, headers) in enumerate(rows):
        if (vendor, event_id) in first:
            continue
        first[(vendor, event_id)] = index
        values.append(
            {
                "vendor": vendor,
                "event_id": event_id,
                "body": body,
                "headers": headers,
                "received_at": now,
            }
        )
    engine = ledger.engine
    # one cached statement executed with many parameter sets: SQLAlchemy batches them into
    # INSERT ... VALUES (...), (...) RETURNING ("insertmanyvalues") without recompiling it,
    # less than half the CPU of building a multi-VALUES statement per batch (measured)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(InboxEntry)
        .on_conflict_do_nothing(index_elements=["vendor", "event_id"])
        .returning(InboxEntry.id, InboxEntry.vendor, InboxEntry.event_id)
    )
    with engine.begin() as connection:
        inserted = {
            (vendor, event_id): id_
            for id_, vendor, event_id in connection.execute(statement, values)
        }
    result: list[int | None] = [None] * len(rows)
    for key, index in first.items():
        result[index] = inserted.get(key)
    return result
