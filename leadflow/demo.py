"""`leadflow demo`: an agency's week of clients, run against the sandbox in under a minute.

What a newcomer runs first (`make demo`). Everything runs in this process, on loopback: the
sandbox plays Facebook, Pipedrive, DocuSign, Asaas, Hostinger and WhatsApp and the people in
the journey (salespeople winning and losing deals, clients signing or declining, paying or
not); leadflow's webhook service receives their signed webhooks; the reconciler
(`flows.lead_to_cash`) runs until every journey is final or waits on a person who will not act
within the demo's horizon. Then the accounting: every lead accounted for, and the sandbox's
own creation counters compared with the ledger's done effects, proving nothing was made twice.

State lives in a project-local directory (`.leadflow/demo/` by default): the ledger (SQLite),
the `leadflow.toml` that `setup_sandbox` writes, and a snapshot of the sandbox's objects taken
on exit, so Ctrl-C and a rerun continue where the last run stopped. `--fresh` starts over.

Where it sits: a consumer of the whole system (sandbox, webhooks, flows, ledger), imported by
`leadflow/cli/demo.py` only; nothing of leadflow depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "FINAL_STATES",
    "HAND_MINUTES_PER_CLIENT",
    "KIND_OF_EFFECT",
    "WAITING_STATES",
    "Accounting",
    "DemoOptions",
    "DemoOutcome",
    "DemoPaths",
    "KindCheck",
    "LedgerSnapshot",
    "account",
    "read_ledger",
    "run_demo",
]

logger = logging.getLogger("leadflow.demo")

#: what one person spends per client by hand (copy the lead, make the deal, send the contract,
#: issue the charge, chase the payment, set up the site, write the welcome): the issue's figure
HAND_MINUTES_PER_CLIENT = 45

#: a journey here is finished: nothing more will happen to it without a person's fix
FINAL_STATES: tuple[str, ...] = (
    "welcomed",
    "deal_lost",
    "contract_declined",
    "quarantined",
    "dead_lettered",
)
#: a journey here waits on a person (salesperson, signer, payer)
WAITING_STATES: tuple[str, ...] = ("deal_open", "contract_sent", "charge_open")
#: the order states are shown in
STATE_ORDER: tuple[str, ...] = (
    "received",
    "quarantined",
    "qualified",
    "deal_open",
    "deal_lost",
    "deal_won",
    "contract_sent",
    "contract_declined",
    "contract_signed",
    "charge_open",
    "paid",
    "activating",
    "activated",
    "welcomed",
    "dead_lettered",
)

#: sandbox creation counter (vendor, kind) -> the ledger effect operations that create it.
#: The proof that nothing was created twice compares the two.
KIND_OF_EFFECT: dict[tuple[str, str], tuple[str, ...]] = {
    ("pipedrive", "person"): ("upsert_person",),
    ("pipedrive", "deal"): ("create_deal",),
    ("pipedrive", "note"): ("add_note",),
    ("docusign", "envelope"): ("create_envelope",),
    ("asaas", "customer"): ("create_customer",),
    ("asaas", "payment"): ("create_pix_charge",),
    ("hostinger", "website"): ("create_website",),
    ("whatsapp", "message"): ("send_pix_code", "send_welcome"),
}

#: the people of the journey: (accept, refuse) probabilities; what is left never acts
PEOPLE: dict[str, tuple[float, float]] = {
    "salesperson": (0.75, 0.20),
    "signer": (0.85, 0.10),
    "payer": (0.90, 0.00),
}
PEOPLE_DELAY_SECONDS = 0.3
PEOPLE_JITTER_SECONDS = 1.5

#: the journey's timing in the demo: its horizon is seconds, not days
DEMO_TIMING: dict[str, float] = {
    "retry_base_seconds": 0.2,
    "retry_cap_seconds": 2.0,
    # webhooks move the journeys; the reconciler's read of a waiting deal, envelope or charge
    # is the fallback for a lost one, so it need not run every round
    "waiting_recheck_seconds": 5.0,
    "activation_poll_seconds": 0.3,
    "activation_poll_cap_seconds": 1.0,
    "claim_lease_seconds": 30.0,
    "effect_lease_seconds": 30.0,
}
#: process settings for the demo (a hung vendor call gives up after seconds, not half a minute);
#: an explicit environment variable wins
DEMO_ENVIRONMENT: dict[str, str] = {
    "LEADFLOW_HTTP_CONNECT_TIMEOUT": "2",
    "LEADFLOW_HTTP_READ_TIMEOUT": "2",
    "LEADFLOW_HTTP_TOTAL_TIMEOUT": "30",
    "LEADFLOW_HTTP_BACKOFF_BASE": "0.05",
    "LEADFLOW_HTTP_BACKOFF_CAP": "1",
    "LEADFLOW_HTTP_MAX_RATE_LIMIT_PAUSE": "3",
}
HOSTINGER_ACTIVATION_DELAY_SECONDS = 0.5
#: the intake deployment polls the forms every 5 minutes; the demo's week runs in seconds
POLL_SECONDS = 5.0
#: vendor calls in flight per step (leadflow.toml `concurrency`, 10 by default)
DEMO_CONCURRENCY = 10
BLOCKS_NAME = "demo"
PIPEDRIVE_WEBHOOK_USER = "leadflow-demo"


@dataclass(frozen=True)
class DemoOptions:
    """One demo run. `faults` is the share of vendor calls and webhooks that misbehave."""

    leads: int = 200
    faults: float = 0.0
    seed: int = 7
    fresh: bool = False
    state_dir: Path = Path(".leadflow/demo")
    bad_share: float = 0.15
    repeat_share: float = 0.05
    #: how long nothing may move, with every journey final or waiting on a person, before the
    #: people are taken as not acting within the demo's horizon
    quiet_seconds: float = 4.0
    #: the run gives up (and its accounting fails) after this long
    time_limit_seconds: float = 180.0

    def __post_init__(self) -> None:
        if self.leads < 0:
            raise ValueError("--leads must be 0 or more")
        if not 0 <= self.faults <= 0.5:
            raise ValueError("--faults must be between 0 and 0.5")
        if not 0 <= self.bad_share + self.repeat_share <= 1:
            raise ValueError("bad_share + repeat_share must be between 0 and 1")


@dataclass(frozen=True)
class DemoPaths:
    """Where one demo keeps its state between runs."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.db"

    @property
    def business_file(self) -> Path:
        return self.root / "leadflow.toml"

    @property
    def sandbox_state(self) -> Path:
        return self.root / "sandbox-state.pickle"

    @property
    def webhook_port(self) -> Path:
        return self.root / "webhooks.port"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.ledger.resolve()}"

    def wipe(self) -> None:
        for path in (self.ledger, self.business_file, self.sandbox_state, self.webhook_port):
            path.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{self.ledger}{suffix}").unlink(missing_ok=True)


# -- what the ledger says ---------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSnapshot:
    """Everything the accounting reads from the ledger, in a few queries."""

    #: source id (the Graph lead id) -> (lead id, duplicate of)
    facebook_leads: dict[str, tuple[int, int | None]]
    #: lead id -> journey state, for every lead that has a journey
    states: dict[int, str]
    #: lead ids without a journey that are no duplicate: lost by the ledger
    orphans: tuple[int, ...]
    #: state -> lead ids whose journey ever reached it
    reached: dict[str, frozenset[int]]
    #: dead-lettered lead id -> the reason it was dead-lettered with
    dead_letter_reasons: dict[int, str]
    #: rule -> leads quarantined for it (open quarantine records)
    quarantine_rules: dict[str, int]
    #: (vendor, operation) -> effects recorded done (each one object at the vendor)
    done_effects: dict[tuple[str, str], int]
    #: effects whose late worker may have made a second object
    orphan_candidates: int
    #: at-most-once writes (WhatsApp) whose answer was lost: never resent, maybe never sent
    unconfirmed: int
    #: lead id -> seconds from received to welcomed
    welcome_seconds: dict[int, float]
    #: how many transitions the ledger recorded (moves since the last look mean progress)
    transitions: int


def read_ledger(database_url: str) -> LedgerSnapshot:
    """Read the accounting's facts from the ledger's tables (read-only, one session).

    The Ledger's façade offers per-lead reads; the accounting needs the whole picture at once
    (every lead, every transition, every effect), so it queries the tables directly.
    """
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from ledger.models import Effect, Journey, JourneyTransition, Lead, QuarantineRecord

    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            leads = session.execute(
                select(Lead.id, Lead.source, Lead.source_id, Lead.duplicate_of_lead_id)
            ).all()
            journeys = dict(session.execute(select(Journey.lead_id, Journey.state)).all())
            journey_lead = dict(session.execute(select(Journey.id, Journey.lead_id)).all())
            moves = session.execute(
                select(
                    JourneyTransition.journey_id,
                    JourneyTransition.to_state,
                    JourneyTransition.at,
                    JourneyTransition.reason,
                ).order_by(JourneyTransition.id)
            ).all()
            effects = session.execute(
                select(
                    Effect.vendor,
                    Effect.operation,
                    Effect.status,
                    Effect.vendor_object_id,
                    Effect.orphan_candidates,
                )
            ).all()
            quarantine = session.execute(
                select(QuarantineRecord.lead_id, QuarantineRecord.reasons).where(
                    QuarantineRecord.replayed_at.is_(None)
                )
            ).all()
            received_at = dict(session.execute(select(Lead.id, Lead.received_at)).all())
            transitions = session.execute(select(func.count(JourneyTransition.id))).scalar_one()
    finally:
        engine.dispose()

    facebook = {
        source_id: (lead_id, duplicate_of)
        for lead_id, source, source_id, duplicate_of in leads
        if source == "facebook"
    }
    orphans = tuple(
        lead_id
        for lead_id, _source, _sid, duplicate_of in leads
        if duplicate_of is None and lead_id not in journeys
    )
    reached: dict[str, set[int]] = {}
    dead_reasons: dict[int, str] = {}
    welcomed_at: dict[int, datetime] = {}
    for journey_id, to_state, at, reason in moves:
        lead_id = journey_lead.get(journey_id)
        if lead_id is None:
            continue
        reached.setdefault(to_state, set()).add(lead_id)
        if to_state == "dead_lettered":
            dead_reasons[lead_id] = reason or "(no reason recorded)"
        if to_state == "welcomed":
            welcomed_at[lead_id] = at
    for lead_id, state in journeys.items():
        reached.setdefault(state, set()).add(lead_id)  # a journey is in its own state
    rules: Counter[str] = Counter()
    for lead_id, reasons in quarantine:
        if journeys.get(lead_id) != "quarantined":
            continue
        for rule in {str(r.get("rule") or r.get("description") or r) for r in reasons or []}:
            rules[rule] += 1
    # one done effect is one object the ledger knows of (an at-most-once write whose answer
    # was lost is done as "unconfirmed": still one object)
    done: Counter[tuple[str, str]] = Counter()
    candidates = unconfirmed = 0
    for vendor, operation, status, vendor_id, orphan in effects:
        candidates += len(orphan or [])
        if status == "done" and vendor_id:
            done[(vendor, operation)] += 1
            unconfirmed += vendor_id == "unconfirmed"
    return LedgerSnapshot(
        facebook_leads=facebook,
        states=dict(journeys),
        orphans=orphans,
        reached={state: frozenset(ids) for state, ids in reached.items()},
        dead_letter_reasons={
            lead_id: reason
            for lead_id, reason in dead_reasons.items()
            if journeys.get(lead_id) == "dead_lettered"
        },
        quarantine_rules=dict(rules),
        done_effects=dict(done),
        unconfirmed=unconfirmed,
        orphan_candidates=candidates,
        welcome_seconds={
            lead_id: (at - received_at[lead_id]).total_seconds()
            for lead_id, at in welcomed_at.items()
            if lead_id in received_at
        },
        transitions=int(transitions),
    )


# -- the accounting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KindCheck:
    """One kind of vendor object: how many the vendor made, how many the ledger knows."""

    vendor: str
    kind: str
    created: int
    in_ledger: int

    @property
    def twice(self) -> bool:
        """More objects at the vendor than the ledger recorded: one was made twice."""
        return self.created > self.in_ledger


@dataclass(frozen=True)
class Accounting:
    """The end of the demo, in the business's words, and whether it balances."""

    leads_in: int
    recorded: int
    quarantined: int
    quarantine_rules: dict[str, int]
    duplicates_merged: int
    deals_won: int
    deals_lost: int
    contracts_signed: int
    contracts_declined: int
    charges_paid: int
    services_activated: int
    welcomed: int
    waiting: dict[str, int]
    dead_lettered: dict[int, str]
    states: dict[str, int]
    kinds: tuple[KindCheck, ...]
    orphan_candidates: int
    unaccounted: tuple[str, ...]
    welcome_seconds: tuple[float, ...]
    #: a lead worth `leadflow journeys show`: a welcomed client, else a dead-lettered one
    example_lead: int | None = None
    #: WhatsApp messages whose answer was lost: recorded, never resent (at most once)
    unconfirmed: int = 0

    @property
    def created_twice(self) -> tuple[KindCheck, ...]:
        return tuple(check for check in self.kinds if check.twice)

    @property
    def problems(self) -> tuple[str, ...]:
        """Every reason the demo must exit non-zero, one line each."""
        lines = list(self.unaccounted)
        lines += [
            f"{c.vendor} made {c.created} {c.kind}(s) but the ledger knows {c.in_ledger}: "
            "something was created twice"
            for c in self.created_twice
        ]
        if self.orphan_candidates:
            lines.append(
                f"{self.orphan_candidates} effect(s) report a second object (orphan candidates)"
            )
        return tuple(lines)

    @property
    def ok(self) -> bool:
        return not self.problems


def account(
    snapshot: LedgerSnapshot,
    counters: Mapping[str, Mapping[str, int]],
    facebook_lead_ids: list[str],
) -> Accounting:
    """Balance the sandbox (what was submitted and created) against the ledger.

    A lead is accounted for when the ledger recorded it and it either was merged into an
    earlier lead of the same person or its journey is final or waiting on a person.
    """
    unaccounted: list[str] = []
    missing = [i for i in facebook_lead_ids if i not in snapshot.facebook_leads]
    if missing:
        unaccounted.append(
            f"{len(missing)} lead(s) submitted to the form never reached the ledger "
            f"(Graph ids {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''})"
        )
    if snapshot.orphans:
        unaccounted.append(
            f"{len(snapshot.orphans)} lead(s) have neither a journey nor an earlier lead "
            f"(lead ids {', '.join(map(str, snapshot.orphans[:5]))})"
        )
    settled = set(FINAL_STATES) | set(WAITING_STATES)
    moving = Counter(state for state in snapshot.states.values() if state not in settled)
    for state, count in sorted(moving.items()):
        unaccounted.append(f"{count} journey(s) still in {state!r} when the demo ended")
    states = Counter(snapshot.states.values())
    duplicates = sum(1 for _, dup in snapshot.facebook_leads.values() if dup is not None)
    kinds = tuple(
        KindCheck(
            vendor,
            kind,
            int(counters.get(vendor, {}).get(kind, 0)),
            sum(snapshot.done_effects.get((vendor, op), 0) for op in operations),
        )
        for (vendor, kind), operations in KIND_OF_EFFECT.items()
    )

    def reached(state: str) -> int:
        return len(snapshot.reached.get(state, ()))

    return Accounting(
        leads_in=len(facebook_lead_ids),
        recorded=len(snapshot.facebook_leads),
        quarantined=states.get("quarantined", 0),
        quarantine_rules=dict(snapshot.quarantine_rules),
        duplicates_merged=duplicates,
        deals_won=reached("deal_won"),
        deals_lost=reached("deal_lost"),
        contracts_signed=reached("contract_signed"),
        contracts_declined=reached("contract_declined"),
        charges_paid=reached("paid"),
        services_activated=reached("activated"),
        welcomed=reached("welcomed"),
        waiting={state: states.get(state, 0) for state in WAITING_STATES},
        dead_lettered=dict(snapshot.dead_letter_reasons),
        states=dict(states),
        kinds=kinds,
        orphan_candidates=snapshot.orphan_candidates,
        unaccounted=tuple(unaccounted),
        welcome_seconds=tuple(sorted(snapshot.welcome_seconds.values())),
        unconfirmed=snapshot.unconfirmed,
        example_lead=min(snapshot.welcome_seconds, default=None)
        or min(snapshot.dead_letter_reasons, default=None),
    )


# -- the sandbox, kept between runs -----------------------------------------------------------


def save_sandbox_state(sandbox: Any, path: Path) -> None:
    """Snapshot the sandbox's objects, id sequences and counters, so a rerun continues.

    Written to a temporary file, then renamed: a Ctrl-C during the write leaves the previous
    snapshot whole.
    """
    partial = path.with_suffix(".partial")
    partial.write_bytes(sandbox.state.export())
    partial.replace(path)


def load_sandbox_state(sandbox: Any, path: Path) -> bool:
    """Put a snapshot back into a fresh sandbox; False when there is none (or it is unreadable)."""
    if not path.exists():
        return False
    try:
        sandbox.state.restore(path.read_bytes())
    except ValueError:
        logger.warning("the sandbox snapshot %s is unreadable; starting from a fresh sandbox", path)
        return False
    return True


def facebook_lead_ids(sandbox: Any) -> list[str]:
    """Every lead the sandbox's simulated people submitted to the form."""
    return sandbox.emulators["facebook"].lead_ids()


# -- the webhook service, in this process -----------------------------------------------------


@dataclass
class WebhookService:
    url: str
    server: Any
    thread: threading.Thread


def _bind_webhook_socket(paths: DemoPaths) -> Any:
    """The port of the last run when free (the sandbox's subscriptions still point at it)."""
    from sandbox.server import bind_socket

    with contextlib.suppress(ValueError, OSError):
        port = int(paths.webhook_port.read_text().strip())
        return bind_socket("127.0.0.1", port)
    return bind_socket("127.0.0.1", 0)


@contextlib.contextmanager
def serve_webhooks(app: Any, paths: DemoPaths) -> Iterator[WebhookService]:
    """leadflow's webhook service on loopback, in a thread (as the sandbox is served)."""
    import uvicorn

    from sandbox.server import _http_implementation, serving_in_thread

    sock = _bind_webhook_socket(paths)
    port = sock.getsockname()[1]
    paths.webhook_port.write_text(str(port))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=_http_implementation(),
        loop="asyncio",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    try:
        with serving_in_thread(config, sock, "demo-webhooks", stop_seconds=15) as served:
            yield WebhookService(f"http://127.0.0.1:{port}", *served)
    finally:
        sock.close()


def webhook_settings(credentials: Mapping[str, Mapping[str, str]], password: str) -> Any:
    """The webhook service's secrets, matching what the sandbox signs its deliveries with."""
    from pydantic import SecretStr

    from webhooks.settings import TriggerMode, WebhookSettings

    return WebhookSettings(
        facebook_app_secret=SecretStr(credentials["facebook"]["app_secret"]),
        facebook_verify_token=SecretStr(credentials["facebook"]["verify_token"]),
        whatsapp_app_secret=SecretStr(credentials["whatsapp"]["app_secret"]),
        pipedrive_user=PIPEDRIVE_WEBHOOK_USER,
        pipedrive_password=SecretStr(password),
        docusign_hmac_keys=[SecretStr(credentials["docusign"]["connect_hmac_key"])],
        asaas_token=SecretStr(credentials["asaas"]["webhook_auth_token"]),
        trigger=TriggerMode.IN_PROCESS,
    )


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Progress:
    """What the live display shows, updated as the demo runs."""

    _phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    #: (phase, seconds since the start when it began): where the time went
    phases: list[tuple[str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    submitted: int = 0
    target: int = 0
    rounds: int = 0
    webhooks: int = 0
    resumed: bool = False
    faults: float = 0.0
    failed_rounds: int = 0
    last_error: str | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, name: str) -> None:
        self._phase = name
        self.phases.append((name, self.elapsed))

    def durations(self) -> list[tuple[str, float]]:
        """Each phase with how long it lasted (the last one until now)."""
        ends = [at for _, at in self.phases[1:]] + [self.elapsed]
        return [(name, end - at) for (name, at), end in zip(self.phases, ends, strict=True)]


@dataclass
class DemoOutcome:
    """How a run ended: its accounting, counters, timing, and whether it was interrupted."""

    accounting: Accounting
    counters: dict[str, dict[str, int]]
    elapsed_seconds: float
    journey_seconds: float
    resumed: bool
    interrupted: bool = False
    timed_out: bool = False
    rounds: int = 0
    webhooks_received: int = 0
    prefect_ui: str | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)
    failed_rounds: int = 0
    last_error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.accounting.ok and not self.timed_out else 1


@contextlib.contextmanager
def demo_environment(paths: DemoPaths) -> Iterator[None]:
    """Point this process's settings at the demo's ledger and business file (restored after)."""
    from leadflow.business import reset_business_cache
    from leadflow.settings import reset_settings_cache

    wanted = {
        "LEADFLOW_DATABASE_URL": paths.database_url,
        "LEADFLOW_BUSINESS_FILE": str(paths.business_file.resolve()),
    }
    for name, value in DEMO_ENVIRONMENT.items():
        wanted.setdefault(name, os.environ.get(name, value))
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    reset_settings_cache()
    reset_business_cache()
    try:
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
        reset_settings_cache()
        reset_business_cache()


def with_top_level(path: Path, values: Mapping[str, int]) -> None:
    """Add top-level keys to the leadflow.toml `setup_sandbox` wrote (its `extra_toml` lands
    after the last table, where only table keys can go): the demo's batch size and vendor
    concurrency, so one reconciler round takes every lead of the week at once."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = [line for line in lines if line.split("=")[0].strip() not in values]
    at = next(i for i, line in enumerate(lines) if line.startswith("blocks ="))
    lines[at + 1 : at + 1] = [f"{name} = {value}\n" for name, value in values.items()]
    path.write_text("".join(lines), encoding="utf-8")


def timing_toml() -> str:
    """The `[timing]` section for the demo, with only the keys this leadflow knows."""
    from leadflow.business import TimingChoices

    known = TimingChoices.model_fields
    lines = [f"{name} = {value}" for name, value in DEMO_TIMING.items() if name in known]
    return "\n[timing]\n" + "\n".join(lines) + "\n"


async def _admin(admin: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await admin.request(method, path, **kwargs)
    response.raise_for_status()
    return response.json()


async def configure_people(admin: httpx.AsyncClient) -> None:
    """Salespeople win most deals and lose some, clients sign or decline, most pay; a few of
    each never act, and wait past the demo's horizon."""
    roles = (await _admin(admin, "GET", "/people"))["roles"]
    for role, (accept, refuse) in PEOPLE.items():
        if role not in roles:
            continue
        if not roles[role]["can_refuse"]:
            refuse = 0.0
        await _admin(
            admin,
            "PUT",
            f"/people/{role}",
            json={
                "accept_probability": accept,
                "refuse_probability": refuse,
                "delay_seconds": PEOPLE_DELAY_SECONDS,
                "jitter_seconds": PEOPLE_JITTER_SECONDS,
            },
        )


async def configure_faults(admin: httpx.AsyncClient, vendors: list[str], rate: float) -> None:
    """Transient faults on every vendor route, and duplicated, dropped and late webhooks.

    Every kind the sandbox offers is used: 5xx, 429 with Retry-After, a hung request, a
    dropped connection, and a lost answer (the write committed, the answer never came).
    """
    await _admin(admin, "DELETE", "/faults")
    if rate <= 0:
        return
    route = {
        "error_rate": rate * 0.35,
        "throttle_rate": rate * 0.2,
        "retry_after_seconds": 1,
        "hang_rate": rate * 0.05,
        "hang_seconds": 5,
        "drop_rate": rate * 0.15,
        "lost_answer_rate": rate * 0.25,
    }
    hooks = {
        "drop_rate": rate * 0.5,
        "duplicate_rate": rate,
        "delay_rate": rate * 0.5,
        "delay_seconds": 1.0,
    }
    for vendor in vendors:
        await _admin(admin, "PUT", f"/faults/{vendor}", json=route)
        await _admin(admin, "PUT", f"/faults/{vendor}/webhooks", json=hooks)


async def submit_leads(
    running: Any, admin: httpx.AsyncClient, count: int, bad_share: float, repeat_share: float
) -> int:
    """People fill the Facebook form: `bad_share` badly, `repeat_share` a second time.

    Each submission fires a signed `leadgen` webhook, as Meta does.
    """
    if count <= 0:
        return 0
    from sandbox.vendors.facebook import LeadSubmission

    body: dict[str, Any] = {"count": count, "bad_share": bad_share, "webhook": True}
    if "repeat_share" in LeadSubmission.model_fields:
        body["repeat_share"] = repeat_share
        return len((await _admin(admin, "POST", "/facebook/leads", json=body))["leads"])
    repeats = round(count * repeat_share)
    body["count"] = count - repeats
    made = 0
    if body["count"]:
        made = len((await _admin(admin, "POST", "/facebook/leads", json=body))["leads"])
    return made + _repeat_people(running.sandbox, repeats)


def _repeat_people(sandbox: Any, count: int) -> int:
    """`count` people who already filled the form fill it again (same e-mail and phone).

    Stand-in until the sandbox's lead submission takes a `repeat_share`: each repeat copies
    an earlier good lead's answers, under a new Graph id, and fires its webhook.
    """
    emulator = sandbox.emulators["facebook"]
    with sandbox.state.lock:
        leads = emulator.bucket.leads
        good = [lead for lead in leads.values() if lead["quality"] == "good"]
    made = 0
    for index in range(min(count, len(good))):
        source = good[(index * 7919) % len(good)]
        with sandbox.state.lock:
            seq = sandbox.state.next_id("facebook", "lead")
            lead_id = str(880_000_000_000_000 + seq)
            lead = {
                **source,
                "id": lead_id,
                "seq": seq,
                "created_time": int(time.time()),
                "quality": "repeat",
            }
            emulator.store_lead(lead)
        emulator.fire_leadgen(lead)
        made += 1
    return made


async def _register_webhooks(
    blocks: Mapping[str, Any], url: str, settings: Any, running: Any
) -> None:
    """Subscribe the webhook service at the sandbox as an agency would (`leadflow webhooks
    register`), and point the vendors configured in a console at it."""
    from webhooks.registration import endpoint, register_all

    await register_all(url, blocks, settings)
    for vendor in ("facebook", "docusign", "asaas", "whatsapp"):
        running.sandbox.webhook_targets[vendor] = endpoint(url, vendor)
    # a previous run's service listened elsewhere: its Pipedrive subscription must go
    async with blocks["pipedrive"].get_client() as client:
        http = client._http
        listed = await http.request_json("GET", "/api/v1/webhooks")
        for hook in listed.get("data") or []:
            if hook.get("subscription_url") != endpoint(url, "pipedrive"):
                await http.request_json("DELETE", f"/api/v1/webhooks/{hook['id']}", idempotent=True)


#: the demo's Blocks: the field of each vendor's client-side budget -> the sandbox's own limit.
#: A Block's defaults are the vendors' published limits for a small account (Pipedrive's 20
#: requests per 2 s, DocuSign's 3,000 calls an hour, Hostinger's self-imposed 60 a minute,
#: Meta's 200 Graph calls an hour); the sandbox publishes far higher ones, and a client keeps
#: under the limits of the service it talks to.
SANDBOX_BUDGETS: dict[str, dict[str, int]] = {
    "facebook": {"calls_per_hour": 1_000_000},
    "pipedrive": {"burst_limit": 2_000},
    "docusign": {"hourly_limit": 1_000_000, "burst": 10_000},
    "hostinger": {"requests_per_minute": 60_000, "burst": 1_000},
}


async def _sandbox_budgets() -> dict[str, Any]:
    """Give the demo's saved Blocks the sandbox's limits; the Blocks, loaded, for this process.

    The process-wide rate limit of an account is made by the first client of it, so the
    webhook registration must use these Blocks, not fresh ones with the published defaults.
    """
    import blocks as vendor_blocks
    from tasks.journey import VENDOR_CREDENTIALS

    loaded: dict[str, Any] = {}
    for vendor, class_name in VENDOR_CREDENTIALS.items():
        block = await getattr(vendor_blocks, class_name).aload(BLOCKS_NAME)
        changes = {
            name: value
            for name, value in SANDBOX_BUDGETS.get(vendor, {}).items()
            if name in type(block).model_fields and getattr(block, name) != value
        }
        if changes:
            for name, value in changes.items():
                setattr(block, name, value)
            await block.asave(BLOCKS_NAME, overwrite=True)
        loaded[vendor] = block
    return loaded


def _settled(counts: Mapping[str, int]) -> bool:
    return all(state in FINAL_STATES or state in WAITING_STATES for state, n in counts.items() if n)


async def _journey_counts(database_url: str) -> dict[str, int]:
    from ledger import shared_ledger

    counts = await asyncio.to_thread(shared_ledger(database_url).journey_counts)
    return {str(state): n for state, n in counts.items() if n}


def _ledger_totals(database_url: str) -> tuple[int, int]:
    """(moves recorded, Facebook leads recorded): a change in either means progress."""
    from sqlalchemy import func, select

    from ledger.models import JourneyTransition, Lead

    engine = _reader(database_url)
    with engine.connect() as connection:
        moves = connection.execute(select(func.count(JourneyTransition.id))).scalar_one()
        leads = connection.execute(
            select(func.count(Lead.id)).where(Lead.source == "facebook")
        ).scalar_one()
    return int(moves), int(leads)


@functools.lru_cache(maxsize=4)
def _reader(database_url: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(database_url)


def prefect_ui_url() -> str | None:
    """The Prefect UI of the server this process reports to (None: the temporary server)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if not PREFECT_API_URL.value():
        return None
    return PREFECT_UI_URL.value() or PREFECT_API_URL.value().removesuffix("/api")


async def run_demo(
    options: DemoOptions,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    on_sandbox: Callable[[Any], None] | None = None,
) -> DemoOutcome:
    """Run the demo to its end (or until `stop` is set) and account for every lead.

    `progress` is updated for a live display; `on_sandbox` sees the running sandbox before
    the accounting (tests use it to break the books on purpose).
    """
    paths = DemoPaths(options.state_dir)
    progress = progress or Progress()
    stop = stop or asyncio.Event()
    progress.faults = options.faults
    if options.fresh:
        paths.wipe()
    paths.root.mkdir(parents=True, exist_ok=True)
    with demo_environment(paths):
        return await _run(options, paths, progress, stop, on_sandbox)


async def _run(
    options: DemoOptions,
    paths: DemoPaths,
    progress: Progress,
    stop: asyncio.Event,
    on_sandbox: Callable[[Any], None] | None,
) -> DemoOutcome:
    import importlib
    import secrets

    progress.phase = "loading leadflow"
    for module in ("flows", "webhooks.app", "leadflow.setup", "sandbox.server"):
        await asyncio.to_thread(importlib.import_module, module)  # the display keeps moving
    from blocks.http import forget_rate_limits
    from flows import handle_deliveries, intake, lead_to_cash
    from leadflow.setup import setup_sandbox
    from ledger import shared_ledger
    from sandbox.core import Sandbox
    from sandbox.server import running_sandbox
    from webhooks.app import create_app

    progress.phase = "sandbox and ledger"
    url = paths.database_url
    ledger = shared_ledger(url)
    await asyncio.to_thread(ledger.upgrade)
    sandbox = Sandbox(seed=options.seed)
    loop = asyncio.get_running_loop()

    async def process(inbox_ids: list[int]) -> None:
        """The webhook service hands new deliveries to the journey in the demo's own loop."""
        future = asyncio.run_coroutine_threadsafe(handle_deliveries(inbox_ids=inbox_ids), loop)
        await asyncio.wrap_future(future)

    interrupted = timed_out = False
    journey_started = time.monotonic()
    # before the sandbox serves anything: its routes seed their defaults on first use only
    progress.resumed = await asyncio.to_thread(load_sandbox_state, sandbox, paths.sandbox_state)
    with running_sandbox(seed=options.seed, sandbox=sandbox) as running:
        admin = httpx.AsyncClient(base_url=running.admin_url, timeout=30)
        try:
            progress.phase = "Prefect server, Blocks, leadflow.toml"
            await setup_sandbox(
                running.url,
                blocks_name=BLOCKS_NAME,
                business_file=paths.business_file,
                extra_toml=timing_toml(),
            )
            from leadflow.business import reset_business_cache

            with_top_level(
                paths.business_file,
                {"batch_size": min(5000, max(100, options.leads)), "concurrency": DEMO_CONCURRENCY},
            )
            reset_business_cache()
            blocks = await _sandbox_budgets()
            # setup's own clients made the accounts' shared limits with the published defaults
            forget_rate_limits()
            settings = webhook_settings(running.credentials, secrets.token_urlsafe(24))
            app = create_app(settings, ledger=ledger, runner=process)
            progress.phase = "webhook service, people, faults"
            with serve_webhooks(app, paths) as service:
                await _register_webhooks(blocks, service.url, settings, running)
                await _admin(
                    admin,
                    "PUT",
                    "/hostinger/settings",
                    json={"activation_delay_seconds": HOSTINGER_ACTIVATION_DELAY_SECONDS},
                )
                await configure_people(admin)
                await configure_faults(admin, list(running.base_urls), options.faults)
                await _admin(admin, "POST", "/people/start")
                already = len(facebook_lead_ids(sandbox))
                progress.target = max(options.leads, already)
                progress.submitted = already
                progress.phase = "people fill the lead form"
                journey_started = time.monotonic()
                progress.submitted += await submit_leads(
                    running,
                    admin,
                    options.leads - already,
                    options.bad_share,
                    options.repeat_share,
                )
                progress.phase = "the journey runs"
                watcher = asyncio.create_task(_watch(url, progress))
                try:
                    interrupted, timed_out = await _reconcile_until_settled(
                        options, url, progress, stop, lead_to_cash, lambda: intake(poll=True)
                    )
                finally:
                    watcher.cancel()
                progress.phase = "stopping"
                await _admin(admin, "POST", "/people/stop")
                await _admin(admin, "DELETE", "/faults")
                with contextlib.suppress(httpx.HTTPError):
                    await _admin(admin, "POST", "/webhooks/wait", json={"timeout_seconds": 5})
                webhooks_received = len(running.sandbox.webhooks.log())
            # the service stopped after finishing what it had stored
            journey_seconds = time.monotonic() - journey_started
            if on_sandbox is not None:
                on_sandbox(running)
            counters = await _admin(admin, "GET", "/counters")
            lead_ids = facebook_lead_ids(sandbox)
        finally:
            await admin.aclose()
            sandbox.people.stop()
            await asyncio.to_thread(save_sandbox_state, sandbox, paths.sandbox_state)
    snapshot = await asyncio.to_thread(read_ledger, url)
    accounting = account(snapshot, counters, lead_ids)
    return DemoOutcome(
        accounting=accounting,
        counters=counters,
        elapsed_seconds=progress.elapsed,
        journey_seconds=journey_seconds,
        resumed=progress.resumed,
        interrupted=interrupted,
        timed_out=timed_out,
        rounds=progress.rounds,
        webhooks_received=webhooks_received,
        prefect_ui=prefect_ui_url(),
        phases=progress.durations(),
        failed_rounds=progress.failed_rounds,
        last_error=progress.last_error,
    )


async def _reconcile_until_settled(
    options: DemoOptions,
    url: str,
    progress: Progress,
    stop: asyncio.Event,
    lead_to_cash: Callable[[], Any],
    poll_forms: Callable[[], Any],
) -> tuple[bool, bool]:
    """Run the reconciler until every journey is final or waits on a person who has not acted
    for `quiet_seconds`; (interrupted, timed out).

    A round that fails (a vendor down for longer than its retries, say) is what the scheduled
    reconciler meets in production too: it is counted, shown, and the next round goes on;
    Prefect keeps the failed run with its logs.
    """
    started = time.monotonic()
    # with faults a webhook may be lost: the reconciler's read finds the person's answer
    quiet = options.quiet_seconds
    if options.faults:
        quiet = max(quiet, DEMO_TIMING["waiting_recheck_seconds"] + 3)
    last_moves = -1
    quiet_since = time.monotonic()
    polled = 0.0
    while True:
        if stop.is_set():
            return True, False

        async def one_round(poll: bool) -> None:
            """The two schedules of a deployed leadflow: the forms' poll (a lead whose
            webhook was lost) and the reconciler."""
            if poll:
                await poll_forms()
            await lead_to_cash()

        poll = time.monotonic() - polled >= POLL_SECONDS
        polled = time.monotonic() if poll else polled
        round_ = asyncio.ensure_future(one_round(poll))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({round_, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not round_.done():  # Ctrl-C: the round's claims and leases expire on their own
            round_.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await round_
            return True, False
        try:
            round_.result()
        except Exception as error:
            from leadflow.privacy import mask_text

            progress.failed_rounds += 1
            progress.last_error = mask_text(f"{type(error).__name__}: {error}")[:300]
        progress.rounds += 1
        progress.counts = await _journey_counts(url)
        moves, recorded = await asyncio.to_thread(_ledger_totals, url)
        now = time.monotonic()
        if moves != last_moves:
            last_moves, quiet_since = moves, now
        # a lead whose webhook was lost comes in with the next poll of the forms; one that
        # never comes in is left for the accounting to name
        waited = quiet if recorded >= progress.submitted else max(3 * quiet, 2 * POLL_SECONDS)
        if _settled(progress.counts) and now - quiet_since >= waited:
            return False, False
        if now - started > options.time_limit_seconds:
            return False, True
        with contextlib.suppress(TimeoutError):
            # a short breath between rounds (longer when nothing moved), cut short by Ctrl-C
            idle = _settled(progress.counts) or quiet_since < now
            await asyncio.wait_for(stop.wait(), timeout=0.5 if idle else 0.05)


async def _watch(url: str, progress: Progress) -> None:
    """Keep the display's counts fresh while a reconciler round runs."""
    while True:
        with contextlib.suppress(Exception):  # a busy database: the next look will do
            progress.counts = await _journey_counts(url)
        await asyncio.sleep(0.5)
