"""Fault injection: the sandbox misbehaving the ways real vendors do, reproducibly from a seed.

leadflow's retries, idempotency keys and reconciliation exist for these failures, so the sandbox
must produce them on demand, per vendor and per route ("POST /v3/payments", the method and the
path template as the vendor writes it, below the `/<vendor>` prefix):

- error: a 500/502/503 (or 504) before the handler runs — nothing was written;
- throttle: 429 with `Retry-After` — nothing was written;
- latency: added before the handler on every request (plus jitter), awaited, never blocking;
- gateway_timeout: a complete 504 from the vendor's gateway after `gateway_timeout_seconds` —
  nothing was written (the old "timeout" fault; a real timeout is one of the next two);
- hang: the request is held, unanswered, until the client gives up and disconnects or
  `hang_seconds` pass, then the connection closes without a byte — nothing was written, and
  the client only knows that it does not know (its read timeout fires);
- drop: the connection closes before the handler runs, without a byte — nothing was written
  (a reset connection: the request may have been lost on the way in);
- lost_answer: the handler runs and commits, then the connection drops mid-response, after the
  status line and before the body ("write committed, answer lost"), the case that duplicates
  objects in a client that retries blindly.

and, for webhooks (see sandbox/webhooks.py): dropped, duplicated and delayed deliveries.

Route templates use the names the vendor module gave its path parameters (the Graph's
`{phone-number-id}` is `{phone_number_id}` here); `GET /__sandbox__/faults` lists, under
`requests`, every route template seen so far, which is the quickest way to find one.

Every route has its own random stream seeded from (seed, vendor, route), so the sequence of
faults one route sees does not depend on traffic to other routes: a seeded run is reproducible.

How the connection is dropped: the ASGI middleware installed by `install_fault_handling` lets
the response start, then raises `ConnectionDropped` instead of sending the body. uvicorn closes
the socket when an app fails after the response started, so an HTTP client sees the peer close
mid-response (httpx: RemoteProtocolError); in-process (httpx.ASGITransport) the same exception
type reaches the client directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AliasChoices, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.vendor_api import AdminBody

FaultKind = Literal["error", "throttle", "gateway_timeout", "hang", "drop", "lost_answer"]
ERROR_STATUSES: frozenset[int] = frozenset({500, 502, 503, 504})
_SCOPE_KEY = "leadflow.sandbox.fault"
FAULT_HEADER = "X-Sandbox-Fault"


MAX_LATENCY_MS = 60_000.0
MAX_HOLD_SECONDS = 300.0
MAX_RETRY_AFTER_SECONDS = 86_400


class RouteFaults(AdminBody):
    """How often one vendor (or one of its routes) fails, and how. Rates are probabilities.

    Every number is bounded and finite (`NaN` and `Infinity` are refused): an unbounded latency
    or hang would make every call wait forever and keep the server from shutting down.
    `timeout_rate`/`timeout_seconds`, the names before hang and drop existed, still set `hang`.
    """

    model_config = ConfigDict(populate_by_name=True)

    error_rate: float = Field(0.0, ge=0, le=1)
    error_statuses: list[int] = Field(
        default_factory=lambda: [500, 502, 503], min_length=1, max_length=4
    )
    throttle_rate: float = Field(0.0, ge=0, le=1)
    retry_after_seconds: int = Field(1, ge=0, le=MAX_RETRY_AFTER_SECONDS)
    latency_ms: float = Field(0.0, ge=0, le=MAX_LATENCY_MS)
    latency_jitter_ms: float = Field(0.0, ge=0, le=MAX_LATENCY_MS)
    gateway_timeout_rate: float = Field(0.0, ge=0, le=1)
    gateway_timeout_seconds: float = Field(0.0, ge=0, le=MAX_HOLD_SECONDS)
    hang_rate: float = Field(
        0.0, ge=0, le=1, validation_alias=AliasChoices("hang_rate", "timeout_rate")
    )
    hang_seconds: float = Field(
        30.0,
        ge=0,
        le=MAX_HOLD_SECONDS,
        validation_alias=AliasChoices("hang_seconds", "timeout_seconds"),
    )
    drop_rate: float = Field(0.0, ge=0, le=1)
    lost_answer_rate: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _coherent(self) -> RouteFaults:
        unknown = set(self.error_statuses) - ERROR_STATUSES
        if unknown:
            raise ValueError(f"error_statuses must be among {sorted(ERROR_STATUSES)}: {unknown}")
        total = (
            self.error_rate
            + self.throttle_rate
            + self.gateway_timeout_rate
            + self.hang_rate
            + self.drop_rate
            + self.lost_answer_rate
        )
        if total > 1:
            raise ValueError(f"the fault rates add up to {total:.3f}, more than 1")
        return self


class WebhookFaults(AdminBody):
    """How a vendor's webhook deliveries misbehave. A dropped delivery is never sent."""

    drop_rate: float = Field(0.0, ge=0, le=1)
    duplicate_rate: float = Field(0.0, ge=0, le=1)
    delay_rate: float = Field(0.0, ge=0, le=1)
    delay_seconds: float = Field(1.0, ge=0, le=3600)


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: `kind` None means it is served normally."""

    kind: FaultKind | None
    latency_seconds: float = 0.0
    status: int | None = None
    retry_after_seconds: int = 0
    hold_seconds: float = 0.0


@dataclass(frozen=True)
class WebhookDecision:
    """What happens to one webhook delivery: dropped, or sent `copies` times after `delay`."""

    drop: bool
    copies: int
    delay_seconds: float


class InjectedFaultError(Exception):
    """Raised by the fault dependency to answer in place of the handler."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"injected fault {response.status_code}")
        self.response = response


class ConnectionDropped(httpx.RemoteProtocolError):
    """The sandbox dropped the connection on purpose (timeout or lost answer).

    A subclass of httpx's own error so that an in-process client (ASGITransport) sees the same
    exception type as one talking to uvicorn over loopback.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"sandbox dropped the connection: {reason}")


FaultRenderer = Callable[[int, dict[str, str]], Response]
"""Builds a vendor's body for an injected 5xx/429: (status, headers to include) -> Response."""


def _generic_fault_response(status: int, headers: dict[str, str]) -> Response:
    if status == 429:
        return JSONResponse(
            status_code=429, content={"error": "Too Many Requests"}, headers=headers
        )
    # 502/503/504 come from a gateway in front of the vendor: plain text, not the vendor's JSON.
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return PlainTextResponse(
        f"{status} {reason.get(status, 'Gateway Timeout')}", status_code=status, headers=headers
    )


class FaultInjector:
    """Per-vendor and per-route fault rules with seeded, independent random streams."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._vendor_rules: dict[str, RouteFaults] = {}
        self._route_rules: dict[tuple[str, str], RouteFaults] = {}
        self._webhook_rules: dict[str, WebhookFaults] = {}
        self._streams: dict[tuple[str, str], random.Random] = {}
        self._renderers: dict[str, FaultRenderer] = {}
        self._injected: Counter[tuple[str, str, str]] = Counter()
        self._seen: Counter[tuple[str, str]] = Counter()

    # -- configuration -------------------------------------------------------------------
    def configure(self, vendor: str, faults: RouteFaults, route: str | None = None) -> None:
        """Set `vendor`'s rule, or one route's rule (which wins over the vendor's)."""
        with self._lock:
            if route is None:
                self._vendor_rules[vendor] = faults
            else:
                self._route_rules[(vendor, _normalise_route(route))] = faults

    def configure_webhooks(self, vendor: str, faults: WebhookFaults) -> None:
        with self._lock:
            self._webhook_rules[vendor] = faults

    def clear(self, vendor: str | None = None) -> None:
        """Remove the rules (of one vendor or all) and restart every random stream."""
        with self._lock:
            if vendor is None:
                self._vendor_rules.clear()
                self._route_rules.clear()
                self._webhook_rules.clear()
                self._streams.clear()
                self._injected.clear()
                self._seen.clear()
                return
            self._vendor_rules.pop(vendor, None)
            self._webhook_rules.pop(vendor, None)
            for key in [k for k in self._route_rules if k[0] == vendor]:
                del self._route_rules[key]
            for key in [k for k in self._streams if k[0] == vendor]:
                del self._streams[key]

    def register_renderer(self, vendor: str, renderer: FaultRenderer) -> None:
        """Let a vendor shape its injected 5xx/429 bodies (Graph's error envelope, ...)."""
        self._renderers[vendor] = renderer

    def describe(self) -> dict[str, Any]:
        """The rules in force and what was injected so far (for the admin API)."""
        with self._lock:
            injected: dict[str, dict[str, dict[str, int]]] = {}
            for (vendor, route, kind), count in sorted(self._injected.items()):
                injected.setdefault(vendor, {}).setdefault(route, {})[kind] = count
            requests: dict[str, dict[str, int]] = {}
            for (vendor, route), count in sorted(self._seen.items()):
                requests.setdefault(vendor, {})[route] = count
            return {
                "vendors": {v: r.model_dump() for v, r in sorted(self._vendor_rules.items())},
                "routes": {
                    f"{v} {route}": r.model_dump()
                    for (v, route), r in sorted(self._route_rules.items())
                },
                "webhooks": {v: r.model_dump() for v, r in sorted(self._webhook_rules.items())},
                "requests": requests,
                "injected": injected,
            }

    # -- decisions -----------------------------------------------------------------------
    def _stream(self, vendor: str, key: str) -> random.Random:
        stream = self._streams.get((vendor, key))
        if stream is None:
            stream = random.Random(f"{self.seed}:{vendor}:{key}")
            self._streams[(vendor, key)] = stream
        return stream

    def decide(self, vendor: str, route: str) -> FaultDecision:
        """Draw the fate of one request to `route` ("POST /v3/payments") at `vendor`."""
        route = _normalise_route(route)
        with self._lock:
            self._seen[(vendor, route)] += 1
            rule = self._route_rules.get((vendor, route)) or self._vendor_rules.get(vendor)
            if rule is None:
                return FaultDecision(kind=None)
            stream = self._stream(vendor, route)
            latency = rule.latency_ms / 1000
            if rule.latency_jitter_ms:
                latency += stream.uniform(0, rule.latency_jitter_ms) / 1000
            draw = stream.random()
            decision = FaultDecision(kind=None, latency_seconds=latency)
            threshold = rule.error_rate
            if draw < threshold:
                status = stream.choice(rule.error_statuses)
                decision = FaultDecision("error", latency, status=status)
            elif draw < (threshold := threshold + rule.throttle_rate):
                decision = FaultDecision(
                    "throttle", latency, status=429, retry_after_seconds=rule.retry_after_seconds
                )
            elif draw < (threshold := threshold + rule.gateway_timeout_rate):
                decision = FaultDecision(
                    "gateway_timeout",
                    latency,
                    status=504,
                    hold_seconds=rule.gateway_timeout_seconds,
                )
            elif draw < (threshold := threshold + rule.hang_rate):
                decision = FaultDecision("hang", latency, hold_seconds=rule.hang_seconds)
            elif draw < (threshold := threshold + rule.drop_rate):
                decision = FaultDecision("drop", latency)
            elif draw < threshold + rule.lost_answer_rate:
                decision = FaultDecision("lost_answer", latency)
            if decision.kind is not None:
                self._injected[(vendor, route, decision.kind)] += 1
            return decision

    def decide_webhook(self, vendor: str) -> WebhookDecision:
        """Draw the fate of one webhook delivery from `vendor` (its own seeded stream)."""
        with self._lock:
            rule = self._webhook_rules.get(vendor)
            if rule is None:
                return WebhookDecision(drop=False, copies=1, delay_seconds=0.0)
            stream = self._stream(vendor, "webhook")
            drop = stream.random() < rule.drop_rate
            copies = 2 if stream.random() < rule.duplicate_rate else 1
            delayed = stream.random() < rule.delay_rate
            if drop:
                self._injected[(vendor, "webhook", "dropped")] += 1
            else:
                if copies > 1:
                    self._injected[(vendor, "webhook", "duplicated")] += 1
                if delayed:
                    self._injected[(vendor, "webhook", "delayed")] += 1
            return WebhookDecision(
                drop=drop, copies=copies, delay_seconds=rule.delay_seconds if delayed else 0.0
            )

    # -- the FastAPI side ----------------------------------------------------------------
    def dependency(self, vendor: str) -> Callable[[Request], Awaitable[None]]:
        """A route dependency applying `vendor`'s faults before its handler runs."""
        prefix = f"/{vendor}"

        async def inject(request: Request) -> None:
            route = request.scope.get("route")
            template = getattr(route, "path", request.url.path)
            if template.startswith(prefix + "/"):
                template = template[len(prefix) :]
            decision = self.decide(vendor, f"{request.method} {template}")
            if decision.latency_seconds:
                await asyncio.sleep(decision.latency_seconds)
            if decision.kind is None:
                return
            marker: _Marker | None = request.scope.get(_SCOPE_KEY)
            if decision.kind == "lost_answer":
                if marker is not None:
                    marker.drop_reason = "the write happened but the answer was lost"
                return
            if decision.kind == "hang":
                await _hold_until_disconnected(request, decision.hold_seconds)
                raise _drop_without_answer(marker, "hang: no answer before the client gave up")
            if decision.kind == "drop":
                # read the request first: closing a socket with unread bytes is a TCP reset,
                # which the client may see before or instead of the close; this is the close
                await request.body()
                raise _drop_without_answer(marker, "dropped before the request was handled")
            if decision.kind == "gateway_timeout" and decision.hold_seconds:
                await asyncio.sleep(decision.hold_seconds)
            assert decision.status is not None
            headers: dict[str, str] = {FAULT_HEADER: decision.kind}
            if decision.kind == "throttle":
                headers["Retry-After"] = str(decision.retry_after_seconds)
            renderer = self._renderers.get(vendor, _generic_fault_response)
            raise InjectedFaultError(renderer(decision.status, headers))

        return inject


def _normalise_route(route: str) -> str:
    method, _, path = route.strip().partition(" ")
    return f"{method.upper()} {path.strip()}"


async def _hold_until_disconnected(request: Request, seconds: float) -> None:
    """Wait, answering nothing, until the client disconnects or `seconds` pass.

    Bounded so that a server asked to stop is not kept open by a hanging request; awaited, so a
    hang never blocks the event loop for the other requests.
    """

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass  # the rest of a request body: not what we wait for

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), timeout=seconds)


def _drop_without_answer(marker: _Marker | None, reason: str) -> InjectedFaultError:
    """Mark the request to be closed without a byte; the returned error ends the handler."""
    if marker is not None:
        marker.drop_reason = reason
        marker.before_status_line = True
    return InjectedFaultError(PlainTextResponse("", status_code=504))


@dataclass
class _Marker:
    drop_reason: str | None = None
    before_status_line: bool = False


# ASGI has no "close this connection" message. A response start whose header value holds a
# newline is refused by the server (uvicorn's httptools and h11 protocols alike) after it has
# marked the response started and before it writes anything; the server then closes the socket
# instead of sending its own 500. The client sees the peer close with no response at all.
_UNSENDABLE_START: Message = {
    "type": "http.response.start",
    "status": 504,
    "headers": [(b"x-sandbox-fault", b"drop\n")],
}


class _DropConnectionMiddleware:
    """Turns a response into a dropped connection when the fault dependency asked for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        marker = _Marker()
        scope[_SCOPE_KEY] = marker

        async def guarded_send(message: Message) -> None:
            if marker.drop_reason is None:
                await send(message)
                return
            if message["type"] == "http.response.start":
                if marker.before_status_line:
                    with contextlib.suppress(Exception):
                        await send(_UNSENDABLE_START)  # the server closes without writing
                else:
                    await send(message)  # the client sees the status line, then the socket closes
                raise ConnectionDropped(marker.drop_reason)

        await self.app(scope, receive, guarded_send)


class _HideDeliberateDrops(logging.Filter):
    """uvicorn logs an app failure with a traceback; a deliberate drop is not a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_drop_filter = _HideDeliberateDrops()


def install_fault_handling(app: FastAPI, faults: FaultInjector) -> None:
    """Wire the injector's exceptions and the connection-dropping middleware into `app`."""

    async def answer_with_fault(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InjectedFaultError)
        return exc.response

    app.add_exception_handler(InjectedFaultError, answer_with_fault)
    app.add_middleware(_DropConnectionMiddleware)
    app.state.faults = faults
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if _drop_filter not in uvicorn_errors.filters:
        uvicorn_errors.addFilter(_drop_filter)
