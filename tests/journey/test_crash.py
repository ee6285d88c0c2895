"""Crashes: the reconciler's process killed (SIGKILL) at random points mid-stage, five times,
then run again to the end. The sandbox's counters must show every vendor object created exactly
once, and every journey moved on."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from ledger import JourneyState
from tests.journey.world import World

pytestmark = pytest.mark.integration

RECONCILER = """
import asyncio, sys
from flows import lead_to_cash
print("ready", flush=True)
for _ in range(50):
    asyncio.run(lead_to_cash())
"""


def _reconciler_process() -> subprocess.Popen[str]:
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    return subprocess.Popen(
        [sys.executable, "-c", RECONCILER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: the kill takes every child with it
    )


def _kill_mid_run(process: subprocess.Popen[str], after: float) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    time.sleep(after)  # into the run: vendor calls take 30 ms each
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


async def test_five_kills_mid_stage_create_nothing_twice_and_lose_no_journey(
    world: World,
) -> None:
    chance = random.Random(20261202)
    for vendor in ("pipedrive", "docusign", "asaas", "hostinger", "whatsapp"):
        world.admin.put(f"/faults/{vendor}", json={"latency_ms": 30}).raise_for_status()
    world.people(accept=1.0)
    world.submit_leads(8)

    for _ in range(5):
        process = _reconciler_process()
        await asyncio.to_thread(_kill_mid_run, process, chance.uniform(0.2, 2.5))
        await asyncio.to_thread(world.act)
    await asyncio.sleep(4.5)  # the killed workers' claims and attempts run out (4 s leases)
    counts = await world.reconcile_until_settled(rounds=20)

    assert counts == {JourneyState.WELCOMED: 8}
    assert world.created_twice() == []
    assert world.counters()["asaas"]["payment"] == 8
