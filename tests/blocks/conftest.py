"""Fixtures for the vendor-client tests: a policy that records its waits instead of sleeping.

`mock` puts respx in front of the vendor whose address the test module names in `BASE`.

Each test gets fresh shared rate-limit buckets, so one test's budget never slows another.
`sandbox_admin` drives the session's in-process sandbox (tests/conftest.py `sandbox_urls`)
through its admin API, the way an operator would: read credentials, inject faults, count objects.
`sandbox` and `block` are the vendor a `*_sandbox` test module names in `VENDOR`: its faults
cleared around each test, and its Block as leadflow builds it for the sandbox.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from blocks.asaas import NewPixCharge
from blocks.credentials import ClientOptions, VendorCredentials
from blocks.docusign import forget_access_tokens
from blocks.http import HttpPolicy, RateLimit, forget_rate_limits
from blocks.whatsapp import forget_pair_rates
from leadflow.cli.blocks import app as blocks_cli
from leadflow.sandbox_blocks import sandbox_block

Saved = TypeVar("Saved", bound=VendorCredentials)


@dataclass
class RecordedSleeps:
    """A fake clock and sleep: sleeping advances the clock and records the wait."""

    waits: list[float] = field(default_factory=list)
    now: float = 1_000.0

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def new_signing_key() -> tuple[str, rsa.RSAPublicKey]:
    """A fresh RSA key as DocuSign's JWT grant uses one: the private half as PKCS#8 PEM (what
    the Block holds) and the public half (what verifies the assertion)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
def bucket(sleeps: RecordedSleeps) -> RateLimit:
    """A rate limit with room for 100 calls a second, waiting on the recorded sleeps."""
    return RateLimit(rate=100, per=1.0, burst=100, clock=sleeps.clock, sleep=sleeps.sleep)


@pytest.fixture
def policy(sleeps: RecordedSleeps) -> HttpPolicy:
    """Five attempts, 0.5 s base, 8 s cap, jitter at its ceiling so waits are predictable."""
    return HttpPolicy(
        connect_timeout=1.0,
        read_timeout=2.0,
        total_timeout=120.0,
        max_attempts=5,
        backoff_base=0.5,
        backoff_cap=8.0,
        sleep=sleeps.sleep,
        clock=sleeps.clock,
        now=lambda: 1_700_000_000.0,
        jitter=lambda low, high: high,
    )


@pytest.fixture
def mock(request: pytest.FixtureRequest) -> Iterator[respx.MockRouter]:
    """respx in front of the test module's vendor: routes name paths below the module's `BASE`.

    Not every route must be called: a test asserts on the routes it cares about.
    """
    base = getattr(request.module, "BASE", None)
    with respx.mock(base_url=base, using="keepalive", assert_all_called=False) as router:
        yield router


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    forget_rate_limits()
    forget_pair_rates()
    yield
    forget_rate_limits()
    forget_pair_rates()


@dataclass
class SandboxAdmin:
    """The in-process sandbox's admin API (`/__sandbox__`), for credentials, faults, counters."""

    client: httpx.Client
    base_urls: dict[str, str]

    def credentials(self, vendor: str) -> dict[str, str]:
        overview = self.client.get("/").raise_for_status().json()
        return overview["vendors"][vendor]["credentials"]

    def counters(self, vendor: str) -> dict[str, int]:
        return self.client.get("/counters").raise_for_status().json().get(vendor, {})

    def fault(self, vendor: str, route: str, **faults: object) -> None:
        """Make `route` ("METHOD /path/template" below the vendor prefix) misbehave."""
        self.client.put(
            f"/faults/{vendor}/routes", json={"route": route, "faults": faults}
        ).raise_for_status()

    def clear_faults(self, vendor: str) -> None:
        self.client.delete(f"/faults/{vendor}").raise_for_status()


@pytest.fixture
def sandbox_admin(sandbox_urls: dict[str, str]) -> Iterator[SandboxAdmin]:
    """Admin access to the shared session sandbox; this test's faults are cleared after it."""
    any_url = next(iter(sandbox_urls.values()))
    root = any_url.rsplit("/", 1)[0]
    with httpx.Client(base_url=f"{root}/__sandbox__", timeout=10) as client:
        admin = SandboxAdmin(client, sandbox_urls)
        try:
            yield admin
        finally:
            for vendor in ("facebook", "pipedrive", "whatsapp"):
                if vendor in sandbox_urls:
                    admin.clear_faults(vendor)


@dataclass
class VendorSandbox:
    """One vendor of the session's sandbox, and a policy whose sleep can end an outage.

    An outage "ends during the backoff": with `outage_lasts` set, the sleep clears the vendor's
    faults after that many waits, so a test shows the retry succeeding without waiting and
    without depending on a random draw.
    """

    admin: str
    vendor: str
    base_url: str
    waits: list[float] = field(default_factory=list)
    outage_lasts: int | None = None  # waits before the faults are cleared (None: never)

    async def fault(self, route: str, **faults: Any) -> None:
        async with httpx.AsyncClient() as admin:
            response = await admin.put(
                f"{self.admin}/faults/{self.vendor}/routes",
                json={"route": route, "faults": faults},
            )
            response.raise_for_status()

    async def clear(self) -> None:
        async with httpx.AsyncClient() as admin:
            (await admin.delete(f"{self.admin}/faults/{self.vendor}")).raise_for_status()

    async def credentials(self) -> dict[str, str]:
        async with httpx.AsyncClient() as admin:
            overview = (await admin.get(f"{self.admin}/")).raise_for_status().json()
        return overview["vendors"][self.vendor]["credentials"]

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.outage_lasts is not None and len(self.waits) >= self.outage_lasts:
            await self.clear()

    def policy(self) -> HttpPolicy:
        return HttpPolicy.from_settings(max_attempts=4, sleep=self.sleep)

    def rate_limit(self) -> RateLimit:
        return RateLimit(1000, 1, 1000, sleep=self.sleep)

    def client_options(self) -> ClientOptions:
        """A client's policy and rate limit, both sleeping through `sleep`."""
        return {"policy": self.policy(), "rate_limit": self.rate_limit()}


@pytest.fixture
async def sandbox(
    request: pytest.FixtureRequest, sandbox_urls: dict[str, str]
) -> AsyncIterator[VendorSandbox]:
    """The sandbox of the test module's `VENDOR`, its faults cleared before and after the test."""
    vendor: str = request.module.VENDOR
    admin = sandbox_urls[vendor].rsplit("/", 1)[0] + "/__sandbox__"
    state = VendorSandbox(admin=admin, vendor=vendor, base_url=sandbox_urls[vendor])
    await state.clear()
    yield state
    await state.clear()


@pytest.fixture
async def block(sandbox: VendorSandbox) -> VendorCredentials:
    """The module's vendor Block, as leadflow builds it for the sandbox with today's credentials."""
    return sandbox_block(sandbox.vendor, sandbox.base_url, await sandbox.credentials())


@pytest.fixture
async def vendor_client(block: VendorCredentials, sandbox: VendorSandbox) -> AsyncIterator[Any]:
    """The module's vendor client on the sandbox, its policy and rate limit sleeping through the
    sandbox's `sleep` (an outage can end during the backoff)."""
    async with block.get_client(**sandbox.client_options()) as client:
        yield client


@contextmanager
def docusign_token_granted(auth_server: str) -> Iterator[respx.MockRouter]:
    """respx in front of every host, DocuSign's `auth_server` granting a token to any assertion;
    the cached tokens are forgotten going in and coming out, so no test reuses another's."""
    forget_access_tokens()
    with respx.mock(using="keepalive", assert_all_called=False) as router:
        router.post(f"{auth_server}/oauth/token").respond(
            200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
        )
        yield router
    forget_access_tokens()


def saved_and_checked_by_the_cli(
    sandbox_urls: dict[str, str], vendor: str, kind: type[Saved]
) -> tuple[Saved, str]:
    """`leadflow blocks init --sandbox` then `check` for one vendor, both exiting 0.

    Returns the Block loaded back from Prefect under the fresh name it was saved as (a `kind`),
    and what `check` printed.
    """
    root, name = sandbox_urls[vendor].rsplit("/", 1)[0], f"q-{uuid.uuid4().hex[:8]}"
    runner = CliRunner()
    saved = runner.invoke(
        blocks_cli, ["init", "--sandbox", root, "--name", name, "--vendor", vendor]
    )
    checked = runner.invoke(blocks_cli, ["check", "--name", name, "--vendor", vendor])
    assert saved.exit_code == 0, saved.output
    assert checked.exit_code == 0, checked.output
    return asyncio.run(kind.aload(name)), checked.output


def pix_charge(customer_id: str, external_reference: str) -> NewPixCharge:
    """A year of hosting charged by PIX, due in three days."""
    return NewPixCharge(
        customer=customer_id,
        value=Decimal("129.90"),
        due_date=date.today() + timedelta(days=3),
        description="Hospedagem anual",
        external_reference=external_reference,
    )
