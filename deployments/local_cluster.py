"""A leadflow cluster on one machine, for the scale-out tests and benchmarks/bench_scaling.py.

The production topology in miniature (docs/scaling.md): `prefect server start` on PostgreSQL,
the ledger on PostgreSQL, any number of `prefect worker start --pool leadflow-pool` processes.
Every process gets its own process group so a test can kill one worker, flow runs and all,
exactly as a machine dying would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deployments.schedules import REPO_ROOT, WORK_POOL

__all__ = [
    "Cluster",
    "drop_database",
    "free_port",
    "pool_busy",
    "prefect_server_on_postgres",
    "record_sample_leads",
    "recreate_database",
    "trigger_reconciler",
    "wait_until_all_in",
]

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recreate_database(url: str, name: str) -> str:
    """Drop and create database `name` on the server of SQLAlchemy `url`; its URL (same
    driver)."""
    from sqlalchemy.engine import make_url

    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    """Drop database `name` on the server of SQLAlchemy `url`, even while still in use: a
    cluster's databases must not outlive it (each CI run names its own)."""
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_connection(url: str) -> Any:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database=parsed.database or "postgres")
    return psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)


@dataclass
class Cluster:
    """A Prefect server and its workers, each a process group, logs under `home`."""

    home: Path
    prefect_database_url: str  # postgresql://... (the asyncpg driver is set here)
    env: dict[str, str] = field(default_factory=dict)
    api_url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What every process of the cluster runs with: its own PREFECT_HOME, no telemetry."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_UI_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="1",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30",
        )
        if self.api_url:
            env["PREFECT_API_URL"] = self.api_url
        env.update(self.env)
        env.update(extra or {})
        return env

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        log = (self.home / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter's tools
            args,
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_server(self, startup_deadline_s: float = 90) -> str:
        """`prefect server start` on loopback and PostgreSQL; its API URL once healthy."""
        from sqlalchemy.engine import make_url

        self.home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        database = make_url(self.prefect_database_url).set(drivername="postgresql+asyncpg")
        env = self.environment(
            {
                "PREFECT_API_DATABASE_CONNECTION_URL": database.render_as_string(
                    hide_password=False
                ),
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
                "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "500",
            }
        )
        args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        self._spawn("server", args, env)
        self.api_url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + startup_deadline_s
        while time.monotonic() < deadline:
            if self.processes["server"].poll() is not None:
                raise RuntimeError(f"prefect server exited; see {self.home / 'server.log'}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return self.api_url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"prefect server not healthy in {startup_deadline_s}s")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A command against the cluster's server (prefect deploy, python -m ...), from the
        repository root."""
        return subprocess.run(  # noqa: S603
            list(args),
            cwd=REPO_ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_worker(self, name: str) -> None:
        args = [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--name", name]
        self._spawn(name, args, self.environment())

    def kill(self, name: str) -> None:
        """SIGKILL the process group: the process and every flow run it started, at once."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Workers first, then the server; TERM, then KILL whatever lingers."""
        for name in sorted(self.processes, key=lambda n: n == "server"):
            process = self.processes[name]
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        self.processes.clear()


@contextlib.contextmanager
def prefect_server_on_postgres(
    database_url: str, name: str, home: Path, env: Mapping[str, str] | None = None
) -> Iterator[Cluster]:
    """A Cluster whose Prefect server runs on a new database `name` beside `database_url`'s,
    started; on the way out its processes are stopped and that database dropped (each run
    names its own: none may outlive it)."""
    cluster = Cluster(
        home=home,
        prefect_database_url=recreate_database(database_url, name),
        env=dict(env or {}),
    )
    try:
        cluster.start_server()
        yield cluster
    finally:
        cluster.stop()
        drop_database(database_url, name)


# ------------------------------------------------------------------ driving the journey on it
def record_sample_leads(ledger: Any, batch: str, count: int) -> list[int]:
    """`count` good leads recorded as ad-hoc leads (due at once); their lead ids. Each batch
    name gives distinct e-mails and phones."""
    import zlib

    from tasks.intake import ADHOC_SOURCE, adhoc_source_id

    offset = zlib.crc32(batch.encode()) % 1_000 * 10_000  # batches of up to 10,000 leads
    ids = []
    for number in range(count):
        lead = {
            "source_id": f"{batch}-{number}",
            "full_name": "Cliente Teste da Silva",
            "email": f"cliente.{batch}.{number}@exemplo.com.br",
            "phone_number": f"(11) 9{80_000_000 + (offset + number) % 20_000_000}",
        }
        ids.append(ledger.record_lead(ADHOC_SOURCE, adhoc_source_id(lead), lead).lead_id)
    return ids


async def trigger_reconciler(cluster: Cluster, runs: int) -> list[str]:
    """Reconciler runs on the pool, as its schedule would start them; their flow run ids."""
    from prefect.deployments.flow_runs import arun_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
        started = [
            await arun_deployment("lead-to-cash/lead-to-cash", timeout=0) for _ in range(runs)
        ]
    return [str(run.id) for run in started]


async def pool_busy(cluster: Cluster) -> bool:
    """Whether a flow run is running, pending, or scheduled and already due."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    live = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
    with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))
                )
            )
    now = time.time()
    return any(
        run.state_type != StateType.SCHEDULED
        or (run.next_scheduled_start_time and run.next_scheduled_start_time.timestamp() <= now)
        for run in runs
    )


async def wait_until_all_in(
    cluster: Cluster, ledger: Any, ids: list[int], state: str, deadline_s: float
) -> float:
    """Seconds until every journey of `ids` is in `state`; one more reconciler run is started
    whenever the pool is idle (what the every-minute schedule does, sooner)."""
    import asyncio
    from collections import Counter

    start = time.monotonic()
    while True:
        views = await asyncio.to_thread(ledger.get_journeys, ids)
        states = [str(view.state) for view in views.values()]
        if len(states) == len(ids) and all(s == state for s in states):
            return time.monotonic() - start
        if time.monotonic() - start > deadline_s:
            raise AssertionError(f"not all {state} after {deadline_s}s: {Counter(states)}")
        if not await pool_busy(cluster):
            await trigger_reconciler(cluster, 1)
        await asyncio.sleep(1)
