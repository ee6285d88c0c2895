"""`python -m sandbox [--host H] [--port N] [--seed S]`: the sandbox without the leadflow CLI.

The same command as `leadflow sandbox serve`, for a checkout where the console script is not
installed (or a container running only the sandbox).
"""

from __future__ import annotations

import typer

from leadflow.cli.sandbox import serve

if __name__ == "__main__":
    typer.run(serve)
