"""Fixtures for the sandbox's tests: an in-process app, a served sandbox and a webhook receiver.

Unit-level tests talk to `create_app(Sandbox(seed))` through httpx's ASGITransport (no sockets,
fast); integration tests use the real loopback server (`served`), and webhooks are received by
`WebhookReceiver`, a plain stdlib HTTP server on a free loopback port that records every request
as raw bytes, so a test can verify a signature over exactly what was sent.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.types import ASGIApp

from sandbox.app import create_app
from sandbox.core import Sandbox
from sandbox.server import RunningSandbox, running_sandbox


@dataclass(frozen=True)
class Delivery:
    """A webhook as the sandbox handed it to its sender."""

    vendor: str
    url: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def capture_deliveries(sandbox: Sandbox) -> list[Delivery]:
    """Every webhook `sandbox` sends from now on, captured at its delivery point (nothing goes
    on the wire), so a test sees exactly the bytes a receiver would, in the order sent."""
    captured: list[Delivery] = []

    def capture(
        vendor: str, url: str, body: bytes, headers: dict[str, str], redeliver: Any = None
    ) -> list[int]:
        captured.append(Delivery(vendor, url, body, headers))
        return []

    sandbox.webhooks.deliver = capture  # type: ignore[method-assign]
    return captured


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Records requests; answers `status` (POST) and Meta's hub.* handshake (GET)."""

    url: str = ""
    requests: list[ReceivedRequest] = field(default_factory=list)
    status: int = 200
    fail_first: int = 0  # answer 500 to this many POSTs before `status`
    verify_token: str = "leadflow-sandbox-verify-token"
    condition: threading.Condition = field(default_factory=threading.Condition)

    def posts(self) -> list[ReceivedRequest]:
        with self.condition:
            return [r for r in self.requests if r.method == "POST"]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """The first `count` POSTs, waiting for them; fails the test when they do not arrive."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while len([r for r in self.requests if r.method == "POST"]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} webhook deliveries, got fewer")
                self.condition.wait(left)
            return [r for r in self.requests if r.method == "POST"]


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _record(self, body: bytes) -> ReceivedRequest:
            parts = urlsplit(self.path)
            request = ReceivedRequest(
                self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body
            )
            with receiver.condition:
                receiver.requests.append(request)
                receiver.condition.notify_all()
            return request

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._record(self.rfile.read(length))
            with receiver.condition:
                failing = receiver.fail_first > 0
                if failing:
                    receiver.fail_first -= 1
            self._answer(500 if failing else receiver.status)

        def do_GET(self) -> None:
            request = self._record(b"")
            mode = request.query.get("hub.mode", [""])[0]
            token = request.query.get("hub.verify_token", [""])[0]
            challenge = request.query.get("hub.challenge", [""])[0]
            if mode == "subscribe" and token == receiver.verify_token:
                self._answer(200, challenge.encode())
            else:
                self._answer(403)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@pytest.fixture(scope="session", autouse=True)
def _long_lived_heap_frozen() -> Iterator[None]:
    """Keep the imported libraries out of the cyclic collector's full passes.

    Every test builds a whole FastAPI app (~85 routes) and drops it, which triggers many full
    (generation-2) collections; each one walked every object of the already-imported
    libraries (FastAPI, pydantic, Prefect...), which made them most of this suite's run time.
    `gc.freeze()` moves what is alive now to the permanent generation (nothing is lost: those
    objects live as long as the process anyway); `gc.unfreeze()` gives them back at the end.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


SANDBOX_THREADS = ("sandbox-server", "sandbox-people", "sandbox-webhooks")


def _sandbox_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name in SANDBOX_THREADS}


@pytest.fixture(autouse=True)
def _no_sandbox_thread_outlives_its_test() -> Iterator[None]:
    """Every server, people engine and webhook sender a test starts is stopped by its end.

    A leaked server keeps its port and a leaked worker keeps delivering into later tests;
    either makes the suite order-dependent, so a leak fails the test that caused it.
    """
    before = _sandbox_threads()
    yield
    deadline = time.monotonic() + 2.0
    leaked = _sandbox_threads() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.02)
        leaked = {t for t in leaked if t.is_alive()}
    assert not leaked, f"threads left running: {sorted(t.name for t in leaked)}"


@contextmanager
def receiving_webhooks() -> Iterator[WebhookReceiver]:
    """A loopback server recording what is posted to it, for as long as the block runs."""
    receiver = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with receiving_webhooks() as receiver:
        yield receiver


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sandbox = Sandbox(seed=11)
    yield sandbox
    sandbox.close()


def in_process(
    app: ASGIApp, base_path: str = "", headers: Mapping[str, str] | None = None
) -> httpx.AsyncClient:
    """A client of `app` with no socket between them (httpx's ASGITransport), at
    `http://sandbox{base_path}`: a vendor's base URL is `/<vendor>` under the whole app."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=f"http://sandbox{base_path}",
        headers=headers,
    )


@pytest.fixture
async def app_client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """The whole sandbox app in-process; paths are absolute (`/facebook/...`)."""
    async with in_process(create_app(sandbox)) as client:
        yield client


def subscribe_receiver(served: RunningSandbox, vendor: str, callback_url: str) -> httpx.Response:
    """The admin API's `POST /<vendor>/subscription` (Meta's handshake, then the webhook target)."""
    return httpx.post(
        f"{served.admin_url}/{vendor}/subscription", json={"callback_url": callback_url}
    )


@pytest.fixture
def served() -> Iterator[RunningSandbox]:
    """A fresh sandbox served on a free loopback port (one per test: state never leaks)."""
    with running_sandbox(seed=5) as running:
        yield running
