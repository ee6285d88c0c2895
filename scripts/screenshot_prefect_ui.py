"""Take a screenshot of the Prefect UI after a demo run, for the README (docs/prefect-ui.png).

It starts nothing but a headless Chromium: the Prefect server must already run and hold the
demo's flow runs.

    prefect server start                                   # terminal 1
    PREFECT_API_URL=http://127.0.0.1:4200/api make demo    # terminal 2
    .venv/bin/python scripts/screenshot_prefect_ui.py      # then this

Chromium comes from the system's packages, never from this script:
`apt-get install chromium` on Debian or Ubuntu (or set CHROMIUM to another Chromium/Chrome).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

DEFAULT_UI = "http://127.0.0.1:4200"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def find_browser() -> str | None:
    """The Chromium to drive: $CHROMIUM, or the first of the usual names on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def server_answers(ui_url: str) -> str | None:
    """Why the Prefect server at `ui_url` cannot be photographed, or None when it answers."""
    try:
        response = httpx.get(f"{ui_url.rstrip('/')}/api/health", timeout=5)
    except httpx.HTTPError as exc:
        return f"no Prefect server answers at {ui_url} ({type(exc).__name__}); start one with "
    if response.status_code != 200:
        return f"{ui_url}/api/health answered {response.status_code}"
    return None


def screenshot(browser: str, url: str, out: Path, width: int, height: int, wait_ms: int) -> None:
    """Load `url` in headless Chromium, let the single-page app render, save a PNG."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="leadflow-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--run-all-compositor-stages-before-draw",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={out.resolve()}",
            url,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        subprocess.run(  # noqa: S603 - a browser found on PATH, our own arguments
            command, check=True, capture_output=True, timeout=120
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ui", default=os.environ.get("PREFECT_UI_URL") or DEFAULT_UI, help="Prefect UI URL"
    )
    parser.add_argument("--page", default="/runs", help="UI page to capture (default /runs)")
    parser.add_argument("--out", type=Path, default=Path("docs/prefect-ui.png"))
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--wait-ms", type=int, default=20000, help="time the UI gets to render")
    args = parser.parse_args(argv)

    browser = find_browser()
    if browser is None:
        print(
            "No Chromium found. Install it from your system's packages, e.g.\n"
            "    sudo apt-get install chromium\n"
            "or point CHROMIUM at a Chromium or Chrome binary. This script installs nothing.",
            file=sys.stderr,
        )
        return 2
    ui = args.ui.rstrip("/").removesuffix("/api")
    problem = server_answers(ui)
    if problem:
        print(f"{problem} `prefect server start`.", file=sys.stderr)
        return 2
    try:
        screenshot(browser, ui + args.page, args.out, args.width, args.height, args.wait_ms)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"Chromium failed: {exc}", file=sys.stderr)
        return 1
    if not args.out.exists() or args.out.read_bytes()[:8] != PNG_MAGIC:
        print(f"Chromium wrote no PNG at {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB) from {ui + args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
