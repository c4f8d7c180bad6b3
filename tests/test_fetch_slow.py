"""The slower fetch tests: kill -9 and resume, the Ray engine, the VGGSound corpus end to end."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from fetch_server import Behavior, read_marker, start_server
from test_fetch_loopback import (  # noqa: F401 - the autouse fixture applies here too
    FAST,
    REPO,
    _check_files_match_ledger,
    _loopback_without_proxy,
    _segments_csv,
)

from avsets.core.segments import Segment
from avsets.ops.fetch import fetch, ledger_summary, read_ledger

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mirror():
    srv = start_server()
    yield srv
    srv.stop()


def _ok_count(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM clips WHERE status = 'ok'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _duration(path: Path) -> float:
    with av.open(str(path)) as c:
        return c.duration / 1e6


def test_kill_9_mid_run_then_resume(mirror, tmp_path):
    """SIGKILL a fetch mid-run: no partial clip is ever visible under a media name, and a rerun completes
    the folder with a ledger that matches the files."""
    segs = [Segment(f"kill{i:07d}", i % 20, i % 20 + 4) for i in range(24)]
    for s in segs:
        mirror.behaviors[s.youtube_id] = Behavior(delay=0.05)
    listing = _segments_csv(tmp_path / "segs.csv", segs)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "avsets.cli.fetch", "fetch", "--segments", str(listing), "--out", str(out),
           "--audio", "--video", "--workers", "3", "--source-url-template", mirror.media_template()]
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while _ok_count(out / "avsets-ledger.sqlite") < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _ok_count(out / "avsets-ledger.sqlite")
    assert 5 <= done < len(segs)
    # Whatever carries a media name is a complete clip (renamed only after verification).
    for p in out.iterdir():
        if p.suffix in (".flac", ".mp4"):
            assert _duration(p) == pytest.approx(4.0, abs=0.2), p
    time.sleep(1.0)  # let the killed run's orphaned ffmpeg children finish writing their .part files
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    fetched = int(resumed.stdout.split("fetched ")[1].split()[0])
    assert fetched == len(segs) - done  # only the unfinished ones
    assert ledger_summary(out) == {"ok": len(segs)}
    _check_files_match_ledger(out)
    conn = sqlite3.connect(out / "avsets-ledger.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_ray_engine_on_a_local_instance(mirror, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'avsets[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        mirror.behaviors["raygone0000"] = Behavior(status=404)
        segs = [Segment(f"ray{i:08d}", i % 20, i % 20 + 3) for i in range(10)] + [Segment("raygone0000", 0, 3)]
        r = fetch(segs, out=str(tmp_path), engine="ray", workers=2, ray_batch_size=3, audio=True,
                  source_url_template=mirror.media_template(), **FAST)
        assert r.counts == {"ok": 10, "unavailable": 1} and r.exit_code == 1
        assert ledger_summary(tmp_path) == {"ok": 10, "unavailable": 1}
        _check_files_match_ledger(tmp_path)
        again = fetch(segs, out=str(tmp_path), engine="ray", audio=True, source_url_template=mirror.media_template())
        assert again.fetched == 0 and again.skipped == 11
    finally:
        ray.shutdown()


def test_vggsound_fetch_then_load_dataset(mirror, tmp_path, vgg_sample_dir):
    """``avsets fetch vggsound`` reads the corpus through its builder; the folder then loads and decodes with
    ``avsets.load_dataset(..., media_dir=DIR)`` and no other option."""
    from avsets import load_dataset

    for name in ("long",):
        assert name in mirror.media
    out = tmp_path / "media"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    mirror.default_media = "long"
    cmd = [sys.executable, "-m", "avsets.cli.fetch", "fetch", "vggsound", "--data-dir", vgg_sample_dir, "--out", str(out),
           "--split", "test", "--limit", "6", "--workers", "3", "--source-url-template", mirror.media_template()]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    rows = read_ledger(out)
    assert len(rows) == 6, (res.stdout, res.stderr)
    ok = [r for r in rows if r.status == "ok"]
    assert len(ok) >= 3, res.stderr
    assert res.returncode == (0 if len(ok) == 6 else 1)
    ds = load_dataset("vggsound", split="test", data_dir=vgg_sample_dir, media_dir=str(out), on_missing="skip",
                      cache_dir=str(tmp_path / "cache"))
    assert len(ds) == len(ok)
    for example in ds:
        assert example["id"] in {r.id for r in ok}
        video = example["video"]
        assert video is not None and video["frames"].shape[0] == 100
        assert read_marker(video["frames"][0]) == int(round(example["start"] * 10))
        audio = example["audio"]
        assert audio is not None and audio["array"].shape[0] == pytest.approx(10 * audio["sampling_rate"], abs=2)


def test_vggsound_from_a_local_mirror_organised_by_label(mirror, tmp_path, vgg_sample_dir):
    """``{label}`` in a template is the label *name* (ClassLabel decoded), and times take format specs:
    a local copy laid out as the VGGSound authors name files, one folder per class."""
    import itertools
    import shutil

    from avsets.ops.fetch.corpus import corpus_requests

    reqs = list(itertools.islice(corpus_requests("vggsound", data_dir=vgg_sample_dir, split="test"), 3))
    root = tmp_path / "vgg mirror"
    for req in reqs:
        folder = root / str(req.fields["label"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(mirror.media["short"], folder / f"{req.segment.youtube_id}_{int(req.segment.start):06d}.mp4")
    r = fetch("vggsound", data_dir=vgg_sample_dir, split="test", out=str(tmp_path / "out"), limit=3, audio=True,
              source_url_template=str(root) + "/{label}/{youtube_id}_{start_s:06d}.mp4")
    assert r.counts == {"ok": 3}, read_ledger(tmp_path / "out")
    assert {row.id for row in read_ledger(tmp_path / "out")} == {req.key for req in reqs}
