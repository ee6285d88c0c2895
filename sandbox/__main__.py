"""`python -m sandbox [--host H] [--port N] [--seed S] [--no-people]`: the sandbox on its own.

The same server as `leadflow sandbox serve`, for a checkout where the console script is not
installed or a container running only the sandbox. It parses its own arguments (argparse)
rather than borrowing leadflow's CLI: the sandbox imports nothing of the project, so it can
stand in for the vendors of any client.
"""

from __future__ import annotations

import argparse
import sys

from sandbox.server import DEFAULT_PORT, check_port, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port; 0 picks one")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, faults and people")
    parser.add_argument("--people", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--allow-external-webhook-targets",
        action="store_true",
        help="let webhooks go to addresses outside loopback (off: the sandbox is no SSRF tool)",
    )
    args = parser.parse_args(argv)
    problem = check_port(args.port)
    if problem is not None:
        print(f"python -m sandbox: {problem}", file=sys.stderr)
        return 2
    try:
        serve(
            seed=args.seed,
            host=args.host,
            port=args.port,
            people=args.people,
            allow_external_webhook_targets=args.allow_external_webhook_targets,
        )
    except OSError as error:
        where = f"{args.host}:{args.port}"
        print(f"python -m sandbox: cannot listen on {where}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
