"""The Ledger: the one façade over every operation leadflow performs on its source of truth.

Every stage of the journey goes through here: the webhook service stores deliveries in the
inbox, the gate records its decisions, tasks wrap each vendor call in the effect protocol
(begin → call → complete | fail), and the reconciler claims the journeys whose next step is
due. The operations live by concern (ledger.leads, ledger.journeys, ledger.effects,
ledger.inbox, ledger.quarantine); `Ledger` joins them. Each method opens and commits its own
short transaction and returns frozen views (ledger.views), so callers never hold a session or
a live ORM object.

Concurrency: on PostgreSQL, rows are locked (`SELECT ... FOR UPDATE`, and `SKIP LOCKED` for
claims), so any number of workers on any number of machines can share the ledger. On SQLite
every write transaction starts with `BEGIN IMMEDIATE` (ledger.engine), one writer at a time,
which is safe for the embedded single-machine setup. Inserts that may race (a lead, an inbox
delivery, an effect) use `INSERT ... ON CONFLICT DO NOTHING`, so a duplicate is never an error.
Times come from the Ledger's clock (UTC, injectable for tests), not from the database server.

From async code use `AsyncLedger` (or `ledger.aio`): the same methods as coroutines, each run
in a worker thread, since a ledger call may wait on a lock. Build a Ledger once per process with
`shared_ledger(url)`: it owns the connection pool.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ledger.effects import EffectOperations
from ledger.inbox import InboxOperations
from ledger.quarantine import QuarantineOperations


class Ledger(QuarantineOperations, EffectOperations, InboxOperations):
    """leadflow's source of truth on one database (SQLite file or PostgreSQL).

        ledger = Ledger("sqlite:///.leadflow/ledger.db")
        ledger.upgrade()
        lead = ledger.record_lead("facebook", "1234", raw_payload)
        ledger.transition(lead.lead_id, JourneyState.QUALIFIED, Cause.GATE)

    `clock` returns the current aware UTC time; tests pass a controllable one to expire leases
    without sleeping.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(url, clock=clock)
        self._aio: AsyncLedger | None = None

    @property
    def aio(self) -> AsyncLedger:
        """This ledger's async façade (see AsyncLedger)."""
        if self._aio is None:
            self._aio = AsyncLedger(self)
        return self._aio


def _public_methods(cls: type) -> tuple[str, ...]:
    names = set()
    for klass in cls.__mro__:
        for name, member in vars(klass).items():
            if not name.startswith("_") and callable(member) and not isinstance(member, type):
                names.add(name)
    return tuple(sorted(names))


#: The Ledger methods AsyncLedger offers as coroutines: every public operation.
ASYNC_METHODS: tuple[str, ...] = _public_methods(Ledger)


class AsyncLedger:
    """The Ledger for async code: each of its methods (ASYNC_METHODS) under the same name and
    with the same arguments, as a coroutine that runs the call in a worker thread
    (`asyncio.to_thread`), so a call that waits on a row lock or SQLite's write lock never
    blocks the event loop.

        ledger = shared_ledger(settings.database_url).aio
        effect = await ledger.begin_effect(key, "asaas", "create_pix_charge", lead_id)
        await ledger.complete_effect(effect.key, charge.id)

    Each call is its own transaction, as with the Ledger; `ledger.sync` is the Ledger itself.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.sync = ledger

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in ASYNC_METHODS:
            raise AttributeError(f"AsyncLedger has no method {name!r}")
        method = getattr(self.sync, name)

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *ASYNC_METHODS})

    def __repr__(self) -> str:
        return f"AsyncLedger({self.sync.url!r})"


_shared: dict[str, Ledger] = {}
_shared_lock = threading.Lock()


def shared_ledger(url: str) -> Ledger:
    """The process's one Ledger for `url`, built on first use (thread-safe) and reused by
    every task run, flow and request after it: one engine and connection pool per process."""
    with _shared_lock:
        ledger = _shared.get(url)
        if ledger is None:
            ledger = _shared[url] = Ledger(url)
        return ledger
