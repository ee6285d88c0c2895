"""The sandbox's own throughput for a simple create on loopback, beside a bare FastAPI endpoint.

The sandbox must never be what limits leadflow's benchmarks (target: >= 1,000 creates/s from
one client process on a 2-core machine). The create is an Asaas customer when that emulator
exists, else a WhatsApp template send. Both servers run in their own process with the same
uvicorn settings (`sandbox.server`'s: httptools when installed, no access log), so the client
does not share a GIL with the server, and the baseline — a bare `POST /ok` that parses a JSON
body and answers a small JSON object — measures what uvicorn + FastAPI + httpx cost on this
machine in the same run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from benchmarks import Figure, Window

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 8  # httpx's pool degrades sharply beyond ~16 connections (measured: 32 -> 1/4)
WARMUP_SECONDS = 1.0
MEASURE_SECONDS = 4.0

baseline_app = FastAPI()


@baseline_app.post("/ok")
async def ok(body: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "received": len(body)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serve(code: str, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run `code` in a child Python process until the block exits; wait until it answers."""
    process = subprocess.Popen(  # noqa: S603 - runs this module's own constant code
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(ready_url, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"server did not start: {process.stderr.read().decode()}"  # type: ignore[union-attr]
                    ) from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _cpf(number: int) -> str:
    """A valid CPF (check digits computed) from a 9-digit base: Asaas validates them."""
    base = [int(d) for d in f"{number:09d}"]
    for length in (9, 10):
        total = sum(d * (length + 1 - i) for i, d in enumerate(base[:length]))
        base.append((total * 10 % 11) % 10)
    return "".join(map(str, base))


Builder = Callable[[int], tuple[str, dict[str, Any], dict[str, str]]]


def _sandbox_creates() -> list[tuple[str, Builder]]:
    """(name, request builder) of the simple creates the present sandbox offers, best first."""
    from sandbox.app import vendor_modules

    modules = vendor_modules()
    creates: list[tuple[str, Builder]] = []
    if "asaas" in modules:
        credentials = modules["asaas"].DEFAULT_CREDENTIALS
        key = credentials.get("api_key") or credentials.get("access_token") or ""

        def asaas(n: int) -> tuple[str, dict[str, Any], dict[str, str]]:
            body = {"name": f"Cliente {n}", "cpfCnpj": _cpf(100_000_000 + n)}
            headers = {"access_token": key, "User-Agent": "leadflow-bench"}
            return "/asaas/v3/customers", body, headers

        creates.append(("Asaas customer creates", asaas))
    credentials = modules["whatsapp"].DEFAULT_CREDENTIALS
    path = f"/whatsapp/v23.0/{credentials['phone_number_id']}/messages"
    headers = {"Authorization": f"Bearer {credentials['access_token']}"}

    def send(n: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": f"55119{n % 100_000_000:08d}",
            "type": "template",
            "template": {
                "name": "hello_world",
                "language": {"policy": "deterministic", "code": "en_US"},
            },
        }
        return path, body, headers

    creates.append(("WhatsApp template sends", send))
    return creates


def _first_working(base_url: str) -> tuple[str, Builder]:
    """The best create that succeeds against this sandbox (Asaas when its emulator accepts it)."""
    for name, build in _sandbox_creates():
        path, body, headers = build(0)
        if httpx.post(base_url + path, json=body, headers=headers, timeout=10).is_success:
            return name, build
    raise RuntimeError("no create succeeded against the sandbox")


async def _rate(base_url: str, build: Builder) -> float:
    """Successful requests per second over MEASURE_SECONDS, CONNECTIONS at a time."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    counter = iter(range(10**9))
    window = Window()

    # TCP_NODELAY: httpcore writes the headers and the body separately; with Nagle's algorithm
    # the body then waits for the server's delayed ACK (~40 ms on Linux) on every request.
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30) as client:

        async def worker() -> None:
            while not window.stopped:
                path, body, headers = build(next(counter))
                response = await client.post(path, json=body, headers=headers)
                if response.status_code >= 300:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
                window.finished_one()

        return await window.rate(
            worker, CONNECTIONS, warmup_seconds=WARMUP_SECONDS, measure_seconds=MEASURE_SECONDS
        )


INTAKE_LEADS = 600
INTAKE_IN_FLIGHT = 50
INTAKE_LATENCY_MS = 20


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _intake(base_url: str, server_pid: int) -> tuple[float, float, float]:
    """The journey's intake against the sandbox: per lead a Pipedrive person search, a person
    create and a deal create, INTAKE_IN_FLIGHT leads at a time at INTAKE_LATENCY_MS injected
    latency. (leads/s, sandbox CPU ms per lead, client CPU ms per lead): the sandbox must cost
    less than the client that drives it, or it would be what a benchmark measures."""
    from sandbox.vendors import pipedrive

    headers = {"x-api-token": pipedrive.DEFAULT_CREDENTIALS["api_token"]}
    limits = httpx.Limits(
        max_connections=INTAKE_IN_FLIGHT, max_keepalive_connections=INTAKE_IN_FLIGHT
    )
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30) as client:
        await client.put("/__sandbox__/faults/pipedrive", json={"latency_ms": INTAKE_LATENCY_MS})
        gate = asyncio.Semaphore(INTAKE_IN_FLIGHT)

        async def lead(n: int) -> None:
            email = f"cliente{n}@exemplo.com.br"
            async with gate:
                await client.get(
                    "/pipedrive/api/v2/persons/search",
                    params={"term": email, "fields": "email", "exact_match": "true"},
                    headers=headers,
                )
                person = await client.post(
                    "/pipedrive/api/v2/persons",
                    json={"name": f"Cliente {n}", "emails": [{"value": email, "primary": True}]},
                    headers=headers,
                )
                deal = await client.post(
                    "/pipedrive/api/v2/deals",
                    json={"title": f"Site {n}", "person_id": person.json()["data"]["id"]},
                    headers=headers,
                )
                if deal.status_code != 200:
                    raise RuntimeError(f"deal create: {deal.status_code} {deal.text[:200]}")

        server_before, client_before = _cpu_seconds(server_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(lead(n) for n in range(INTAKE_LEADS)))
        elapsed = time.perf_counter() - started
        server_ms = (_cpu_seconds(server_pid) - server_before) * 1000 / INTAKE_LEADS
        client_ms = (time.process_time() - client_before) * 1000 / INTAKE_LEADS
    return INTAKE_LEADS / elapsed, server_ms, client_ms


def main() -> list[Figure]:
    sandbox_port, baseline_port = _free_port(), _free_port()
    sandbox_code = (
        "from sandbox.server import serve; "
        f"serve(seed=0, host='127.0.0.1', port={sandbox_port}, people=False)"
    )
    baseline_code = (
        "import uvicorn; from benchmarks.bench_sandbox import baseline_app; "
        "from sandbox.server import _http_implementation; "
        f"uvicorn.run(baseline_app, host='127.0.0.1', port={baseline_port}, "
        "http=_http_implementation(), access_log=False, log_level='warning', lifespan='off')"
    )
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    baseline_url = f"http://127.0.0.1:{baseline_port}"
    with _serve(baseline_code, baseline_url + "/docs"):
        baseline = asyncio.run(_rate(baseline_url, lambda n: ("/ok", {"n": n}, {})))
    with _serve(sandbox_code, sandbox_url + "/__sandbox__/"):
        name, build = _first_working(sandbox_url)
        value = asyncio.run(_rate(sandbox_url, build))
    with _serve(sandbox_code, sandbox_url + "/__sandbox__/") as server:
        leads_per_second, server_ms, client_ms = asyncio.run(_intake(sandbox_url, server.pid))
    return [
        Figure(
            name=(
                f"sandbox CPU per intake lead (search + person + deal, {INTAKE_IN_FLIGHT} in "
                f"flight, {INTAKE_LATENCY_MS} ms latency; {leads_per_second:.0f} leads/s)"
            ),
            value=server_ms,
            baseline_name="the httpx client's CPU per lead",
            baseline=client_ms,
            unit="ms/lead",
            target="below the client's",
        ),
        Figure(
            name=f"sandbox {name} on loopback",
            value=value,
            baseline_name="bare FastAPI POST /ok",
            baseline=baseline,
            unit="req/s",
            target=">= 1,000 creates/s",
        ),
    ]


if __name__ == "__main__":
    for figure in main():
        print(figure.line())
