"""schemathesis against the webhook service's own OpenAPI (`/openapi.json`), served by uvicorn
on loopback as in production: whatever a caller sends, the service answers one of the statuses
it documents, never a 5xx, and its answers match their documented schemas. Bounded examples
(LEADFLOW_FUZZ_EXAMPLES per operation, default 25) keep it within CI's budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given

from ledger import Ledger
from tests.fuzz.budget import fuzz_settings
from tests.webhooks.conftest import webhook_settings
from webhooks.app import create_app


@pytest.fixture(scope="module")
def webhook_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from leadflow.demo import DemoPaths, serve_webhooks

    root: Path = tmp_path_factory.mktemp("openapi")
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
    ledger.upgrade()
    app = create_app(webhook_settings(trigger="none"), ledger=ledger)
    try:
        with serve_webhooks(app, DemoPaths(root)) as service:
            yield service.url
    finally:
        ledger.dispose()


def test_the_webhook_service_answers_as_documented(webhook_service: str) -> None:
    """Each operation's own hypothesis run (schemathesis' pytest plugin does not collect
    under this pytest, so its strategies are driven directly)."""
    schema = schemathesis.openapi.from_url(f"{webhook_service}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # five vendors' POSTs, two handshakes, two probes

    for operation in operations:

        @given(case=operation.as_strategy())
        @fuzz_settings(25, suppress=HealthCheck)
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(base_url=webhook_service, timeout=10)

        answers_as_documented()
