"""A mirror that ignores Range (``python -m http.server``: 200 with the whole file instead of 206) is
detected once per server and read in one streamed pass, with exact cuts (issue 12, friction)."""

from __future__ import annotations

import av
import pytest
from fetch_cli import run_cli, segments_csv
from fetch_server import SAMPLE_RATE, start_server

from avsets.ops.fetch import read_ledger


@pytest.fixture(scope="module")
def plain_server():
    srv = start_server()
    srv.honour_range = False
    yield srv
    srv.stop()


def _audio_seconds(path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        return sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--audio"], ["--video"], ["--audio", "--video", "--exact"]])
def test_a_server_without_range_support_still_gives_exact_clips(tmp_path, plain_server, flags):
    segs = [("norange0000", 0.0, 3.0), ("norange0001", 4.5, 7.5), ("norange0002", 20.0, 23.0)]
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": y, "start": s, "end": e} for y, s, e in segs])
    out = tmp_path / "out"
    proc = run_cli("fetch", "--segments", str(listing), "--out", str(out), *flags, "--workers", "2",
                   "--source-url-template", plain_server.media_template())
    assert proc.returncode == 0, proc.stderr
    assert [r.status for r in read_ledger(out)] == ["ok"] * 3
    assert proc.stderr.count("ignores Range requests") == 1, proc.stderr  # said once, not per clip
    if "--audio" in flags:
        for ytid, s, e in segs:
            seconds = _audio_seconds(out / f"{ytid}_{int(s * 1000)}_{int(e * 1000)}.flac")
            assert abs(seconds - (e - s)) <= 1.0 / SAMPLE_RATE, (ytid, seconds)
    else:
        for ytid, s, e in segs:
            with av.open(str(out / f"{ytid}_{int(s * 1000)}_{int(e * 1000)}.mp4")) as c:
                assert abs(c.duration / 1e6 - (e - s)) < 0.25


@pytest.mark.slow
def test_a_server_with_range_support_is_not_told_about(tmp_path):
    """The probe costs one request per server and changes nothing where Range works (no warning)."""
    srv = start_server()
    try:
        listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "ranged00000", "start": 0, "end": 3}])
        proc = run_cli("fetch", "--segments", str(listing), "--out", str(tmp_path / "out"), "--audio",
                       "--source-url-template", srv.media_template())
        assert proc.returncode == 0, proc.stderr
        assert "Range" not in proc.stderr
        assert srv.range_requests >= 2  # the probe and ffmpeg's ranged reads
    finally:
        srv.stop()
