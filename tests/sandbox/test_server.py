"""The sandbox is served on loopback in a background thread, and by `leadflow sandbox serve`."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from leadflow.cli import app as leadflow_app
from sandbox.app import create_app, vendor_modules
from sandbox.core import Sandbox
from sandbox.server import RunningSandbox, bind_socket, describe, running_sandbox

ROOT = Path(__file__).resolve().parents[2]


def test_every_existing_vendor_module_is_mounted_under_its_name() -> None:
    sandbox = Sandbox()
    create_app(sandbox)
    assert list(sandbox.default_credentials) == list(vendor_modules())
    assert {"facebook", "whatsapp"} <= set(sandbox.default_credentials)


def test_the_app_keeps_its_sandbox_in_its_state() -> None:
    sandbox = Sandbox(seed=3)
    assert create_app(sandbox).state.sandbox is sandbox


def test_running_sandbox_binds_loopback_and_reports_the_real_urls(served: RunningSandbox) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert served.sandbox.public_base_url == served.url
    assert served.base_urls["facebook"] == f"{served.url}/facebook"
    assert served.admin_url == f"{served.url}/__sandbox__"
    overview = httpx.get(served.admin_url + "/").json()
    assert overview["url"] == served.url
    assert overview["vendors"]["whatsapp"]["credentials"] == served.credentials["whatsapp"]


def test_webhook_targets_given_at_start_are_in_force() -> None:
    with running_sandbox(webhook_targets={"asaas": "http://127.0.0.1:1/asaas"}) as running:
        assert httpx.get(running.admin_url + "/webhook-targets").json() == {
            "asaas": "http://127.0.0.1:1/asaas"
        }


def test_the_port_is_released_when_the_block_exits() -> None:
    with running_sandbox() as running:
        port = int(running.url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_busy_port_is_an_os_error_not_a_hang() -> None:
    with running_sandbox() as running:
        port = int(running.url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use"), running_sandbox(port=port):
            pass


def test_the_start_banner_lists_each_vendors_url_and_credentials(served: RunningSandbox) -> None:
    banner = describe(served)
    for vendor, url in served.base_urls.items():
        assert f"{vendor}: {url}" in banner
        for name, value in served.credentials[vendor].items():
            assert f"{name} =" in banner
            assert value.strip().splitlines()[-1] in banner


def test_the_cli_offers_serve_with_loopback_defaults() -> None:
    result = CliRunner().invoke(leadflow_app, ["sandbox", "serve", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output
    assert "--port" in result.output


def test_the_listening_socket_is_tcp_so_responses_are_not_delayed_by_nagle() -> None:
    """asyncio sets TCP_NODELAY on accepted connections only for an IPPROTO_TCP listener."""
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_python_m_sandbox_prints_the_banner_and_stops_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--no-people"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith("leadflow sandbox listening on http://127.0.0.1:")
        url = first_line.split()[4]
        assert httpx.get(f"{url}/__sandbox__/counters", timeout=5).json() == {}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _console_script(name: str) -> str:
    script = Path(sys.executable).with_name(name)
    assert script.exists(), f"the {name} console script is installed beside {sys.executable}"
    return str(script)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_outside_tcp_is_one_line_and_exit_2_through_the_console_script(port: str) -> None:
    result = subprocess.run(
        [_console_script("leadflow"), "sandbox", "serve", "--port", port, "--no-people"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        f"leadflow sandbox: --port {port} is not a TCP port (0 to 65535; 0 picks a free one)"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_python_m_sandbox_refuses_a_port_outside_tcp_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "70000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m sandbox: --port 70000 is not a TCP port (0 to 65535; 0 picks a free one)"
    ]


def test_the_sandbox_imports_nothing_of_leadflow() -> None:
    """The sandbox stands in for the vendors of any client: no import cycle with leadflow's CLI."""
    probe = (
        "import sys, sandbox.__main__, sandbox.app, sandbox.server, sandbox.admin\n"
        "leaked = sorted(m for m in sys.modules if m == 'leadflow' or m.startswith('leadflow.'))\n"
        "print(leaked)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_vendor_registry_is_static_and_in_journey_order() -> None:
    from sandbox.app import VENDOR_MODULES
    from sandbox.core import VENDORS

    assert tuple(VENDOR_MODULES) == VENDORS
    assert all(name == module.VENDOR for name, module in VENDOR_MODULES.items())
