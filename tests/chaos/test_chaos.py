"""The reliability promise under chaos (issue 14): leads through the whole journey while every
vendor route fails a third of the time, answers get lost after the write, webhooks come twice
or never, and the flow process is SIGKILLed twice mid-run; then the reconciler runs to the end.

Nothing may be created twice, no lead lost, every effect done or dead-lettered with a reason,
every stored webhook processed. Size and seed: LEADFLOW_CHAOS_LEADS (CI: 20, `make chaos`: 300)
and LEADFLOW_CHAOS_SEED; the sandbox's faults, the people and the kill times all follow the seed.
`make chaos` prints the run's table (pytest -s); LEADFLOW_CHAOS_REPORT also writes it to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows import intake, lead_to_cash
from ledger import EffectStatus, JourneyState
from tests.chaos.conftest import (
    WAITING_RECHECK_SECONDS,
    ChaosSize,
    ChaosWorld,
    claim_lease_seconds,
)
from tests.journey.world import KINDS, SETTLED

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

#: on every vendor route: 30% transient (5xx, 429 + Retry-After, hung and dropped
#: connections) and 5% "write committed, answer lost". 429s are 1% of calls: a 429 from
#: Pipedrive, Graph or DocuSign is their account-wide budget, so leadflow rightly pauses every
#: call to that vendor for the Retry-After (1 s); at 8% a 300-lead run spent about 8 of its 11
#: minutes obeying them (the same run with none took under 3), at 2% about 2 of 5.5.
ROUTE_FAULTS: dict[str, Any] = {
    "error_rate": 0.21,
    "error_statuses": [500, 502, 503],
    "throttle_rate": 0.01,
    "retry_after_seconds": 1,
    "hang_rate": 0.02,
    "hang_seconds": 1.0,
    "drop_rate": 0.06,
    "lost_answer_rate": 0.05,
}
#: a fifth of the webhooks duplicated, a twentieth dropped
WEBHOOK_FAULTS: dict[str, Any] = {"duplicate_rate": 0.2, "drop_rate": 0.05}
#: the people: most deals won, contracts signed, charges paid; some refused; a few never act
ACCEPT, REFUSE = 0.8, 0.1
BAD_SHARE = 0.1
KILLS = 2

#: the flow process: the scheduled reconciler, round after round; a failed round is written
#: to stderr (the test reports it) and the next goes on, as a deployment's next run would
RECONCILER = """
import asyncio, sys
from flows import lead_to_cash
print("ready", flush=True)
for _ in range(500):
    try:
        asyncio.run(lead_to_cash())
    except Exception as error:
        print(f"FAILED ROUND {type(error).__name__}: {error}"[:300], file=sys.stderr, flush=True)
"""


def _flow_process(errors: Path) -> subprocess.Popen[str]:
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    return subprocess.Popen(
        [sys.executable, "-c", RECONCILER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors.open("a", encoding="utf-8"),
        text=True,
        start_new_session=True,  # its own process group: the kill takes every child with it
    )


def _kill_mid_run(process: subprocess.Popen[str], after: float, world: ChaosWorld) -> bool:
    """Let the flow process work `after` seconds (the people acting meanwhile), then SIGKILL
    it; True when it was still running, i.e. the kill really interrupted it."""
    assert process.stdout is not None
    alive = False
    try:
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + after
        while time.monotonic() < deadline:
            act(world)
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        alive = process.poll() is None
    finally:  # whatever happened, no flow process outlives the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    return alive and process.returncode == -signal.SIGKILL


def act(world: ChaosWorld) -> int:
    """Every person answers what waits for them (a payer can only pay or not)."""
    acted = 0
    for role, data in world.admin.get("/people").json()["roles"].items():
        for object_id in data["pending"]:
            outcome = answer(world, role, str(object_id), data.get("can_refuse", True))
            if outcome is None:
                continue
            world.admin.post(f"/people/{role}/{outcome}/{object_id}").raise_for_status()
            acted += 1
    return acted


def answer(world: ChaosWorld, role: str, object_id: str, can_refuse: bool) -> str | None:
    """What this person answers about this object ("accept", "refuse", or None: never),
    fixed by the seed and the object's id whenever it is asked."""
    share = random.Random(f"{world.sandbox.sandbox.faults.seed}:{role}:{object_id}").random()
    if share < ACCEPT:
        return "accept"
    if share < ACCEPT + (REFUSE if can_refuse else 0.0):
        return "refuse"
    return None


def _pending_deliveries(world: ChaosWorld) -> None:
    """Let the sandbox finish sending what the people's actions caused."""
    world.admin.post("/webhooks/wait", json={"timeout_seconds": 10})


async def _reconcile_to_the_end(world: ChaosWorld, failed: list[str], rounds: int = 80) -> int:
    """The scheduled poll once, then the reconciler until nothing moves three rounds in a row
    across a waiting journey's recheck (a lost webhook is found by that read), with every
    stored delivery processed. A round that fails is what the scheduled reconciler meets too:
    it is recorded (`failed`, for the report) and the next round goes on."""
    await _round(intake, failed)
    previous: dict[Any, int] | None = None
    quiet = 0
    for number in range(1, rounds + 1):
        await _round(lead_to_cash, failed)
        acted = await asyncio.to_thread(act, world)
        await asyncio.to_thread(_pending_deliveries, world)
        counts = world.counts()
        unprocessed = world.ledger.unprocessed_inbox(limit=1)
        if counts == previous and not acted and not unprocessed and set(counts) <= SETTLED:
            quiet += 1
            if quiet >= 3:
                return number
            await asyncio.sleep(WAITING_RECHECK_SECONDS + 0.05)  # the recheck is due
        else:
            quiet = 0
            await asyncio.sleep(world.until_next_due(cap=1.0))
        previous = counts
    return rounds


async def _round(flow: Any, failed: list[str]) -> None:
    try:
        await flow()
    except Exception as error:
        failed.append(f"{type(error).__name__}: {error}"[:200])


#: a journey waiting on a person -> (the person's role, the effect that made what they act on)
WAITING_ON: dict[JourneyState, tuple[str, str]] = {
    JourneyState.DEAL_OPEN: ("salesperson", "pipedrive.create_deal"),
    JourneyState.CONTRACT_SENT: ("signer", "docusign.create_envelope"),
    JourneyState.CHARGE_OPEN: ("payer", "asaas.create_pix_charge"),
}


def waiting_after_acting(world: ChaosWorld) -> list[str]:
    """Journeys still waiting on a person who already answered (their object is no longer
    pending at the sandbox): a lost webhook the reconciler's read did not make up for."""
    roles = world.admin.get("/people").json()["roles"]
    pending = {role: {str(i) for i in data["pending"]} for role, data in roles.items()}
    # a payer's refusal leaves the charge overdue, still payable: the journey rightly waits
    waits_after = {("payer", "refuse")}
    stuck = []
    for journey in world.ledger.list_journeys(limit=10_000):
        if journey.state not in WAITING_ON:
            continue
        role, effect = WAITING_ON[journey.state]
        object_id = world.vendor_ids(journey.lead_id).get(effect)
        if object_id is not None and str(object_id) in pending.get(role, set()):
            continue
        told = answer(world, role, str(object_id), roles.get(role, {}).get("can_refuse", True))
        if object_id is None or (role, told) not in waits_after:
            stuck.append(f"lead {journey.lead_id} {journey.state} ({effect} {object_id})")
    return stuck


def _effects(world: ChaosWorld) -> list[Any]:
    return [e for lead_id in world.lead_ids() for e in world.ledger.effects_for_lead(lead_id)]


def _inbox_counts(world: ChaosWorld) -> dict[str, int]:
    from sqlalchemy import func, select

    from ledger.models import InboxEntry

    with world.ledger._session(write=False) as session:
        rows = session.execute(
            select(InboxEntry.processed_at.is_(None), func.count()).group_by(
                InboxEntry.processed_at.is_(None)
            )
        ).all()
    by = {bool(unprocessed): int(count) for unprocessed, count in rows}
    return {"stored": sum(by.values()), "processed": by.get(False, 0)}


def accounting_counters(accounting: Any) -> dict[tuple[str, str], int]:
    return {(c.vendor, c.kind): c.created for c in accounting.kinds}


def _recorded(world: ChaosWorld) -> dict[tuple[str, str], tuple[int, int]]:
    """Per kind, (the distinct objects the ledger recorded done with their vendor id, the sends
    recorded "unconfirmed"): the vendor holds the first exactly, and at most the second more
    (a send whose connection dropped before the write never reached it; none is resent)."""
    confirmed: dict[tuple[str, str], set[str]] = {}
    unconfirmed: Counter[tuple[str, str]] = Counter()
    for effect in _effects(world):
        kind = KINDS.get((effect.vendor, effect.operation))
        if kind is None or effect.status != EffectStatus.DONE or not effect.vendor_object_id:
            continue
        if effect.vendor_object_id == "unconfirmed":
            unconfirmed[kind] += 1
        else:
            confirmed.setdefault(kind, set()).add(effect.vendor_object_id)
    kinds = set(confirmed) | set(unconfirmed)
    return {kind: (len(confirmed.get(kind, ())), unconfirmed[kind]) for kind in kinds}


def _objects(created: int, recorded: tuple[int, int]) -> str:
    confirmed, unconfirmed = recorded
    if not unconfirmed:
        return f"{created} / {confirmed}"
    return f"{created} / {confirmed} + up to {unconfirmed} sent with the answer lost"


def report_table(
    size: ChaosSize,
    phases: dict[str, float],
    accounting: Any,
    effects: list[Any],
    webhooks: list[dict[str, Any]],
    inbox: dict[str, int],
    kills: int,
    recorded: dict[tuple[str, str], tuple[int, int]],
    failed: list[str],
    stuck: list[str],
) -> str:
    """The run as the issue asks for it: one markdown table."""
    rows: list[tuple[str, str]] = [
        ("seed", str(size.seed)),
        *((name, f"{seconds:.0f}") for name, seconds in phases.items()),
        ("leads in (submitted to the form)", str(accounting.leads_in)),
        (
            "leads recorded (duplicates merged)",
            f"{accounting.recorded} ({accounting.duplicates_merged})",
        ),
    ]
    rows += [(f"state: {state}", str(n)) for state, n in sorted(accounting.states.items())]
    rows.append(("waiting on a person who already answered", str(len(stuck))))
    counters = accounting_counters(accounting)
    rows += [
        (
            f"objects: {vendor} {kind} (created / recorded)",
            _objects(created, recorded.get((vendor, kind), (0, 0))),
        )
        for (vendor, kind), created in counters.items()
    ]
    outcome = Counter(
        "done"
        if e.status == EffectStatus.DONE
        else ("dead-lettered" if e.permanent else str(e.status))
        for e in effects
    )
    rows += [(f"effects: {name}", str(n)) for name, n in sorted(outcome.items())]
    rows.append(("effects: called more than once", str(sum(e.attempts > 1 for e in effects))))
    unconfirmed = sum(e.vendor_object_id == "unconfirmed" for e in effects)
    rows.append(("effects: sent, answer lost, not resent (at most once)", str(unconfirmed)))
    rows += [
        ("webhooks: delivered", str(sum(w.get("outcome") == "delivered" for w in webhooks))),
        ("webhooks: duplicated", str(sum(w.get("duplicate_of") is not None for w in webhooks))),
        ("webhooks: dropped", str(sum(w.get("outcome") == "dropped" for w in webhooks))),
        ("webhooks: stored / processed", f"{inbox['stored']} / {inbox['processed']}"),
        ("flow process kills survived", str(kills)),
        ("reconciler rounds failed, either process (then went on)", str(len(failed))),
    ]
    rows += [
        (f"  failed round {n}", reason.replace("|", "/")) for n, reason in enumerate(failed[:3])
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'chaos run':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


async def test_chaos_creates_nothing_twice_and_accounts_for_every_lead(
    chaos_world: ChaosWorld, chaos_size: ChaosSize, tmp_path: Path
) -> None:
    from leadflow.demo import account, facebook_lead_ids, read_ledger

    world = chaos_world
    started = time.monotonic()
    chance = random.Random(chaos_size.seed)
    for vendor in world.sandbox.base_urls:
        world.admin.put(f"/faults/{vendor}", json=ROUTE_FAULTS).raise_for_status()
        world.admin.put(f"/faults/{vendor}/webhooks", json=WEBHOOK_FAULTS).raise_for_status()
    world.admin.post(
        "/facebook/leads",
        json={"count": chaos_size.leads, "bad_share": BAD_SHARE, "webhook": True},
    ).raise_for_status()

    kills = 0
    errors = tmp_path / "flow-process.stderr"
    for _ in range(KILLS):
        process = _flow_process(errors)
        after = chance.uniform(2.0, 4.0 + chaos_size.leads / 30)
        kills += await asyncio.to_thread(_kill_mid_run, process, after, world)
    killed = time.monotonic()
    # the killed process's claims and effect leases run out
    await asyncio.sleep(claim_lease_seconds(chaos_size.leads) + 0.5)
    failed = [
        line.removeprefix("FAILED ROUND ").strip()
        for line in errors.read_text(encoding="utf-8").splitlines()
        if line.startswith("FAILED ROUND ")
    ]
    rounds = await _reconcile_to_the_end(world, failed)
    await asyncio.to_thread(_pending_deliveries, world)
    await _round(lead_to_cash, failed)  # whatever the last actions sent is applied

    effects = _effects(world)
    stuck = waiting_after_acting(world)
    accounting = account(
        read_ledger(world.ledger.url), world.counters(), facebook_lead_ids(world.sandbox.sandbox)
    )
    phases = {
        "seconds: leads + flow process runs until killed": killed - started,
        f"seconds: reconciler to the end ({rounds} rounds)": time.monotonic() - killed,
    }
    table = report_table(
        chaos_size,
        phases,
        accounting,
        effects,
        world.admin.get("/webhooks").json(),
        _inbox_counts(world),
        kills,
        _recorded(world),
        failed,
        stuck,
    )
    print("\n" + table)
    if os.environ.get("LEADFLOW_CHAOS_REPORT"):
        report = Path(os.environ["LEADFLOW_CHAOS_REPORT"])
        await asyncio.to_thread(report.write_text, table + "\n", encoding="utf-8")

    assert kills == KILLS, "a kill did not interrupt a running flow process"
    assert world.created_twice() == [], table
    # the demo's accounting, less its per-kind check (it counts every "unconfirmed" WhatsApp
    # message as one object; created_twice above counts one per effect)
    assert accounting.unaccounted == (), "\n".join(accounting.unaccounted) + world.describe()
    assert accounting.orphan_candidates == 0, table
    assert stuck == [], stuck
    unsettled = {s: n for s, n in world.counts().items() if s not in SETTLED}
    assert unsettled == {}, world.describe()
    loose = [
        (e.key, e.status, e.last_error)
        for e in effects
        if not (e.status == EffectStatus.DONE or (e.status == EffectStatus.FAILED and e.last_error))
    ]
    assert loose == [], loose
    assert world.ledger.unprocessed_inbox(limit=5) == []
    assert set(KINDS.values()) <= {(c.vendor, c.kind) for c in accounting.kinds}
