"""The fingerprint's own video decode: only what a 32x32 pHash at 4 frames a second needs.

Media is opened exactly as every avsets decode opens it (``avsets.media.decoding.open_source``: bytes, local
paths, archive-member locators and fsspec URLs alike) and cut to ``[offset, offset + duration)`` the same
way (seek to the keyframe before ``offset``, drop earlier frames).  What differs from ``decode_video`` is
what the picture does not need:

* ``skip_frame="BIDIR"``: B-frames (YouTube's H.264 has runs of up to 3) are not decoded at all; the
  frame shown at each 4-fps instant is then the last I/P frame before it, at most a few frames (~0.1 s)
  earlier, which a pHash barely sees (measured on x264 "medium" clips: 48-80 of 150 frames decoded,
  half the CPU time of decoding all);
* ``skip_loop_filter``: no deblocking (blocking artefacts vanish at 32x32);
* each picked frame goes straight from the decoder's planes to 32x32 grey (swscale's area scaler, one
  context per clip), never to full-size RGB.

``bench/bench_leakage.py`` measures what this saves against ``avsets.decode`` on H.264 with B-frames.
"""

from __future__ import annotations

import math

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avsets.core.errors import MediaError, MissingStreamError
from avsets.media.decoding import DECODE_ERRORS, open_source

from .video_fp import FPS, SIZE

_EPS = 1e-6


def _small(reformatter: VideoReformatter, frame: av.VideoFrame) -> np.ndarray:
    """32x32 float luma of a frame: swscale's area scaler straight to 8-bit grey, through one conversion
    context per clip (``reformatter``).

    Why swscale, not NumPy: with the context reused it cost 55 us a 360p frame and 140 us a 1080p frame,
    against 210 us for the NumPy cell means of the luma plane it replaced (measured on this machine; the
    fingerprint CPU row of ``bench/bench_leakage.py`` went down by the difference); PyAV's ``frame.reformat``
    would build a new context per frame (90 us).  The grey is full range (what
    ``decode_video``'s RGB then PIL's ``convert("L")`` gives, to which ``imagehash`` is compared).
    """
    g = reformatter.reformat(frame, width=SIZE, height=SIZE, format="gray", interpolation="AREA", threads=1)
    plane = g.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(SIZE, plane.line_size)[:, :SIZE].astype(np.float32)


def small_gray_frames(path: str | None, data: bytes | None, *, offset: float = 0.0, duration: float | None = None,
                      clip_id: str | None = None) -> np.ndarray:
    """``(T, 32, 32)`` float32 luma of the frames shown at ``offset + k / FPS`` for ``k / FPS < duration``.

    Raises :class:`MissingStreamError` for a file without video and :class:`MediaError` (naming the clip)
    for anything undecodable, like ``decode_video``.
    """
    try:
        return _frames(open_source(path, data), offset, duration)
    except MediaError as exc:
        raise type(exc)(exc.reason, clip_id=clip_id, path=path) from None
    except DECODE_ERRORS as exc:
        raise MediaError(f"cannot decode video: {type(exc).__name__}: {exc}", clip_id=clip_id, path=path) from exc


def _frames(src, offset: float, duration: float | None) -> np.ndarray:
    with av.open(src, metadata_errors="ignore") as container:
        if not container.streams.video:
            raise MissingStreamError("file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.skip_frame = "BIDIR"
        ctx.options = {"skip_loop_filter": "all"}
        ctx.thread_count = 1  # one thread costs the least CPU per clip (the fingerprint pass runs clips in parallel)
        tb = float(stream.time_base)  # a float once: Fraction arithmetic per frame is measurable at 4 fps
        span = math.inf if duration is None else duration
        n_targets = math.inf if duration is None else int(math.ceil(duration * FPS - 1e-9))
        if offset > 0:
            container.seek(int(offset / tb), stream=stream, backward=True, any_frame=False)
        reformatter = VideoReformatter()
        out: list[np.ndarray] = []
        prev = None
        prev_small: np.ndarray | None = None
        k = 0
        for frame in container.decode(stream):
            pts = frame.pts
            if pts is None:
                continue
            t = pts * tb - offset
            if t < -_EPS:
                prev = frame  # the frame on screen at the segment start, if none is decoded at it
                prev_small = None
                continue
            if t >= span - _EPS:
                break
            while k < n_targets and k / FPS + _EPS < t:  # target k lies before this frame: it shows prev
                src_frame = prev if prev is not None else frame
                if prev_small is None or prev is None:
                    prev_small = _small(reformatter, src_frame)
                out.append(prev_small)
                k += 1
            prev, prev_small = frame, None
        if prev is not None:  # targets up to the end of the last frame's display (not past the file's end)
            last_t = prev.pts * tb - offset
            shown = prev.duration * tb if prev.duration else 1.0 / float(stream.average_rate or FPS)
            last = _small(reformatter, prev)
            while k < n_targets and k / FPS < min(span, last_t + shown) - _EPS:
                out.append(last)
                k += 1
        if not out:
            raise MediaError(f"no video frames at or after {offset:.3f} s (the segment starts after the end "
                             "of the file?)")
        return np.stack(out)
