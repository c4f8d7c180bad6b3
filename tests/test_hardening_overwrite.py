"""Fetch never destroys a file it did not write (issue 12, item 4), and the ledger records every file of a
clip across runs (``--audio`` then ``--video``).  Through the CLI, against a loopback mirror."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fetch_cli import run_cli, segments_csv
from fetch_server import make_video, start_server

from avsets.ops.fetch import read_ledger


@pytest.fixture(scope="module")
def mirror():
    srv = start_server()
    yield srv
    srv.stop()


def _flac(path: Path, seconds: float) -> bytes:
    sf.write(path, (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5)).astype("float32"), 16000, format="FLAC")
    return path.read_bytes()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch(mirror, listing: Path, out: Path, *flags: str):
    return run_cli("fetch", "--segments", str(listing), "--out", str(out), "--max-attempts", "1",
                   "--source-url-template", mirror.media_template(), *flags)


# name -> (how to make the user's file, expected status)
USER_FILES = {
    "valid flac": (lambda p: _flac(p, 3.0), "ok"),
    "flac 0.1 s off": (lambda p: _flac(p, 3.1), "ok"),
    "flac of the wrong length": (lambda p: _flac(p, 7.0), "conflict"),
    "text named .flac": (lambda p: p.write_text("my thesis draft, not audio\n") or p.read_bytes(), "conflict"),
    "empty file": (lambda p: p.write_bytes(b"") or b"", "conflict"),
    "truncated flac": (lambda p: p.write_bytes(_flac(p, 3.0)[:300]) or p.read_bytes(), "conflict"),
}


@pytest.mark.slow
def test_users_files_are_adopted_or_kept_never_overwritten(tmp_path, mirror):
    """One run over a table of files a user left under clip names: valid ones are adopted (recorded, not
    fetched), the others kept byte for byte and marked ``conflict`` (exit 1, named in the summary); they
    are looked at again on every run, and once moved aside the clip is fetched."""
    cases = sorted(USER_FILES)
    ids = {case: f"userfile{i:03d}" for i, case in enumerate(cases)}
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": ids[c], "start": 0, "end": 3} for c in cases])
    out = tmp_path / "out"
    out.mkdir()
    users = {c: out / f"{ids[c]}_0_3000.flac" for c in cases}
    for case in cases:
        USER_FILES[case][0](users[case])
    before = {c: users[c].read_bytes() for c in cases}
    mirror.reset_counters()
    proc = _fetch(mirror, listing, out, "--audio")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {r.youtube_id: r for r in read_ledger(out)}
    for case in cases:
        expected, row, user = USER_FILES[case][1], rows[ids[case]], users[case]
        assert user.read_bytes() == before[case], f"{case}: the user's file changed"
        assert row.status == expected, (case, row)
        assert mirror.requests[ids[case]] == 0, case  # decided from the file alone: nothing fetched over it
        if expected == "ok":
            assert row.files == user.name and row.sha256 == _digest(user) and "adopted" in (row.reason or "")
        else:
            assert user.name in row.reason and "move it aside" in row.reason, (case, row.reason)
    kept = [c for c in cases if USER_FILES[c][1] == "conflict"]
    assert f"failed {len(kept)} (conflict {len(kept)})" in proc.stdout
    assert sum(users[c].name in proc.stderr for c in kept) >= min(len(kept), 5)  # the first few are named
    again = _fetch(mirror, listing, out, "--audio")  # re-examined every run, still kept
    assert again.returncode == 1 and all(users[c].read_bytes() == before[c] for c in cases)
    for case in kept:  # the user moves them aside: now they are fetched
        shutil.move(users[case], tmp_path / f"aside-{ids[case]}.flac")
    third = _fetch(mirror, listing, out, "--audio")
    assert third.returncode == 0, third.stderr
    assert {r.status for r in read_ledger(out)} == {"ok"}
    assert all((tmp_path / f"aside-{ids[c]}.flac").read_bytes() == before[c] for c in kept)


@pytest.mark.slow
def test_ledger_moved_aside_then_rerun_adopts_everything(tmp_path, mirror):
    """Our own advice for a damaged ledger (move it aside) must not cost a refetch or a file."""
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": f"aside{i:06d}", "start": i, "end": i + 2}
                                                 for i in range(3)])
    out = tmp_path / "out"
    assert _fetch(mirror, listing, out, "--audio").returncode == 0
    digests = {p.name: _digest(p) for p in out.glob("*.flac")}
    (out / "avsets-ledger.sqlite").rename(tmp_path / "old-ledger.sqlite")
    for extra in ("-wal", "-shm"):
        (out / f"avsets-ledger.sqlite{extra}").unlink(missing_ok=True)
    mirror.reset_counters()
    proc = _fetch(mirror, listing, out, "--audio")
    assert proc.returncode == 0, proc.stderr
    assert sum(mirror.requests.values()) == 0
    rows = read_ledger(out)
    assert [r.status for r in rows] == ["ok"] * 3
    assert {r.files: r.sha256 for r in rows} == digests
    assert {p.name: _digest(p) for p in out.glob("*.flac")} == digests


@pytest.mark.slow
def test_audio_then_video_keeps_both_files_in_the_ledger(tmp_path, mirror):
    """``--audio`` then ``--video`` into one folder: the second run fetches only the mp4, the ledger lists
    both, and a third run asking for both fetches nothing."""
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "audvid00000", "start": 1, "end": 3}])
    out = tmp_path / "out"
    assert _fetch(mirror, listing, out, "--audio").returncode == 0
    flac = out / "audvid00000_1000_3000.flac"
    flac_digest, flac_inode = _digest(flac), flac.stat().st_ino
    assert _fetch(mirror, listing, out, "--video").returncode == 0
    (row,) = read_ledger(out)
    assert sorted(row.file_names()) == ["audvid00000_1000_3000.flac", "audvid00000_1000_3000.mp4"]
    assert flac.stat().st_ino == flac_inode and _digest(flac) == flac_digest  # not refetched
    digests = dict(zip(row.file_names(), row.sha256.split(), strict=True))
    assert digests == {n: _digest(out / n) for n in row.file_names()}
    mirror.reset_counters()
    both = _fetch(mirror, listing, out, "--audio", "--video")
    assert both.returncode == 0 and sum(mirror.requests.values()) == 0
    assert "skipped 1" in both.stdout


@pytest.mark.slow
def test_a_users_mp4_next_to_our_flac(tmp_path, mirror):
    """A valid mp4 the user put beside our FLAC is adopted into the same row (not fetched over)."""
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "mixed000000", "start": 0, "end": 3}])
    out = tmp_path / "out"
    assert _fetch(mirror, listing, out, "--audio").returncode == 0
    mp4 = out / "mixed000000_0_3000.mp4"
    make_video(mp4, 3.0, seed=9)
    before = mp4.read_bytes()
    mirror.reset_counters()
    assert _fetch(mirror, listing, out, "--video").returncode == 0
    assert mp4.read_bytes() == before and sum(mirror.requests.values()) == 0
    (row,) = read_ledger(out)
    assert sorted(row.file_names()) == ["mixed000000_0_3000.flac", "mixed000000_0_3000.mp4"]
