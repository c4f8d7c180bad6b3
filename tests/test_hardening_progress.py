"""Long fetches talk the right amount (issue 12, friction): a progress bar with counts by status on a
terminal (none in a pipe or with --quiet), failures summarised (the first few named, the rest in the
ledger) instead of one line per clip, and a summary that never counts failures as fetched."""

from __future__ import annotations

import pytest
from fetch_cli import cli_env, run_cli, segments_csv
from fetch_server import Behavior, start_server
from ux_support import run_in_a_terminal

from avsets.ops.fetch import read_ledger

N_OK, N_GONE, N_ERROR = 2, 14, 3


@pytest.fixture(scope="module")
def mirror():
    srv = start_server()
    for i in range(N_GONE):
        srv.behaviors[f"gone{i:07d}"] = Behavior(status=404)
    for i in range(N_ERROR):
        srv.behaviors[f"err5{i:07d}"] = Behavior(status=503)
    yield srv
    srv.stop()


@pytest.fixture
def listing(tmp_path):
    ids = ([f"good{i:07d}" for i in range(N_OK)] + [f"gone{i:07d}" for i in range(N_GONE)]
           + [f"err5{i:07d}" for i in range(N_ERROR)])
    return segments_csv(tmp_path / "s.csv", [{"youtube_id": y, "start": 0, "end": 2} for y in ids])


def _args(mirror, listing, out, *extra):
    return ["fetch", "--segments", str(listing), "--out", str(out), "--audio", "--max-attempts", "1",
            "--workers", "4", "--source-url-template", mirror.media_template(), *extra]


def test_summary_counts_failures_apart_and_names_only_the_first(tmp_path, mirror, listing):
    out = tmp_path / "out"
    proc = run_cli(*_args(mirror, listing, out))
    assert proc.returncode == 1
    failed = N_GONE + N_ERROR
    assert f"fetched {N_OK} clips, failed {failed} (error {N_ERROR}, unavailable {N_GONE})" in proc.stdout
    named = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith(("gone", "err5"))]
    assert 1 <= len(named) <= 5, proc.stderr  # not one line per failed clip
    assert f"and {failed - len(named)} more" in proc.stderr and "ledger" in proc.stderr
    assert len(proc.stderr.splitlines()) <= 8, proc.stderr
    assert sum(r.status != "ok" for r in read_ledger(out)) == failed  # the full list


def _run_in_a_terminal(argv: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run the CLI with stderr/stdout on a pseudo-terminal (what a user's shell gives it)."""
    return run_in_a_terminal(argv, timeout=timeout, env=cli_env(COLUMNS="160"))


@pytest.mark.slow
def test_a_terminal_gets_a_bar_with_counts_by_status(tmp_path, mirror, listing):
    code, text = _run_in_a_terminal(_args(mirror, listing, tmp_path / "out"))
    assert code == 1, text
    assert "fetch:" in text and "clip" in text  # tqdm's bar
    assert f"unavailable {N_GONE}" in text and f"ok {N_OK}" in text  # counts by status on the bar


@pytest.mark.slow
def test_quiet_and_pipes_get_no_bar(tmp_path, mirror, listing):
    code, text = _run_in_a_terminal(_args(mirror, listing, tmp_path / "q", "--quiet"))
    assert code == 1
    assert "fetch:" not in text and "it/s" not in text and "clip/s" not in text
    assert f"fetched {N_OK} clips" in text
    piped = run_cli(*_args(mirror, listing, tmp_path / "p"))
    assert "clip/s" not in piped.stderr and "\r" not in piped.stderr
