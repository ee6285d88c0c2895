"""Photograph the gate's GX Data Docs in a headless Chromium cut off from the network, to see
with one's own eyes that they are styled and their charts drawn from the local `assets/`.

    .venv/bin/python scripts/screenshot_offline_docs.py [--out DIR]

It builds Data Docs for a two-lead batch the way the quality gate does (one lead clean, one
quarantined), then screenshots the index page and the validation page into DIR (default: a
new temporary folder), and prints their paths. Every host name resolves to nothing, so a page
that still needed a CDN would come out unstyled. The test suite checks the same property
without a browser (tests/data_quality/test_offline_docs.py); this script is the visual check.

Chromium comes from the system's packages: `apt-get install chromium` (or set CHROMIUM).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from data_quality import split_leads

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LEADS = [
    {"full_name": "Ana Souza", "email": "ana@exemplo.com", "phone_number": "(11) 98765-4321"},
    {"full_name": "Bruno Lima", "email": "nao-e-email", "phone_number": "123"},
]


def find_browser() -> str | None:
    """The Chromium to drive: $CHROMIUM, or the first of the usual names on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(browser: str, page: Path, png: Path) -> None:
    """Render `page` offline: host resolution fails for every name, as on a cut-off laptop."""
    with tempfile.TemporaryDirectory(prefix="leadflow-chromium-") as profile:
        subprocess.run(  # noqa: S603 - a browser found on PATH, our own arguments
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--allow-file-access-from-files",
                "--virtual-time-budget=5000",
                "--window-size=1280,1600",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the docs and the screenshots")
    args = parser.parse_args()
    browser = find_browser()
    if browser is None:
        print("No Chromium found: install it or set CHROMIUM.", file=sys.stderr)
        return 2
    out = (args.out or Path(tempfile.mkdtemp(prefix="leadflow-docs-"))).resolve()
    docs = out / "data_docs"
    split_leads(LEADS, data_docs_dir=docs)
    validation = next(docs.glob("validations/**/*.html"))
    for page, name in ((docs / "index.html", "index.png"), (validation, "validation.png")):
        screenshot(browser, page, out / name)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
