"""A small world for the journey's integration tests: the sandbox, a ledger, saved Blocks, the
business's choices, and the simulated people driven on demand (no waiting on timers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from flows import intake, lead_to_cash
from ledger import JourneyState, Ledger
from sandbox.server import RunningSandbox

#: (vendor, effect operation) → (vendor, kind) as the sandbox counts what it created
KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("pipedrive", "upsert_person"): ("pipedrive", "person"),
    ("pipedrive", "create_deal"): ("pipedrive", "deal"),
    ("pipedrive", "add_note"): ("pipedrive", "note"),
    ("docusign", "create_envelope"): ("docusign", "envelope"),
    ("asaas", "create_customer"): ("asaas", "customer"),
    ("asaas", "create_pix_charge"): ("asaas", "payment"),
    ("hostinger", "create_website"): ("hostinger", "website"),
    ("whatsapp", "send_pix_code"): ("whatsapp", "message"),
    ("whatsapp", "send_welcome"): ("whatsapp", "message"),
}

#: the roles the sandbox plays, and the vendor object each one acts on
ROLES = ("salesperson", "signer", "payer")
#: where a journey stops until a person acts: closed, done, or waiting on someone
SETTLED = {
    JourneyState.WELCOMED,
    JourneyState.DEAL_LOST,
    JourneyState.CONTRACT_DECLINED,
    JourneyState.QUARANTINED,
    JourneyState.DEAD_LETTERED,
    JourneyState.DEAL_OPEN,
    JourneyState.CONTRACT_SENT,
    JourneyState.CHARGE_OPEN,
}


@dataclass
class World:
    sandbox: RunningSandbox
    admin: httpx.Client
    ledger: Ledger
    blocks: dict[str, Any]
    accept: float = 1.0
    refuse: float = 0.0

    # -- the people -----------------------------------------------------------------------
    def people(self, accept: float, refuse: float = 0.0) -> None:
        """How the salesperson, the signer and the payer will answer, from now on."""
        self.accept, self.refuse = accept, refuse

    def act(self) -> int:
        """Every person acts on everything waiting for them, as chosen by `people`."""
        acted = 0
        for role, data in self.admin.get("/people").json()["roles"].items():
            for index, object_id in enumerate(data["pending"]):
                share = (index + 0.5) / max(len(data["pending"]), 1)
                if share <= self.accept:
                    outcome = "accept"
                elif share <= self.accept + self.refuse:
                    outcome = "refuse"
                else:
                    continue
                response = self.admin.post(f"/people/{role}/{outcome}/{object_id}")
                response.raise_for_status()
                acted += 1
        return acted

    # -- leads ----------------------------------------------------------------------------
    def submit_leads(self, count: int, bad_share: float = 0.0) -> list[str]:
        response = self.admin.post(
            "/facebook/leads", json={"count": count, "bad_share": bad_share, "webhook": False}
        )
        response.raise_for_status()
        return [lead["id"] for lead in response.json()["leads"]]

    async def reconcile_until_settled(self, rounds: int = 12) -> dict[JourneyState, int]:
        """Poll the form once, then run the reconciler, letting the people act between runs,
        until nothing moves; a journey whose next step is due later is waited for (up to 2 s)."""
        await intake()
        previous: dict[JourneyState, int] | None = None
        stable = 0  # rounds in a row where nothing moved and nobody acted
        for _ in range(rounds):
            await lead_to_cash()
            counts = self.counts()
            acted = await asyncio.to_thread(self.act)
            stable = stable + 1 if counts == previous and not acted else 0
            if stable >= 2 and set(counts) <= SETTLED:
                break  # twice: a read that hit a vendor fault is retried once more first
            if stable:
                await asyncio.sleep(self.until_next_due(cap=2.0))
            previous = counts
        return self.counts()

    def until_next_due(self, cap: float) -> float:
        """Seconds until the earliest due journey not yet settled (at most `cap`)."""
        from datetime import UTC, datetime

        due = [
            j.due_at
            for j in self.ledger.list_journeys(limit=10_000)
            if j.due_at is not None and j.state not in SETTLED
        ]
        if not due:
            return 0.0
        return max(0.0, min(cap, (min(due) - datetime.now(UTC)).total_seconds()))

    def counts(self) -> dict[JourneyState, int]:
        return {JourneyState(k): v for k, v in self.ledger.journey_counts().items() if v}

    def counters(self) -> dict[str, dict[str, int]]:
        return self.admin.get("/counters").json()

    # -- what the ledger recorded -----------------------------------------------------------
    def lead_ids(self) -> list[int]:
        return [j.lead_id for j in self.ledger.list_journeys(limit=10_000)]

    def vendor_ids(self, lead_id: int) -> dict[str, str]:
        return {
            f"{e.vendor}.{e.operation}": e.vendor_object_id
            for e in self.ledger.effects_for_lead(lead_id)
            if e.is_done and e.vendor_object_id
        }

    def describe(self) -> str:
        """Each journey's state and its last recorded reason (for assertion messages)."""
        lines = []
        for lead_id in self.lead_ids():
            journey = self.ledger.get_journey(lead_id)
            effects = [
                f"{e.operation}:{e.status}:{(e.last_error or '')[:120]}"
                for e in self.ledger.effects_for_lead(lead_id)
                if not e.is_done
            ]
            lines.append(f"{lead_id} {journey.state} {self.last_reason(lead_id)!r} {effects}")
        return "\n".join(lines)

    def last_reason(self, lead_id: int) -> str:
        """Why the journey is where it is: its waiting reason, else its last move's reason."""
        waiting = self.ledger.get_journey(lead_id).waiting_reason
        if waiting:
            return waiting
        history = self.ledger.journey_history(lead_id)
        return history[-1].reason or "" if history else ""

    def created_twice(self) -> list[tuple[str, str, int, int]]:
        """(vendor, kind, created, recorded) for every kind the sandbox created more of than
        the ledger recorded: the one thing leadflow promises never happens."""
        recorded: dict[tuple[str, str], set[str]] = {}
        for lead_id in self.lead_ids():
            for effect in self.ledger.effects_for_lead(lead_id):
                kind = KINDS.get((effect.vendor, effect.operation))
                if kind is None or not effect.is_done or not effect.vendor_object_id:
                    continue
                unique = effect.vendor_object_id
                if unique == "unconfirmed":  # sent, id unknown: still one message
                    unique = f"unconfirmed:{effect.key}"
                recorded.setdefault(kind, set()).add(unique)
        return [
            (vendor, kind, created, len(recorded.get((vendor, kind), ())))
            for vendor, kinds in self.counters().items()
            for kind, created in kinds.items()
            if (vendor, kind) in KINDS.values() and created > len(recorded.get((vendor, kind), ()))
        ]


def use_business(path: Any) -> None:
    """Point this process at another business file (settings and business caches reset)."""
    import os

    from leadflow.business import reset_business_cache
    from leadflow.settings import reset_settings_cache

    os.environ["LEADFLOW_BUSINESS_FILE"] = str(path)
    reset_settings_cache()
    reset_business_cache()


def change_business(world: World, tmp_path: Any, old: str, new: str) -> Any:
    """Point this process at a copy of the business file with `old` replaced by `new`."""
    import os

    current = os.environ["LEADFLOW_BUSINESS_FILE"]
    text = open(current, encoding="utf-8").read()  # noqa: SIM115
    assert old in text, old
    changed = tmp_path / f"leadflow-{abs(hash(new))}.toml"
    changed.write_text(text.replace(old, new), encoding="utf-8")
    use_business(changed)
    return changed
