"""GX Data Docs read offline: after the gate writes them, no page loads anything from the
network, and every file a page or stylesheet points at is in the docs folder."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import great_expectations
import pytest

from data_quality import split_leads
from data_quality.offline_docs import (
    ASSETS_FOLDER,
    CDN_TO_ASSET,
    SHIPPED_ASSETS,
    make_data_docs_offline,
    remote_resources,
)

LEADS = [
    {"full_name": "Ana Souza", "email": "ana@exemplo.com", "phone_number": "(11) 98765-4321"},
    {"full_name": "Bruno Lima", "email": "nao-e-email", "phone_number": "123"},
]
TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
# following a link to GX's site or docs is the reader's choice; it is not needed to read a page
LINK = re.compile(r"<a\b[^>]*\bhref=\"https://(?:docs\.)?greatexpectations\.io[^\"]*\"")
LOCAL_REFERENCE = re.compile(
    r"<(?:script|link|img)\b[^>]*?\b(?:src|href)=[\"']([^\"'#]+)[\"']", re.IGNORECASE
)
CSS_URL = re.compile(r"url\(\s*[\"']?([^\"')]+)[\"']?\s*\)")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two gate runs into one folder, as two batches on the same day: the second finds the
    assets already there and adds a validation page of its own."""
    docs_dir = tmp_path_factory.mktemp("offline") / "docs"
    split_leads(LEADS, data_docs_dir=docs_dir)
    split_leads(LEADS[:1], data_docs_dir=docs_dir)
    return docs_dir


def _pages(docs_dir: Path) -> list[Path]:
    return sorted(p for p in docs_dir.rglob("*.html") if ASSETS_FOLDER not in p.parts)


def test_no_page_references_the_network_except_links_to_gx(docs: Path) -> None:
    pages = _pages(docs)
    assert len([p for p in pages if "validations" in p.parts]) == 2
    for page in [*pages, *(docs / "static").rglob("*.css")]:
        text = LINK.sub("", page.read_text(encoding="utf-8"))
        assert re.findall(r"https?://[^\s\"'<>)]+", text) == [], page


def test_every_local_file_a_page_or_stylesheet_loads_exists(docs: Path) -> None:
    checked = 0
    for page in _pages(docs):
        text = page.read_text(encoding="utf-8")
        for reference in LOCAL_REFERENCE.findall(text) + CSS_URL.findall(text):
            if reference.startswith("data:"):
                continue
            assert (page.parent / unquote(urlsplit(reference).path)).is_file(), (page, reference)
            checked += 1
    for stylesheet in (docs / ASSETS_FOLDER).rglob("*.css"):
        for reference in CSS_URL.findall(stylesheet.read_text(encoding="utf-8")):
            if not reference.startswith("data:"):
                path = unquote(urlsplit(reference).path)
                assert (stylesheet.parent / path).is_file(), (stylesheet, reference)
                checked += 1
    # the index, the suite page and two validation pages load ~15 files each, plus the fonts
    assert checked > 60


def test_the_deepest_page_reaches_the_assets_through_its_own_relative_path(docs: Path) -> None:
    validation = next(p for p in _pages(docs) if "validations" in p.parts)
    depth = len(validation.relative_to(docs).parts) - 1
    text = validation.read_text(encoding="utf-8")
    assert f'src="{"../" * depth}{ASSETS_FOLDER}/jquery-3.7.1/jquery.min.js"' in text
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert f'src="{ASSETS_FOLDER}/jquery-3.7.1/jquery.min.js"' in index


def test_every_cdn_address_in_gx_templates_has_a_shipped_copy() -> None:
    """Fails on a GX upgrade that adds or bumps a library, before any page breaks offline."""
    addresses = {
        url
        for template in TEMPLATES.rglob("*.j2")
        for url in re.findall(r"https://[^\"' )<>]+", template.read_text(encoding="utf-8"))
        if "greatexpectations.io" not in url and "great-expectations-web-assets" not in url
    }
    assert addresses == set(CDN_TO_ASSET)
    for asset in CDN_TO_ASSET.values():
        assert (SHIPPED_ASSETS / asset).is_file(), asset


def test_rewriting_again_changes_nothing(docs: Path) -> None:
    before = {p: p.read_bytes() for p in _pages(docs)}
    make_data_docs_offline(docs)
    assert {p: p.read_bytes() for p in _pages(docs)} == before


def test_script_stylesheet_image_and_css_urls_count_as_remote_but_links_do_not() -> None:
    page = (
        '<script src="https://cdn.example/x.js"></script>'
        "<link rel='stylesheet' href='https://cdn.example/x.css'>"
        '<img class="logo" src="http://img.example/l.png">'
        "<style>a { background: url('https://img.example/b.png') }</style>"
        '<a href="https://greatexpectations.io">GX</a>'
    )
    assert remote_resources(page) == [
        "https://cdn.example/x.js",
        "https://cdn.example/x.css",
        "http://img.example/l.png",
        "https://img.example/b.png",
    ]
