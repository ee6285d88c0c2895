"""The one HTTP policy every vendor client uses: timeouts, retries, rate limits, errors, logging.

Where it sits: each vendor client (blocks/<vendor>.py) owns one `VendorHTTP`, built by its
credentials Block, and calls `request()` with a path TEMPLATE. This module decides what is retried
(429, 500, 502, 503, 504 and network errors — never a 4xx), how long to wait (exponential backoff
with full jitter, capped, or the vendor's `Retry-After` / rate-limit headers when it gives them),
keeps the process under the vendor's published rate (`RateLimit`, a token bucket shared by every
client of the same vendor and credential), and turns failures into blocks.errors classes.

Non-idempotent requests (POST by default) are retried only when the vendor provably did nothing:
a connection that never opened, or a 429. A POST whose answer never came (read timeout, dropped
connection, 5xx) raises `UnknownOutcomeError`: the task must look the object up by its external
reference before creating it again (DESIGN.md, the ledger's effect protocol).

A vendor's pause is bounded and scoped: a `Retry-After` or a spent rate-limit header pauses
for at most LEADFLOW_HTTP_MAX_RATE_LIMIT_PAUSE (120 s by default, whatever the vendor asks), and
only the route it was seen on, unless the vendor counts one budget per credential
(`rate_limit_scope="vendor"`: Graph, Pipedrive, DocuSign). Limits come in the shapes vendors
publish them: a token bucket (`RateLimit`), a count per rolling window (`RollingWindow`), a cap
on requests in flight (`ConcurrencyCap`); a caller caps its own calls in flight, to every vendor
at once, with `calls_in_flight` (a journey step's concurrency). A 2xx whose body cannot be read
is an error of the tree too (`read_answer`): TransientError for a read, UnknownOutcomeError for a
write.

One logical call never takes longer than the policy's total timeout, waits included: a
`Retry-After`, a backoff or a rate-limit wait that would overrun it is not slept but raised
(RateLimitedError/TransientError with `retry_after`), and the task's Prefect retry waits instead.
A client may be used from several event loops (each `asyncio.run` of a sync task): every loop
gets its own connection pool, while the rate limits stay shared by the whole process.

Tasks do not build a VendorHTTP themselves; they load a vendor's Block and use its client, e.g.
`async with (await PipedriveCredentials.load("default")).get_client() as pipedrive: ...`.

Across processes, the rate limit is Prefect's business, not this module's: a credentials Block may
name a Prefect global concurrency limit (`concurrency_limit_name`), and the tasks wrap their vendor
calls in it, e.g.::

    from prefect.concurrency.asyncio import rate_limit

    await rate_limit(block.concurrency_limit_name)   # a GCL with slot_decay_per_second set
    deal = await client.create_deal(...)

`VendorHTTP` never calls Prefect, so the clients also work in plain Python and in tests.

Every attempt writes one line to the "leadflow.http" logger — vendor, method, path template,
status, attempt, duration in ms — and never a query value, body, token or personal datum
(the logger carries leadflow.privacy.MaskingFilter as a second line of defence).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import json as jsonlib
import logging
import math
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

import leadflow
from blocks.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from blocks.keepalive import KeepAliveConnection, header_items, headers_of
from leadflow.privacy import install_masking, mask_text
from leadflow.settings import get_settings

__all__ = [
    "USER_AGENT",
    "ConcurrencyCap",
    "ErrorParser",
    "HttpPolicy",
    "RateLimit",
    "RateLimitWaitTooLong",
    "RollingWindow",
    "SharedObjects",
    "VendorClient",
    "VendorHTTP",
    "calls_in_flight",
    "credential_fingerprint",
    "default_error_parser",
    "forget_rate_limits",
    "json_object",
    "parse_retry_after",
    "shared_limit",
    "shared_rate_limit",
    "status_text",
]

logger = install_masking(logging.getLogger("leadflow.http"))
# httpx logs every request's full URL at INFO, query string included (search terms are e-mails
# and phones): its records go through the same mask.
install_masking(logging.getLogger("httpx"))

#: statuses worth another attempt (DESIGN.md principle 4); everything else 4xx is permanent
RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
#: methods that only read: an unreadable answer to anything else may hide a write that happened
READ_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"})
#: `name/x.y.z`, as WhatsApp's spec requires and every vendor's logs can group by
USER_AGENT = f"leadflow/{leadflow.__version__}"
#: connections kept per vendor and event loop (one lane each, see `_Lanes`): a journey step has
#: at most this many calls in flight to one vendor; more wait for a lane
POOL_CONNECTIONS = 64
#: URLs without a query kept parsed per client (the fixed paths; see VendorHTTP._build_request)
PARSED_URLS_KEPT = 1024

T = TypeVar("T")

ErrorParser = Callable[[httpx.Response], tuple[str | None, str]]
Sleep = Callable[[float], Awaitable[None]]


# --------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class HttpPolicy:
    """How long to wait and how often to try. Defaults come from leadflow.settings.

    `sleep`, `clock` (monotonic seconds), `now` (wall-clock epoch seconds, for HTTP-date
    `Retry-After`) and `jitter` (random.uniform's signature) are injectable so tests can check
    the waits without waiting.
    """

    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_attempts: int
    backoff_base: float
    backoff_cap: float
    sleep: Sleep = field(default=asyncio.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    now: Callable[[], float] = field(default=time.time, compare=False)
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)
    #: the longest pause one 429 or rate-limit header may impose (a setting, default 120 s)
    max_rate_limit_pause: float = 120.0

    @classmethod
    def from_settings(cls, **overrides: Any) -> HttpPolicy:
        """The policy the settings describe, with any field overridden (e.g. `sleep=` in tests)."""
        settings = get_settings()
        values: dict[str, Any] = {
            "connect_timeout": settings.http_connect_timeout,
            "read_timeout": settings.http_read_timeout,
            "total_timeout": settings.http_total_timeout,
            "max_attempts": settings.http_max_attempts,
            "backoff_base": settings.http_backoff_base,
            "backoff_cap": settings.http_backoff_cap,
            "max_rate_limit_pause": settings.http_max_rate_limit_pause,
        }
        values.update(overrides)
        return cls(**values)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**(attempt-1))) after the `attempt`-th failure.

        Full jitter spreads concurrent retriers over the whole window, so a burst of failures
        does not come back as a burst (AWS architecture blog, "Exponential Backoff And Jitter").
        """
        exponent = min(attempt - 1, 62)  # 2**63 overflows nothing in Python, but keeps it sane
        ceiling = min(self.backoff_cap, self.backoff_base * math.pow(2, exponent))
        return self.jitter(0.0, ceiling)

    def timeout(self) -> httpx.Timeout:
        """httpx's per-attempt timeouts: connect and pool from `connect_timeout`, the rest read."""
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110 10.2.3).

    A date in the past means "now" (0.0); an unreadable value is ignored (None), because a
    malformed hint must not turn into an error or an unbounded wait.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; parsedate gives naive for "-0000"
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _rate_limit_reset(response: httpx.Response, *, now: float) -> float | None:
    """Seconds until the vendor's window resets, when its headers say the budget is spent.

    Understands `x-ratelimit-remaining: 0` with `x-ratelimit-reset` as seconds (Pipedrive,
    Hostinger) or as an epoch timestamp (GitHub-style), and the IETF draft `ratelimit-*` names.
    """
    headers = response.headers
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining = headers.get(prefix + "remaining")
        if remaining is None:
            continue
        try:
            if float(remaining) > 0:
                return None
            reset = float(headers.get(prefix + "reset", "1"))
        except ValueError:
            return None
        if not math.isfinite(reset):
            return None
        if reset > 1_000_000_000:  # an epoch timestamp rather than a delta
            reset -= now
        return max(reset, 0.0)
    return None


# ----------------------------------------------------------------------------------- rate limit


class RateLimitWaitTooLong(Exception):  # noqa: N818 - a signal, not a failure of its own
    """Raised by `RateLimit.acquire(max_wait=...)` instead of waiting longer than allowed.

    Nothing was reserved: the caller turns it into a RateLimitedError carrying `wait` as the
    retry hint, so a task retries later instead of sleeping past its own time budget.
    """

    def __init__(self, wait: float) -> None:
        super().__init__(f"the rate limit would make this call wait {wait:.1f}s")
        self.wait = wait


class RateLimit:
    """A token bucket: `rate` calls per `per` seconds on average, up to `burst` at once.

    Implemented as a schedule rather than an asyncio lock (the generic cell rate algorithm): the
    bucket is shared by every client of a vendor in the process, and Prefect may run tasks on
    more than one event loop (and thread). Under a thread lock each call books the moment its
    tokens will be there and moves the bucket's "full again" time forward; then it sleeps until
    its moment, holding no lock. That is fair (first come, first served), works across loops, and
    admits at most `burst + rate * t / per` calls in any window of t seconds.

    `hold(seconds)` stops everyone until then: a vendor-wide 429 or an exhausted vendor budget
    applies to the whole credential, not only to the call that saw it. The bucket is full again
    when the hold ends (the vendor's window has reset), and a caller that booked its moment
    before the hold was placed books again after it instead of slipping through.
    `hold(seconds, scope="GET /v3/payments")` stops only the callers that name that scope (a
    vendor whose limits are per route), and books nothing on the shared schedule.
    """

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or per <= 0 or burst < 1:
            raise ValueError("RateLimit needs rate > 0, per > 0 and burst >= 1")
        self.rate = rate
        self.per = per
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._full_at = clock()  # when the bucket holds `burst` tokens again
        self._held_until = float("-inf")
        self._scope_held_until: dict[str, float] = {}

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return self.per / self.rate

    def _reserve(self, tokens: float, max_wait: float | None) -> tuple[float, float]:
        """Book `tokens`; return (seconds to wait, the hold this booking took into account)."""
        with self._lock:
            now = self._clock()
            held_until = self._held_until
            full_at = max(self._full_at, now, held_until) + tokens * self.interval
            # a cost above `burst` books its moment when the debt it leaves has been earned
            ready = max(now, held_until, full_at - self.burst * self.interval)
            wait = ready - now
            if wait < 1e-9:  # float dust from adding intervals up is no reason to sleep
                wait = 0.0
            if max_wait is not None and wait > max_wait:
                raise RateLimitWaitTooLong(wait)
            self._full_at = full_at
            return wait, held_until

    def _scope_hold(self, scope: str | None) -> tuple[float, float]:
        """(seconds left, the hold's end) of the hold on `scope`; (0, -inf) when none."""
        if scope is None:
            return 0.0, float("-inf")
        with self._lock:
            until = self._scope_held_until.get(scope)
            if until is None:
                return 0.0, float("-inf")
            wait = until - self._clock()
            if wait <= 0:
                del self._scope_held_until[scope]
                return 0.0, until
            return wait, until

    async def acquire(
        self,
        tokens: float = 1.0,
        *,
        scope: str | None = None,
        sleep: Sleep | None = None,
        max_wait: float | None = None,
    ) -> float:
        """Wait for `tokens` (a call's cost; 1 by default); returns the seconds waited.

        A cost above `burst` is allowed: the caller waits until the debt it leaves is earned.
        `scope` (a route) waits out a hold placed on that scope alone first. `sleep` overrides
        the bucket's own (VendorHTTP passes its policy's, so a test's fake sleep covers
        rate-limit waits too). With `max_wait`, a wait longer than that raises
        RateLimitWaitTooLong at once and books nothing.
        """
        waited = 0.0
        waited_out = float("-inf")  # the end of the scope's hold this caller already slept to
        while True:
            scoped, until = self._scope_hold(scope)
            if scoped > 0 and until > waited_out:
                waited_out = until
                if max_wait is not None and scoped > max_wait:
                    raise RateLimitWaitTooLong(scoped)
                await (sleep or self._sleep)(scoped)
                waited += scoped
                if max_wait is not None:
                    max_wait = max(max_wait - scoped, 0.0)
                continue
            wait, seen_hold = self._reserve(tokens, max_wait)
            if wait > 0:
                await (sleep or self._sleep)(wait)
                waited += wait
            with self._lock:
                held_until, now = self._held_until, self._clock()
            if held_until <= seen_hold or now >= held_until:
                return waited
            # a hold was placed while this caller slept: book again behind it
            if max_wait is not None:
                max_wait = max(max_wait - wait, 0.0)

    def hold(self, seconds: float, *, scope: str | None = None) -> None:
        """Let nobody (or nobody asking for `scope`) through for `seconds`: the budget is spent."""
        if not seconds > 0 or not math.isfinite(seconds):
            return
        with self._lock:
            until = self._clock() + seconds
            if scope is None:
                self._held_until = max(self._held_until, until)
            else:
                self._scope_held_until[scope] = max(
                    self._scope_held_until.get(scope, float("-inf")), until
                )

    def __repr__(self) -> str:
        return f"RateLimit(rate={self.rate}, per={self.per}, burst={self.burst})"


class RollingWindow(RateLimit):
    """At most `limit` calls in any `window` seconds, counted call by call (a sliding log).

    What Asaas publishes (25,000 requests per account per 12-hour rolling window): no average
    rate and no burst, so the first 25,000 calls go at once and the next one waits until the
    oldest of them leaves the window. Each booked moment is kept (at most `limit` + the callers
    waiting), so the count is exact, not an estimate. Holds work as on RateLimit.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(limit, window, limit, clock=clock, sleep=sleep)
        self.limit = limit
        self.window = window
        self._sent: collections.deque[float] = collections.deque()

    def _reserve(self, tokens: float, max_wait: float | None) -> tuple[float, float]:
        count = max(math.ceil(tokens), 1)
        if count > self.limit:
            raise ValueError(f"one call cannot cost more than the window's {self.limit} calls")
        with self._lock:
            now = self._clock()
            held_until = self._held_until
            sent = self._sent
            while sent and sent[0] <= now - self.window:
                sent.popleft()
            ready = max(now, held_until)
            excess = len(sent) + count - self.limit
            if excess > 0:  # the oldest `excess` moments must leave the window first
                ready = max(ready, sent[excess - 1] + self.window)
            if sent:
                ready = max(ready, sent[-1])  # first come, first served
            wait = ready - now
            if wait < 1e-9:
                wait = 0.0
            if max_wait is not None and wait > max_wait:
                raise RateLimitWaitTooLong(wait)
            sent.extend([ready] * count)
            return wait, held_until

    def __repr__(self) -> str:
        return f"RollingWindow(limit={self.limit}, window={self.window})"


#: the slots of the innermost `calls_in_flight` block the running code was started in, if any
_CALL_SLOTS: ContextVar[asyncio.Semaphore | None] = ContextVar("leadflow_call_slots", default=None)


@contextlib.contextmanager
def calls_in_flight(limit: int) -> Iterator[None]:
    """At most `limit` vendor calls in flight at once, to any vendor, among the coroutines and
    tasks started inside the block: each attempt holds a slot while it is sent and its answer
    read, never while it waits to retry.

    Why a caller's cap beside the vendors' own (`ConcurrencyCap`, the lanes): a journey step's
    concurrency is the calls it keeps in flight, not the leads it works on. A lead spends part
    of its step writing to the ledger; while it does, another lead can use its slot
    (tasks/journey.py)."""
    if limit < 1:
        raise ValueError("calls_in_flight needs limit >= 1")
    token = _CALL_SLOTS.set(asyncio.Semaphore(limit))
    try:
        yield
    finally:
        _CALL_SLOTS.reset(token)


class ConcurrencyCap:
    """At most `limit` requests of `methods` in flight at once, across every loop and thread.

    Asaas refuses a 51st concurrent GET with 429; a request over the cap waits for a slot
    instead of being sent. A freed slot goes to the longest waiter (on whatever loop it runs).
    """

    def __init__(self, limit: int, methods: Collection[str] = READ_METHODS) -> None:
        if limit < 1:
            raise ValueError("ConcurrencyCap needs limit >= 1")
        self.limit = limit
        self.methods = frozenset(method.upper() for method in methods)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = (
            collections.deque()
        )

    @property
    def in_flight(self) -> int:
        """Slots taken right now (tests and benchmarks read it)."""
        with self._lock:
            return self._in_flight

    @contextlib.asynccontextmanager
    async def slot(self, method: str) -> Any:
        """Hold one slot around a request of `method`; other methods pass straight through."""
        if method.upper() not in self.methods:
            yield
            return
        await self._take()
        try:
            yield
        finally:
            self._give_back()

    async def _take(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._in_flight < self.limit:
                self._in_flight += 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, waiter))
            raise  # if the slot was already handed over, _hand_over passes it on

    def _give_back(self) -> None:
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if loop.is_closed():
                    continue
                # the slot moves to the waiter as it is: in_flight stays the same
                loop.call_soon_threadsafe(self._hand_over, waiter)
                return
            self._in_flight -= 1

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled meanwhile: the slot goes to the next one
            self._give_back()
        else:
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"ConcurrencyCap(limit={self.limit}, methods={sorted(self.methods)})"


K = TypeVar("K")
V = TypeVar("V")


class SharedObjects(Generic[K, V]):
    """One object per key for the whole process, built on first use under a thread lock: what
    the clients of one credential share across event loops and threads (its rate limits here,
    DocuSign's access tokens)."""

    def __init__(self) -> None:
        self._objects: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The key's object; `build` runs only for the first caller."""
        with self._lock:
            existing = self._objects.get(key)
            if existing is None:
                existing = self._objects[key] = build()
            return existing

    def clear(self) -> None:
        """Forget every object (tests start each case afresh)."""
        with self._lock:
            self._objects.clear()


_limits: SharedObjects[tuple[str, str], Any] = SharedObjects()


def credential_fingerprint(*secrets: str | None) -> str:
    """A short, irreversible key for a credential: the registry must not hold the secret itself."""
    digest = hashlib.sha256("\x1f".join(s or "" for s in secrets).encode()).hexdigest()
    return digest[:16]


def shared_rate_limit(
    vendor: str, fingerprint: str, *, rate: float, per: float = 1.0, burst: int = 1
) -> RateLimit:
    """The one RateLimit of (vendor, credential) in this process, created on first use.

    Vendors count their budget per token or per account, so two clients with the same
    credential share a bucket, and a second credential gets its own. The first caller's
    rate/per/burst stay in force for the life of the process (call `forget_rate_limits()` to
    change them): a bucket already shared by running calls cannot be swapped under them.
    """
    return shared_limit(vendor, fingerprint, lambda: RateLimit(rate, per, burst))


L = TypeVar("L")


def shared_limit(vendor: str, fingerprint: str, build: Callable[[], L]) -> L:
    """The one limit object (a RollingWindow, a ConcurrencyCap...) of (vendor, credential key).

    The key is the vendor plus anything that tells the limit apart ("asaas-get-slots"), with
    the credential's fingerprint; `build` runs once, on first use.
    """
    limit: L = _limits.get((vendor, fingerprint), build)
    return limit


def forget_rate_limits() -> None:
    """Drop every shared bucket (tests start each case from a fresh budget)."""
    _limits.clear()


# ------------------------------------------------------------------------------------- errors


def status_text(response: httpx.Response) -> str:
    """The status line's reason phrase, or `HTTP 418` when the vendor sent none: the message of
    an error whose body says nothing readable."""
    return response.reason_phrase or f"HTTP {response.status_code}"


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The error body as a JSON object, or None when it is not one (an HTML page, a list,
    nothing): every vendor's error envelope is an object, and its parser starts here."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def default_error_parser(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from common JSON error envelopes, else the reason phrase.

    Vendor clients pass their own parser; this one covers `{"error": ..., "message": ...}`,
    `{"errors": [{"code", "description"}]}` and `{"error": {"code", "message"}}`.
    """
    body = json_object(response)
    if body is not None:
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return (
                None if code is None else str(code),
                str(error.get("message") or error.get("error_user_msg") or response.reason_phrase),
            )
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("code")
            message = first.get("description") or first.get("message") or response.reason_phrase
            return (None if code is None else str(code), str(message))
        code = body.get("errorCode") or body.get("code") or error
        message = (
            body.get("message") or body.get("error_description") or body.get("error_info") or None
        )
        return (None if code is None else str(code), str(message or response.reason_phrase))
    return None, status_text(response)


def _error_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000] or None


def _as_is(body: Any) -> Any:
    return body


# ---------------------------------------------------------------------------------- the client


#: what `httpx.QueryParams` encodes a query to (urlencode: unreserved characters, %XX, + = &)
_ENCODED_QUERY = re.compile(r"[A-Za-z0-9_.~%+=&-]*")


#: a path httpx keeps as it is written: segments of unreserved characters and %XX escapes
_PLAIN_PATH = re.compile(r"(?:/(?:[A-Za-z0-9_.~-]|%[0-9A-Fa-f]{2})*)+")


def _with_path(base: httpx.URL, path: str) -> httpx.URL | None:
    """`base` (parsed, without query or fragment) with `path` appended, not parsed again; None
    when httpx might write the path otherwise (anything to quote, a "." or ".." segment).

    Why: a vendor object's URL (`/deals/{id}`, `/payments/{id}/pixQrCode`) is new on every
    call, and httpx's parse of a whole URL, character by character, was about a tenth of the
    event loop thread's CPU in a profile of the journey benchmark. tests/blocks/test_http.py
    holds both ways to the same URL.
    """
    reference: Any = getattr(base, "_uri_reference", None)
    replace = getattr(reference, "_replace", None)
    if (
        replace is None
        or reference.query is not None
        or reference.fragment is not None
        or "/." in path
        or not _PLAIN_PATH.fullmatch(path)
    ):
        return None
    made = httpx.URL.__new__(httpx.URL)
    made._uri_reference = replace(path=reference.path + path)
    return made


def _with_query(url: httpx.URL, query: str) -> httpx.URL:
    """`url` (without a query) with `query` (as `httpx.QueryParams` encodes it), not parsed again.

    Why: httpx re-parses a whole URL, character by character, to add a query, and a search's
    query differs per call: that parse was half of a search's CPU in the journey benchmark.
    An encoded query holds nothing httpx would quote, so the parsed URL is httpx's own with
    the query replaced. Should httpx's parsed form change, or the query hold anything else,
    this falls back to httpx's way; tests/blocks/test_http.py holds both to the same URL.
    """
    reference = getattr(url, "_uri_reference", None)
    replace = getattr(reference, "_replace", None)
    if replace is None or url.query or not _ENCODED_QUERY.fullmatch(query):
        return url.copy_with(query=query.encode("ascii"))
    made = httpx.URL.__new__(httpx.URL)
    made._uri_reference = replace(query=query)
    return made


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every connection: building one reads the CA bundle (~10 ms of CPU,
    far more on a busy machine), and each lane would otherwise build its own."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class _Lane:
    """One connection's client, and the transport under it (sent to directly: see
    VendorHTTP._send)."""

    client: httpx.AsyncClient
    transport: httpx.AsyncBaseTransport

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed


class _Lanes:
    """One event loop's connections to a vendor: each lane is one `KeepAliveConnection`
    (blocks/keepalive.py) under an httpx client of its own.

    Why not one httpx pool of 64: with many requests in flight, httpcore's pool scans every
    connection (and asks each socket whether it is still alive) for every queued request
    (encode/httpx#3215); at 50 in flight that bookkeeping was most of the caller's CPU
    (../shared/LIBRARIES.md). Here a request takes an idle lane, or opens a new one while fewer
    than `size` exist, and gives it back once its answer is read: choosing costs nothing.
    A client built on an injected transport (tests) is one shared client, as before.
    """

    def __init__(self, open_lane: Callable[[], _Lane], size: int | None) -> None:
        self._open_lane = open_lane
        self._idle: list[_Lane] = []
        self._opened: list[_Lane] = []
        self._free = asyncio.Semaphore(size) if size else None

    async def take(self) -> _Lane:
        """An idle lane, a new one while fewer than `size` exist, or the first one given back.
        Give it back with `give_back` once its answer is read. (Two plain methods rather than an
        async context manager: its generator was a tenth of a call's overhead.)"""
        if self._free is None:  # one shared client on an injected transport
            if not self._opened or self._opened[0].is_closed:
                self._opened = [self._open_lane()]
            return self._opened[0]
        await self._free.acquire()
        try:
            return self._idle.pop() if self._idle else self._open()
        except BaseException:
            self._free.release()
            raise

    def give_back(self, lane: _Lane) -> None:
        if self._free is None:
            return
        if lane.is_closed:
            self._opened.remove(lane)
        else:
            self._idle.append(lane)
        self._free.release()

    def _open(self) -> _Lane:
        lane = self._open_lane()
        self._opened.append(lane)
        return lane

    @property
    def is_closed(self) -> bool:
        return all(lane.is_closed for lane in self._opened)

    async def aclose(self) -> None:
        opened, self._opened, self._idle = self._opened, [], []
        for lane in opened:
            await lane.client.aclose()


class VendorHTTP:
    """One vendor's HTTP connections with the policy applied to every request.

    The instance opens its connections per event loop it is used from (a connection cannot
    cross loops; see `_lanes`), lazily, so building a client costs nothing until it is used.
    Close it with `aclose()` or use the instance as an async context manager; it can be used
    again afterwards (new connections open), which a Block's client shared by tasks needs. An
    injected `transport` (tests) is shared by every loop's client as it is.
    """

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
        rate_limit: RateLimit | None = None,
        error_parser: ErrorParser | None = None,
        policy: HttpPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limited_codes: Collection[str] = (),
        auth_codes: Collection[str] = (),
        rate_limit_scope: Literal["vendor", "route"] = "route",
        concurrency: ConcurrencyCap | None = None,
    ) -> None:
        """`rate_limited_codes` / `auth_codes`: vendor error codes (as the error_parser returns
        them) that mean "throttled" or "bad credentials" whatever the HTTP status — Graph API
        answers a throttled call with 400 and code 4 or 130429, an expired token with code 190.

        `rate_limit_scope` is what a 429 or a spent rate-limit header pauses: "vendor" when the
        vendor counts one budget per credential (Graph, Pipedrive, DocuSign), "route" (method
        and path template) when its limits are per endpoint (Asaas, Hostinger). `concurrency`
        caps requests in flight (Asaas: 50 GETs).
        """
        self.vendor = vendor
        self.rate_limit_scope = rate_limit_scope
        self.concurrency = concurrency
        self.rate_limited_codes = frozenset(rate_limited_codes)
        self.auth_codes = frozenset(auth_codes)
        self.base_url = base_url.rstrip("/")
        self.rate_limit = rate_limit
        self.error_parser: ErrorParser = error_parser or default_error_parser
        self.policy = policy or HttpPolicy.from_settings()
        self._client_options: dict[str, Any] = {
            "base_url": self.base_url,
            "auth": auth,
            "headers": {"user-agent": USER_AGENT, **(headers or {})},
            "timeout": self.policy.timeout(),
            "transport": transport,
            "follow_redirects": False,
        }
        # what `_send` gives every request: the client's default headers (accept, encoding,
        # user agent, the vendor's own) and the policy's timeouts
        self._auth = auth
        self._headers = httpx.Headers(
            {
                "accept": "*/*",
                "accept-encoding": "gzip, deflate",  # what httpx decodes without extras
                "connection": "keep-alive",
                **self._client_options["headers"],
            }
        )
        self._extensions = {"timeout": self.policy.timeout().as_dict()}
        self._parsed_urls: dict[str, httpx.URL] = {}  # see _build_request
        self._parsed_base: httpx.URL | None = None
        # each lane is one KeepAliveConnection (see _Lanes); an injected transport is shared
        self._own_connections = transport is None
        # one set of lanes per event loop: see _lanes()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lanes]
        self._loops = weakref.WeakKeyDictionary()
        self._loops_lock = threading.Lock()

    def _open_lane(self) -> _Lane:
        options = dict(self._client_options)
        if self._own_connections:
            options["transport"] = KeepAliveConnection(ssl_context=_tls_context())
        return _Lane(httpx.AsyncClient(**options), options["transport"])

    def _lanes(self) -> _Lanes:
        """The running event loop's connections, opened on first use.

        An httpx connection belongs to the loop that opened it: reused from another loop it
        fails ("Event loop is closed") or hangs. A Block's client is often built once and used
        from several loops — each `asyncio.run` of a sync Prefect task, tasks on worker threads
        — so every loop gets its own lanes. Those of loops that have closed are dropped (their
        sockets died with the loop).
        """
        loop = asyncio.get_running_loop()
        with self._loops_lock:
            lanes = self._loops.get(loop)
            if lanes is None:
                for other in [other for other in self._loops if other.is_closed()]:
                    del self._loops[other]
                size = POOL_CONNECTIONS if self._own_connections else None
                lanes = self._loops[loop] = _Lanes(self._open_lane, size)
            return lanes

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this loop's connections and forget closed loops'; a later call opens anew."""
        loop = asyncio.get_running_loop()
        with self._loops_lock:
            lanes = self._loops.pop(loop, None)
            for other in [other for other in self._loops if other.is_closed()]:
                del self._loops[other]
        if lanes is not None:
            await lanes.aclose()

    @property
    def is_closed(self) -> bool:
        """True when no connection is open (none was opened yet, or all were closed)."""
        with self._loops_lock:
            return all(lanes.is_closed for lanes in self._loops.values())

    @staticmethod
    def fill_path(path: str, path_params: Mapping[str, str | int] | None) -> str:
        """`/deals/{id}` + {"id": "a/b"} → `/deals/a%2Fb`: every value is quoted as one segment."""
        if not path_params:
            return path
        return path.format_map({k: quote(str(v), safe="") for k, v in path_params.items()})

    async def request(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one logical request, retrying what is transient; return a 2xx/3xx response.

        Raises PermanentError (and its AuthenticationError/NotFoundError) at once for a 4xx;
        TransientError/RateLimitedError when the attempts or the total time run out;
        UnknownOutcomeError when a non-idempotent request may have been acted on.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = self.fill_path(path, path_params)
        policy = self.policy
        scope = None if self.rate_limit_scope == "vendor" else f"{method} {path}"
        deadline = policy.clock() + policy.total_timeout
        attempt = 0
        while True:
            attempt += 1
            if self.rate_limit is not None:
                await self._take_token(method, path, deadline, scope)
            remaining = deadline - policy.clock()
            if remaining <= 0:
                raise TransientError(
                    self.vendor,
                    f"total timeout of {policy.total_timeout:g}s spent before attempt {attempt}",
                    method=method,
                    path=path,
                )
            started = policy.clock()
            try:
                async with asyncio.timeout(remaining):
                    response = await self._attempt(
                        method, url, params=params, json=json, data=data, headers=headers
                    )
            except (httpx.TransportError, TimeoutError) as exc:
                self._log(method, path, None, attempt, started, outcome=type(exc).__name__)
                error: VendorError = self._network_error(exc, method, path, idempotent)
                if isinstance(error, UnknownOutcomeError):
                    raise error from exc
                retry_after: float | None = None
            else:
                self._log(method, path, response.status_code, attempt, started)
                now = policy.now()
                reset = _rate_limit_reset(response, now=now)
                if reset is not None:
                    reset = min(reset, policy.max_rate_limit_pause)
                    if self.rate_limit is not None:
                        self.rate_limit.hold(reset, scope=scope)
                if response.status_code < 400:
                    return response
                await response.aread()
                error = self._status_error(response, method, path, idempotent, now=now)
                if not isinstance(error, TransientError) or isinstance(error, UnknownOutcomeError):
                    raise error
                retry_after = error.retry_after
                if retry_after is None and response.status_code == 429:
                    retry_after = reset
                if retry_after is not None:
                    # a bogus or huge Retry-After must not stop this vendor for an hour
                    retry_after = error.retry_after = min(retry_after, policy.max_rate_limit_pause)
                if retry_after and isinstance(error, RateLimitedError) and self.rate_limit:
                    self.rate_limit.hold(retry_after, scope=scope)
            if attempt >= policy.max_attempts:
                raise error
            delay = retry_after if retry_after is not None else policy.backoff(attempt)
            if policy.clock() + delay >= deadline:
                raise error  # the vendor asks for longer than this call may take: let Prefect wait
            await policy.sleep(delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """One attempt on a lane of its own, holding one of the caller's slots
        (`calls_in_flight`), then the vendor's (`ConcurrencyCap`), while it is sent and its
        answer read."""
        call_slots = _CALL_SLOTS.get()
        if call_slots is not None:
            await call_slots.acquire()
        try:
            async with self._slot(method):
                lanes = self._lanes()
                lane = await lanes.take()
                try:
                    return await self._send(
                        lane, method, url, params=params, json=json, data=data, headers=headers
                    )
                finally:
                    lanes.give_back(lane)
        finally:
            if call_slots is not None:
                call_slots.release()

    async def _send(
        self,
        lane: _Lane,
        method: str,
        url: str,
        *,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """One attempt, its answer read.

        Why not `client.request()`: the client's layers (URL merging, cookies, auth and
        redirect loops, stream wrappers) were a quarter of a call's CPU, and a vendor client
        needs none of them: no cookies, no redirects followed, headers and the base URL fixed
        here. So the request goes straight to the lane's transport, with the client's
        default headers and the policy's timeouts. A Block with an `httpx.Auth` (Pipedrive
        OAuth, which refreshes its token on a 401) keeps the client's full path.
        """
        if self._auth is not None:
            return await lane.client.request(
                method, url, params=params, json=json, data=data, headers=headers
            )
        request = self._build_request(method, url, params, json, data, headers)
        response = await lane.transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    def _build_request(
        self,
        method: str,
        url: str,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Request:
        """The request as `httpx.Request(method, url, params=, json=, headers=)` builds it,
        for a third of the CPU.

        httpx parses the whole URL character by character and rebuilds the headers on every
        request; here a URL is parsed once without its query and kept (`_with_query` adds a
        search's query to it), the JSON body is encoded
        as httpx encodes it, and the request gets its Host, Content-Length and Content-Type
        headers directly. Anything else (a form body, a query added to a URL that has one)
        takes httpx's own way. tests/blocks/test_http.py holds both ways to the same bytes.
        """
        target = url if "://" in url else self.base_url + url
        request_headers = self._headers.copy()
        if headers:
            request_headers.update(headers)
        if data is not None or (params and "?" in target):
            return httpx.Request(
                method,
                target,
                params=params,
                json=json,
                data=data,
                headers=request_headers,
                extensions=self._extensions,
            )
        parsed = self._parsed_urls.get(target)
        if parsed is None:
            if "://" not in url:  # a path under the base URL
                if self._parsed_base is None:
                    self._parsed_base = httpx.URL(self.base_url)
                parsed = _with_path(self._parsed_base, url)
            if len(self._parsed_urls) >= PARSED_URLS_KEPT:
                self._parsed_urls.clear()
            parsed = self._parsed_urls[target] = parsed or httpx.URL(target)
        if params:
            parsed = _with_query(parsed, str(httpx.QueryParams(params)))
        # the headers in httpx's order: Host first, a body's length and type after the rest
        first = [] if "Host" in request_headers else [(b"Host", b"host", parsed.netloc)]
        body = b""
        if json is not None:
            text = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            body = text.encode("utf-8")
            request_headers.setdefault("Content-Length", str(len(body)))
            request_headers.setdefault("Content-Type", "application/json")
        elif method in ("POST", "PUT", "PATCH") and not (
            "Content-Length" in request_headers or "Transfer-Encoding" in request_headers
        ):
            first.append((b"Content-Length", b"content-length", b"0"))
        return httpx.Request(
            method,
            parsed,
            headers=headers_of(first + header_items(request_headers)),
            stream=httpx.ByteStream(body),
            extensions=self._extensions,
        )

    def _slot(self, method: str) -> contextlib.AbstractAsyncContextManager[Any]:
        if self.concurrency is None:
            return contextlib.nullcontext()
        return self.concurrency.slot(method)

    async def _take_token(self, method: str, path: str, deadline: float, scope: str | None) -> None:
        """Wait for the shared bucket, but never past this call's total time budget.

        A long wait (the vendor held the bucket for an hour, a daily budget is spent) becomes a
        RateLimitedError with the wait as `retry_after`: the task is retried later by Prefect
        instead of sleeping inside one call, and the bucket keeps no booking for it.
        """
        assert self.rate_limit is not None
        policy = self.policy
        try:
            await self.rate_limit.acquire(
                scope=scope, sleep=policy.sleep, max_wait=max(deadline - policy.clock(), 0.0)
            )
        except RateLimitWaitTooLong as too_long:
            raise RateLimitedError(
                self.vendor,
                f"leadflow's own rate limit for {self.vendor} asks for {too_long.wait:.1f}s, "
                "more than this call's time budget",
                retry_after=too_long.wait,
                method=method,
                path=path,
            ) from None

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """`request()` and its JSON body, read under `read_answer`'s rules."""
        return await self.request_parsed(method, path, _as_is, **kwargs)

    async def request_parsed(
        self, method: str, path: str, read: Callable[[Any], T], **kwargs: Any
    ) -> T:
        """`request()`, then `read(json body)` (a model's `model_validate`, say) under
        `read_answer`'s rules: whatever the answer holds, only a VendorError comes out."""
        response = await self.request(method, path, **kwargs)
        return self.read_answer(response, read, method=method, path=path)

    def read_answer(
        self, response: httpx.Response, read: Callable[[Any], T], *, method: str, path: str
    ) -> T:
        """`read(response.json())`, with any answer it cannot read turned into a VendorError.

        A 2xx whose body is not JSON (a proxy's HTML page), is cut short, or lacks a field the
        model needs is not the vendor's answer, but the request did reach somebody: for a read
        it is a TransientError (reading again is safe); for a write it is an
        UnknownOutcomeError, because the write may have happened and the caller must look the
        object up by its reference before sending it again. `read` may raise KeyError,
        TypeError, AttributeError, IndexError or ValueError (pydantic's ValidationError is one)
        on a malformed body; no such error escapes. The message names fields, never values.
        """
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            problem = "an empty body" if not response.content else f"not JSON ({kind})"
            raise self.unreadable_answer(response, method, path, problem) from None
        try:
            return read(body)
        except ValidationError as invalid:
            locations = (error["loc"] for error in invalid.errors())
            fields = sorted({".".join(str(part) for part in loc) or "body" for loc in locations})
            problem = f"missing or malformed {', '.join(fields)[:300]}"
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as broken:
            problem = f"an unexpected shape ({type(broken).__name__})"
        raise self.unreadable_answer(response, method, path, problem)

    def unreadable_answer(
        self, response: httpx.Response, method: str, path: str, problem: str
    ) -> TransientError:
        """The error for a success answer that cannot be read: see `read_answer`."""
        method = method.upper()
        common: dict[str, Any] = {"method": method, "path": path, "status": response.status_code}
        if method in READ_METHODS:
            return TransientError(self.vendor, f"the answer could not be read: {problem}", **common)
        return UnknownOutcomeError(
            self.vendor,
            f"the answer to a write could not be read: {problem}; it may have been done, "
            "look it up before sending it again",
            **common,
        )

    # -- classification

    def _network_error(
        self, exc: BaseException, method: str, path: str, idempotent: bool
    ) -> TransientError:
        """Connect failures never reached the vendor; anything later may have been acted on."""
        never_sent = isinstance(
            exc,
            httpx.ConnectError
            | httpx.ConnectTimeout
            | httpx.PoolTimeout
            | httpx.ProxyError
            | httpx.UnsupportedProtocol
            | httpx.LocalProtocolError,
        )
        description = f"{type(exc).__name__}: {mask_text(str(exc)) or 'no detail'}"
        if not never_sent and not idempotent:
            return UnknownOutcomeError(
                self.vendor,
                f"no answer to a non-idempotent request ({description}); "
                "look it up before retrying",
                method=method,
                path=path,
            )
        return TransientError(self.vendor, description, method=method, path=path)

    def _status_error(
        self, response: httpx.Response, method: str, path: str, idempotent: bool, *, now: float
    ) -> VendorError:
        status = response.status_code
        try:
            code, message = self.error_parser(response)
        except Exception:  # a broken envelope must not hide the status
            code, message = None, status_text(response)
        message = mask_text(message)
        details = _error_body(response)
        common: dict[str, Any] = {"method": method, "path": path}
        retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
        if code is not None and code in self.auth_codes:
            return AuthenticationError(self.vendor, status, code, message, details, **common)
        hints: dict[str, Any] = {
            "retry_after": retry_after,
            "status": status,
            "code": code,
            "details": details,
            **common,
        }
        if status == 429 or (code is not None and code in self.rate_limited_codes):
            return RateLimitedError(self.vendor, message, **hints)
        if status >= 500:
            if status not in RETRYABLE_STATUSES:  # 501, 505...: the server cannot ever do it
                return PermanentError(self.vendor, status, code, message, details, **common)
            if not idempotent:
                return UnknownOutcomeError(
                    self.vendor,
                    f"{message} (a {status} to a non-idempotent request: look it up first)",
                    **hints,
                )
            return TransientError(self.vendor, message, **hints)
        if status in (401, 403):
            return AuthenticationError(self.vendor, status, code, message, details, **common)
        if status == 404:
            return NotFoundError(self.vendor, status, code, message, details, **common)
        return PermanentError(self.vendor, status, code, message, details, **common)

    def _log(
        self,
        method: str,
        path: str,
        status: int | None,
        attempt: int,
        started: float,
        *,
        outcome: str | None = None,
    ) -> None:
        duration_ms = round((self.policy.clock() - started) * 1000)
        logger.info(
            "vendor=%s method=%s path=%s status=%s attempt=%d duration_ms=%d",
            self.vendor,
            method,
            path,
            status if status is not None else (outcome or "error"),
            attempt,
            duration_ms,
            extra={
                "vendor": self.vendor,
                "http_method": method,
                "path_template": path,
                "status": status,
                "attempt": attempt,
                "duration_ms": duration_ms,
            },
        )


class VendorClient:
    """What every vendor client shares: it owns one VendorHTTP and closes it on `async with`.

    A client is built by its Block's `get_client()`; subclasses add the vendor's operations and
    keep `self._http` as the only way out to the network.
    """

    def __init__(self, http: VendorHTTP) -> None:
        self._http = http

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _create(self, path: str, read: Callable[[Any], T], body: Any, **request: Any) -> T:
        """POST a new object, once: a lost or unreadable answer is an UnknownOutcomeError."""
        return await self._http.request_parsed(
            "POST", path, read, json=body, idempotent=False, **request
        )

    async def _get(self, path: str, read: Callable[[Any], T], **request: Any) -> T:
        """GET and read the answer (a read: retried through transient failures)."""
        return await self._http.request_parsed("GET", path, read, **request)
