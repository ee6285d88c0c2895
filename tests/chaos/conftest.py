"""The chaos world: a sandbox seeded from LEADFLOW_CHAOS_SEED, its Blocks saved as "chaos" with
the sandbox's own rate limits (the published small-account limits would make 300 leads crawl),
leadflow's webhook service on loopback storing every signed delivery, and a fresh ledger.

The journey's test world (tests/journey/world.py) is reused for the people, the counters and
the accounting; only what a chaos run adds lives here."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger import Ledger
from tests.journey.conftest import leadflow_settings
from tests.journey.world import World

#: CI's size; `make chaos` runs 300
DEFAULT_LEADS = 20
DEFAULT_SEED = 20261202
BLOCKS_NAME = "chaos"


@dataclass(frozen=True)
class ChaosSize:
    leads: int
    seed: int


@pytest.fixture
def chaos_size() -> ChaosSize:
    return ChaosSize(
        leads=int(os.environ.get("LEADFLOW_CHAOS_LEADS", DEFAULT_LEADS)),
        seed=int(os.environ.get("LEADFLOW_CHAOS_SEED", DEFAULT_SEED)),
    )


@dataclass
class ChaosWorld(World):
    webhook_url: str = ""
    business_file: Path | None = None


def claim_lease_seconds(leads: int) -> float:
    """Long enough for one stage's whole batch under faults: a batch that outlives its claim
    has every move refused and is redone, round after round (seen at 300 leads with 4 s; at
    25 in flight a 300-lead run's longest step took 11 s)."""
    return max(4.0, leads / 15)


#: how long a journey waiting on a person goes unread (the reconciler's read finds a lost
#: webhook): longer than a round's step takes, so a deal, envelope or charge made in a round is
#: not read back in that same round (nobody acts during a round; the read could only say
#: "still open", and under chaos every needless call is another fault and, for a vendor-wide
#: 429, a pause of every call to that vendor)
WAITING_RECHECK_SECONDS = 2.0


def _timing(leads: int) -> str:
    # a vendor call with all its retries (3 s total) ends well inside the effect lease
    return (
        "\n[timing]\nretry_base_seconds = 0.01\nretry_cap_seconds = 0.05\n"
        f"waiting_recheck_seconds = {WAITING_RECHECK_SECONDS}\nactivation_poll_seconds = 0.01\n"
        f"activation_poll_cap_seconds = 0.05\nclaim_lease_seconds = {claim_lease_seconds(leads)}\n"
        "effect_lease_seconds = 4\n"
    )


async def _sandbox_budgets() -> dict[str, Any]:
    """The saved Blocks with the sandbox's limits, loaded (as the demo gives its own)."""
    import blocks as vendor_blocks
    from leadflow.demo import SANDBOX_BUDGETS
    from tasks.journey import VENDOR_CREDENTIALS

    loaded: dict[str, Any] = {}
    for vendor, class_name in VENDOR_CREDENTIALS.items():
        block = await getattr(vendor_blocks, class_name).aload(BLOCKS_NAME)
        for name, value in SANDBOX_BUDGETS.get(vendor, {}).items():
            if name in type(block).model_fields:
                setattr(block, name, value)
        if vendor == "whatsapp":
            # one message to a number every 6 s would make every journey wait between the PIX
            # code and the welcome; this run is about faults, not WhatsApp's pair rate
            block.pair_interval_seconds = 0
        await block.asave(BLOCKS_NAME, overwrite=True)
        loaded[vendor] = block
    return loaded


def _quick_vendors(admin: httpx.Client) -> None:
    """Websites live at once and every signer's CPF valid: this run is about faults."""
    admin.put("/hostinger/settings", json={"activation_delay_seconds": 0}).raise_for_status()
    admin.put("/docusign/signer", json={"invalid_cpf_rate": 0}).raise_for_status()


@pytest.fixture
async def chaos_world(
    prefect_server: None, chaos_size: ChaosSize, tmp_path: Path
) -> AsyncIterator[ChaosWorld]:
    from blocks.http import forget_rate_limits
    from leadflow.business import reset_business_cache
    from leadflow.demo import DemoPaths, serve_webhooks, webhook_settings, with_top_level
    from leadflow.setup import setup_sandbox
    from sandbox.server import running_sandbox
    from webhooks.app import create_app
    from webhooks.registration import endpoint, register_all
    from webhooks.settings import TriggerMode

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    business = tmp_path / "leadflow.toml"
    ledger = Ledger(url)
    ledger.upgrade()
    with running_sandbox(seed=chaos_size.seed) as running, leadflow_settings(url, business):
        admin = httpx.Client(base_url=running.admin_url, timeout=30)
        try:
            await setup_sandbox(
                running.url,
                blocks_name=BLOCKS_NAME,
                business_file=business,
                extra_toml=_timing(chaos_size.leads),
            )
            # 25 calls in flight, not the default 10: a hung call or a 429's own wait holds
            # one lane for a second, and at 10 lanes those waits set the run's pace
            with_top_level(
                business, {"batch_size": min(5000, max(100, chaos_size.leads)), "concurrency": 25}
            )
            reset_business_cache()
            blocks = await _sandbox_budgets()
            forget_rate_limits()
            await asyncio.to_thread(_quick_vendors, admin)
            # deliveries are stored and left for the reconciler: the flow process is the one
            # the run kills, and a killed process must not take the webhook service with it
            settings = webhook_settings(running.credentials, secrets.token_urlsafe(24))
            settings = settings.model_copy(update={"trigger": TriggerMode.NONE})
            app = create_app(settings, ledger=ledger)
            (tmp_path / "webhooks").mkdir()
            with serve_webhooks(app, DemoPaths(tmp_path / "webhooks")) as service:
                await register_all(service.url, blocks, settings)
                for vendor in ("facebook", "docusign", "asaas", "whatsapp"):
                    running.sandbox.webhook_targets[vendor] = endpoint(service.url, vendor)
                yield ChaosWorld(
                    running,
                    admin,
                    ledger,
                    blocks,
                    webhook_url=service.url,
                    business_file=business,
                )
                # what the sandbox still sends is stored before the service stops
                await asyncio.to_thread(admin.post, "/webhooks/wait", json={"timeout_seconds": 5})
        finally:
            await asyncio.to_thread(admin.close)
            ledger.dispose()
