"""`leadflow webhooks`: serve the webhook service, subscribe it at each vendor.

    leadflow webhooks serve [--host 127.0.0.1] [--port 8780]
        the ASGI service (uvicorn): /webhooks/<vendor>, /healthz, /readyz, /docs
    leadflow webhooks register --public-url https://hooks.example.com.br [--name default]
                               [--sandbox http://127.0.0.1:8765]
        idempotent subscriptions through each vendor's saved Block (or, with --sandbox, Blocks
        built from a running sandbox), then what a person must still do in each console

Secrets are read from LEADFLOW_WEBHOOK_* (webhooks/settings.py); the ledger from
LEADFLOW_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from leadflow.cli.common import command_group, console, fail, whole_table

app = command_group("The webhook service: serve it, subscribe it at each vendor.")

DEFAULT_PORT = 8780


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the webhook service until interrupted."""
    import importlib.util

    import uvicorn

    from webhooks.app import create_app

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    console.print(f"leadflow webhooks on http://{host}:{port} (docs: /docs)")
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        http=http,
        log_level=log_level,
        access_log=False,  # an access log line per delivery costs more than verifying it
    )


async def _saved_blocks(name: str) -> dict[str, Any]:
    from leadflow.cli.blocks import vendor_blocks

    found: dict[str, Any] = {}
    for item in vendor_blocks():
        try:
            found[item.vendor] = await item.block.aload(name)
        except ValueError:  # no document of that name for this vendor
            continue
    return found


def _sandbox_blocks(sandbox: str) -> dict[str, Any]:
    from leadflow.sandbox_blocks import sandbox_credentials

    return dict(sandbox_credentials(sandbox))


@app.command()
def register(
    public_url: Annotated[
        str, typer.Option("--public-url", help="Where vendors reach this service (https://...).")
    ],
    name: Annotated[str, typer.Option(help="Block document name to load.")] = "default",
    sandbox: Annotated[
        str | None,
        typer.Option(help="Build the Blocks from this running sandbox instead of loading them."),
    ] = None,
) -> None:
    """Subscribe the service at each vendor (idempotently) and print the manual steps left."""
    from webhooks.registration import Outcome, register_all
    from webhooks.settings import WebhookSettings

    settings = WebhookSettings()

    async def run() -> list[Any]:
        blocks = _sandbox_blocks(sandbox) if sandbox else await _saved_blocks(name)
        return await register_all(public_url, blocks, settings)

    try:
        results = asyncio.run(run())
    except ValueError as exc:
        raise fail("webhooks", str(exc), 2) from None
    table = whole_table(
        "vendor", "outcome", "detail", title=f"Webhook subscriptions for {public_url}"
    )
    for result in results:
        colour = "red" if result.outcome is Outcome.FAILED else None
        outcome = f"[{colour}]{result.outcome}[/{colour}]" if colour else str(result.outcome)
        table.add_row(result.vendor, outcome, result.detail)
    console.print(table)
    steps = [(r.vendor, step) for r in results for step in r.manual_steps]
    if steps:
        console.print("Still to do by hand:")
        for vendor, step in steps:
            console.print(f"  - {vendor}: {step}")
    if any(r.outcome is Outcome.FAILED for r in results):
        raise typer.Exit(1)
