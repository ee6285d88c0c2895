"""`leadflow blocks`: register the vendor Block types, save a set for a sandbox, check them.

    leadflow blocks register                       every Block type in blocks/ (as
                                                   `prefect block register -m blocks`)
    leadflow blocks init --sandbox URL [--name default] [--vendor V ...]
                                                   one Block document per vendor, pointing at
                                                   the sandbox (URLs and credentials read from
                                                   its admin API, URL/__sandbox__/)
    leadflow blocks check [--name default] [--vendor V ...]
                                                   a cheap read per configured vendor; a table
                                                   of what works; exit code 1 when any fails

Where it sits: the demo and a new installation start here — `leadflow sandbox serve`, then
`leadflow blocks init --sandbox http://127.0.0.1:8765`, then the flows load the "default"
Blocks. `check` is what an operator runs after pasting real credentials into the Prefect UI.

How a vendor takes part: `VENDOR_BLOCKS` below is the static registry, vendor -> its
`...Credentials` Block (every vendor of blocks.VENDOR_MODULES, in journey order); `init` builds
each Block with leadflow.sandbox_blocks (the same builder the demo and tests use), and `check`
calls the client's `check_access()` — a read that spends nothing — and prints what it returned.

When the Prefect API cannot be reached (PREFECT_API_URL pointing at nothing, a server down),
`register`, `init` and `check` say so in one line and exit 2, without a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar, cast

import typer

from leadflow.cli.common import command_group, console, fail, whole_table

if TYPE_CHECKING:
    from prefect.blocks.core import Block

app = command_group(
    "Vendor credentials as Prefect Blocks: register the types, save a sandbox set, check."
)
GROUP = "blocks"

DEFAULT_NAME = "default"
T = TypeVar("T")


class _ClientMaker(Protocol):
    """What every vendor's credentials Block offers `check`: a client of its API (each Block
    types its own; Block itself declares none)."""

    def get_client(self) -> AbstractAsyncContextManager[object]: ...


@dataclass(frozen=True)
class VendorBlock:
    vendor: str
    block: type[Block]


def vendor_blocks() -> list[VendorBlock]:
    """The credentials Block of every vendor, in journey order (a static registry)."""
    from blocks import (
        AsaasCredentials,
        DocuSignCredentials,
        FacebookLeadAdsCredentials,
        HostingerCredentials,
        PipedriveCredentials,
        WhatsAppCredentials,
    )

    return [
        VendorBlock("facebook", FacebookLeadAdsCredentials),
        VendorBlock("pipedrive", PipedriveCredentials),
        VendorBlock("docusign", DocuSignCredentials),
        VendorBlock("asaas", AsaasCredentials),
        VendorBlock("hostinger", HostingerCredentials),
        VendorBlock("whatsapp", WhatsAppCredentials),
    ]


class PrefectUnreachable(Exception):  # noqa: N818 - a condition the command reports, not a bug
    """The Prefect API did not answer: nothing can be registered, saved or loaded."""


def _prefect_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or "the temporary Prefect server"


async def _require_prefect_api() -> None:
    """Ask the API's /health first: a dead URL is one clear line, not a traceback per vendor."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        problem = await client.api_healthcheck()
    if problem is not None:
        raise PrefectUnreachable(f"{type(problem).__name__}: {problem}")


def _run_with_prefect(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` after checking the Prefect API; exit 2 with one line when it is unreachable."""
    import httpx

    async def guarded() -> T:
        try:
            await _require_prefect_api()
        except BaseException:
            work.close()
            raise
        return await work

    try:
        return asyncio.run(guarded())
    except (PrefectUnreachable, httpx.TransportError) as problem:
        from leadflow.privacy import mask_text

        raise fail(
            GROUP,
            f"the Prefect API at {_prefect_api_url()} cannot be reached "
            f"({mask_text(str(problem)) or type(problem).__name__}); start it "
            "(`prefect server start`) or fix PREFECT_API_URL",
            2,
        ) from None


@app.command()
def register() -> None:
    """Register every Block type of blocks/ with the Prefect API (idempotent)."""

    async def run() -> list[str]:
        names = []
        for item in vendor_blocks():
            await item.block.aregister_type_and_schema()
            names.append(item.block.get_block_type_slug())
        return names

    for slug in _run_with_prefect(run()):
        console.print(f"registered {slug}")


@app.command()
def init(
    sandbox: Annotated[
        str, typer.Option("--sandbox", help="The sandbox's URL, e.g. http://127.0.0.1:8765.")
    ],
    name: Annotated[str, typer.Option(help="Block document name to save under.")] = DEFAULT_NAME,
    overwrite: Annotated[
        bool, typer.Option("--overwrite/--no-overwrite", help="Replace existing documents.")
    ] = True,
    vendor: Annotated[
        list[str] | None, typer.Option(help="Only this vendor (repeatable); all by default.")
    ] = None,
) -> None:
    """Save one Block document per vendor pointing at a running sandbox.

    A vendor whose Block cannot be built from the sandbox's credentials is reported and the
    others are still saved; the exit code is then 1.
    """
    from leadflow.sandbox_blocks import sandbox_block, sandbox_overview

    chosen = _chosen(vendor)
    try:
        overview = sandbox_overview(sandbox)
    except Exception as error:  # network, HTTP or JSON: one clear line either way
        raise fail(GROUP, f"cannot read the sandbox at {sandbox}: {error}") from None
    offered: dict[str, dict[str, Any]] = overview["vendors"]

    async def save_all() -> list[tuple[str, str, str, bool]]:
        from leadflow.privacy import mask_text

        saved = []
        for item in chosen:
            slug = item.block.get_block_type_slug()
            offer = offered.get(item.vendor)
            if offer is None:
                saved.append((item.vendor, slug, "not in this sandbox", False))
                continue
            try:
                block = sandbox_block(item.vendor, offer["base_url"], offer["credentials"])
                await block.asave(name, overwrite=overwrite)
            except Exception as error:  # one vendor's Block must not stop the others
                detail = mask_text(f"not saved: {_describe_failure(error)}")
                saved.append((item.vendor, slug, detail, False))
                continue
            saved.append((item.vendor, slug, offer["base_url"], True))
        return saved

    rows = _run_with_prefect(save_all())
    table = whole_table("vendor", "block type", "base URL", title=f"Blocks saved as {name!r}")
    for vendor_name, slug, detail, ok in rows:
        table.add_row(vendor_name, slug, detail if ok else f"[red]{detail}[/red]")
    console.print(table)
    if not all(ok for *_, ok in rows):
        raise typer.Exit(1)


def _describe_failure(error: Exception) -> str:
    """A validation error names the fields (never their values); anything else its message."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'block'}: {item['msg']}"
            for item in error.errors()
        )
        return f"the sandbox's credentials do not fit the Block ({problems})"
    return f"{type(error).__name__}: {error}"


def _chosen(vendor: list[str] | None) -> list[VendorBlock]:
    available = vendor_blocks()
    if not vendor:
        return available
    unknown = set(vendor) - {item.vendor for item in available}
    if unknown:
        raise fail(GROUP, f"unknown vendor(s): {', '.join(sorted(unknown))}", 2)
    return [item for item in available if item.vendor in vendor]


@dataclass(frozen=True)
class CheckResult:
    vendor: str
    ok: bool
    detail: str


async def _check_one(item: VendorBlock, name: str) -> CheckResult:
    from blocks.errors import VendorError
    from leadflow.privacy import mask_text

    try:
        block = cast(_ClientMaker, await item.block.aload(name))
    except ValueError:
        return CheckResult(item.vendor, False, f"no {item.block.get_block_type_slug()} {name!r}")
    try:
        async with block.get_client() as client:
            check_access = getattr(client, "check_access", None)
            if check_access is None:
                return CheckResult(item.vendor, False, "its client has no check_access()")
            return CheckResult(item.vendor, True, await check_access())
    except Exception as error:  # a broken Block must not hide the other vendors' results
        kind = type(error).__name__ if isinstance(error, VendorError) else "error"
        return CheckResult(item.vendor, False, mask_text(f"{kind}: {error}"))


@app.command()
def check(
    name: Annotated[str, typer.Option(help="Block document name to check.")] = DEFAULT_NAME,
    vendor: Annotated[
        list[str] | None, typer.Option(help="Only this vendor (repeatable); all by default.")
    ] = None,
) -> None:
    """Call a cheap read on each configured vendor and report which credentials work."""
    chosen = _chosen(vendor)

    async def run() -> list[CheckResult]:
        return list(await asyncio.gather(*(_check_one(item, name) for item in chosen)))

    results = _run_with_prefect(run())
    table = whole_table("vendor", "status", "detail", title=f"Vendor credentials {name!r}")
    for result in results:
        status = "[green]ok[/green]" if result.ok else "[red]FAILED[/red]"
        table.add_row(result.vendor, status, result.detail)
    console.print(table)
    if not all(result.ok for result in results):
        raise typer.Exit(1)
