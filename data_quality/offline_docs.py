"""Make GX Data Docs readable without internet access.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public
CDNs, and the GX logo from an S3 bucket. The agencies often open the docs folder on a laptop
offline, or behind a proxy that blocks those hosts; the pages then show raw unstyled HTML whose
filters and charts do not work. The same libraries ship inside this package
(`data_quality/data_docs_assets/`, see its README for versions and licences); after every build
they are copied next to the docs and each page is pointed at its local copy.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

ASSETS_FOLDER = "assets"
"""Folder inside the Data Docs directory that holds the local copies of the libraries."""

SHIPPED_ASSETS = Path(__file__).parent / "data_docs_assets"
"""The vendored libraries inside the installed package (the wheel includes them)."""

# Every CDN address GX 1.x's templates use, and the file (under `assets/`) that replaces it.
# Two addresses differ from the version shipped: GX asks for bootstrap-table 1.19.0's
# filter-control CSS (1.19.1's is the same extension, the one its JS belongs to) and for the
# moving `vega@5` / `vega-lite@5` / `vega-embed@6` tags (pinned here to the newest at vendoring).
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs/"
_JSDELIVR = "https://cdn.jsdelivr.net/npm/"
_TABLE = "https://unpkg.com/bootstrap-table@"
_FILTER = "extensions/filter-control/bootstrap-table-filter-control"
_DATEPICKER = "bootstrap-datepicker-1.9.0/"

CDN_TO_ASSET: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap-4.3.1/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap-4.3.1/js/bootstrap.min.js"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    f"{_CDNJS}popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/umd/popper.min.js",
    f"{_TABLE}1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/bootstrap-table.min.css"
    ),
    f"{_TABLE}1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/bootstrap-table.min.js",
    f"{_TABLE}1.19.1/dist/{_FILTER}.min.js": f"bootstrap-table-1.19.1/{_FILTER}.min.js",
    f"{_TABLE}1.19.0/dist/{_FILTER}.min.css": f"bootstrap-table-1.19.1/{_FILTER}.min.css",
    f"{_TABLE}1.19.0/dist/{_FILTER}.css": f"bootstrap-table-1.19.1/{_FILTER}.min.css",
    f"{_CDNJS}bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        f"{_DATEPICKER}css/bootstrap-datepicker.min.css"
    ),
    f"{_CDNJS}bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        f"{_DATEPICKER}js/bootstrap-datepicker.min.js"
    ),
    f"{_CDNJS}font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    f"{_JSDELIVR}vega@5": "vega-5.33.1/vega.min.js",
    f"{_JSDELIVR}vega-lite@5": "vega-lite-5.23.0/vega-lite.min.js",
    f"{_JSDELIVR}vega-embed@6": "vega-embed-6.29.0/vega-embed.min.js",
    f"{_JSDELIVR}@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark-1.1.0/css/bootstrap-prefers-dark.min.css"
    ),
}

# The GX logo comes from S3 (with a cache-busting `?d=` stamp); GX writes the same light logo
# into the docs' own `static/images/`. It has no dark-theme logo locally, so dark mode shows
# the light one rather than none.
_GX_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/"
    r"(?:logo-long|full_logo_dark)\.png(?:\?[^\"'()\s]*)?"
)
_GX_LOGO_LOCAL = "static/images/logo-long.png"

# GX 1.x counts one folder too few on validation pages (validations/<suite>/<run>/<time>/) when
# it points at the favicon, so the browser asks for a file outside the docs folder.
_FAVICON = re.compile(r"(?<=href=\")(?:\.\./)*static/images/favicon\.ico(?=\")")
_FAVICON_LOCAL = "static/images/favicon.ico"

_CDN = re.compile("|".join(re.escape(url) for url in sorted(CDN_TO_ASSET, key=len, reverse=True)))

# What a page loads by itself (as opposed to links a reader may follow): script and
# stylesheet/icon sources, images, and CSS `url(...)`.
_REMOTE_RESOURCE = re.compile(
    r"<(?:script|link|img|source|iframe)\b[^>]*?\b(?:src|href)\s*=\s*[\"'](https?://[^\"']+)"
    r"|url\(\s*[\"']?(https?://[^\"')]+)",
    re.IGNORECASE,
)


def remote_resources(text: str) -> list[str]:
    """Addresses a page or stylesheet would fetch from the network when opened.

    Ordinary links (`<a href>` to greatexpectations.io) are not among them: the page renders
    without them, and following one is the reader's choice.
    """
    return [a or b for a, b in _REMOTE_RESOURCE.findall(text)]


def make_data_docs_offline(docs_dir: Path) -> Path:
    """Copy the shipped libraries into `docs_dir/assets/` and point every page at them.

    Safe to run after each build: GX rewrites only the pages of the new run, already
    rewritten pages are left as they are, and asset files already in place are not copied
    again. Returns the assets folder.
    """
    docs_dir = Path(docs_dir)
    assets_dir = docs_dir / ASSETS_FOLDER
    _copy_assets(assets_dir)
    for page in sorted([*docs_dir.rglob("*.html"), *docs_dir.rglob("*.css")]):
        if assets_dir in page.parents:
            continue
        _rewrite(page, docs_dir)
    return assets_dir


def _copy_assets(assets_dir: Path) -> None:
    for source in SHIPPED_ASSETS.rglob("*"):
        if not source.is_file() or source.name == "README.md":
            continue
        target = assets_dir / source.relative_to(SHIPPED_ASSETS)
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _rewrite(page: Path, docs_dir: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # pages live at different depths (validations/<suite>/<run>/<time>/...): paths are relative
    # to each file, so the folder still works when moved or opened straight from disk
    to_root = Path(os.path.relpath(docs_dir, page.parent)).as_posix()

    def local(path: str) -> str:
        return path if to_root == "." else f"{to_root}/{path}"

    rewritten = _CDN.sub(lambda m: local(f"{ASSETS_FOLDER}/{CDN_TO_ASSET[m.group(0)]}"), text)
    rewritten = _GX_LOGO.sub(lambda _: local(_GX_LOGO_LOCAL), rewritten)
    rewritten = _FAVICON.sub(lambda _: local(_FAVICON_LOCAL), rewritten)
    if rewritten != text:
        page.write_text(rewritten, encoding="utf-8")
    left = remote_resources(rewritten)
    if left:
        # a GX upgrade that adds or bumps a CDN library lands here: vendor it and map it above
        logger.warning("Data Docs page %s still loads from the network: %s", page.name, left)
