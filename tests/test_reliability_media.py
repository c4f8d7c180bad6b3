"""The media matrix (issue 8): every kind of broken or unusual file, through the real decoders and through
``load_dataset`` with each ``on_missing``.

Each clip either decodes correctly or is handled by ``on_missing`` with a warning that names the clip; a
streaming training loop over a mix of good and bad clips never stops.  Media is made at test time, small
(8 kHz audio, 32x24 video at 5 fps) so the whole matrix stays fast.
"""

from __future__ import annotations

import fractions
import os
import shutil
import subprocess
import warnings

import av
import numpy as np
import pytest
import soundfile as sf

import avsets
from avsets import MediaWarning
from avsets.core.errors import MediaError
from avsets.media.decoding import decode_audio, decode_video
from avsets.media.synth import tone, write_audio, write_video

SR = 8000
SEG = 10.0  # VGGSound segments are 10 s
LABEL = "dog barking"


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _audio_only_mp4(path: str, seconds: float) -> None:
    """AAC in an mp4 container and nothing else (an "audio-only file where video is asked")."""
    data = tone(seconds, SR).T
    with av.open(path, mode="w") as c:
        s = c.add_stream("aac", rate=SR, layout="mono")
        hop = s.codec_context.frame_size or 1024
        for i in range(0, data.shape[1], hop):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i:i + hop]), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = SR, i, fractions.Fraction(1, SR)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _vfr_mp4(path: str) -> None:
    """A variable frame rate H.264 file: 10 fps for 2 s, then every third frame (3.3 fps) up to 10 s."""
    subprocess.run([_ffmpeg(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=size=32x24:rate=10:duration=10",
                    "-vf", "select='lt(n\\,20)+not(mod(n\\,3))'", "-fps_mode", "vfr",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path],
                   check=True, capture_output=True, timeout=60)


def _truncate(src: str, dst: str, fraction: float) -> None:
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])


# name -> (ytid, start, file name relative to media root (None: no file), expectation)
# expectation: "ok" decodes the full segment, "short" decodes fewer samples (file ends early), "bad" fails
# at decode time (None + warning / dropped), "missing" never resolves (on_missing at prepare time),
# "video_only" / "audio_only": one modality decodes, the other is None
CASES: dict[str, tuple[str, float, str | None, str]] = {}


def _case(name: str, start: float, fname: str | None, expect: str) -> str:
    ytid = f"M{len(CASES):02d}" + "x" * 8
    CASES[name] = (ytid, start, fname.format(y=ytid, s=int(start)) if fname else None, expect)
    return ytid


_case("good_flac", 0, "{y}_{s:06d}.flac", "ok")
_case("good_mp4", 0, "{y}_{s:06d}.mp4", "ok")
_case("zero_byte", 0, "{y}_{s:06d}.flac", "missing")
for pct in (10, 50, 90):
    _case(f"trunc{pct}_mp4", 0, "{y}_{s:06d}.mp4", "bad_or_short")
    _case(f"trunc{pct}_flac", 0, "{y}_{s:06d}.flac", "bad_or_short")
_case("flac_named_wav", 0, "{y}_{s:06d}.wav", "ok")
_case("mp4_named_mkv", 0, "{y}_{s:06d}.mkv", "ok")
_case("text_as_mp4", 0, "{y}_{s:06d}.mp4", "bad")
_case("video_no_audio", 0, "{y}_{s:06d}.mp4", "video_only")
_case("audio_only_mp4", 0, "{y}_{s:06d}.mp4", "audio_only")
_case("sr48k", 0, "{y}_{s:06d}.flac", "ok")
_case("six_channels", 0, "{y}_{s:06d}.flac", "ok")
_case("vfr_video", 0, "{y}_{s:06d}.mp4", "video_only")
_case("past_end", 0, "{y}_{s:06d}.flac", "short")
# whole-file naming: cut [30, 40) of a 12-s file (longer than the segment + 0.5 s, so it is read as the whole
# video; a file of 10.5 s or less named by id alone is the segment itself, see avsets.media.sources.clip_or_video)
_case("start_beyond_end", 30, "{y}.flac", "bad")
_case("no_file", 0, None, "missing")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    media, meta = root / "media", root / "meta"
    media.mkdir()
    meta.mkdir()
    good_flac, good_mp4 = str(root / "good.flac"), str(root / "good.mp4")
    write_audio(good_flac, seconds=SEG, sr=SR)
    write_video(good_mp4, seconds=SEG, fps=5, size=(32, 24), sr=SR)
    for name, (_, _, fname, _) in CASES.items():
        if fname is None:
            continue
        path = str(media / fname)
        if name in ("good_flac", "flac_named_wav"):
            shutil.copy(good_flac, path)
        elif name in ("good_mp4", "mp4_named_mkv"):
            shutil.copy(good_mp4, path)
        elif name == "zero_byte":
            open(path, "wb").close()
        elif name.startswith("trunc"):
            _truncate(good_mp4 if name.endswith("mp4") else good_flac, path, int(name[5:7]) / 100)
        elif name == "text_as_mp4":
            with open(path, "w") as f:
                f.write("<html>This video is unavailable</html>\n")
        elif name == "video_no_audio":
            write_video(path, seconds=SEG, fps=5, size=(32, 24), audio=False)
        elif name == "audio_only_mp4":
            _audio_only_mp4(path, SEG)
        elif name == "sr48k":
            write_audio(path, seconds=SEG, sr=48000)
        elif name == "six_channels":
            write_audio(path, seconds=SEG, sr=SR, channels=6)
        elif name == "vfr_video":
            _vfr_mp4(path)
        elif name == "past_end":
            write_audio(path, seconds=4.0, sr=SR)
        elif name == "start_beyond_end":
            write_audio(path, seconds=12.0, sr=SR)
    with open(meta / "vggsound.csv", "w", newline="") as f:
        for ytid, start, _, _ in CASES.values():
            f.write(f"{ytid},{int(start)},{LABEL},train\r\n")
    with open(meta / "stat.csv", "w") as f:
        f.write(f"{LABEL},1,animals\n")
    return str(meta), str(media), root


def _id(name: str) -> str:
    ytid, start, _, _ = CASES[name]
    return f"{ytid}_{int(start * 1000)}_{int((start + SEG) * 1000)}"


# ------------------------------------------------------------------------------------------ decoders directly
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[2] is not None])
def test_decoders_return_arrays_or_media_error_naming_the_clip(matrix, name):
    _, media, _ = matrix
    _, start, fname, expect = CASES[name]
    path = os.path.join(media, fname)
    offset = start if fname.count("_") == 0 else 0.0
    for fn, kw in ((decode_audio, {"mono": False}), (decode_audio, {"sampling_rate": 16000}), (decode_video, {})):
        try:
            out = fn(path, offset=offset, duration=SEG, clip_id=name, **kw)
        except MediaError as exc:
            assert exc.clip_id == name and exc.path == path and name in str(exc)
            continue
        if fn is decode_audio:
            array, sr = out
            assert array.dtype == np.float32 and np.isfinite(array).all()
            n = array.shape[-1]
            assert n <= round(SEG * sr)
            if expect == "ok":
                assert n == round(SEG * sr), (name, n, sr)
        else:
            assert out.frames.dtype == np.uint8 and out.frames.ndim == 4 and out.frames.shape[-1] == 3
            assert np.all(np.diff(out.timestamps) > 0) and out.timestamps[0] >= 0 and out.timestamps[-1] < SEG


def test_unusual_but_valid_files_decode_exactly(matrix):
    _, media, _ = matrix
    p = lambda n: os.path.join(media, CASES[n][2])  # noqa: E731
    a, sr = decode_audio(p("sr48k"), duration=SEG)
    assert sr == 48000 and a.shape == (480000,)
    a, sr = decode_audio(p("sr48k"), duration=SEG, sampling_rate=SR)
    assert sr == SR and a.shape == (80000,)
    six, sr = decode_audio(p("six_channels"), duration=SEG, mono=False)
    assert six.shape == (6, 80000)
    np.testing.assert_allclose(six[0], tone(SEG, SR)[:, 0], atol=1e-4)
    mixed, _ = decode_audio(p("six_channels"), duration=SEG)
    np.testing.assert_allclose(mixed, six.mean(axis=0), atol=1e-6)
    six16, sr = decode_audio(p("six_channels"), duration=SEG, mono=False, sampling_rate=16000)
    assert sr == 16000 and six16.shape == (6, 160000)
    wav, _ = decode_audio(p("flac_named_wav"), duration=SEG)
    ref, _ = sf.read(p("good_flac"), dtype="float32")
    np.testing.assert_array_equal(wav, ref)
    # variable frame rate: every frame, in order, at its own timestamp
    clip = decode_video(p("vfr_video"), duration=SEG)
    gaps = np.round(np.diff(clip.timestamps), 3)
    assert len(clip.frames) == 20 + len(range(21, 100, 3)) and set(gaps) == {0.1, 0.2, 0.3}
    sub = decode_video(p("vfr_video"), offset=3.0, duration=2.0)
    assert sub.timestamps[0] >= 0 and sub.timestamps[-1] < 2.0
    sampled = decode_video(p("vfr_video"), duration=SEG, fps=2)
    assert len(sampled.frames) == 20
    # a segment running past the end of the file: what there is, never more
    short, _ = decode_audio(p("past_end"), duration=SEG)
    assert short.shape == (4 * SR,)


# ------------------------------------------------------------------------------------------ through load_dataset
def _messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, MediaWarning)]


@pytest.mark.parametrize("on_missing", ["keep", "skip"])
def test_map_style_each_case_decodes_or_warns_naming_the_clip(matrix, tmp_path, on_missing):
    meta, media, _ = matrix
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, on_missing=on_missing,
                             cache_dir=str(tmp_path))
    by_id = {}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for i in range(len(ds)):
            row = ds[i]
            by_id[row["id"]] = row
    messages = _messages(record)
    for name, (_, _, _, expect) in CASES.items():
        cid = _id(name)
        if expect == "missing":
            assert (cid in by_id) == (on_missing == "keep"), name
            if cid in by_id:
                assert by_id[cid]["audio"] is None and by_id[cid]["video"] is None
            continue
        row = by_id[cid]  # a row never vanishes on access
        audio, video = row["audio"], row["video"]
        if expect in ("ok", "short"):
            assert audio is not None and audio["array"].size > 0, name
        if expect == "ok":
            assert audio["array"].shape[-1] == round(SEG * audio["sampling_rate"]), name
        if expect == "video_only":
            assert video is not None and video["frames"].shape[0] > 0 and audio is None, name
        if expect == "audio_only":
            assert audio is not None and video is None, name
        failed = [col for col in ("audio", "video") if row[col] is None and _resolved(name, col)]
        for col in failed:
            assert any(cid in m and col in m for m in messages), (name, col, messages)
        if expect == "bad":
            assert audio is None and video is None, name


def _resolved(name: str, col: str) -> bool:
    fname = CASES[name][2]
    ext = fname.rsplit(".", 1)[-1] if fname else ""
    return ext in ("mp4", "mkv") or (col == "audio" and ext in ("flac", "wav"))


def test_on_missing_error_raises_naming_the_clip(matrix, tmp_path):
    meta, media, _ = matrix
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, on_missing="keep",
                             cache_dir=str(tmp_path))
    strict = avsets.decode(ds.with_format(None), on_error="error")
    ids = ds["id"]
    with pytest.raises(MediaError) as info:
        strict[ids.index(_id("text_as_mp4"))]
    assert info.value.clip_id == _id("text_as_mp4")
    with pytest.raises(avsets.MissingMediaError, match=CASES["no_file"][0]):
        avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, on_missing="error",
                            cache_dir=str(tmp_path / "e"))


def test_streaming_training_loop_over_good_and_bad_clips_never_stops(matrix):
    """skip: bad clips are dropped with a warning naming them and counted; every good clip arrives, decoded."""
    meta, media, _ = matrix
    from avsets.build.transform import DECODE_STATS

    DECODE_STATS.reset()
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, streaming=True,
                             on_missing="skip", rows_per_shard=4)
    seen, steps = [], 0
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _epoch in range(2):
            for row in ds:
                steps += 1  # a "training step" touches the decoded arrays
                arrays = [row[c]["array"] if c == "audio" else row[c]["frames"] for c in ("audio", "video") if row[c]]
                assert arrays and all(a.size for a in arrays)
                seen.append(row["id"])
    messages = _messages(record)
    expected = {_id(n) for n, c in CASES.items() if c[3] in ("ok", "short", "video_only", "audio_only")}
    assert expected <= set(seen)
    for name in ("text_as_mp4", "start_beyond_end"):
        assert _id(name) not in seen and any(_id(name) in m for m in messages)
    # dropped: every row a training loop did not get, per epoch: bad media and (issue 19) rows without media
    assert DECODE_STATS.counts["dropped"] == 2 * (len(set(CASES)) - len(set(seen)))


def test_audio_only_file_when_only_video_is_asked_goes_through_on_missing(matrix, tmp_path):
    """``modalities=("video",)``: a FLAC cannot serve video, so the row has no media at prepare time."""
    meta, media, _ = matrix
    kept = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, modalities=("video",),
                               on_missing="keep", cache_dir=str(tmp_path), decode=False)
    rows = {r["id"]: r for r in kept}
    assert rows[_id("good_flac")]["video"] is None and rows[_id("good_flac")]["audio"] is None
    assert rows[_id("good_mp4")]["video"] is not None and rows[_id("good_mp4")]["audio"] is None
    skipped = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, modalities=("video",),
                                  on_missing="skip", cache_dir=str(tmp_path / "s"), decode=False)
    assert _id("good_flac") not in set(skipped["id"]) and _id("good_mp4") in set(skipped["id"])


def test_streaming_on_missing_error_raises_naming_the_clip(matrix):
    meta, media, _ = matrix
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, streaming=True,
                             on_missing="keep", decode=False)
    strict = avsets.decode(ds, on_error="error")
    with pytest.raises(MediaError) as info:
        for _ in strict:
            pass
    assert info.value.clip_id in {_id(n) for n, c in CASES.items() if c[3] not in ("ok", "missing")}


# ------------------------------------------------------------------------------------------ fuzzed bytes
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DEEP = int(os.environ.get("AVSETS_FUZZ_EXAMPLES", "0"))
_SOURCES: dict[str, bytes] = {}


def _source(kind: str) -> bytes:
    """A small good file of each kind, made once per process."""
    if kind not in _SOURCES:
        import tempfile

        folder = tempfile.mkdtemp(prefix="avsets-fuzz-media-")
        path = os.path.join(folder, f"x.{kind}")
        if kind == "mp4":
            write_video(path, seconds=1.0, fps=5, size=(32, 24), sr=SR)
        else:
            write_audio(path, seconds=1.0, sr=SR)
        _SOURCES[kind] = open(path, "rb").read()
    return _SOURCES[kind]


@st.composite
def damaged_media(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["mp4", "flac", "wav", "ogg"]))
    data = bytearray(_source(kind))
    for _ in range(draw(st.integers(1, 6))):  # flip bytes, overwrite runs, cut
        how = draw(st.sampled_from(["flip", "run", "cut", "dup"]))
        i = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif how == "run":
            data[i:i + draw(st.integers(1, 64))] = bytes([draw(st.integers(0, 255))]) * 8
        elif how == "cut":
            data = data[:i] if draw(st.booleans()) else data[i:]
        else:
            data = data[:i] + data[i:i + 512] + data[i:]
        if not data:
            data = bytearray(b"\x00")
    name = draw(st.sampled_from([f"clip.{kind}", "clip.mp4", "clip.flac", None]))
    return name, bytes(data)


@settings(max_examples=_DEEP or 60, deadline=None, derandomize=not _DEEP, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(media=st.one_of(damaged_media(), st.tuples(st.sampled_from(["a.mp4", "a.flac", None]), st.binary(min_size=1,
                                                                                                     max_size=300))),
       offset=st.sampled_from([0.0, 0.3, 5.0]), duration=st.sampled_from([None, 0.5, 10.0]),
       video_kw=st.sampled_from([{}, {"num_frames": 3}, {"fps": 2.0}, {"size": 16}, {"size": (8, 8), "fps": 30.0}]),
       audio_kw=st.sampled_from([{"mono": False}, {}, {"sampling_rate": 16000}, {"sampling_rate": 11025, "mono": False}]))
def test_damaged_bytes_decode_or_raise_media_error(media, offset, duration, video_kw, audio_kw):
    """Bit flips, overwritten runs, cuts and duplicated blocks in real FLAC/WAV/OGG/mp4 files, and random bytes:
    the decoders return arrays or raise MediaError naming the clip - nothing else, and never hang."""
    name, data = media
    for fn, kw in ((decode_audio, audio_kw), (decode_video, video_kw)):
        try:
            out = fn(name, data, offset=offset, duration=duration, clip_id="fuzz", **kw)
        except MediaError as exc:
            assert exc.clip_id == "fuzz"
            continue
        if fn is decode_audio:
            assert out[0].dtype == np.float32 and out[0].ndim == (1 if kw.get("mono", True) else 2) and out[1] > 0
        else:
            assert out.frames.dtype == np.uint8 and len(out.frames) == len(out.timestamps)


@pytest.mark.parametrize("kw", [{"sampling_rate": 0}, {"sampling_rate": -5}, {"sampling_rate": 10**9},
                                {"sampling_rate": float("nan")}, {"fps": 0}, {"fps": -1}, {"fps": 1e9},
                                {"num_frames": -3}, {"size": 0}, {"size": (0, 0)}, {"size": -4}, {"on_error": "ignore"}])
def test_meaningless_decode_options_fail_before_the_first_clip(matrix, kw):
    """Found here: ``sampling_rate=-5`` raised OverflowError at the first clip, ``sampling_rate=10**9`` a
    MemoryError, and ``fps=1e9`` tried to allocate gigabytes - in the middle of a training loop.  Now a
    ValueError when the decode step is attached."""
    meta, media, _ = matrix
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, streaming=True,
                             decode=False)
    with pytest.raises(ValueError):
        avsets.decode(ds, **kw)
    if "on_error" not in kw:
        fn = decode_audio if "sampling_rate" in kw else decode_video
        with pytest.raises(ValueError):
            fn(os.path.join(media, CASES["good_mp4"][2]), **kw)


def test_whole_number_float_sampling_rate_still_works(matrix):
    _, media, _ = matrix
    a, sr = decode_audio(os.path.join(media, CASES["good_flac"][2]), sampling_rate=16000.0)
    assert sr == 16000 and a.shape == (160000,)


@pytest.mark.parametrize("name", ["clip.wav", "clip.mp4", None])
def test_wav_with_unknown_format_tag_is_a_media_error(tmp_path, name):
    """Regression (found by the damaged-bytes fuzzer): a WAV whose format tag is 0 gives PyAV an audio stream
    without a codec context, and ``stream.codec_context.sample_rate`` raised AttributeError past the decoder's
    error handling, stopping the training loop."""
    path = tmp_path / "a.wav"
    write_audio(path, seconds=1.0, sr=SR)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"RIFF" and data[12:16] == b"fmt "
    data[20:22] = b"\x00\x00"  # WAVE_FORMAT_UNKNOWN
    with pytest.raises(MediaError) as info:
        decode_audio(name, bytes(data), clip_id="c1")
    assert info.value.clip_id == "c1"


@pytest.mark.slow
@pytest.mark.parametrize("channels", [3, 8, 9, 16, 64])
def test_many_channels_resample_without_crashing(tmp_path, channels):
    """Found here: resampling 8 or 16 channels raised IndexError, 9 ValueError ("Invalid layout: 9c"), and
    more crashed the Python process with a segfault (PyAV's "<n>c" layouts).  Run in a subprocess, so a
    crash fails this test instead of the whole suite."""
    import subprocess
    import sys

    path = tmp_path / f"c{channels}.wav"
    write_audio(path, seconds=0.5, sr=SR, channels=channels)
    code = ("import sys, numpy as np; from avsets.media.decoding import decode_audio\n"
            "a, sr = decode_audio(sys.argv[1], sampling_rate=16000, mono=False)\n"
            "m, _ = decode_audio(sys.argv[1], sampling_rate=16000)\n"
            "assert a.shape == (int(sys.argv[2]), 8000) and sr == 16000 and np.allclose(m, a.mean(0), atol=1e-6)\n"
            "print('ok')")
    p = subprocess.run([sys.executable, "-c", code, str(path), str(channels)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.returncode, p.stderr[-1500:])
