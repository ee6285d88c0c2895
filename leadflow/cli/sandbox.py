"""`leadflow sandbox`: serve every vendor's emulator on loopback, leadflow's embedded default.

    leadflow sandbox serve [--host 127.0.0.1] [--port 8765] [--seed 0] [--no-people]
                           [--allow-external-webhook-targets]

On start it prints each vendor's base URL and the credentials the sandbox accepts, which is
what a user types into leadflow's Blocks (or any other client). It binds to loopback unless
told otherwise: the sandbox accepts well-known credentials, so exposing it is a deliberate act.
"""

from __future__ import annotations

from typing import Annotated

import typer

from leadflow.cli.common import command_group, err_console, fail

app = command_group(
    "Serve the vendor sandbox (Facebook, Pipedrive, DocuSign, Asaas, Hostinger, WhatsApp)."
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; loopback by default.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port (0 to 65535); 0 picks a free one.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed for ids, faults and simulated people.")] = 0,
    people: Annotated[
        bool, typer.Option("--people/--no-people", help="Run the simulated people.")
    ] = True,
    allow_external_webhook_targets: Annotated[
        bool,
        typer.Option(
            help="Let webhooks go to addresses outside loopback (off by default: the sandbox "
            "must not be steerable into posting to other machines)."
        ),
    ] = False,
) -> None:
    """Serve the sandbox in the foreground until Ctrl-C."""
    from sandbox.server import check_port
    from sandbox.server import serve as serve_sandbox

    problem = check_port(port)
    if problem is not None:
        raise fail("sandbox", problem, 2)

    if host not in ("127.0.0.1", "::1", "localhost"):
        err_console.print(
            f"[yellow]warning: binding {host}: the sandbox's credentials are public; "
            "anyone who can reach this address can use it[/yellow]"
        )
    try:
        serve_sandbox(
            seed=seed,
            host=host,
            port=port,
            people=people,
            allow_external_webhook_targets=allow_external_webhook_targets,
        )
    except OSError as error:
        raise fail("sandbox", f"cannot listen on {host}:{port}: {error}") from None
