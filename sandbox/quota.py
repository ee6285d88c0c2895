"""A request quota counted in fixed windows, as Asaas (per window) and Hostinger (per minute)
count theirs: the count starts again when a window has passed, not a rolling one."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple


class Admission(NamedTuple):
    """One request's place in the window: admitted or not, what is left, when it resets."""

    admitted: bool
    remaining: int
    resets_in: float  # seconds until the window starts again


class FixedWindow:
    """Counts requests; safe to share between the threads that serve them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._count = 0

    def admit(self, limit: int, seconds: float) -> Admission:
        """Count one request against `limit` per `seconds`, unless the window is spent."""
        with self._lock:
            now = time.monotonic()
            if now - self._started >= seconds:
                self._started, self._count = now, 0
            resets_in = seconds - (now - self._started)
            if self._count >= limit:
                return Admission(False, 0, resets_in)
            self._count += 1
            return Admission(True, limit - self._count, resets_in)
