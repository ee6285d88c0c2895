"""Serving the sandbox: on a free loopback port in a background thread, or in the foreground.

Tests, the demo and the benchmarks use `running_sandbox()`: uvicorn in a daemon thread on a port
the OS picked, yielding every vendor's base URL and accepted credentials once the socket is
listening; `leadflow sandbox serve` uses `serve()`. Both bind to loopback unless told otherwise,
because the sandbox accepts well-known credentials and must not be reachable from a network.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from sandbox.app import ADMIN_PREFIX, create_app
from sandbox.core import Sandbox

DEFAULT_PORT = 8765
HIGHEST_PORT = 65535


def check_port(port: int) -> str | None:
    """Why `port` cannot be listened on, in one line, or None when it can be tried.

    Checked before any socket is made, so a typo (`--port 70000`) is one clear line for the
    user instead of an `OverflowError` traceback from the socket module.
    """
    if not 0 <= port <= HIGHEST_PORT:
        return f"--port {port} is not a TCP port (0 to {HIGHEST_PORT}; 0 picks a free one)"
    return None


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox being served: its state, and the URLs and credentials a client needs."""

    sandbox: Sandbox
    url: str
    base_urls: dict[str, str]
    admin_url: str
    credentials: dict[str, dict[str, str]]


def _http_implementation() -> str:
    """httptools when installed (several times faster than h11), else h11."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 lets the OS pick a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket's proto is IPPROTO_TCP; without it every response whose headers and body
    # are written separately waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(sandbox: Sandbox, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(sandbox),
        host=host,
        port=port,
        http=_http_implementation(),
        loop="asyncio",
        lifespan="off",
        access_log=False,  # per-request logging would make the sandbox the bottleneck
        log_level=log_level,
        timeout_graceful_shutdown=2,
    )


@contextmanager
def serving_in_thread(
    config: uvicorn.Config, sock: socket.socket, name: str, stop_seconds: float
) -> Iterator[tuple[uvicorn.Server, threading.Thread]]:
    """uvicorn serving `config` on `sock` in a daemon thread called `name`, from the moment it
    listens until the block exits (then it is given `stop_seconds` to finish its requests).

    A server that dies while starting (a bad app, a lifespan error) raises RuntimeError
    rather than leaving the caller waiting for a port that never answers.
    """
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server {name!r} failed to start (see the log above)")
            thread.join(0.01)
        yield server, thread
    finally:
        server.should_exit = True
        thread.join(timeout=stop_seconds)


@contextmanager
def running_sandbox(
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
    webhook_targets: dict[str, str] | None = None,
    sandbox: Sandbox | None = None,
    people: bool = False,
    log_level: str = "warning",
    allow_external_webhook_targets: bool = False,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox (a fresh one from `seed` unless given) until the block exits.

    The socket is bound before uvicorn starts, so port 0 yields the real port with no race, and
    `sandbox.public_base_url` is set to it before any handler can build a URL from it. Simulated
    people are off unless `people=True` (tests want to drive them on demand).
    """
    sandbox = sandbox if sandbox is not None else Sandbox(seed=seed)
    if allow_external_webhook_targets:
        sandbox.allow_external_webhook_targets = True
    if webhook_targets:
        sandbox.webhook_targets.update(webhook_targets)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    url = _url(host, bound_port)
    sandbox.public_base_url = url
    config = _config(sandbox, host, bound_port, log_level)
    try:
        with serving_in_thread(config, sock, "sandbox-server", stop_seconds=10):
            try:
                if people:
                    sandbox.people.start()
                yield RunningSandbox(
                    sandbox=sandbox,
                    url=url,
                    base_urls=sandbox.base_urls(),
                    admin_url=f"{url}{ADMIN_PREFIX}",
                    credentials=sandbox.effective_credentials(),
                )
            finally:
                sandbox.people.stop()
    finally:
        sandbox.webhooks.close()
        sock.close()


def describe(running: RunningSandbox) -> str:
    """What a user needs to fill in leadflow's Blocks: each vendor's base URL and credentials."""
    lines = [f"leadflow sandbox listening on {running.url} (seed {running.sandbox.seed})", ""]
    for vendor, base_url in running.base_urls.items():
        lines.append(f"{vendor}: {base_url}")
        for name, value in running.credentials.get(vendor, {}).items():
            if "\n" in value:  # a PEM key: printed whole, indented, so it can be copied
                lines.append(f"    {name} =")
                lines.extend(f"        {line}" for line in value.strip().splitlines())
            else:
                lines.append(f"    {name} = {value}")
    lines += ["", f"admin API: {running.admin_url}/"]
    return "\n".join(lines)


def serve(
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    people: bool = True,
    allow_external_webhook_targets: bool = False,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM, printing the URLs and credentials first.

    uvicorn runs in a thread here, so it installs no signal handlers: SIGTERM (a container or
    service manager stopping the sandbox) is turned into the same clean stop as Ctrl-C.
    """
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        with running_sandbox(
            seed=seed,
            host=host,
            port=port,
            people=people,
            log_level="info",
            allow_external_webhook_targets=allow_external_webhook_targets,
        ) as run:
            print(describe(run), flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("\nstopping the sandbox", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
