"""Fixtures of the quality gate's tests: a migrated ledger — on a temporary SQLite file, and
on PostgreSQL too when CI provides one — and a way to record a Facebook-shaped lead in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from tests.ledger.conftest import BACKENDS, empty_database


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    ledger = Ledger(ledger_url)
    ledger.upgrade()
    yield ledger
    ledger.dispose()


@pytest.fixture
def record_lead(ledger: Ledger) -> Callable[..., int]:
    """Record a lead as Facebook Lead Ads delivers it (`field_data`); returns its id."""
    numbers = count(1)

    def record(**answers: Any) -> int:
        source_id = f"fb-{next(numbers)}"
        raw = {
            "id": source_id,
            "field_data": [{"name": k, "values": [v]} for k, v in answers.items()],
        }
        return ledger.record_lead("facebook", source_id, raw).lead_id

    return record
