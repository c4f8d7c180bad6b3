"""Helpers for the hardening tests: run the CLI as a user does (a subprocess), write segment lists."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: loopback never goes through a proxy, tests/ importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "no_proxy": "127.0.0.1,localhost",
           "NO_PROXY": "127.0.0.1,localhost"}
    env.update(extra)
    return env


def run_cli(*args: str, module: str = "avsets.cli.app", timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m avsets.cli.app ARGS`` (or another module), captured, never through a shell."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(**env), stdin=subprocess.DEVNULL)


def segments_csv(path: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """A ``--segments`` CSV: ``youtube_id,start,end`` plus any other columns (template fields)."""
    rows = list(rows)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Exit 2, no traceback, and an error line that says something (returned for further checks)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert lines, proc.stderr
    return lines[-1]
