"""Journeys per second with one worker and with two, the same work on the same server.

The production topology on one machine (docs/scaling.md): `prefect server start` on
PostgreSQL, the ledger on PostgreSQL, the sandbox as every vendor, `prefect deploy --all`, and
process workers on leadflow-pool. Each phase records JOURNEYS good leads, due at once, starts
RUNS reconciler runs (`lead-to-cash`, as its schedule would) and times until every one of them
reached `deal_open`: gated, a Pipedrive person and deal made, waiting for a salesperson (the
part of the journey no person has to act in). Phase one has one worker; phase two starts a
second beside it, with a fresh batch of the same size.

    LEADFLOW_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks scaling

It creates two databases beside the one named, <name>_bench_prefect and <name>_bench_ledger,
and drops them when it ends. The machine's other load shows in the figures: note it with them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from benchmarks import Figure

JOURNEYS = int(os.environ.get("LEADFLOW_BENCH_JOURNEYS", "500"))
RUNS = 4
TIMING = (
    "\n[timing]\nretry_base_seconds = 0.05\nretry_cap_seconds = 0.5\n"
    "waiting_recheck_seconds = 3600\nclaim_lease_seconds = 30\neffect_lease_seconds = 30\n"
)


async def _measure(database_url: str, home: Path) -> tuple[float, float]:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from sqlalchemy.engine import make_url

    from deployments.local_cluster import (
        drop_database,
        prefect_server_on_postgres,
        record_sample_leads,
        recreate_database,
        trigger_reconciler,
        wait_until_all_in,
    )
    from leadflow.setup import setup_sandbox
    from ledger import Ledger
    from sandbox.server import running_sandbox

    base = make_url(database_url).database or "postgres"
    ledger_database = f"{base}_bench_ledger"
    ledger_url = recreate_database(database_url, ledger_database)
    environment = {
        "LEADFLOW_DATABASE_URL": ledger_url,
        "LEADFLOW_BUSINESS_FILE": str(home / "leadflow.toml"),
    }
    try:
        with prefect_server_on_postgres(
            database_url, f"{base}_bench_prefect", home, environment
        ) as cluster:
            for args in (
                [sys.executable, "-m", "deployments.setup"],
                [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all"],
            ):
                done = cluster.run(*args)
                if done.returncode:
                    raise RuntimeError(
                        f"{args[-1]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"
                    )
            with running_sandbox(seed=21) as sandbox:
                with temporary_settings(updates={PREFECT_API_URL: cluster.api_url}):
                    await setup_sandbox(
                        sandbox.url,
                        blocks_name="bench",
                        business_file=home / "leadflow.toml",
                        extra_toml=TIMING,
                    )
                ledger = Ledger(ledger_url)
                ledger.upgrade()
                elapsed = []
                for workers, batch in ((["w1"], "one"), (["w2"], "two")):
                    for name in workers:
                        cluster.start_worker(name)
                    ids = await asyncio.to_thread(record_sample_leads, ledger, batch, JOURNEYS)
                    await trigger_reconciler(cluster, RUNS)
                    elapsed.append(await wait_until_all_in(cluster, ledger, ids, "deal_open", 1800))
                    print(
                        f"  {len(cluster.processes) - 1} worker(s): {JOURNEYS} journeys in "
                        f"{elapsed[-1]:.1f} s = {JOURNEYS / elapsed[-1]:.2f} journeys/s",
                        file=sys.stderr,
                        flush=True,
                    )
                ledger.dispose()
            return JOURNEYS / elapsed[0], JOURNEYS / elapsed[1]
    finally:
        drop_database(database_url, ledger_database)


def main() -> list[Figure]:
    database_url = os.environ.get("LEADFLOW_BENCH_DATABASE_URL") or os.environ.get(
        "LEADFLOW_TEST_DATABASE_URL"
    )
    if not database_url:
        raise SystemExit("set LEADFLOW_BENCH_DATABASE_URL to a PostgreSQL URL (see the docstring)")
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as home:
        one, two = asyncio.run(_measure(database_url, Path(home)))
    return [
        Figure(
            f"{JOURNEYS} journeys to deal_open, two workers",
            two,
            "one worker",
            one,
            "journeys/s",
            target="above one worker (the vendors' limits are the ceiling)",
        )
    ]


if __name__ == "__main__":
    for figure in main():
        print(figure.line())
