"""Simulated people: the salesperson, the signer and the payer who move a journey along.

A real journey waits on people — a salesperson wins the deal, the client signs the contract and
pays the PIX charge. Vendor modules register each person as a `PersonRole` (sandbox/core.py):
what is waiting for them, and what "accept" and "refuse" do (each action changes the vendor's
state and fires its webhook). This engine plays them: when an object first waits for a person,
it draws — from the sandbox's seed — whether that person will accept, refuse or never act, and
when (`delay_seconds` plus uniform jitter); a background thread carries the decision out when
it falls due. The admin API turns people on/off, tunes them, and triggers an action on demand.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from sandbox.vendor_api import AdminBody

if TYPE_CHECKING:
    from sandbox.core import PersonRole, Sandbox

logger = logging.getLogger(__name__)

Outcome = Literal["accept", "refuse"]


class PersonBehaviour(AdminBody):
    """How one simulated person behaves; what is left of the probabilities is "never acts"."""

    enabled: bool = True
    accept_probability: float = Field(0.8, ge=0, le=1)
    refuse_probability: float = Field(0.2, ge=0, le=1)
    delay_seconds: float = Field(1.0, ge=0, le=86_400)
    jitter_seconds: float = Field(0.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _coherent(self) -> PersonBehaviour:
        if self.accept_probability + self.refuse_probability > 1:
            raise ValueError("accept_probability + refuse_probability must not exceed 1")
        return self


@dataclass
class PersonAction:
    """One thing a simulated person did (or tried to do), for the admin API's action log."""

    role: str
    vendor: str
    object_id: str
    outcome: Outcome
    on_demand: bool
    ok: bool
    error: str | None = None
    at: float = field(default_factory=time.time)


@dataclass
class _Plan:
    outcome: Outcome | None  # None: this person never acts on the object
    due: float


class PeopleEngine:
    """Plays every registered role: seeded plans, a ticking thread, on-demand actions."""

    def __init__(self, sandbox: Sandbox, tick_seconds: float = 0.1) -> None:
        self.sandbox = sandbox
        self.tick_seconds = tick_seconds
        self._random = random.Random(f"{sandbox.seed}:people")
        self._lock = threading.RLock()
        self._behaviours: dict[str, PersonBehaviour] = {}
        self._plans: dict[str, dict[str, _Plan]] = {}
        self._actions: deque[PersonAction] = deque(maxlen=2000)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- configuration -------------------------------------------------------------------
    def behaviour(self, role: str) -> PersonBehaviour:
        with self._lock:
            return self._behaviours.setdefault(role, _default_behaviour(self.sandbox.roles, role))

    def configure(self, role: str, behaviour: PersonBehaviour) -> None:
        """Replace a role's behaviour; objects already planned are re-drawn under the new one."""
        if role not in self.sandbox.roles:
            raise KeyError(role)
        with self._lock:
            self._behaviours[role] = behaviour
            self._plans.pop(role, None)

    def describe(self) -> dict[str, Any]:
        """Each role with its vendor, behaviour and what is waiting for it."""
        result: dict[str, Any] = {"running": self.running, "roles": {}}
        for name, role in sorted(self.sandbox.roles.items()):
            result["roles"][name] = {
                "vendor": role.vendor,
                "can_refuse": role.refuse is not None,
                "behaviour": self.behaviour(name).model_dump(),
                "pending": role.pending(),
            }
        return result

    def actions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(action) for action in self._actions]

    # -- acting --------------------------------------------------------------------------
    def act(self, role_name: str, object_id: str, outcome: Outcome, on_demand: bool = True) -> Any:
        """Make `role_name` accept or refuse `object_id` now; the vendor's result is returned.

        Raises KeyError for an unknown role and ValueError when the role cannot refuse; a
        vendor's own error (object unknown or no longer pending) propagates after being logged.
        """
        role = self.sandbox.roles[role_name]
        action = role.accept if outcome == "accept" else role.refuse
        if action is None:
            raise ValueError(f"{role_name} cannot refuse")
        record = PersonAction(role_name, role.vendor, object_id, outcome, on_demand, ok=True)
        try:
            return action(object_id)
        except Exception as error:
            record.ok = False
            record.error = f"{type(error).__name__}: {error}"
            raise
        finally:
            with self._lock:
                self._actions.append(record)
                self._plans.get(role_name, {}).pop(object_id, None)

    def tick(self, now: float | None = None) -> int:
        """One pass over every enabled role: plan new objects, carry out due plans; # actions."""
        now = time.monotonic() if now is None else now
        done = 0
        for name, role in sorted(self.sandbox.roles.items()):
            behaviour = self.behaviour(name)
            if not behaviour.enabled:
                continue
            due = self._due_plans(name, role, behaviour, now)
            for object_id, outcome in due:
                try:
                    self.act(name, object_id, outcome, on_demand=False)
                except Exception:
                    logger.warning("%s could not %s %s", name, outcome, object_id, exc_info=True)
                done += 1
        return done

    def _due_plans(
        self, name: str, role: PersonRole, behaviour: PersonBehaviour, now: float
    ) -> list[tuple[str, Outcome]]:
        pending = role.pending()
        with self._lock:
            plans = self._plans.setdefault(name, {})
            for gone in set(plans) - set(pending):
                del plans[gone]
            for object_id in pending:
                if object_id not in plans:
                    plans[object_id] = self._draw(behaviour, role.refuse is not None, now)
            due: list[tuple[str, Outcome]] = []
            for object_id in pending:
                plan = plans[object_id]
                if plan.outcome is not None and plan.due <= now:
                    due.append((object_id, plan.outcome))
                    plan.outcome = None  # never attempted twice, even if the vendor refuses it
            return due

    def _draw(self, behaviour: PersonBehaviour, can_refuse: bool, now: float) -> _Plan:
        draw = self._random.random()
        jitter = self._random.uniform(0, behaviour.jitter_seconds)
        outcome: Outcome | None = None
        if draw < behaviour.accept_probability:
            outcome = "accept"
        elif draw < behaviour.accept_probability + behaviour.refuse_probability and can_refuse:
            outcome = "refuse"
        return _Plan(outcome, now + behaviour.delay_seconds + jitter)

    # -- the background thread -----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start ticking in the background (idempotent)."""
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-people", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:  # one broken role must not stop the others for good
                logger.exception("simulated people tick failed")


_DEFAULTS: dict[str, tuple[float, float]] = {
    "salesperson": (0.7, 0.3),
    "signer": (0.9, 0.1),
    "payer": (0.85, 0.15),
}


def _default_behaviour(roles: dict[str, PersonRole], name: str) -> PersonBehaviour:
    accept, refuse = _DEFAULTS.get(name, (0.8, 0.2))
    role = roles.get(name)
    if role is not None and role.refuse is None:
        refuse = 0.0
    return PersonBehaviour(accept_probability=accept, refuse_probability=refuse)
