"""Segment-exact decoding: sample-exact WAV/FLAC, AAC priming, frame-exact video, options, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from avsets.core.errors import MediaError
from avsets.media.decoding import decode_audio, decode_video, probe_media
from avsets.media.synth import frame_band, tone, write_audio, write_video


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "whole.mp4"
    write_video(path, seconds=14.0, fps=25, size=(64, 48))
    return str(path)


@pytest.mark.parametrize("ext, subtype", [("wav", "PCM_16"), ("flac", "PCM_16"), ("flac", "PCM_24"), ("wav", "FLOAT")])
@pytest.mark.parametrize("offset", [0.0, 1.2345, 7.5])
def test_soundfile_cut_is_sample_exact(tmp_path, ext, subtype, offset):
    path = tmp_path / f"a.{ext}"
    write_audio(path, seconds=10.0, sr=16000, subtype=subtype)
    ref, sr = sf.read(str(path), dtype="float32")
    got, got_sr = decode_audio(str(path), offset=offset, duration=2.0)
    a = int(round(offset * sr))
    assert got_sr == sr and got.dtype == np.float32 and got.shape == (32000,)
    np.testing.assert_array_equal(got, ref[a:a + 32000])


def test_cut_from_bytes_equals_cut_from_path(tmp_path):
    path = tmp_path / "a.flac"
    write_audio(path, seconds=4.0)
    by_path, _ = decode_audio(str(path), offset=1.0, duration=1.0)
    by_bytes, _ = decode_audio("a.flac", path.read_bytes(), offset=1.0, duration=1.0)
    np.testing.assert_array_equal(by_path, by_bytes)


@pytest.mark.parametrize("offset", [0.0, 0.1, 3.37, 9.999])
def test_aac_cut_equals_full_decode(video_path, offset):
    """A cut from the whole mp4 is bit-identical to the same samples of a full decode (priming kept)."""
    full, sr = decode_audio(video_path)
    seg, _ = decode_audio(video_path, offset=offset, duration=3.0)
    a = int(round(offset * sr))
    assert seg.shape == (3 * sr,)
    np.testing.assert_array_equal(seg, full[a:a + 3 * sr])
    # and it is the tone that was encoded (AAC is lossy: correlation, not equality)
    ref = tone(3.0, sr, start=offset)[:, 0]
    assert np.corrcoef(seg, ref)[0, 1] > 0.99


@pytest.mark.parametrize("offset, duration", [(0.0, 2.0), (3.37, 2.0), (10.02, 1.0), (4.0, 10.0)])
def test_video_cut_is_frame_exact(video_path, offset, duration):
    clip = decode_video(video_path, offset=offset, duration=duration)
    fps = 25
    first = int(np.ceil(offset * fps - 1e-9))
    last = min(int(np.ceil((offset + duration) * fps - 1e-9)), 14 * fps)
    expected = list(range(first, last))
    assert [frame_band(f) for f in clip.frames] == [i % 256 for i in expected]
    np.testing.assert_allclose(clip.timestamps, np.asarray(expected) / fps - offset, atol=1e-6)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape[1:] == (48, 64, 3) and clip.fps == 25.0


def test_video_sampling_options(video_path):
    clip = decode_video(video_path, offset=2.0, duration=10.0, num_frames=8)
    assert clip.frames.shape[0] == 8 and np.all(np.diff(clip.timestamps) > 0)
    assert clip.timestamps[0] == pytest.approx(0.0) and clip.timestamps[-1] == pytest.approx(9.96)
    clip = decode_video(video_path, offset=2.0, duration=10.0, fps=2)
    assert clip.frames.shape[0] == 20 and clip.fps == 2.0
    # each sample is the frame on screen at k / 2 s: the last one with pts <= k / 2
    np.testing.assert_allclose(clip.timestamps, np.floor(np.arange(20) / 2.0 * 25 + 1e-9) / 25, atol=1e-6)
    clip = decode_video(video_path, offset=2.0, duration=1.0, size=24)
    assert clip.frames.shape[1:] == (24, 32, 3)
    clip = decode_video(video_path, offset=2.0, duration=1.0, size=(16, 20))
    assert clip.frames.shape[1:] == (16, 20, 3)


def test_audio_options(tmp_path):
    path = tmp_path / "st.flac"
    write_audio(path, seconds=3.0, sr=48000, channels=2)
    stereo, sr = decode_audio(str(path), offset=1.0, duration=1.0, mono=False)
    assert stereo.shape == (2, 48000) and sr == 48000
    mono, _ = decode_audio(str(path), offset=1.0, duration=1.0)
    np.testing.assert_allclose(mono, stereo.mean(axis=0), atol=1e-6)
    low, sr = decode_audio(str(path), offset=1.0, duration=1.0, sampling_rate=16000)
    assert low.shape == (16000,) and sr == 16000
    assert np.corrcoef(low[100:-100], tone(1.0, 16000, start=1.0)[100:-100, 0] * 0.25)[0, 1] > 0.99


@pytest.mark.parametrize("content", [b"", b"this is not media at all", b"RIFF\x00\x00\x00\x00WAVEfmt "])
@pytest.mark.parametrize("name", ["x.flac", "x.mp4", "x.wav"])
def test_corrupt_media_raises_media_error_naming_the_clip(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError) as err:
        decode_audio(str(path), offset=0.0, duration=1.0, clip_id="clip-1")
    assert "clip-1" in str(err.value)
    with pytest.raises(MediaError):
        decode_video(str(path), offset=0.0, duration=1.0, clip_id="clip-1")
    assert probe_media(str(path)) is not None


def test_truncated_video_and_start_beyond_end(tmp_path, video_path):
    data = open(video_path, "rb").read()
    cut = tmp_path / "trunc.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError):
        decode_video(str(cut), offset=0.0, duration=1.0)
    with pytest.raises(MediaError, match="after the end"):
        decode_video(video_path, offset=100.0, duration=1.0)
    with pytest.raises(MediaError, match="after the end"):
        decode_audio(video_path, offset=100.0, duration=1.0)
    flac = tmp_path / "a.flac"
    write_audio(flac, seconds=2.0)
    with pytest.raises(MediaError, match="after the end"):
        decode_audio(str(flac), offset=5.0, duration=1.0)
    short, _ = decode_audio(str(flac), offset=1.5, duration=10.0)  # runs past the end: what exists
    assert short.shape == (8000,)
    assert probe_media(video_path) is None and probe_media(str(flac)) is None


def test_audio_only_file_has_no_video(tmp_path):
    path = tmp_path / "a.flac"
    write_audio(path, seconds=1.0)
    with pytest.raises(MediaError, match="no video stream"):
        decode_video(str(path))
    silent = tmp_path / "v.mp4"
    write_video(silent, seconds=1.0, audio=False)
    with pytest.raises(MediaError, match="no audio stream"):
        decode_audio(str(silent))
