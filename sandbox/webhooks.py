"""Webhook delivery: how every emulated vendor calls leadflow back, with faults and a log.

Vendors build their exact payload and signature headers and hand them to `deliver`; this module
sends them from a background thread, as real vendors do (the API call that caused an event
never waits for the receiver), retrying a failed delivery a few times. The vendor's webhook
faults (sandbox/faults.py) drop, duplicate or delay a delivery. One worker sends in order, so
the receiver sees events in the order they happened unless a fault delays one. A vendor whose
retries differ from the first attempt (an attempt counter in the body, hence a new signature)
passes `redeliver`; a target outside loopback is refused unless the operator allowed it.

The delivery log keeps what an operator needs to debug a missed callback — vendor, URL without
its query string, HTTP status, attempts, outcome — and never a body or header value, which hold
personal data and signatures.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from sandbox.faults import FaultInjector

logger = logging.getLogger(__name__)

Outcome = Literal["pending", "delivered", "failed", "dropped", "refused"]


@dataclass
class DeliveryRecord:
    """One delivery (a duplicate is its own record with `duplicate_of` set)."""

    id: int
    vendor: str
    url: str
    size: int
    header_names: list[str]
    outcome: Outcome = "pending"
    status_code: int | None = None
    attempts: int = 0
    error: str | None = None
    duplicate_of: int | None = None
    delayed_seconds: float = 0.0
    queued_at: float = field(default_factory=time.time)
    finished_at: float | None = None


Redeliver = Callable[[int], tuple[bytes, dict[str, str]]]
"""A vendor's body and headers for attempt N (2, 3...): a retry counts itself (Pipedrive's
`meta.attempt`, DocuSign's `retryCount`) and is signed again over its new body."""


@dataclass(order=True)
class _Job:
    due: float
    sequence: int
    record: DeliveryRecord = field(compare=False)
    full_url: str = field(compare=False)
    body: bytes = field(compare=False)
    headers: dict[str, str] = field(compare=False)
    redeliver: Redeliver | None = field(default=None, compare=False)


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class WebhookSender:
    """Queues deliveries and sends them from one background thread, applying webhook faults."""

    def __init__(
        self,
        faults: FaultInjector,
        retry_delays: tuple[float, ...] = (0.2, 1.0),
        timeout_seconds: float = 10.0,
        log_size: int = 2000,
        target_allowed: Callable[[str], bool] = lambda url: True,
    ) -> None:
        self.faults = faults
        self.target_allowed = target_allowed
        self.retry_delays = retry_delays
        self.timeout_seconds = timeout_seconds
        self._condition = threading.Condition()
        self._queue: list[_Job] = []
        self._sequence = itertools.count(1)
        self._ids = itertools.count(1)
        self._log: deque[DeliveryRecord] = deque(maxlen=log_size)
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- producer side -------------------------------------------------------------------
    def deliver(
        self,
        vendor: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        redeliver: Redeliver | None = None,
    ) -> list[int]:
        """Queue one webhook; returns the ids of the records it produced (0, 1 or 2 sends).

        A target the sandbox may not post to (outside loopback, unless allowed) is logged as
        `refused` and never contacted.
        """
        if not self.target_allowed(url):
            refused = self._record(vendor, url, body, headers)
            refused.outcome = "refused"
            refused.error = "webhook target outside loopback (allow_external_webhook_targets)"
            refused.finished_at = time.time()
            with self._condition:
                self._log.append(refused)
            return [refused.id]
        decision = self.faults.decide_webhook(vendor)
        now = time.monotonic()
        first = self._record(vendor, url, body, headers)
        if decision.drop:
            first.outcome = "dropped"
            first.finished_at = time.time()
            with self._condition:
                self._log.append(first)
            return [first.id]
        records = [first]
        if decision.copies > 1:
            copy = self._record(vendor, url, body, headers)
            copy.duplicate_of = first.id
            records.append(copy)
        with self._condition:
            for index, record in enumerate(records):
                # a delay applies to the first copy only, so a duplicate may overtake it
                delay = decision.delay_seconds if index == 0 else 0.0
                record.delayed_seconds = delay
                self._log.append(record)
                heapq.heappush(
                    self._queue,
                    _Job(
                        now + delay,
                        next(self._sequence),
                        record,
                        url,
                        body,
                        dict(headers),
                        redeliver,
                    ),
                )
            self._ensure_worker()
            self._condition.notify_all()
        return [record.id for record in records]

    def _record(
        self, vendor: str, url: str, body: bytes, headers: dict[str, str]
    ) -> DeliveryRecord:
        return DeliveryRecord(
            id=next(self._ids),
            vendor=vendor,
            url=_without_query(url),
            size=len(body),
            header_names=sorted(headers),
        )

    # -- observation ---------------------------------------------------------------------
    def log(self, vendor: str | None = None) -> list[dict[str, Any]]:
        """The delivery log, oldest first (optionally one vendor's)."""
        with self._condition:
            return [asdict(r) for r in self._log if vendor is None or r.vendor == vendor]

    def clear_log(self) -> None:
        with self._condition:
            self._log.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery (delayed ones included) finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(min(left, 0.05))
            return True

    def close(self) -> None:
        """Stop the worker; deliveries still queued are abandoned (the sandbox is going away)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout_seconds + 1)
        with self._condition:
            self._thread = None
            self._stopping = False
            for job in self._queue:
                job.record.outcome = "failed"
                job.record.error = "sandbox stopped before delivery"
            self._queue.clear()

    # -- worker side ---------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_seconds) as client:
            while True:
                with self._condition:
                    job = self._next_due_job()
                    if job is None:
                        return
                    self._in_flight += 1
                try:
                    retry = self._send(client, job)
                finally:
                    with self._condition:
                        self._in_flight -= 1
                        if retry is not None:
                            heapq.heappush(self._queue, retry)
                        self._condition.notify_all()

    def _next_due_job(self) -> _Job | None:
        """Wait (holding the condition) for the earliest job to fall due; None when stopping."""
        while not self._stopping:
            if not self._queue:
                self._condition.wait(1.0)
                continue
            wait = self._queue[0].due - time.monotonic()
            if wait <= 0:
                return heapq.heappop(self._queue)
            self._condition.wait(wait)
        return None

    def _send(self, client: httpx.Client, job: _Job) -> _Job | None:
        """POST one job; a retry job when it failed and attempts remain, else None."""
        record = job.record
        record.attempts += 1
        body, headers = job.body, job.headers
        if job.redeliver is not None and record.attempts > 1:
            body, headers = job.redeliver(record.attempts)
        try:
            response = client.post(job.full_url, content=body, headers=headers)
        except httpx.HTTPError as error:
            record.status_code = None
            record.error = type(error).__name__
            ok = False
        else:
            record.status_code = response.status_code
            record.error = None
            ok = response.is_success
        if ok:
            record.outcome = "delivered"
            record.finished_at = time.time()
            return None
        if record.attempts <= len(self.retry_delays):
            delay = self.retry_delays[record.attempts - 1]
            return _Job(
                time.monotonic() + delay,
                next(self._sequence),
                record,
                job.full_url,
                job.body,
                job.headers,
                job.redeliver,
            )
        record.outcome = "failed"
        record.finished_at = time.time()
        logger.warning(
            "%s webhook to %s failed after %d attempts (%s)",
            record.vendor,
            record.url,
            record.attempts,
            record.error or record.status_code,
        )
        return None
