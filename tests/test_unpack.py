"""``avsets unpack`` and ``avsets fetch --source`` (issue 11): only the members the rows use, canonical names,
whole videos cut to the segment, resumable after a kill, recorded in the fetch ledger."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from fetch_server import FPS, make_video, read_marker
from range_server import serve_folder
from source_fixtures import audioset_mirrors, vggsound_mirror

from avsets.cli.app import main
from avsets.media.sources.members import public_url

pytest.importorskip("imageio_ffmpeg")


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return vggsound_mirror(tmp_path_factory.mktemp("vgg"))


@pytest.fixture(scope="module")
def aset(tmp_path_factory):
    return audioset_mirrors(tmp_path_factory.mktemp("aset"))


def _ledger(out: Path) -> dict[str, dict]:
    con = sqlite3.connect(out / "avsets-ledger.sqlite")
    con.row_factory = sqlite3.Row
    return {r["id"]: dict(r) for r in con.execute("SELECT * FROM clips")}


def test_unpack_targz_copy_writes_canonical_names_and_ledger(vgg, tmp_path):
    out = tmp_path / "out"
    rc = main(["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[0].parent),
               "--out", str(out), "--quiet"])
    assert rc == 1  # rows the copy does not hold, and one corrupt member
    written = {p.name for p in out.iterdir() if not p.name.startswith("avsets-ledger")}
    assert written == {f"{rid}.mp4" for rid in vgg.sources}
    led = _ledger(out)
    for rid, src in vgg.sources.items():
        data = (out / f"{rid}.mp4").read_bytes()
        assert data == src.read_bytes()
        row = led[rid]
        assert row["status"] == "ok" and row["files"] == f"{rid}.mp4"
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["source"].startswith(str(vgg.archives[0].parent)) and "!/" in row["source"]
    (bad,) = vgg.corrupt
    assert led[bad]["status"] == "error" and "not readable" in led[bad]["reason"]
    assert not any(rid in led for ids in vgg.missing.values() for rid in ids)  # left for `avsets fetch`
    assert not (tmp_path / "escape").exists() and not (out.parent / "abs").exists()
    # a second run has nothing left to write
    rc = main(["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[0].parent),
               "--out", str(out), "--quiet", "--split", "train"])
    assert rc == 1 and {p.name for p in out.iterdir() if not p.name.startswith("avsets-ledger")} == written


def test_unpack_only_a_split(vgg, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[0]),
               "--media-dir", str(vgg.archives[1]), "--out", str(out), "--split", "test", "--quiet"])
    assert rc == 1
    names = {p.name for p in out.iterdir() if p.suffix == ".mp4"}
    assert names == {f"{rid}.mp4" for rid in vgg.splits["test"] if rid in vgg.sources}
    assert "3 rows: wrote 1" in capsys.readouterr().out


@pytest.mark.slow
def test_unpack_resumes_after_kill(vgg, tmp_path):
    server = serve_folder(vgg.archives[0].parent)
    server.chunk, server.delay = 2048, 0.15
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "avsets.cli.app", "unpack", "vggsound", "--data-dir", str(vgg.meta), "--out", str(out),
           "--quiet"] + [x for a in vgg.archives for x in ("--media-dir", server.url(a.name))]
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and not any(p.suffix == ".mp4" for p in out.glob("*.mp4")):
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        first = {p.name for p in out.glob("*.mp4")}
        assert first and len(first) < len(vgg.sources)  # killed mid-way
        server.delay = 0.0
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1, done.stderr
        assert f"{len(first)} already there" in done.stdout
    finally:
        server.stop()
    names = {p.name for p in out.iterdir()}
    assert {n for n in names if n.endswith(".mp4")} == {f"{rid}.mp4" for rid in vgg.sources}
    assert not [n for n in names if n.endswith(".part")]
    led = _ledger(out)
    assert {rid for rid, r in led.items() if r["status"] == "ok"} == set(vgg.sources)
    for rid in vgg.sources:
        assert (out / f"{rid}.mp4").read_bytes() == vgg.sources[rid].read_bytes()
        assert led[rid]["source"].startswith("http://127.0.0.1")


# A child that SIGKILLs itself at one exact point of the first clip's write: the flake of the test above (its
# kill landed, 1 run in 4, between a clip's rename and its ledger row) made deterministic.
_KILL_AT_RECORD = """
import os, signal, sys
from avsets.metadata import ledger
when, orig = sys.argv.pop(1), ledger.Ledger.record
def record(self, row, **kw):
    if row.status == ledger.OK and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    orig(self, row, **kw)
    if row.status == ledger.OK and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
ledger.Ledger.record = record
from avsets.cli.app import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_unpack_killed_around_the_ledger_row_resumes_complete(vgg, tmp_path, capsys, when):
    """Killed just before or just after a clip's ledger row is written, a rerun still ends with every clip on
    disk and recorded ok: never a file taken as done that the ledger does not hold."""
    out = tmp_path / "out"
    args = ["unpack", "vggsound", "--data-dir", str(vgg.meta), "--out", str(out), "--quiet", "--media-dir",
            str(vgg.archives[0]), "--media-dir", str(vgg.archives[1])]
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_RECORD, when, *args], capture_output=True, text=True,
                            env=dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1"), timeout=120)
    assert killed.returncode == -9, killed.stderr
    first = {p.name for p in out.glob("*.mp4")}
    assert len(first) < len(vgg.sources)
    assert main(args) == 1
    assert f"{len(first)} already there" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {n for n in names if n.endswith(".mp4")} == {f"{rid}.mp4" for rid in vgg.sources}
    assert not [n for n in names if n.endswith(".part")]
    led = _ledger(out)
    assert {rid for rid, r in led.items() if r["status"] == "ok"} == set(vgg.sources)
    for rid in vgg.sources:
        assert (out / f"{rid}.mp4").read_bytes() == vgg.sources[rid].read_bytes()


_KILL_IN_CUT = """
import os, signal, sys
from avsets.ops.fetch import ffmpeg
def run(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
ffmpeg.run = run
from avsets.cli.app import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_unpack_killed_mid_cut_leaves_no_partial_after_the_rerun(aset, tmp_path):
    """Killed while ffmpeg cuts a whole video, the member's copy handed to ffmpeg is a ``.part`` the rerun
    removes (it was named ``.{name}.mp4.src.part``, which ``cleanup_partials`` never matched)."""
    whole_id = aset.ids[5]
    tar = tmp_path / "videos.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(str(make_video(tmp_path / "whole.mp4", 45.0, seed=7)), arcname=f"videos/{whole_id}.mp4")
    out = tmp_path / "out"
    args = ["unpack", "ascc", "--data-dir", str(aset.meta), "--media-dir", str(tar), "--out", str(out), "--quiet"]
    killed = subprocess.run([sys.executable, "-c", _KILL_IN_CUT, *args], capture_output=True, text=True,
                            env=dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1"), timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert [p.name for p in out.iterdir() if p.name.endswith(".part")]  # the kill left the member's copy
    assert main(args) == 1  # the other rows are in no source
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    assert (out / f"{whole_id}_30000_40000.mp4").is_file()


def test_whole_video_members_are_cut_to_the_segment(aset, tmp_path):
    """ASCC rows are 30-40 s: a 45-s ``{ytid}.mp4`` in a tar and the 60-s FLAC in the Parquet mirror are cut."""
    whole_id = aset.ids[5]
    video = make_video(tmp_path / "whole.mp4", 45.0, seed=7)
    tar = tmp_path / "videos.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(str(video), arcname=f"videos/{whole_id}.mp4")
    out = tmp_path / "out"
    rc = main(["unpack", "ascc", "--data-dir", str(aset.meta), "--media-dir", str(tar), "--media-dir",
               str(aset.parquet), "--out", str(out), "--quiet"])
    assert rc == 0
    led = _ledger(out)
    rid = f"{whole_id}_30000_40000"
    with av.open(str(out / f"{rid}.mp4")) as c:
        assert abs(c.duration / 1e6 - 10.0) < 0.5
        frame = next(c.decode(video=0))
        assert abs(read_marker(frame.to_ndarray(format="rgb24")) - 30 * FPS) <= 1
    assert led[rid]["source"] == f"{tar}!/videos/{whole_id}.mp4"
    long_id = aset.ids[4]
    got, sr = sf.read(str(out / f"{long_id}_30000_40000.flac"), dtype="float32")
    src, sr0 = sf.read(str(aset.sources[long_id]), dtype="float32")
    assert sr == sr0 and got.shape[0] == 10 * sr
    np.testing.assert_array_equal(got, src[30 * sr:40 * sr])
    short = aset.ids[0]
    assert (out / f"{short}_30000_40000.flac").read_bytes() == aset.sources[short].read_bytes()
    assert led[f"{short}_30000_40000"]["source"] == f"{aset.parquet}!/audio/bal_train/{short}.flac"


def test_fetch_source_copies_from_a_parquet_mirror(aset, tmp_path):
    out = tmp_path / "out"
    rc = main(["fetch", "ascc", "--data-dir", str(aset.meta), "--source", str(aset.parquet), "--out", str(out),
               "--audio"])
    assert rc == 1  # one row is in no mirror
    led = _ledger(out)
    assert {rid for rid, r in led.items() if r["status"] == "ok"} == {f"{y}_30000_40000" for y in aset.sources}
    assert sorted(p.name for p in out.glob("*.flac")) == sorted(f"{y}_30000_40000.flac" for y in aset.sources)


def test_fetch_source_video_from_audio_mirror_fails_per_clip(aset, tmp_path):
    out = tmp_path / "out"
    rc = main(["fetch", "ascc", "--data-dir", str(aset.meta), "--source", str(aset.parquet), "--out", str(out),
               "--video"])
    assert rc == 1
    led = _ledger(out)
    assert led and all(r["status"] == "error" and "no video" in r["reason"] for r in led.values())


def test_unpack_set_up_errors_exit_2(vgg, tmp_path, capsys):
    assert main(["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(tmp_path / "nothing"),
                 "--out", "s3://bucket/x", "--quiet"]) == 2
    assert "local folder" in capsys.readouterr().err


def test_public_url_drops_credentials():
    url = "https://user:secret@host.example/a/vggsound_00.tar.gz?X-Amz-Signature=abc&token=t&rev=main"
    assert "secret" not in public_url(url) and "abc" not in public_url(url) and "=t&" not in public_url(url)
    assert public_url(url).startswith("https://***@host.example/a/vggsound_00.tar.gz?")
    assert public_url("/local/path.tar.gz") == "/local/path.tar.gz"
