"""A local alert receiver (a tiny HTTP server on 127.0.0.1 that records every POST), and what
a deployment Prefect holds must agree on with its row of deployments/schedules.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployments.schedules import DeploymentSpec


def assert_deployed_as(deployment: Any, spec: DeploymentSpec) -> None:
    """A deployment, built by `serve` or stored on the server, carries its row's parameters,
    tags and schedule (an interval or a cron, or none), whichever way it was made."""
    assert deployment.parameters == spec.parameters
    assert sorted(deployment.tags) == sorted(spec.tags)
    schedules = [s.schedule for s in deployment.schedules]
    intervals = [s.interval.total_seconds() for s in schedules if hasattr(s, "interval")]
    crons = [s.cron for s in schedules if hasattr(s, "cron")]
    assert intervals == ([spec.interval_seconds] if spec.interval_seconds else [])
    assert crons == ([spec.cron] if spec.cron else [])


class Receiver:
    """What arrived at the alert webhook, in order."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.url = ""

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], deadline_s: float = 60) -> None:
        """Block until an alert satisfying `matches` arrived (a condition, not a sleep)."""
        end = time.monotonic() + deadline_s
        with self.arrived:
            while not any(matches(alert) for alert in self.alerts):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching alert; received: {self.alerts}")
                self.arrived.wait(left)


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.arrived:
                receiver.alerts.append(json.loads(body or b"{}"))
                receiver.arrived.notify_all()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
