"""Issue 19 friction: a full disk during a normal ``avsets fetch`` stops it the way ``unpack`` stops.

The disk is a real size-limited tmpfs (``test_reliability_faults.Tmpfs``, as the unpack test does), the
mirror the real loopback fetch server, the CLI a subprocess: the run must say "no space left", print its
usual summary with the clips it did not reach, exit 1, leave a valid ledger with no row blaming a clip for
the disk, and a rerun on the grown disk must fetch exactly the rest.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fetch_cli import cli_env, segments_csv
from fetch_server import make_video, start_server

pytest.importorskip("imageio_ffmpeg")

IDS = [f"fullDisk{i:03d}" for i in range(6)]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    video = make_video(tmp_path_factory.mktemp("media") / "short.mp4", 20.0, seed=2)
    srv = start_server({"short": video})
    yield srv
    srv.stop()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avsets.cli.app", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(HF_HUB_OFFLINE="1"), cwd=cwd, stdin=subprocess.DEVNULL)


def _ledger(folder: Path) -> dict[str, str]:
    con = sqlite3.connect(folder / "avsets-ledger.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(con.execute("SELECT id, status FROM clips"))
    finally:
        con.close()


@pytest.mark.slow
def test_disk_full_during_fetch_prints_the_summary_exits_1_and_a_rerun_resumes(mirror, tmp_path):
    from test_reliability_faults import Tmpfs

    segs = segments_csv(tmp_path / "segs.csv", [{"youtube_id": y, "start": 5, "end": 15} for y in IDS])
    disk = Tmpfs(tmp_path / "disk", "2m")  # room for the ledger and a few clips (each ~0.5 MB), not six
    out = disk.path / "media"
    try:
        args = ["fetch", "--segments", str(segs), "--audio", "--video", "--out", str(out), "--workers", "2",
                "--source-url-template", mirror.media_template(), "--quiet"]
        p = _run(args, tmp_path)
        text = p.stdout + p.stderr
        assert p.returncode == 1, text
        assert "no space left" in text and "cannot rollback" not in text and "Traceback" not in text, text
        assert "fetched " in p.stdout and "not reached" in p.stdout, p.stdout  # the usual summary, then why
        first = _ledger(out)
        ok = {k for k, v in first.items() if v == "ok"}
        assert set(first.values()) <= {"ok"}, first  # no clip was recorded as failed for the disk's sake
        assert len(ok) < len(IDS)
        fetched = int(p.stdout.split("fetched ", 1)[1].split()[0])
        interrupted = int(p.stdout.split("interrupted ", 1)[1].split()[0]) if "interrupted " in p.stdout else 0
        not_reached = int(p.stdout.split("stopped with ", 1)[1].split()[0])
        assert fetched == len(ok) and fetched + interrupted + not_reached == len(IDS), p.stdout
        for rid in ok:
            assert (out / f"{rid}.flac").is_file() and (out / f"{rid}.mp4").is_file()
        assert not [f for f in out.iterdir() if f.name.endswith(".part")]

        disk.grow("64m")
        p = _run(args, tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "no space" not in p.stdout + p.stderr
        assert f"skipped {len(ok)}," in p.stdout, p.stdout  # what the full disk let through is not fetched again
        assert _ledger(out) == {f"{y}_5000_15000": "ok" for y in IDS}
    finally:
        disk.close()
