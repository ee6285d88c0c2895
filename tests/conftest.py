"""Fixtures every part of the suite shares.

The environment is fixed before Prefect is imported anywhere: no analytics, no tracking, a
project-local PREFECT_HOME. One `prefect_test_harness` serves the whole session (it costs 8-9 s
to start, ../shared/LIBRARIES.md); ask for `prefect_server` only in tests that run flows or tasks.
Each area's own fixtures live in tests/<area>/conftest.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PREFECT_HOME", str(_ROOT / ".leadflow" / "prefect-test"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE", "500")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

import tests.respx_keepalive  # noqa: E402,F401 - registers respx's "keepalive" mocker

POSTGRES_URL_VARIABLE = "LEADFLOW_TEST_DATABASE_URL"


def new_cpf() -> str:
    """A CPF with valid check digits (the sandbox verifies them), unique per call."""
    base = [int(d) for d in f"{uuid.uuid4().int % 10**9:09d}"]
    for length in (9, 10):
        total = sum(d * w for d, w in zip(base, range(length + 1, 1, -1), strict=True))
        base.append((total * 10 % 11) % 10)
    return "".join(map(str, base))


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server for the whole session (started on first use)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The CI's PostgreSQL database; the one place in the suite where a test may skip."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set: PostgreSQL tests run in CI")
    return url


@pytest.fixture(scope="session")
def sandbox_urls() -> Iterator[dict[str, str]]:
    """The whole sandbox served in-process on a free loopback port; vendor name -> base URL."""
    from sandbox.server import running_sandbox

    with running_sandbox() as running:
        yield running.base_urls
