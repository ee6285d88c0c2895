"""Fixtures of the ledger's tests: a migrated ledger on SQLite, and on PostgreSQL when CI has one.

`ledger` is parametrised over both backends. Each test module gets its own database (a SQLite
file, or a uniquely named PostgreSQL database created through the server's `postgres` database
and dropped afterwards, so CI's database stays clean), migrated once; every test starts from
empty tables. `clock` controls the ledger's time, so leases expire without sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from ledger import Ledger, legal_edges
from ledger.models import Base
from ledger.states import INITIAL_STATE, JourneyState

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class Clock:
    """The ledger's clock in tests: real time, shifted by however far a test advanced it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        self.offset = timedelta()


@contextmanager
def ledger_at(url: str, **options: Any) -> Iterator[Ledger]:
    """A Ledger on `url` with its schema upgraded to the newest migration; its connections are
    closed afterwards (a test's database may be dropped next)."""
    ledger = Ledger(url, **options)
    ledger.upgrade()
    try:
        yield ledger
    finally:
        ledger.dispose()


@contextmanager
def fresh_postgres_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the CI server, dropped (even if still in use) afterwards."""
    url = make_url(postgres_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"leadflow_ledger_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        # A throw-away database need not wait for the disk at every commit; locking and
        # visibility, which the tests are about, are the same.
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def empty_database(backend: str, request: pytest.FixtureRequest, folder: object) -> Iterator[str]:
    """The URL of an empty database of `backend` (a file under `folder`, or a fresh PG one)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/ledger-{uuid.uuid4().hex[:8]}.db"
    else:
        with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture(scope="module", params=BACKENDS)
def ledger_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database for this module, on each backend."""
    with empty_database(request.param, request, tmp_path_factory.mktemp("ledger")) as url:
        yield url


@pytest.fixture(scope="module")
def module_clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def migrated_ledger(ledger_url: str, module_clock: Clock) -> Iterator[Ledger]:
    with ledger_at(ledger_url, clock=module_clock) as ledger:
        yield ledger


@pytest.fixture
def clock(module_clock: Clock) -> Iterator[Clock]:
    """The ledger's clock, back at real time for every test."""
    module_clock.reset()
    yield module_clock
    module_clock.reset()


@pytest.fixture
def ledger(migrated_ledger: Ledger, clock: Clock) -> Ledger:
    """A migrated ledger with empty tables."""
    # DELETE rather than TRUNCATE: on a few rows it costs a millisecond, TRUNCATE a hundred.
    with migrated_ledger.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    return migrated_ledger


def path_to(target: JourneyState) -> list[JourneyState]:
    """The shortest legal walk from `received` to `target`, excluding `received` itself."""
    edges = [
        (src, dst) for src, dst in legal_edges() if JourneyState.DEAD_LETTERED not in (src, dst)
    ]
    previous: dict[JourneyState, JourneyState] = {}
    frontier = [INITIAL_STATE]
    seen = {INITIAL_STATE}
    while frontier:
        state = frontier.pop(0)
        for src, dst in sorted(edges):
            if src is state and dst not in seen:
                seen.add(dst)
                previous[dst] = state
                frontier.append(dst)
    walk: list[JourneyState] = []
    state = target
    while state is not INITIAL_STATE:
        walk.append(state)
        state = previous[state]
    return list(reversed(walk))


_counter = iter(range(1, 10**9))


def new_lead(ledger: Ledger, source: str = "facebook") -> int:
    """A freshly recorded lead (its journey in `received`); returns its id."""
    return ledger.record_lead(source, f"lead-{next(_counter)}", {"field_data": []}).lead_id


def lead_in_state(
    ledger: Ledger, state: JourneyState, dead_lettered_from: JourneyState | None = None
) -> int:
    """A new lead whose journey was walked, through legal transitions only, into `state`."""
    lead_id = new_lead(ledger)
    if state is JourneyState.DEAD_LETTERED:
        assert dead_lettered_from is not None
        for step in path_to(dead_lettered_from):
            ledger.transition(lead_id, step, "manual", "test setup")
        ledger.transition(lead_id, state, "manual", "test setup")
        return lead_id
    for step in path_to(state):
        ledger.transition(lead_id, step, "manual", "test setup")
    return lead_id
