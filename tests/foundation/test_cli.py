"""The `leadflow` console script as a user meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LEADFLOW = Path(sys.executable).with_name("leadflow")


def run_leadflow(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [str(LEADFLOW), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_help_lists_every_command_group() -> None:
    result = run_leadflow("--help")
    assert result.returncode == 0, result.stderr
    for group in ("db", "sandbox", "blocks", "quarantine"):
        assert group in result.stdout


def test_broken_setting_is_one_line_naming_it_and_no_traceback(tmp_path: Path) -> None:
    result = run_leadflow(
        "db", "upgrade", env={"LEADFLOW_DATABASE_URL": "mysql://root@localhost/x"}, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "LEADFLOW_DATABASE_URL" in lines[0]
