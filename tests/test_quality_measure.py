"""Clip quality measures on real files: untouched real clips get no flag, defects planted into real media
get theirs (at the default thresholds), and a clip that cannot be decoded gives an error row.

The planted clips start from ``tests/data/real/h264_aac_chaplin_6s.mp4`` (real footage; see PROVENANCE.md):
its H.264 and AAC packets are stream-copied with PyAV, and only the part that makes the defect is encoded here.
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import av
import numpy as np
import pytest

from avsets.metadata.quality import QUALITY_FLAGS, Thresholds
from avsets.metadata.quality.table import SCHEMA
from avsets.ops.quality.measure import FLOOR_DBFS, measure_clip, measure_row

REAL = Path(__file__).parent / "data" / "real"
CHAPLIN = REAL / "h264_aac_chaplin_6s.mp4"
SECONDS = 6.0


def flagged(row: dict) -> set[str]:
    return {f for f in QUALITY_FLAGS if row[f]}


def _copy(dst: Path, *, video: bool = True, audio: bool = True, limit_v: float | None = None,
          limit_a: float | None = None, fmt: str | None = None, src: Path = CHAPLIN) -> Path:
    """Stream-copy ``src``'s packets (no re-encoding), optionally dropping a stream or packets past a time."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        pairs = {}
        if video and inp.streams.video:
            pairs[inp.streams.video[0].index] = (out.add_stream_from_template(inp.streams.video[0]), limit_v)
        if audio and inp.streams.audio:
            pairs[inp.streams.audio[0].index] = (out.add_stream_from_template(inp.streams.audio[0]), limit_a)
        for pkt in inp.demux(*[inp.streams[i] for i in pairs]):
            if pkt.dts is None:
                continue
            stream, limit = pairs[pkt.stream.index]
            if limit is not None and pkt.pts is not None and float(pkt.pts * pkt.time_base) >= limit:
                continue
            pkt.stream = stream
            out.mux(pkt)
    return dst


def _with_audio(dst: Path, samples: np.ndarray, sr: int = 44100) -> Path:
    """Chaplin's H.264 packets copied, audio replaced by ``samples`` ((n, 2) float32) encoded to AAC."""
    with av.open(str(CHAPLIN)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream_from_template(inp.streams.video[0])
        a = out.add_stream("aac", rate=sr, layout="stereo")
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is None:
                continue
            pkt.stream = vs
            out.mux(pkt)
        for i in range(0, samples.shape[0], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[i:i + 1024].T), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = sr, i
            frame.time_base = fractions.Fraction(1, sr)
            for p in a.encode(frame):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    return dst


def _with_video(dst: Path, picture: np.ndarray, fps: int = 25, second: np.ndarray | None = None) -> Path:
    """``picture`` (H, W, 3) repeated for 6 s as H.264 (``second`` from 3 s on), with chaplin's AAC copied."""
    h, w = picture.shape[:2]
    with av.open(str(CHAPLIN)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        a = out.add_stream_from_template(inp.streams.audio[0])
        for i in range(int(SECONDS * fps)):
            shown = second if second is not None and i >= SECONDS * fps / 2 else picture
            frame = av.VideoFrame.from_ndarray(shown, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        for pkt in inp.demux(inp.streams.audio[0]):
            if pkt.dts is None:
                continue
            pkt.stream = a
            out.mux(pkt)
    return dst


def _one_frame(dst: Path, picture: np.ndarray) -> Path:
    """A still-image upload: ONE H.264 frame shown for the whole 6 s (its duration says so), chaplin's AAC."""
    h, w = picture.shape[:2]
    with av.open(str(CHAPLIN)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        a = out.add_stream_from_template(inp.streams.audio[0])
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = 0, fractions.Fraction(1, 25)
        for p in [*vs.encode(frame), *vs.encode(None)]:
            p.duration = int(SECONDS * 25)
            out.mux(p)
        for pkt in inp.demux(inp.streams.audio[0]):
            if pkt.dts is None:
                continue
            pkt.stream = a
            out.mux(pkt)
    return dst


def _first_picture() -> np.ndarray:
    with av.open(str(CHAPLIN)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    n = int(SECONDS * 44100)
    noise = rng.standard_normal((n, 2)).astype(np.float32)
    noise *= np.float32(10 ** (-70 / 20))  # RMS -70 dBFS
    return {
        "still": _with_video(d / "still.mp4", _first_picture()),
        "one_frame": _one_frame(d / "one_frame.mp4", _first_picture()),
        "muted_zero": _with_audio(d / "muted_zero.mp4", np.zeros((n, 2), np.float32)),
        "muted_noise": _with_audio(d / "muted_noise.mp4", noise),
        "black": _with_video(d / "black.mp4", np.zeros((360, 640, 3), np.uint8)),
        "cut_short": _copy(d / "cut_short.mp4", limit_v=2.5, limit_a=2.5),
        "no_audio": _copy(d / "no_audio.mp4", audio=False),
        "no_video": _copy(d / "no_video.mp4", video=False),  # an .mp4 is a video file: its picture is missing
        "audio_3s_short": _copy(d / "audio_3s_short.mp4", limit_a=SECONDS - 3.0),
    }


# what each planted clip must be flagged with; a black picture repeated is also a still one
EXPECTED = {
    "still": {"still"},
    "one_frame": {"still"},  # one picture held: still, and not a video 6 s shorter than its sound
    "muted_zero": {"silent"},
    "muted_noise": {"silent"},
    "black": {"black", "still"},
    "cut_short": {"short"},
    "no_audio": {"no_audio"},
    "no_video": {"no_video"},
    "audio_3s_short": {"av_mismatch"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_planted_defect_gets_its_flag(planted, name):
    row = measure_clip(str(planted[name]), duration=SECONDS)
    assert row["error"] is None
    assert flagged(row) == EXPECTED[name], {k: row[k] for k in row if row[k] is not None}


def test_planted_measures_have_the_right_values(planted):
    zero = measure_clip(str(planted["muted_zero"]), duration=SECONDS)
    assert zero["rms_dbfs"] == FLOOR_DBFS and zero["silent_fraction"] == 1.0
    noise = measure_clip(str(planted["muted_noise"]), duration=SECONDS)
    assert -73 < noise["rms_dbfs"] < -67  # -70 dBFS survives AAC within a few dB
    short = measure_clip(str(planted["cut_short"]), duration=SECONDS)
    assert 2.3 < short["duration_s"] < 2.7  # decoded length, not the 6 s the row asks for
    lag = measure_clip(str(planted["audio_3s_short"]), duration=SECONDS)
    assert -3.2 < lag["av_length_diff_s"] < -2.8 and abs(lag["duration_s"] - SECONDS) < 0.1
    one = measure_clip(str(planted["one_frame"]), duration=SECONDS)
    assert one["still_fraction"] == 1.0 and abs(one["av_length_diff_s"]) < 0.1 and one["fps"] < 0.2
    black = measure_clip(str(planted["black"]), duration=SECONDS)
    assert black["black_fraction"] == 1.0 and black["width"] == 640 and black["height"] == 360


def test_thresholds_decide_the_flags(planted):
    """-70 dBFS noise is silence at -60 dBFS but not at -80; a looser short_fraction lets a cut clip pass."""
    noise = measure_clip(str(planted["muted_noise"]), duration=SECONDS, thresholds=Thresholds(silence_db=-80.0))
    assert not noise["silent"] and noise["silent_fraction"] < 0.1
    short = measure_clip(str(planted["cut_short"]), duration=SECONDS, thresholds=Thresholds(short_fraction=0.3))
    assert not short["short"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, tuple[Path, float | None, bool]]:
    """Untouched real clips (path, segment length, whether it should have video); mkv and ogg are stream
    copies of real packets into another container."""
    d = tmp_path_factory.mktemp("clean")
    return {
        "mp4 H.264+AAC": (CHAPLIN, SECONDS, True),
        "mkv H.264+AAC": (_copy(d / "chaplin.mkv", fmt="matroska"), SECONDS, True),
        "webm VP8+Vorbis": (REAL / "vp8_vorbis_bbb_1s.webm", 1.0, True),
        "mkv H.264+Opus": (REAL / "opus_h264_standin.mkv", 12.0, True),
        "ogg Vorbis": (_copy(d / "bbb.ogg", video=False, fmt="ogg", src=REAL / "vorbis_bbb_13s.webm"), None, False),
        "wav PCM": (REAL / "pcm_s16_example_2s.wav", 2.0, False),
        "m4a AAC": (REAL / "aac_smpte.m4a", 10.0, False),
    }


@pytest.mark.parametrize("kind", ["mp4 H.264+AAC", "mkv H.264+AAC", "webm VP8+Vorbis", "mkv H.264+Opus",
                                  "ogg Vorbis", "wav PCM", "m4a AAC"])
def test_untouched_real_clips_get_no_flag(clean, kind):
    path, seconds, video = clean[kind]
    row = measure_clip(str(path), duration=seconds)
    assert row["error"] is None
    assert flagged(row) == set(), {k: row[k] for k in row if row[k] is not None}
    assert row["has_video"] is video and row["has_audio"] is True
    assert row["rms_dbfs"] > -40 and row["silent_fraction"] < 0.9


def test_a_cut_between_two_shots_is_counted(tmp_path):
    """Two still shots (the first picture, then it upside down): one cut; real footage has none."""
    picture = _first_picture()
    row = measure_clip(str(_with_video(tmp_path / "cut.mp4", picture, second=np.ascontiguousarray(picture[::-1]))),
                       duration=SECONDS)
    assert row["scene_cuts"] == 1 and row["still"]
    assert measure_clip(str(CHAPLIN))["scene_cuts"] == 0


def test_real_black_silent_webm_is_flagged():
    """moviepy's no_duration.webm is, decoded, black frames and digital silence: all three flags."""
    row = measure_clip(str(REAL / "opus_vp9_late_audio.webm"))
    assert flagged(row) == {"silent", "still", "black"}
    assert row["rms_dbfs"] == FLOOR_DBFS and row["width"] == 1280


def test_segment_inside_a_longer_file(planted):
    """A whole video cut at ``offset``: only [offset, offset + duration) is measured."""
    row = measure_clip(str(CHAPLIN), offset=2.0, duration=3.0)
    assert abs(row["duration_s"] - 3.0) < 0.05 and not flagged(row)
    tail = measure_clip(str(planted["audio_3s_short"]), offset=4.0, duration=2.0)
    assert tail["has_audio"] is False and tail["no_audio"]  # the audio ended at 3 s


def test_bytes_and_path_give_the_same_row():
    a = measure_clip(str(CHAPLIN), duration=SECONDS)
    b = measure_clip(CHAPLIN.read_bytes(), duration=SECONDS)
    assert a == b


def test_corrupt_and_truncated_clips_give_error_rows(tmp_path):
    data = CHAPLIN.read_bytes()
    garbage = measure_row(os.urandom(4000))
    assert garbage["error"] and all(garbage[f] is None for f in QUALITY_FLAGS)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])  # the moov atom is at the end: nothing to decode
    row = measure_row(str(cut), duration=SECONDS)
    assert row["error"] and set(row) == set(SCHEMA.names)
    assert measure_row(str(tmp_path / "missing.mp4"))["error"]
    signed = measure_row("http://user:hunter2@127.0.0.1:9/x.mp4?X-Amz-Signature=s3cr3t")["error"]
    assert signed and "hunter2" not in signed and "s3cr3t" not in signed  # redacted before it is stored


def test_hooks_see_the_same_decode():
    """A fingerprint pass can ride on the quality decode: hooks get every audio block and each sampled frame."""

    class Hook:
        def __init__(self):
            self.samples, self.frames = 0, []

        def audio(self, block, sr):
            assert block.dtype == np.float32 and block.shape[1] == 2 and sr == 44100
            self.samples += block.shape[0]

        def frame(self, grey, t):
            self.frames.append((grey.shape, t))

    hook = Hook()
    row = measure_clip(str(CHAPLIN), duration=SECONDS, hooks=[hook])
    assert abs(hook.samples / 44100 - SECONDS) < 0.1 and row["duration_s"] > 5.9
    assert len(hook.frames) == 24 and hook.frames[0][0] == (36, 64)
    assert [round(t, 2) for _, t in hook.frames[:3]] == [0.0, 0.28, 0.52]


def test_audio_and_video_in_two_files_are_joined(planted):
    """A corpus row whose audio and video cells name two files: each is measured, the row joins them."""
    from avsets.ops.quality.run import ClipJob, measure_job

    key = {"id": "x_0_6000", "split": "train", "youtube_id": "x", "start": 0.0, "end": 6.0, "fingerprint": "f"}
    job = ClipJob(key, str(REAL / "pcm_s16_example_2s.wav"), str(planted["no_audio"]), 0.0, SECONDS, "x")
    row = measure_job(job, Thresholds())
    assert row["has_audio"] and row["has_video"] and row["sample_rate"] == 44100 and row["width"] == 640
    assert abs(row["av_length_diff_s"] + 4.0) < 0.1 and flagged(row) == {"av_mismatch"}
    assert row["id"] == "x_0_6000" and row["error"] is None
    broken = measure_job(ClipJob(key, os.urandom(100), str(planted["no_audio"]), 0.0, SECONDS, "x"), Thresholds())
    assert broken["error"] and broken["id"] == "x_0_6000"
