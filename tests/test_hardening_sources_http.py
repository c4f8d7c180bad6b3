"""A plain ``python -m http.server`` mirror of default-muxed mp4s: every clip is cut right (issue 19.13).

The server is the real standard-library one, run as a user runs it (a subprocess on loopback); in Python
3.11 it answers a ranged GET with 200 and the whole file, which this test checks first.  The mp4s are
written by PyAV and by the ffmpeg binary with their default mp4 options, so their index (``moov``) comes
after the media data: such a file cannot be cut from a one-pass stream, so fetch must download it to a
temporary file (removed afterwards) and cut that.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from fetch_cli import run_cli, segments_csv

from avsets.ops.fetch import read_ledger
from avsets.ops.fetch.ffmpeg import Input, ffmpeg_exe
from avsets.ops.fetch.origins import download_whole
from avsets.ops.fetch.status import FetchFailure

SECONDS = 12
RATE = 16000
FPS = 10


def default_mp4(path: Path, seconds: int = SECONDS) -> Path:
    """H.264 + AAC with PyAV's default mp4 options (no ``faststart``: ``moov`` last)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=RATE, layout="mono")
        rng = np.random.default_rng(0)
        for i in range(seconds * FPS):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        samples = RATE // FPS
        for i in range(seconds * FPS):
            t = (np.arange(samples) + i * samples) / RATE
            af = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :],
                                            format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = RATE, i * samples, Fraction(1, RATE)
            out.mux(a.encode(af))
        out.mux(a.encode())
    return path


def ffmpeg_default_mp4(path: Path, seconds: int = SECONDS) -> Path:
    """The same content written by the ffmpeg binary with its default mp4 options (``moov`` last)."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=size=64x48:rate={FPS}", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={RATE}",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def stdlib_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("plain-mirror")
    for ytid in ("plainAAAAA0", "plainBBBBB1"):
        default_mp4(root / f"{ytid}.mp4")
    ffmpeg_default_mp4(root / "ffmpegCCCC2.mp4")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        port = int(line.split(" port ", 1)[1].split()[0])
        yield root, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_stdlib_server_ignores_range_and_the_files_have_moov_last(stdlib_server):
    root, base = stdlib_server
    for name in ("plainAAAAA0.mp4", "ffmpegCCCC2.mp4"):
        data = (root / name).read_bytes()
        assert data.index(b"mdat") < data.index(b"moov"), f"{name} must keep its index at the end"
    data = (root / "plainAAAAA0.mp4").read_bytes()
    req = urllib.request.Request(f"{base}/plainAAAAA0.mp4", headers={"Range": "bytes=0-0"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        if resp.status == 206:
            pytest.skip("this Python's http.server honours Range; the fallback is not exercised")
        assert resp.status == 200 and len(resp.read()) == len(data)


@pytest.mark.parametrize("flags", [["--audio", "--video"], ["--audio", "--video", "--exact"]])
def test_every_clip_from_a_plain_http_server_mirror_is_cut(stdlib_server, tmp_path, flags):
    _, base = stdlib_server
    segs = [("plainAAAAA0", 1.0, 4.0), ("plainAAAAA0", 7.5, 10.5), ("plainBBBBB1", 0.0, 3.0),
            ("ffmpegCCCC2", 5.0, 8.0)]
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": y, "start": s, "end": e} for y, s, e in segs])
    out = tmp_path / "out"
    proc = run_cli("fetch", "--segments", str(listing), "--out", str(out), *flags, "--workers", "2",
                   "--source-url-template", base + "/{youtube_id}.mp4")
    assert proc.returncode == 0, proc.stderr
    assert [r.status for r in read_ledger(out)] == ["ok"] * len(segs), [r.reason for r in read_ledger(out)]
    assert proc.stderr.count("ignores Range requests") == 1, proc.stderr
    for ytid, s, e in segs:
        stem = f"{ytid}_{int(s * 1000)}_{int(e * 1000)}"
        with av.open(str(out / f"{stem}.mp4")) as c:
            assert abs(c.duration / 1e6 - (e - s)) < 0.25
        with av.open(str(out / f"{stem}.flac")) as c:
            stream = c.streams.audio[0]
            seconds = sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate
            assert abs(seconds - (e - s)) < 0.01
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]
    assert leftovers == [], leftovers  # the downloaded copies are gone


def test_the_temporary_copy_is_bounded_and_removed_on_failure(stdlib_server, tmp_path):
    _, base = stdlib_server
    inp = Input(f"{base}/plainAAAAA0.mp4")
    dest = tmp_path / ".copy.part"
    size = len(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(inp.url, timeout=10).read())
    with pytest.raises(FetchFailure, match="limit"):
        download_whole(inp, dest, proxy=None, timeout=10, limit=size - 1)
    assert not dest.exists()
    with pytest.raises(FetchFailure) as exc:
        download_whole(Input(f"{base}/no-such-video.mp4"), dest, proxy=None, timeout=10)
    assert exc.value.status == "unavailable" and not dest.exists()
    local = download_whole(inp, dest, proxy=None, timeout=10, limit=size)
    assert local.url == "file:" + str(dest) and dest.stat().st_size == size
