"""The sandbox's shared machinery: state, ids, counters, credentials, faults, webhooks, people.

Every vendor module (sandbox/vendors/<vendor>.py) receives one `Sandbox` and builds a FastAPI
router from it. Vendors keep their objects in a typed bucket, `sandbox.state.bucket(vendor,
Layout)` (a dataclass of their collections and settings), and must hold
`sandbox.state.lock` while they read-modify-write it, so concurrent requests never lose or
duplicate an object. What a vendor creates is counted with `sandbox.state.created(vendor, kind)`,
which is how a test proves that nothing was created twice.

Contract for a vendor module:

    VENDOR = "pipedrive"                       # also its URL prefix: /pipedrive/...
    DEFAULT_CREDENTIALS = {"api_token": "..."} # what the sandbox accepts, printed on start
    def build_router(sandbox: Sandbox) -> fastapi.APIRouter: ...

A vendor's router comes from its emulator, `emulator.router(route_class, fault_renderer)` (a
`VendorEmulator` method over `sandbox.vendor_router(VENDOR)`, which attaches fault injection to
every route). Simulated people are registered with `emulator.person(name, pending, accept,
refuse)`; webhooks are sent with `sandbox.webhooks.deliver(...)`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import pickle
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.responses import Response

VENDORS: tuple[str, ...] = ("facebook", "pipedrive", "docusign", "asaas", "hostinger", "whatsapp")


Bucket = TypeVar("Bucket")
#: Metadata of a bucket field that is state (a reset forgets it, `export` carries it) but no
#: vendor object, such as an index: `field(default_factory=..., metadata=INTERNAL)`.
#: `dump()` leaves it out, as the vendor's API would never show it.
INTERNAL: Mapping[str, bool] = MappingProxyType({"sandbox_internal": True})


class SandboxState:
    """All vendors' objects under one re-entrant lock, with id sequences and creation counters.

    Each vendor keeps its objects in one typed bucket (a dataclass of its collections and
    settings), laid out by the vendor on first use and again after a reset. `export()` and
    `restore()` carry the whole state between processes (the demo's rerun continues where the
    last run stopped); `dump()` is the plain-JSON view the admin API shows.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._buckets: dict[str, object] = {}
        self._sequences: Counter[tuple[str, str]] = Counter()
        self._created: Counter[tuple[str, str]] = Counter()

    def bucket(self, vendor: str, layout: Callable[[], Bucket]) -> Bucket:
        """The vendor's own state, made by `layout()` (a dataclass whose fields are its
        collections and settings) the first time it is asked for, and again after a reset."""
        with self.lock:
            found: Any = self._buckets.get(vendor)
            if found is None:
                found = self._buckets[vendor] = layout()
            return found  # what `layout` made for this vendor

    def next_id(self, vendor: str, kind: str, start: int = 1) -> int:
        """The next integer id of `kind` at `vendor`, never reused until reset."""
        with self.lock:
            key = (vendor, kind)
            if self._sequences[key] == 0:
                self._sequences[key] = start - 1
            self._sequences[key] += 1
            return self._sequences[key]

    def created(self, vendor: str, kind: str) -> None:
        """Count one object of `kind` created at `vendor`."""
        with self.lock:
            self._created[(vendor, kind)] += 1

    def counters(self) -> dict[str, dict[str, int]]:
        """Objects created so far, per vendor and kind."""
        with self.lock:
            result: dict[str, dict[str, int]] = {}
            for (vendor, kind), count in sorted(self._created.items()):
                result.setdefault(vendor, {})[kind] = count
            return result

    def dump(self) -> dict[str, Any]:
        """A plain-JSON snapshot of every vendor's state (for the admin API and debugging)."""
        with self.lock:
            return {vendor: _plain(bucket) for vendor, bucket in self._buckets.items()}

    def export(self) -> bytes:
        """Everything (buckets, id sequences, counters) as bytes that `restore` takes back.

        Pickled, because the buckets are typed objects: only ever read back by this project
        from a file it wrote itself.
        """
        with self.lock:
            return pickle.dumps(
                {"buckets": self._buckets, "sequences": self._sequences, "created": self._created}
            )

    def restore(self, exported: bytes) -> None:
        """Replace the whole state with what `export` gave; ValueError when it is unreadable."""
        try:
            data = pickle.loads(exported)  # noqa: S301 - our own export, see above
            buckets, sequences, created = data["buckets"], data["sequences"], data["created"]
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError) as exc:
            raise ValueError(f"not a sandbox state export: {exc}") from exc
        with self.lock:
            self._buckets = dict(buckets)
            self._sequences = Counter(sequences)
            self._created = Counter(created)

    def reset(self) -> None:
        with self.lock:
            self._buckets.clear()
            self._sequences.clear()
            self._created.clear()


def _plain(value: Any) -> Any:
    """A deep, JSON-shaped copy: dataclasses and pydantic models become dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.metadata.get("sandbox_internal")
        }
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value


class VendorEmulator:
    """What every vendor's emulator shares, so each one holds only what its vendor does.

    Its sandbox, and the credentials it accepts right now (the module's defaults overlaid with
    the admin API's overrides, read on every request so a change applies at once). Its objects
    and settings live in its typed bucket (`SandboxState.bucket`).
    """

    vendor: ClassVar[str]
    default_credentials: ClassVar[Mapping[str, str]]

    def __init_subclass__(
        cls, vendor: str = "", credentials: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        """`class AsaasEmulator(VendorEmulator, vendor=VENDOR, credentials=DEFAULT_CREDENTIALS)`."""
        super().__init_subclass__(**kwargs)
        if vendor:
            cls.vendor = vendor
        if credentials is not None:
            cls.default_credentials = credentials

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @classmethod
    def of(cls, sandbox: Sandbox) -> Self:
        """This vendor's emulator in `sandbox` (what its admin routes act on), typed."""
        emulator = sandbox.emulators[cls.vendor]
        if not isinstance(emulator, cls):
            raise TypeError(f"the {cls.vendor} emulator is a {type(emulator).__name__}")
        return emulator

    def router(
        self,
        route_class: type[APIRoute],
        fault_renderer: Callable[[int, dict[str, str]], Response],
    ) -> APIRouter:
        """A router for this vendor's routes; this emulator becomes the sandbox's one for the
        vendor (what its admin routes and simulated people act on).

        Every route passes fault injection (whose 5xx/429 `fault_renderer` writes in the
        vendor's words) and is served by `route_class` (the vendor's authentication and
        error envelope).
        """
        self.sandbox.emulators[self.vendor] = self
        self.sandbox.faults.register_renderer(self.vendor, fault_renderer)
        router = self.sandbox.vendor_router(self.vendor)
        router.route_class = route_class
        return router

    def person(
        self,
        name: str,
        pending: Callable[[], list[str]],
        accept: Callable[[str], Any],
        refuse: Callable[[str], Any] | None = None,
    ) -> None:
        """The simulated person `name` who acts on this vendor's objects (see PersonRole)."""
        self.sandbox.register_role(PersonRole(name, self.vendor, pending, accept, refuse))

    @property
    def credentials(self) -> dict[str, str]:
        return {**self.default_credentials, **self.sandbox.credentials.get(self.vendor, {})}

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_url(url: str) -> bool:
    """Whether `url` points at this machine (a loopback address or `localhost`).

    The sandbox posts signed webhooks wherever it is told to; a target such as
    169.254.169.254 (a cloud's metadata service) would make it a request forger, so only
    loopback targets are accepted unless the operator allows external ones.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class PersonRole:
    """A simulated person who acts on objects waiting for them (deal to win, envelope to sign...).

    `pending` lists the ids waiting for this person; `accept` is the happy outcome (win, sign,
    pay) and `refuse` the other one (lose, decline), or None where there is none. Each action
    changes the vendor's state and fires that vendor's webhook, exactly as the vendor would.
    """

    name: str
    vendor: str
    pending: Callable[[], list[str]]
    accept: Callable[[str], Any]
    refuse: Callable[[str], Any] | None = None


@dataclass
class Sandbox:
    """One running sandbox: state, credentials, fault injection, webhook delivery and people."""

    seed: int = 0
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    webhook_targets: dict[str, str] = field(default_factory=dict)
    # Off by default: webhooks (admin targets and the URLs clients register at a vendor) go only
    # to loopback, so the sandbox cannot be steered into posting to another machine.
    allow_external_webhook_targets: bool = False
    public_base_url: str = "http://127.0.0.1:8765"
    state: SandboxState = field(default_factory=SandboxState)
    roles: dict[str, PersonRole] = field(default_factory=dict)
    # vendor -> the DEFAULT_CREDENTIALS of each mounted vendor module (filled by create_app);
    # `credentials` holds only overrides, so a vendor can tell a configured value from a default.
    default_credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    # vendor -> its emulator object, for admin routes and people that act on it in-process
    emulators: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sandbox.faults import FaultInjector
        from sandbox.people import PeopleEngine
        from sandbox.webhooks import WebhookSender

        self.random = random.Random(self.seed)
        self.faults = FaultInjector(seed=self.seed)
        self.webhooks = WebhookSender(self.faults, target_allowed=self.webhook_target_allowed)
        self.people = PeopleEngine(self)

    def webhook_target_allowed(self, url: str) -> bool:
        """Whether a webhook may be sent to `url` (loopback, unless external ones are allowed)."""
        return self.allow_external_webhook_targets or is_loopback_url(url)

    def base_url(self, vendor: str) -> str:
        return f"{self.public_base_url}/{vendor}"

    def base_urls(self) -> dict[str, str]:
        """Each mounted vendor's base URL, as a client's Block needs it."""
        return {vendor: self.base_url(vendor) for vendor in self.default_credentials}

    def effective_credentials(self) -> dict[str, dict[str, str]]:
        """What each mounted vendor accepts right now: its defaults overlaid with overrides."""
        return {
            vendor: {**defaults, **self.credentials.get(vendor, {})}
            for vendor, defaults in self.default_credentials.items()
        }

    def close(self) -> None:
        """Stop the background threads (people, webhook delivery); the state stays readable."""
        self.people.stop()
        self.webhooks.close()

    def vendor_router(self, vendor: str) -> APIRouter:
        """A router whose every route passes through fault injection for `vendor`."""
        from fastapi import Depends

        return APIRouter(dependencies=[Depends(self.faults.dependency(vendor))])

    def register_role(self, role: PersonRole) -> None:
        self.roles[role.name] = role
