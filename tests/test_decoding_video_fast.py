"""The fast video path (issue 13) returns exactly what a bare PyAV decode returns, and refuses huge requests.

The fast path skips non-reference frames, jumps between keyframes and converts through one reused
single-threaded swscale context into a preallocated array; none of it may change a pixel. The reference
here decodes every frame from the file start with stock PyAV and converts with ``to_ndarray``.
"""

from __future__ import annotations

import fractions
import os

import av
import numpy as np
import pytest

from avsets.core.errors import MediaError
from avsets.media.decoding import decode_video
from avsets.media.synth import _paint_band

REAL = os.path.join(os.path.dirname(__file__), "data", "real")


def _encode(path: str, seconds: float, fps: int, size: tuple[int, int], gop: int, preset: str) -> None:
    """H.264 with B-frames (``preset`` medium: b-pyramid, so some B-frames are references, some not)."""
    w, h = size
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    with av.open(path, "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "crf": "23"}
        for i in range(int(seconds * fps)):
            img = np.roll(noise, i * 2, axis=1).copy()
            _paint_band(img, i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            for pkt in vs.encode(frame):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)


def _bare(path: str) -> tuple[list[float], list[av.VideoFrame]]:
    """Every frame from the start, in presentation order, with its time."""
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = [f for f in c.decode(s) if f.pts is not None]
    frames.sort(key=lambda f: f.pts)
    return [float(f.pts * f.time_base) for f in frames], frames


def _expected(path: str, offset: float, duration: float, num_frames: int | None, fps: float | None,
              size: tuple[int, int] | None):
    times, frames = _bare(path)
    idx = [i for i, t in enumerate(times) if offset - 1e-6 <= t < offset + duration - 1e-6]
    rel = [times[i] - offset for i in idx]
    n = len(idx)
    if num_frames is not None:
        picks = [int(round(x)) for x in np.linspace(0, n - 1, num_frames)]
    elif fps is not None:
        targets = np.arange(int(np.ceil(duration * fps - 1e-9))) / fps
        picks = [int(i) for i in np.clip(np.searchsorted(rel, targets + 1e-6, side="right") - 1, 0, n - 1)]
    else:
        picks = list(range(n))
    out = []
    for p in picks:
        f = frames[idx[p]]
        if size is None:
            out.append(f.to_ndarray(format="rgb24"))
        else:
            out.append(f.reformat(width=size[1], height=size[0], format="rgb24").to_ndarray())
    return np.stack(out), np.asarray([rel[p] for p in picks])


@pytest.fixture(scope="module")
def bframe_clip(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fast") / "bframes.mp4")
    _encode(path, seconds=12.0, fps=25, size=(96, 64), gop=50, preset="medium")
    with av.open(path) as c:  # the fixture must have what the fast path skips: non-reference B-frames
        types = {int(f.pict_type) for f in c.decode(video=0)}
    assert 3 in types  # AV_PICTURE_TYPE_B
    return path


@pytest.mark.parametrize("offset, duration, num_frames, fps, size", [
    (0.0, 10.0, 8, None, None),  # sparse: NONREF skipping and keyframe jumps
    (1.3, 10.0, 8, None, None),  # starts between keyframes
    (0.0, 10.0, None, None, None),  # every frame
    (2.0, 6.0, None, 3.0, None),  # fps sampling
    (0.5, 10.0, 4, None, (32, 48)),  # resized in the same swscale pass
    (0.0, 10.0, 300, None, None),  # more frames than exist: repeated, same pixels
])
@pytest.mark.slow
def test_fast_path_is_bit_exact_against_bare_pyav(bframe_clip, offset, duration, num_frames, fps, size):
    ref, ref_t = _expected(bframe_clip, offset, duration, num_frames, fps, size)
    clip = decode_video(bframe_clip, offset=offset, duration=duration, num_frames=num_frames, fps=fps, size=size)
    assert clip.frames.shape == ref.shape
    np.testing.assert_allclose(clip.timestamps, ref_t, atol=1e-6)
    np.testing.assert_array_equal(clip.frames, ref)


@pytest.mark.slow
def test_real_vp9_webm_is_bit_exact():
    path = os.path.join(REAL, "opus_vp9_late_audio.webm")
    for num_frames in (None, 5):
        ref, ref_t = _expected(path, 0.5, 3.0, num_frames, None, None)
        clip = decode_video(path, offset=0.5, duration=3.0, num_frames=num_frames)
        np.testing.assert_array_equal(clip.frames, ref)
        np.testing.assert_allclose(clip.timestamps, ref_t, atol=1e-6)


def test_num_frames_far_beyond_the_clip_is_refused_with_the_size_it_needs(bframe_clip, tmp_path):
    """Issue 12 item 8: 100,000 frames of a 10-s clip must not try to allocate the array (MemoryError);
    the error says how big it would be and what to do. Below the limit, frames repeat (uniform sampling)."""
    big = str(tmp_path / "big.mp4")
    _encode(big, seconds=2.0, fps=25, size=(640, 360), gop=25, preset="ultrafast")
    with pytest.raises(MediaError) as err:
        decode_video(big, offset=0.0, duration=2.0, num_frames=100_000, clip_id="clip-9")
    text = str(err.value)
    assert "clip-9" in text and "100000 frames of 640x360" in text and "69.1 GB" in text
    with pytest.raises(MediaError, match="GB"):
        decode_video(big, num_frames=100_000, size=(300, 300))
    # a request that fits repeats frames and stays exact
    clip = decode_video(bframe_clip, offset=0.0, duration=1.0, num_frames=60)
    assert clip.frames.shape == (60, 64, 96, 3)
