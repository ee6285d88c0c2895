"""Fixtures of the journey's tests: a migrated SQLite ledger with a clock the test moves, and a
recording stand-in for a vendor write (the effect helper is vendor-agnostic)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from tests.ledger.conftest import Clock, ledger_at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    with ledger_at(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock) as ledger:
        yield ledger


@pytest.fixture
def lead_id(ledger: Ledger) -> int:
    return ledger.record_lead("facebook", "880000000000001", {"full_name": "Ana Souza"}).lead_id


@dataclass
class FakeVendor:
    """A vendor's objects as a dict, counting every call the effect helper makes."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: int = 0
    finds: int = 0
    fail_with: list[BaseException] = field(default_factory=list)

    async def create(self) -> dict[str, Any]:
        self.creates += 1
        obj = {"id": f"obj_{len(self.objects) + 1}"}
        self.objects[obj["id"]] = obj
        if self.fail_with:
            raise self.fail_with.pop(0)  # the write happened, the answer did not come back
        return obj

    async def refuse(self) -> dict[str, Any]:
        self.creates += 1
        if self.fail_with:
            raise self.fail_with.pop(0)
        obj = {"id": f"obj_{len(self.objects) + 1}"}
        self.objects[obj["id"]] = obj
        return obj

    async def find(self) -> dict[str, Any] | None:
        self.finds += 1
        return next(iter(self.objects.values()), None)


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor()


#: the HTTP policy of the journey's tests: quick retries, and hangs cut short
TEST_HTTP_POLICY = {
    "LEADFLOW_HTTP_CONNECT_TIMEOUT": "1",
    "LEADFLOW_HTTP_READ_TIMEOUT": "0.5",
    "LEADFLOW_HTTP_TOTAL_TIMEOUT": "3",
    "LEADFLOW_HTTP_BACKOFF_BASE": "0.01",
    "LEADFLOW_HTTP_BACKOFF_CAP": "0.1",
}


@pytest.fixture(scope="session")
def journey_sandbox() -> Iterator[Any]:
    """One sandbox for the journey's integration tests (reset before each test)."""
    from sandbox.server import running_sandbox

    with running_sandbox(seed=11) as running:
        yield running


@pytest.fixture(scope="session")
async def journey_blocks(prefect_server: None, journey_sandbox: Any, tmp_path_factory: Any) -> Any:
    """The sandbox's Blocks saved in Prefect and a leadflow.toml naming its form, template and
    hosting order, as `leadflow setup --sandbox` makes them; fast timing for tests."""
    from leadflow.sandbox_blocks import sandbox_credentials
    from leadflow.setup import setup_sandbox

    business = tmp_path_factory.mktemp("business") / "leadflow.toml"
    timing = (
        "\n[timing]\nretry_base_seconds = 0.01\nretry_cap_seconds = 0.05\n"
        "waiting_recheck_seconds = 0.01\nactivation_poll_seconds = 0.01\n"
        "activation_poll_cap_seconds = 0.05\nclaim_lease_seconds = 4\neffect_lease_seconds = 4\n"
    )
    await setup_sandbox(
        journey_sandbox.url, blocks_name="journey-tests", business_file=business, extra_toml=timing
    )
    # WhatsApp's pair rate (one message to a number every 6 s) would make every journey wait
    # between the PIX code and the welcome: off in these tests, which are about the journey
    from blocks import WhatsAppCredentials

    whatsapp = await WhatsAppCredentials.load("journey-tests")
    whatsapp.pair_interval_seconds = 0
    await whatsapp.save("journey-tests", overwrite=True)
    return business, sandbox_credentials(journey_sandbox.url)


@contextmanager
def leadflow_settings(ledger_url: str, business: Path) -> Iterator[None]:
    """This process's settings pointing at the ledger `ledger_url` and the business file
    `business`, with TEST_HTTP_POLICY (a vendor call with all its retries must end well inside
    the 4 s effect lease); the cached settings are dropped going in and coming out."""
    from leadflow.business import reset_business_cache
    from leadflow.settings import reset_settings_cache

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEADFLOW_DATABASE_URL", ledger_url)
        patch.setenv("LEADFLOW_BUSINESS_FILE", str(business))
        for name, value in TEST_HTTP_POLICY.items():
            patch.setenv(name, value)
        reset_settings_cache()
        reset_business_cache()
        try:
            yield
        finally:
            reset_settings_cache()
            reset_business_cache()


@pytest.fixture
def world(journey_sandbox: Any, journey_blocks: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh ledger and a reset sandbox, with this process's settings pointing at them."""
    import httpx

    from tests.journey.world import World

    business, blocks = journey_blocks
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.upgrade()
    admin = httpx.Client(base_url=journey_sandbox.admin_url, timeout=30)
    admin.post("/reset").raise_for_status()
    admin.put("/hostinger/settings", json={"activation_delay_seconds": 0}).raise_for_status()
    admin.put("/docusign/signer", json={"invalid_cpf_rate": 0}).raise_for_status()
    with leadflow_settings(url, business):
        yield World(journey_sandbox, admin, ledger, blocks)
    admin.close()
    ledger.dispose()
