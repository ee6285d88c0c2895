"""Scale-out on Prefect's own machinery (issue 13): `prefect server start` on PostgreSQL, the
ledger on PostgreSQL, two process workers on leadflow-pool, the sandbox as every vendor.

- `python -m deployments.setup` twice: the second run changes nothing;
- `prefect deploy --all` from the repository root succeeds and deploys every flow;
- 500 due journeys, the reconciler triggered from both workers: each journey advanced exactly
  once, work shared, no Pipedrive person or deal created twice;
- the same with one worker killed mid-run (its process group, flow run and all): the other
  worker and the next runs finish the work, nothing lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from deployments.local_cluster import (
    Cluster,
    drop_database,
    prefect_server_on_postgres,
    record_sample_leads,
    recreate_database,
    trigger_reconciler,
    wait_until_all_in,
)
from deployments.schedules import DEPLOYMENTS
from tests.deployments.conftest import assert_deployed_as

#: the cluster starts a server, deploys, and moves 500 journeys twice: more than the 300 s default
pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(900)]

JOURNEYS = 500
TIMING = (
    "\n[timing]\nretry_base_seconds = 0.05\nretry_cap_seconds = 0.5\n"
    "waiting_recheck_seconds = 3600\nclaim_lease_seconds = 30\neffect_lease_seconds = 30\n"
)
HTTP_POLICY = {
    "LEADFLOW_HTTP_CONNECT_TIMEOUT": "2",
    "LEADFLOW_HTTP_READ_TIMEOUT": "5",
    "LEADFLOW_HTTP_TOTAL_TIMEOUT": "20",
    "LEADFLOW_HTTP_BACKOFF_BASE": "0.05",
    "LEADFLOW_HTTP_BACKOFF_CAP": "0.5",
}


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url).database or "leadflow"
    home = tmp_path_factory.mktemp("cluster")
    ledger_database = f"{base}_scale_ledger"
    ledger_url = recreate_database(postgres_url, ledger_database)
    environment = {
        "LEADFLOW_DATABASE_URL": ledger_url,
        "LEADFLOW_BUSINESS_FILE": str(home / "leadflow.toml"),
        **HTTP_POLICY,
    }
    try:
        with prefect_server_on_postgres(
            postgres_url, f"{base}_scale_prefect", home, environment
        ) as cluster:
            yield cluster
    finally:
        drop_database(postgres_url, ledger_database)


def _python() -> str:
    return sys.executable


@pytest.fixture(scope="module")
def setup_runs(cluster: Cluster) -> list[str]:
    """`python -m deployments.setup` twice, then `prefect deploy --all`; their outputs."""
    outputs = []
    for _ in range(2):
        done = cluster.run(_python(), "-m", "deployments.setup")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        outputs.append(done.stdout)
    prefect = str(Path(_python()).parent / "prefect")
    deploy = cluster.run(prefect, "--no-prompt", "deploy", "--all")
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    outputs.append(deploy.stdout)
    return outputs


async def _deployments(cluster: Cluster) -> dict[str, Any]:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
        async with get_client() as client:
            return {
                spec.full_name: await client.read_deployment_by_name(spec.full_name)
                for spec in DEPLOYMENTS
            }


async def test_setup_twice_changes_nothing_and_deploy_all_succeeds(
    cluster: Cluster, setup_runs: list[str]
) -> None:
    first, second, _deploy = setup_runs
    assert "work pool leadflow-pool (process) created" in first
    assert "concurrency limit pipedrive = 20 slots (created)" in first
    assert second.splitlines()[0] == "Prefect is already set up for leadflow: nothing changed"
    deployed = await _deployments(cluster)
    for spec in DEPLOYMENTS:
        deployment = deployed[spec.full_name]
        assert deployment.work_pool_name == "leadflow-pool"
        assert_deployed_as(deployment, spec)


# ------------------------------------------------------------------------------ the journey
@pytest.fixture(scope="module")
async def journey_cluster(cluster: Cluster, setup_runs: list[str]) -> AsyncIterator[Any]:
    """The cluster with the sandbox's Blocks saved, a migrated ledger and two workers."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from leadflow.setup import setup_sandbox
    from ledger import Ledger
    from sandbox.server import running_sandbox

    with running_sandbox(seed=13) as sandbox:
        with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
            await setup_sandbox(
                sandbox.url,
                blocks_name="scale",
                business_file=Path(cluster.env["LEADFLOW_BUSINESS_FILE"]),
                extra_toml=TIMING,
            )
        ledger = Ledger(cluster.env["LEADFLOW_DATABASE_URL"])
        ledger.upgrade()
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        try:
            yield cluster, sandbox, ledger
        finally:
            ledger.dispose()


def _transitions_per_journey(ledger: Any, ids: list[int]) -> dict[tuple[int, str], int]:
    from sqlalchemy import text

    query = text(
        "SELECT j.lead_id, t.to_state, count(*) FROM journey_transitions t "
        "JOIN journeys j ON j.id = t.journey_id WHERE j.lead_id = ANY(:ids) "
        "GROUP BY j.lead_id, t.to_state"
    )
    with ledger.engine.connect() as connection:
        rows = connection.execute(query, {"ids": ids}).all()
    return {(int(lead), str(state)): int(count) for lead, state, count in rows}


def _pipedrive_created(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.sandbox.state.counters().get("pipedrive", {}))


def _assert_advanced_once(ledger: Any, ids: list[int]) -> None:
    counts = _transitions_per_journey(ledger, ids)
    for lead_id in ids:
        assert counts.get((lead_id, "qualified")) == 1, lead_id
        assert counts.get((lead_id, "deal_open")) == 1, lead_id


def _assert_one_person_and_deal_each(sandbox: Any, before: dict[str, int]) -> None:
    """Pipedrive gained exactly one person and one deal per journey: none was made twice."""
    after = _pipedrive_created(sandbox)
    for kind in ("person", "deal"):
        created = sum(v for k, v in after.items() if kind in k)
        assert created - sum(v for k, v in before.items() if kind in k) == JOURNEYS


@pytest.mark.scale
async def test_two_workers_advance_500_journeys_exactly_once(journey_cluster: Any) -> None:
    cluster, sandbox, ledger = journey_cluster
    before = _pipedrive_created(sandbox)
    ids = await asyncio.to_thread(record_sample_leads, ledger, "share", JOURNEYS)

    runs = await trigger_reconciler(cluster, 6)
    await wait_until_all_in(cluster, ledger, ids, "deal_open", 600)

    _assert_advanced_once(ledger, ids)
    _assert_one_person_and_deal_each(sandbox, before)
    ran_on = {name: sum(run in cluster.log(name) for run in runs) for name in ("w1", "w2")}
    assert all(ran_on.values()), f"work not shared between the workers: {ran_on}"


@pytest.mark.scale
async def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(journey_cluster: Any) -> None:
    cluster, sandbox, ledger = journey_cluster
    before = _pipedrive_created(sandbox)
    ids = await asyncio.to_thread(record_sample_leads, ledger, "kill", JOURNEYS)

    runs = await trigger_reconciler(cluster, 4)
    victim = await _worker_running_one_of(cluster, runs, ledger, ids)
    cluster.kill(victim)
    await wait_until_all_in(cluster, ledger, ids, "deal_open", 600)

    _assert_advanced_once(ledger, ids)
    _assert_one_person_and_deal_each(sandbox, before)


async def _worker_running_one_of(
    cluster: Cluster, runs: list[str], ledger: Any, ids: list[int]
) -> str:
    """The worker whose flow run holds live claims on some of these journeys right now: the
    claim names the flow-run process (host:pid:...), a descendant of that worker's process."""
    from datetime import UTC, datetime

    end = time.monotonic() + 240
    while time.monotonic() < end:
        views = await asyncio.to_thread(ledger.get_journeys, ids)
        now = datetime.now(UTC)
        holders = {
            view.claimed_by
            for view in views.values()
            if view.claimed_by and view.claimed_until and view.claimed_until > now
        }
        workers = {process.pid: name for name, process in cluster.processes.items()}
        for holder in holders:
            try:
                lineage = _ancestors(int(holder.split(":")[1]))
            except (ValueError, IndexError):
                continue
            for pid in lineage:
                if workers.get(pid, "server") != "server":
                    return workers[pid]
        await asyncio.sleep(0.2)
    raise AssertionError("no reconciler run held claims on either worker mid-work")


def _ancestors(pid: int) -> list[int]:
    """The process and its parents, from /proc (Linux), nearest first."""
    chain = []
    while pid > 1:
        chain.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain
