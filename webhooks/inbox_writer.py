"""Group commit for the inbox: deliveries arriving together are stored in one transaction.

One `store_inbox` per delivery costs a transaction (about 1 ms of this process's CPU on
PostgreSQL, measured), which alone would cap a one-process service near 1,000 deliveries/s.
Here each request hands its delivery to one writer task and waits; while the writer is busy
writing a batch, the next batch gathers. Every request still answers only after ITS row is
committed (DESIGN.md, principle 2): a batch is one INSERT ... ON CONFLICT DO NOTHING RETURNING,
so a redelivery — even one in the same batch as its original — gets no id and stores nothing.

On PostgreSQL the batch is written from the service's event loop on the writer's own psycopg
connections (`PostgresInbox`): one prepared statement that unnests arrays, in autocommit, so a
batch is one round trip with no thread hop, no pool checkout and no ping. Through the ledger's
engine the same batch cost a thread hop, a pre-ping round trip, BEGIN and COMMIT round trips
and an INSERT whose text (and PostgreSQL's plan) changed with the batch size: about 40% of the
service's CPU per delivery (py-spy, benchmarks/bench_webhooks.py). On SQLite the batch is one
cached statement on the ledger's engine in a thread (`store_inbox_many`): SQLite has no server
to talk to asynchronously. Both write the ledger's inbox model with its column types (headers
through the ledger's JSON type), not `Ledger.store_inbox_many`, which builds a multi-VALUES
statement in an ORM session for each batch (364 µs of CPU per row against 86-126 µs, measured).
Headers arrive already redacted (leadflow.privacy.redact_secret_headers); vendor and event id
are checked as the ledger checks them (`check_identifier`) before they join a batch, so one
unstorable delivery is refused alone instead of failing its whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from ledger import Ledger, LedgerUnavailable
from ledger._core import check_identifier
from ledger.engine import POSTGRES_CONNECT_TIMEOUT_S
from ledger.models import InboxEntry, JsonDocument

MAX_BATCH = 256
#: batches committed at once on PostgreSQL, each on its own connection: a commit mostly waits
#: (for the disk, and for the server's turn on a busy machine), so more overlap it; 8 measured
#: best of 2/4/8 with 32 deliveries in flight. SQLite: one, it has a single writer.
MAX_IN_FLIGHT = 8

#: (vendor, event id, body, redacted headers): one delivery to store
Row = tuple[str, str, bytes, dict[str, Any]]


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
        on_postgres = ledger.engine.dialect.name == "postgresql"
        if max_in_flight is None:
            # SQLite has one writer at a time: a second batch would only wait on its lock
            max_in_flight = MAX_IN_FLIGHT if on_postgres else 1
        self._max_in_flight = max_in_flight
        self._postgres = PostgresInbox(ledger.engine) if on_postgres else None
        self._pending: list[_Pending] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="webhooks-inbox-writer")

    async def stop(self) -> None:
        """Finish the batches being committed, refuse the ones still gathering, close."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = self._wakeup = None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the webhook service is stopping"))
        self._pending.clear()
        if self._postgres is not None:
            await self._postgres.close()

    async def store(
        self, vendor: str, event_id: str, body: bytes, headers: dict[str, Any]
    ) -> int | None:
        """The new inbox id once committed, or None for a redelivery; InvalidValue (alone,
        before any batch) for a vendor or event id the ledger cannot store."""
        check_identifier("vendor", vendor, 64)
        check_identifier("event_id", event_id, 255)
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
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and len(self._in_flight) < self._max_in_flight:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                task = asyncio.create_task(self._commit(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                task.add_done_callback(self._wake)

    def _wake(self, _committed: asyncio.Task[None]) -> None:
        """A finished commit frees a slot: the loop looks at the queue again."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def _commit(self, batch: list[_Pending]) -> None:
        rows = [(p.vendor, p.event_id, p.body, p.headers) for p in batch]
        try:
            if self._postgres is not None:
                ids = await self._postgres.store(rows)
            else:
                ids = await asyncio.to_thread(store_inbox_many, self._ledger, rows)
        except Exception as exc:  # each waiting request answers 503, nothing is lost
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, inbox_id in zip(batch, ids, strict=True):
            if not pending.future.done():
                pending.future.set_result(inbox_id)


def _store_one(
    ledger: Ledger, vendor: str, event_id: str, body: bytes, headers: dict[str, Any]
) -> int | None:
    stored = ledger.store_inbox(vendor, event_id, body, headers)
    return None if stored is None or stored is False else int(stored)


def _first_of_each(rows: list[Row]) -> dict[tuple[str, str], int]:
    """The index of each (vendor, event id)'s first row: a later one in the same batch is a
    redelivery and gets no id."""
    first: dict[tuple[str, str], int] = {}
    for index, (vendor, event_id, _body, _headers) in enumerate(rows):
        first.setdefault((vendor, event_id), index)
    return first


def _ids_in_order(
    rows: list[Row], first: dict[tuple[str, str], int], inserted: dict[tuple[str, str], int]
) -> list[int | None]:
    result: list[int | None] = [None] * len(rows)
    for key, index in first.items():
        result[index] = inserted.get(key)
    return result


def store_inbox_many(ledger: Ledger, rows: list[Row]) -> list[int | None]:
    """Store `rows` (vendor, event id, body, redacted headers) in one transaction on the
    ledger's engine; for each, its new id, or None when that (vendor, event id) was already
    stored or came earlier in the same batch."""
    now = datetime.now(UTC)
    first = _first_of_each(rows)
    values = [
        {
            "vendor": rows[index][0],
            "event_id": rows[index][1],
            "body": rows[index][2],
            "headers": rows[index][3],
            "received_at": now,
        }
        for index in first.values()
    ]
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
    return _ids_in_order(rows, first, inserted)


#: The whole batch in one statement whose text never changes (prepared once per connection):
#: the columns arrive as arrays, one element per delivery, in binary (psycopg escapes every
#: element of a text-format array with a regular expression: a tenth of the CPU, measured).
_INSERT_UNNESTED = f"""
INSERT INTO {InboxEntry.__tablename__} (vendor, event_id, body, headers, received_at)
SELECT vendor, event_id, body, headers::jsonb, %(now)s
FROM unnest(%(vendors)b::text[], %(event_ids)b::text[], %(bodies)b::bytea[],
            %(headers)b::text[]) AS delivery(vendor, event_id, body, headers)
ON CONFLICT (vendor, event_id) DO NOTHING
RETURNING id, vendor, event_id
"""  # noqa: S608 - the table name is the model's constant; every value is a parameter


class PostgresInbox:
    """Batches of deliveries written to PostgreSQL from the event loop, on connections of
    its own (psycopg's async API, the ledger's URL), at most one batch per connection.

    Autocommit: the INSERT is its own transaction, and psycopg returns its rows only once
    the server says it is ready for the next query, which is after the commit, so a batch
    that returned is durable and a batch that raised is acknowledged to no one. A
    connection that failed is closed and the next batch opens a new one.
    """

    def __init__(self, engine: Engine) -> None:
        _args, params = engine.dialect.create_connect_args(engine.url)
        params.pop("context", None)  # SQLAlchemy's adapters: these parameters need none
        params.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        self._params = params
        self._url = engine.url.render_as_string(hide_password=True)
        self._dialect = engine.dialect
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    async def store(self, rows: list[Row]) -> list[int | None]:
        """Store `rows` in one statement; for each its new id, or None when that (vendor,
        event id) was already stored or came earlier in the batch. LedgerUnavailable when
        the batch could not be written: none of it is acknowledged."""
        first = _first_of_each(rows)
        unique = [rows[index] for index in first.values()]
        parameters = {
            "now": datetime.now(UTC),
            "vendors": [row[0] for row in unique],
            "event_ids": [row[1] for row in unique],
            "bodies": [row[2] for row in unique],
            "headers": [self._json(row[3]) for row in unique],
        }
        try:
            inserted = await self._insert(parameters)
        except psycopg.Error as exc:
            raise LedgerUnavailable(
                f"could not store inbox deliveries in {self._url}: "
                f"{type(exc).__name__} {exc.sqlstate or ''}".rstrip()
            ) from None
        return _ids_in_order(rows, first, inserted)

    async def _insert(self, parameters: dict[str, Any]) -> dict[tuple[str, str], int]:
        """The batch's new ids by (vendor, event id), on an idle connection or a new one."""
        if self._idle:
            try:
                return await self._insert_on(self._idle.pop(), parameters)
            except psycopg.OperationalError:
                # an idle connection the server dropped (a restart, idle_session_timeout):
                # what the pool's pre-ping was for. Once more on a new connection, where a
                # row the first attempt did commit comes back as a redelivery: still stored.
                pass
        return await self._insert_on(await self._connect(), parameters)

    async def _insert_on(
        self, connection: psycopg.AsyncConnection[Any], parameters: dict[str, Any]
    ) -> dict[tuple[str, str], int]:
        """Run the batch on `connection`; it goes back to the idle ones, or is closed if the
        batch failed on it."""
        try:
            cursor = await connection.execute(_INSERT_UNNESTED, parameters, prepare=True)
            rows = await cursor.fetchall()
        except psycopg.Error:
            await connection.close()
            raise
        self._idle.append(connection)
        return {(vendor, event_id): id_ for id_, vendor, event_id in rows}

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

    def _json(self, headers: dict[str, Any]) -> str:
        """The headers as the ledger's JSON column stores them (its escaping included)."""
        return json.dumps(JsonDocument.process_bind_param(headers, self._dialect))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(autocommit=True, **self._params)
