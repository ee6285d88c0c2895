"""Accepted webhook deliveries per second (verified, stored, acknowledged), beside a bare
FastAPI endpoint that only answers 200, measured in the same run on this machine.

The service runs in its own process with `leadflow webhooks serve`'s uvicorn settings and the
trigger off (the figure is the receiving side: verify over the raw body, store in the inbox,
commit, answer). Deliveries rotate over the five vendors, each signed as its vendor signs it,
all distinct (every one is a new inbox row). Signed bodies are prepared before the clock
starts, so the client spends its CPU on HTTP, not on HMACs.

The ledger is a fresh SQLite file, then a fresh PostgreSQL database on the server named by
LEADFLOW_BENCH_DATABASE_URL (or LEADFLOW_TEST_DATABASE_URL). Target on 2 cores: at least
1,000 deliveries/s on PostgreSQL, and at least a third of the bare endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request, Response

from benchmarks import Figure, Window
from benchmarks.bench_sandbox import _free_port, _serve

CONNECTIONS = 32  # deliveries in flight: vendors send concurrently; the raw client makes 32 cheap
WARMUP_SECONDS = 0.5
MEASURE_SECONDS = 2.0
ROUNDS = 5  # the median of five: a burst of load from other jobs spoils one or two rounds
PREPARED = 100_000  # more than ROUNDS x (WARMUP + MEASURE) seconds can send (8,000/s)

SECRETS: dict[str, Any] = {
    "facebook_app_secret": "bench-facebook-secret",
    "whatsapp_app_secret": "bench-whatsapp-secret",
    "pipedrive_user": "leadflow",
    "pipedrive_password": "bench-pipedrive-password",
    "docusign_hmac_keys": "bench-docusign-key",
    "asaas_token": "bench-asaas-token",
    "trigger": "none",
}

bare_app = FastAPI()


@bare_app.post("/ok")
async def ok(request: Request) -> Response:
    await request.body()
    return Response(b'{"status":"ok"}', media_type="application/json")


def service_app(database_url: str) -> FastAPI:
    """The webhook service on a freshly migrated ledger (run in the server process)."""
    from ledger import Ledger
    from webhooks.app import create_app
    from webhooks.settings import WebhookSettings

    ledger = Ledger(database_url)
    ledger.upgrade()
    return create_app(WebhookSettings(**SECRETS), ledger=ledger)


def _deliveries(count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    from tests.webhooks import conftest as signing

    keys = {
        "FACEBOOK_SECRET": SECRETS["facebook_app_secret"],
        "WHATSAPP_SECRET": SECRETS["whatsapp_app_secret"],
        "PIPEDRIVE_PASSWORD": SECRETS["pipedrive_password"],
        "ASAAS_TOKEN": SECRETS["asaas_token"],
    }
    for name, value in keys.items():
        setattr(signing, name, value)
    signing.DOCUSIGN_KEYS = ["retired", SECRETS["docusign_hmac_keys"]]
    run = uuid.uuid4().int % 10**6 * 10**6  # distinct event ids in every run
    prepared = []
    for n in range(count):
        vendor = signing.VENDORS[n % 5]
        body = signing.delivery(vendor, run + n)
        prepared.append((f"/webhooks/{vendor}", body, signing.signed(vendor, body)))
    return prepared


def _request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _rate(
    port: int, deliveries: list[tuple[str, bytes, dict[str, str]]]
) -> tuple[float, int]:
    """Acknowledged deliveries per second over MEASURE_SECONDS, CONNECTIONS at a time, and
    how many of `deliveries` were sent (the next round starts after them: all distinct).

    The client writes prepared HTTP/1.1 requests on keep-alive sockets and reads each answer
    by its Content-Length: a few microseconds per request, so the server under test, not the
    client (httpx costs about 1 ms of CPU per request here), is what the figure measures.
    """
    prepared = [_request(*delivery) for delivery in deliveries]
    # the bare endpoint gets the same request again and again; deliveries are all distinct
    requests = itertools.cycle(prepared) if len(prepared) == 1 else iter(prepared)
    window = Window()
    sent = 0

    async def connection() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not window.stopped:
                writer.write(next(requests))
                sent += 1
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                answer = await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"{status} {answer[:200]!r}")
                window.finished_one()
        finally:
            writer.close()

    rate = await window.rate(
        connection, CONNECTIONS, warmup_seconds=WARMUP_SECONDS, measure_seconds=MEASURE_SECONDS
    )
    return rate, sent


def _uvicorn(app_expression: str, port: int) -> str:
    return (
        "import uvicorn; from sandbox.server import _http_implementation; "
        f"from benchmarks.bench_webhooks import bare_app, service_app; app = {app_expression}; "
        f"uvicorn.run(app, host='127.0.0.1', port={port}, http=_http_implementation(), "
        "access_log=False, log_level='warning')"
    )


@contextmanager
def _postgres_database() -> Iterator[str | None]:
    url = os.environ.get("LEADFLOW_BENCH_DATABASE_URL") or os.environ.get(
        "LEADFLOW_TEST_DATABASE_URL"
    )
    if not url:
        yield None
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"leadflow_bench_webhooks_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _rounds(targets: dict[str, tuple[int, list[Any]]]) -> dict[str, float]:
    """The median rate of each target over ROUNDS rounds, taken in turn in every round, so a
    burst of load from elsewhere on the machine hits them all alike."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    offsets = dict.fromkeys(targets, 0)
    for _ in range(ROUNDS):
        for name, (port, deliveries) in targets.items():
            rate, sent = asyncio.run(_rate(port, deliveries[offsets[name] :]))
            rates[name].append(rate)
            if len(deliveries) > 1:  # distinct deliveries: the next round starts after these
                offsets[name] += sent
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> list[Figure]:
    ports = {"bare": _free_port(), "sqlite": _free_port(), "postgresql": _free_port()}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        postgres_url = stack.enter_context(_postgres_database())
        apps = {
            "bare": "bare_app",
            "sqlite": f"service_app({f'sqlite:///{folder}/ledger.db'!r})",
        }
        if postgres_url is not None:
            apps["postgresql"] = f"service_app({postgres_url!r})"
        targets: dict[str, tuple[int, list[Any]]] = {}
        for name, expression in apps.items():
            url = f"http://127.0.0.1:{ports[name]}"
            ready = url + ("/docs" if name == "bare" else "/healthz")
            stack.enter_context(_serve(_uvicorn(expression, ports[name]), ready))
            deliveries = [("/ok", b'{"n":1}', {})] if name == "bare" else _deliveries(PREPARED)
            targets[name] = (ports[name], deliveries)
        rates = _rounds(targets)
    figures = []
    for name, label, target in (
        ("sqlite", "SQLite", ">= 1/3 of bare"),
        ("postgresql", "PostgreSQL", ">= 1,000/s and >= 1/3 of bare"),
    ):
        if name in rates:
            figures.append(
                Figure(
                    name=f"webhook deliveries accepted (verified, stored, acknowledged), "
                    f"{label} ledger, median of {ROUNDS} interleaved rounds",
                    value=rates[name],
                    baseline_name="bare FastAPI POST answering 200",
                    baseline=rates["bare"],
                    unit="deliveries/s",
                    target=target,
                )
            )
    return figures


if __name__ == "__main__":
    for figure in main():
        print(figure.line())
