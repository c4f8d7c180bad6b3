"""What the audio and video decoders share: opening a source, option checks, the errors a damaged file
raises, and the cheap readability probe.

Part of :mod:`avsets.media.decoding` (audio in :mod:`avsets.media.decoding.audio`, video in :mod:`avsets.media.decoding.video`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import Any

import av
import numpy as np
import soundfile as sf

from avsets.core.errors import MediaError

from ..sources.access import read_media_bytes
from ..sources.locator import is_member
from ..sources.ranged import is_local, local_path

# What a damaged file can make a decoder raise; AttributeError/TypeError included because a damaged header
# can leave PyAV with a stream that has no codec context (found by fuzzing real files with flipped bytes).
#: what PyAV/soundfile raise on bad media (public: the quality pass and fingerprints catch the same set)
DECODE_ERRORS = (OSError, av.FFmpegError, ValueError, RuntimeError, IndexError, AttributeError, TypeError,
                  ZeroDivisionError, OverflowError)
SOUNDFILE_EXTENSIONS = frozenset({"wav", "flac", "ogg"})
AUDIO_PREROLL_S = 0.2  # MDCT codecs need a little signal before the cut to decode its first samples right
_EPS = 1e-6


def _ext_of(path: str | None) -> str:
    if not path:
        return ""
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def open_source(path: str | None, data: bytes | None) -> Any:
    """What the decoders can open: bytes as a buffer, a local path as is, a URL through fsspec."""
    if data is not None:
        return io.BytesIO(data)
    if path is None:
        raise MediaError("no bytes and no path")
    # every media path a media source produced (a member locator, a remote file) is read through it
    if is_member(path) or not is_local(path):
        return io.BytesIO(read_media_bytes(path))
    return local_path(path)


MAX_SAMPLING_RATE = 768_000
MAX_FPS = 1000.0
MAX_NUM_FRAMES = 100_000
MAX_SIZE = 16_384


def check_decode_options(*, sampling_rate: int | None = None, num_frames: int | None = None,
                         fps: float | None = None, size: int | Sequence[int] | None = None) -> None:
    """Refuse decode options that cannot mean anything (a ``ValueError`` before the first clip, not an
    ``OverflowError`` or an out-of-memory in the middle of a training loop)."""
    if sampling_rate is not None and not (isinstance(sampling_rate, (int, float, np.number))
                                          and not isinstance(sampling_rate, bool)
                                          and float(sampling_rate).is_integer()
                                          and 1 <= sampling_rate <= MAX_SAMPLING_RATE):
        raise ValueError(f"sampling_rate must be a whole number of Hz in [1, {MAX_SAMPLING_RATE}], not {sampling_rate!r}")
    if num_frames is not None and not (isinstance(num_frames, (int, np.integer)) and 0 <= num_frames <= MAX_NUM_FRAMES):
        raise ValueError(f"num_frames must be a whole number in [0, {MAX_NUM_FRAMES}], not {num_frames!r}")
    if fps is not None and not (isinstance(fps, (int, float, np.number)) and 0 < fps <= MAX_FPS):
        raise ValueError(f"fps must be a number in (0, {MAX_FPS:g}], not {fps!r}")
    if size is not None:
        parts = [size] if isinstance(size, (int, np.integer)) else list(size)
        if len(parts) not in (1, 2) or not all(isinstance(v, (int, np.integer)) and 1 <= v <= MAX_SIZE for v in parts):
            raise ValueError(f"size must be an int (shorter side) or (height, width) in [1, {MAX_SIZE}], not {size!r}")


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``, with a millionth of a sample of slack for float noise.

    Why not ``round()``: Python rounds halves to even, FFmpeg (``av_rescale``) rounds them up; a millisecond
    start at 44.1 kHz often lands on an exact half sample (``0.005 * 44100 = 220.5``), which would put our cut
    one sample off FFmpeg's.
    """
    return math.floor(x + 0.5 + 1e-6)


def probe_media(path: str) -> str | None:
    """Open a file fully enough to trust it; return None when readable, else the reason.

    The opt-in full check (``verify_media=True`` and ``avsets verify``): costs one open and one decoded
    packet per file.
    """
    ext = _ext_of(path)
    try:
        src = open_source(path, None)
        if isinstance(src, str) and os.path.getsize(src) == 0:
            return "empty file (0 bytes)"
        if ext in SOUNDFILE_EXTENSIONS:
            try:
                info = sf.info(src)
                return None if info.frames > 0 else "no audio samples"
            except sf.LibsndfileError:
                pass
        with av.open(src, metadata_errors="ignore") as container:
            streams = [s for s in container.streams if s.type in ("audio", "video")]
            if not streams:
                return "no audio or video stream"
            for _ in container.decode(streams[0]):
                return None
            return "no decodable frame"
    except DECODE_ERRORS + (MediaError,) as exc:
        return f"{type(exc).__name__}: {exc}"
