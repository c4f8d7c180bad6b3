"""Decode exactly ``[offset, offset + duration)`` of a media file with soundfile or PyAV, no torch.

soundfile (libsndfile) reads WAV/FLAC/OGG sample-exactly and faster than any FFmpeg wrapper; PyAV takes
everything else (AAC/MP3/Opus in mp4/webm/mkv and all video).  Two measured traps are handled here:
AAC priming (a seek to 0 drops the priming packet, so we never seek when the pre-roll would reach 0) and
MP3 via libsndfile (not sample-aligned, so MP3 goes through PyAV).
"""

from __future__ import annotations

import bisect
import io
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import soundfile as sf
from av.video.reformatter import VideoReformatter

from .errors import AvsetsError, MediaError, MissingStreamError

# What a damaged file can make a decoder raise; AttributeError/TypeError included because a damaged header
# can leave PyAV with a stream that has no codec context (found by fuzzing real files with flipped bytes).
_DECODE_ERRORS = (OSError, av.FFmpegError, ValueError, RuntimeError, IndexError, AttributeError, TypeError,
                  ZeroDivisionError, OverflowError)
SOUNDFILE_EXTENSIONS = frozenset({"wav", "flac", "ogg"})
AUDIO_PREROLL_S = 0.2  # MDCT codecs need a little signal before the cut to decode its first samples right
_EPS = 1e-6


@dataclass
class VideoClip:
    """Frames of one segment: ``frames`` (T, H, W, 3) uint8, ``timestamps`` seconds from the segment start."""

    frames: np.ndarray
    timestamps: np.ndarray
    fps: float


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
    # -- media sources (issue 11): an archive member locator is read through avsets.sources ----------
    from .sources.locator import is_member

    if is_member(path):
        from .sources.access import open_media

        return open_media(path)
    # -- end media sources ----------------------------------------------------------------------------
    if "://" in path and not path.startswith("file://"):
        import fsspec

        with fsspec.open(path, "rb") as f:
            return io.BytesIO(f.read())
    if path.startswith("file://"):
        path = path[len("file://"):]
    return path


# ---------------------------------------------------------------------------------------------------- audio


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


def decode_audio(
    path: str | None = None,
    data: bytes | None = None,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    sampling_rate: int | None = None,
    mono: bool = True,
    clip_id: str | None = None,
) -> tuple[np.ndarray, int]:
    """Return ``(float32 array, sampling rate)``: ``(samples,)`` mono or ``(channels, samples)``.

    Raises :class:`MediaError` naming the clip for an empty, corrupt or too-short file, never a raw
    decoder exception.
    """
    check_decode_options(sampling_rate=sampling_rate)
    if data is not None and len(data) == 0:
        raise MediaError("media is empty (0 bytes)", clip_id=clip_id, path=path)
    ext = _ext_of(path)
    try:
        if ext in SOUNDFILE_EXTENSIONS:
            try:
                array, sr = _audio_soundfile(open_source(path, data), offset, duration)
            except sf.LibsndfileError:
                array, sr = _audio_pyav(open_source(path, data), offset, duration)
        else:
            array, sr = _audio_pyav(open_source(path, data), offset, duration)
    except MediaError as exc:
        raise type(exc)(exc.reason, clip_id=clip_id, path=path) from None
    except _DECODE_ERRORS + (sf.LibsndfileError,) as exc:
        raise MediaError(f"cannot decode audio: {type(exc).__name__}: {exc}", clip_id=clip_id, path=path) from exc
    if array.shape[1] == 0 and offset <= 0:
        raise MediaError("no decodable audio samples (corrupt file or empty stream)", clip_id=clip_id, path=path)
    if array.shape[1] == 0:
        raise MediaError(f"no audio samples in [{offset:.3f}, {offset + (duration or 0):.3f}) s "
                         "(the segment starts after the end of the file?)", clip_id=clip_id, path=path)
    if sampling_rate is not None and int(sampling_rate) != sr:
        array = resample(array, sr, int(sampling_rate))
        sr = int(sampling_rate)
    if mono:
        if array.shape[0] == 2:  # the same values as mean(axis=0), without its reduction machinery
            out = np.add(array[0], array[1])
            out *= 0.5
            return out, sr
        return (array.mean(axis=0) if array.shape[0] > 1 else array[0]).astype(np.float32, copy=False), sr
    return np.ascontiguousarray(array, dtype=np.float32), sr


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``, with a millionth of a sample of slack for float noise.

    Why not ``round()``: Python rounds halves to even, FFmpeg (``av_rescale``) rounds them up; a millisecond
    start at 44.1 kHz often lands on an exact half sample (``0.005 * 44100 = 220.5``), which would put our cut
    one sample off FFmpeg's.
    """
    return math.floor(x + 0.5 + 1e-6)


def _audio_soundfile(src: Any, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(src) as f:
        sr = f.samplerate
        start = round_half_up(offset * sr)
        if start > f.frames:
            raise MediaError(f"segment starts at {offset:.3f} s, after the end of the file ({f.frames / sr:.3f} s)")
        f.seek(start)
        frames = -1 if duration is None else round_half_up(duration * sr)
        data = f.read(frames=frames, dtype="float32", always_2d=True)
    return data.T, sr


_SAMPLE_SCALE = {"s16": 32768.0, "s16p": 32768.0, "s32": 2147483648.0, "s32p": 2147483648.0}


def _frame_array(frame: av.AudioFrame) -> np.ndarray:
    """An AudioFrame as float32 (channels, samples) whatever its sample format."""
    arr = frame.to_ndarray()
    fmt = frame.format.name
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    if fmt in _SAMPLE_SCALE:
        arr = arr.astype(np.float32) / _SAMPLE_SCALE[fmt]
    elif fmt.startswith("u8"):
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    return arr.astype(np.float32, copy=False)


# Seconds decoded from the stream start to anchor a coarse-timestamp stream before a seek: each frame pins
# sample 0 to within the timestamp resolution; a few dozen frames with varied sub-millisecond phases pin it
# to well under a sample (measured on a real Vorbis WebM: 24 frames left 0.4 samples of error, 100 none).
HEAD_SECONDS = 2.5


def _place(times: list[float], sizes: list[int], sr: int, res: float) -> list[int]:
    """The sample position of each decoded frame, relative to the first one.

    The timestamp rules (DESIGN "Timestamps"): a frame whose timestamp lies within the container's
    timestamp resolution ``res`` of where the previous samples end is continuous (Matroska rounds to 1 ms,
    so every frame would otherwise look like a tiny gap); so is a frame whose jump the next frame contradicts
    (Vorbis in WebM carries single frames ~10 ms late at block-size switches, then returns to the old
    timeline). A jump the next frame confirms is real: a gap is padded, an overlap trimmed, so that a
    sample's index stays its time.
    """
    pos = [0] * len(times)
    if not times:
        return pos
    base = times[0]
    slack = res + 0.5 / sr
    cur = 0  # where the next frame starts when continuous
    for j in range(len(times)):
        if j:
            expect = base + cur / sr
            jump = times[j] - expect
            if abs(jump) > slack:
                here = times[j] + sizes[j] / sr
                nxt = times[j + 1] if j + 1 < len(times) else None
                contradicted = nxt is not None and abs(nxt - (expect + sizes[j] / sr)) <= slack \
                    and abs(nxt - here) > slack
                if not contradicted:
                    cur = max(0, cur + round_half_up(jump * sr))
        pos[j] = cur
        cur += sizes[j]
    return pos


def _anchor(times: list[float], pos: list[int], sr: int, res: float) -> float:
    """The exact time of sample 0 of a run of placed frames, from timestamps rounded to ``res``.

    Each frame says ``t - pos / sr`` to within ``res / 2``; frames whose claim disagrees with the median by
    more than ``res`` (late Vorbis frames) are ignored, and the middle of the others' range is the estimate.
    Estimated the same way at the file start and after a seek, a muxer's rounding bias cancels out.
    """
    claims = sorted(t - p / sr for t, p in zip(times, pos, strict=True))
    mid = claims[len(claims) // 2]
    good = [c for c in claims if abs(c - mid) <= res]
    return (good[0] + good[-1]) / 2.0


_PLANE_DTYPES = {"flt": np.float32, "s16": np.int16, "s32": np.int32, "u8": np.uint8, "dbl": np.float64}


class _SampleBuffer:
    """Decoded samples written straight from each frame's planes into one growing float32 array.

    Why: ``AudioFrame.to_ndarray()`` stacks planes with ``np.vstack`` per frame, and a list of per-frame
    arrays is concatenated again at the end; for a 10-s AAC file (430 frames) that overhead cost as much as
    the decoding itself. Same values as :func:`_frame_array` (the integer scales are powers of two).
    """

    def __init__(self, hint: int) -> None:
        self.buf: np.ndarray | None = None
        self.size = 0
        self.hint = max(hint, 1)

    float_rows = False  # planar float32 samples: each plane is one of our rows as it is

    def grow(self, n: int) -> None:
        """Room for ``n`` more samples: double the capacity (amortised: a few copies per decode)."""
        assert self.buf is not None
        ch, cap = self.buf.shape
        grown = np.empty((ch, max(2 * cap, self.size + n)), np.float32)
        grown[:, : self.size] = self.buf[:, : self.size]
        self.buf = grown

    def add(self, frame: av.AudioFrame) -> int:
        n = frame.samples
        planes = frame.planes
        if self.buf is None:
            fmt = frame.format
            self.ch = len(frame.layout.channels)
            self.planar = fmt.is_planar
            self.nplanes = len(planes)
            self.fmt = fmt.name
            self.dtype = _PLANE_DTYPES.get(self.fmt[:-1] if self.planar else self.fmt)
            self.buf = np.empty((self.ch, max(self.hint, n)), np.float32)
            self.float_rows = self.dtype is np.float32 and self.planar  # planes = channels: checked per frame
        elif len(planes) != self.nplanes:  # (a decoder fixes its sample format; AAC may change channels)
            raise MediaError(f"the channel count changes mid-stream ({self.ch} -> {len(frame.layout.channels)})")
        elif not self.planar and len(frame.layout.channels) != self.ch:
            raise MediaError(f"the channel count changes mid-stream ({self.ch} -> {len(frame.layout.channels)})")
        ch = self.ch
        if self.size + n > self.buf.shape[1]:
            self.grow(n)
        dtype = self.dtype
        if dtype is np.float32 and (self.planar or ch == 1):
            # float planes are our rows already: one slice copy each
            for c in range(ch):
                self.buf[c, self.size:self.size + n] = np.frombuffer(planes[c], np.float32, n)
            self.size += n
            return n
        dst = self.buf[:, self.size:self.size + n]
        if dtype is None:
            dst[...] = _frame_array(frame)
        elif self.planar:
            for c in range(ch):
                dst[c] = np.frombuffer(planes[c], dtype, count=n)
        else:
            dst[...] = np.frombuffer(planes[0], dtype, count=n * ch).reshape(n, ch).T
        if dtype is np.int16 or dtype is np.int32:
            dst *= 1.0 / _SAMPLE_SCALE["s16" if dtype is np.int16 else "s32"]
        elif dtype is np.uint8:
            dst -= 128.0
            dst /= 128.0
        self.size += n
        return n

    def array(self) -> np.ndarray:
        """The samples as a C-contiguous ``(channels, samples)`` array, compacted inside the buffer.

        Rows are moved down over the unused capacity instead of copied out: no second buffer to fault in.
        """
        if self.buf is None:
            return np.zeros((1, 0), np.float32)
        ch, cap = self.buf.shape
        n = self.size
        if n == cap or ch == 1:
            return self.buf[:, :n]
        flat = self.buf.reshape(-1)
        for c in range(1, ch):
            np.copyto(flat[c * n:(c + 1) * n], flat[c * cap:c * cap + n])
        return flat[: ch * n].reshape(ch, n)


def _decode_frames(container: Any, stream: Any, stop: float, span: float | None = None, hint_s: float = 12.0
                   ) -> tuple[list[float], list[int], np.ndarray, int]:
    """Decode from where the container stands until ``stop`` seconds (and at least ``span`` seconds):
    (frame start times, frame sizes, all samples back to back, sample rate)."""
    times: list[float] = []
    sizes: list[int] = []
    sr = 0
    tb: float | None = None  # as a float once: Fraction arithmetic per frame cost ~10% of an AAC cut
    next_t = 0.0
    rate = stream.codec_context.sample_rate or stream.rate or 48000
    samples = _SampleBuffer(int(min(hint_s, 600.0) * rate) + 8192)
    frames = container.decode(stream)
    for frame in frames:
        if tb is None and frame.time_base is not None:
            tb = float(frame.time_base)
        t0 = frame.pts * tb if frame.pts is not None and tb is not None else next_t
        if frame.samples == 0:
            continue
        if not sr:
            sr = frame.sample_rate or rate
        elif frame.sample_rate and frame.sample_rate != sr:
            raise MediaError(f"the sample rate changes mid-stream ({sr} -> {frame.sample_rate} Hz)")
        n = samples.add(frame)
        times.append(t0)
        sizes.append(n)
        next_t = t0 + n / sr
        if next_t >= stop and (span is None or next_t - times[0] >= span):
            return times, sizes, samples.array(), sr
        if samples.float_rows and tb is not None:
            next_t = _decode_float_rows(frames, samples, times, sizes, tb, sr, next_t, stop, span)
            break
    return times, sizes, samples.array(), sr or rate


def _decode_float_rows(frames: Any, samples: _SampleBuffer, times: list[float], sizes: list[int], tb: float,
                       sr: int, next_t: float, stop: float, span: float | None) -> float:
    """The rest of :func:`_decode_frames` for float samples one row per plane (AAC, Opus, Vorbis, MP3 decode to
    planar float): the same steps with everything the loop touches in locals and one slice copy per plane.

    Why: per-frame Python was a quarter of a whole 10-s AAC decode (430 frames): attribute lookups and a
    method call per frame cost more than the copies.  Each plane is copied by a ``memoryview`` slice
    assignment: as cheap as the ``cffi`` memmove it replaced (470 AAC frames, 2 planes: 0.87 vs 0.85 ms,
    a NumPy ``frombuffer`` + slice copy 1.26 ms), without the dependency.
    """
    add_time, add_size = times.append, sizes.append
    ch, nplanes = samples.ch, samples.nplanes
    buf = samples.buf
    assert buf is not None
    cap, flat, size = buf.shape[1], memoryview(buf).cast("B"), samples.size
    first = times[0]
    for frame in frames:
        n = frame.samples
        if n == 0:
            continue
        pts = frame.pts
        t0 = pts * tb if pts is not None else next_t
        rate = frame.sample_rate
        if rate and rate != sr:
            samples.size = size
            raise MediaError(f"the sample rate changes mid-stream ({sr} -> {rate} Hz)")
        planes = frame.planes
        if len(planes) != nplanes:
            samples.size = size
            raise MediaError(f"the channel count changes mid-stream ({ch} -> {len(frame.layout.channels)})")
        if size + n > cap:
            samples.size = size
            samples.grow(n)
            buf = samples.buf
            cap, flat = buf.shape[1], memoryview(buf).cast("B")
        at, nbytes = 4 * size, 4 * n
        for c in range(ch):
            o = at + 4 * c * cap
            flat[o:o + nbytes] = memoryview(planes[c])[:nbytes]
        size += n
        add_time(t0)
        add_size(n)
        next_t = t0 + n / sr
        if next_t >= stop and (span is None or next_t - first >= span):
            break
    samples.size = size
    return next_t


def _contiguous(pos: list[int], sizes: list[int]) -> bool:
    at = 0
    for p, n in zip(pos, sizes, strict=True):
        if p != at:
            return False
        at += n
    return True


def _audio_clock(stream: Any) -> tuple[int, float, bool, float]:
    """``(sample rate, time base, timestamps coarser than a sample?, timestamp resolution)`` of a stream."""
    sr = stream.codec_context.sample_rate or stream.rate
    tb = float(stream.time_base) if stream.time_base else 1.0 / sr
    coarse = tb * sr > 1.0 + 1e-9  # Matroska/WebM: 1 ms
    return sr, tb, coarse, (tb if coarse else 1.0 / sr)


_COARSE_EXTENSIONS = frozenset({"webm", "mkv", "mka", "flv", "avi"})
_FINE_EXTENSIONS = frozenset({"mp4", "m4a", "mov", "ogg", "opus", "wav", "flac", "mp3"})


def _coarse_container(src: Any) -> bool:
    """Whether a file may have timestamps coarser than a sample (then :func:`_audio_head` must look).

    Decided from the name where it is known (an extra open of a long mp4 cost a third of a 10-s AAC cut);
    unnamed bytes are probed.
    """
    if isinstance(src, str):
        ext = _ext_of(src)
        if ext in _COARSE_EXTENSIONS:
            return True
        if ext in _FINE_EXTENSIONS:
            return False
    return True


def _rewind(src: Any) -> None:
    if hasattr(src, "seek"):
        src.seek(0)


def _audio_head(src: Any, offset: float) -> tuple[float, list[int], float, bool] | None:
    """For a coarse-timestamp stream: its first timestamp, first frame sizes, anchor, and whether the head
    already reaches the cut's pre-roll. None for fine timestamps (exact in samples: nothing to anchor).

    A separate open: seeking back to the start does not replay what a fresh decode does (Matroska Opus
    skips its codec delay only on a fresh start).
    """
    try:
        with av.open(src, metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            sr, _, coarse, res = _audio_clock(stream)
            if not coarse:
                return None
            times, sizes, _, sr = _decode_frames(container, stream, -math.inf, HEAD_SECONDS, HEAD_SECONDS)
    finally:
        _rewind(src)
    if not times:
        return None
    pos = _place(times, sizes, sr, res)
    reaches = times[-1] + sizes[-1] / sr >= offset - max(AUDIO_PREROLL_S, HEAD_SECONDS / 2)
    return times[0], sizes, _anchor(times, pos, sr, res), reaches


def _audio_pyav(src: Any, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Cut ``[offset, offset + duration)`` so that it equals the same samples of a full decode.

    Sample ``round_half_up((t - first) * sr)`` of the full decode is time ``t`` (``first``: the stream's first
    decoded timestamp); a stream that starts after ``offset`` is padded with silence in front, and a segment
    that runs past the end of the stream ends where the stream ends (shorter, never padded at the end).
    After a seek, where the decoded frames sit in the full decode is anchored on the stream's first frames
    (:func:`_anchor`) when the container's timestamps are coarser than a sample (Matroska: 1 ms).
    """
    head: tuple[float, list[int], float] | None = None  # the stream's first timestamp, frame sizes, anchor
    seek = offset - AUDIO_PREROLL_S > 0
    if seek and _coarse_container(src):
        head = _audio_head(src, offset)
        if head is not None and head[3]:
            seek = False  # the cut lies within the head: one decode from the start (no seek) is cheaper
    with av.open(src, metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise MissingStreamError("file has no audio stream")
        stream = container.streams.audio[0]
        sr, tb, coarse, res = _audio_clock(stream)
        end = math.inf if duration is None else offset + duration
        if seek:
            # coarse timestamps: decode HEAD_SECONDS around the cut as well, to anchor it as precisely
            preroll = max(AUDIO_PREROLL_S, HEAD_SECONDS / 2) if coarse else AUDIO_PREROLL_S
            container.seek(int((offset - preroll) / tb), stream=stream, backward=True)
            start_t = offset - preroll
        else:
            start_t = 0.0
        whole = container.duration / 1e6 if container.duration else 12.0
        hint = (min(end, whole) if duration is not None else whole) - start_t + 0.1
        times, sizes, raw, sr = _decode_frames(container, stream, end + 0.05,
                                               HEAD_SECONDS if coarse and seek else None, hint)
    if not times:
        return np.zeros((1, 0), np.float32), sr
    pos = _place(times, sizes, sr, res)
    # where the first decoded sample sits in the full decode, and that decode's first timestamp
    # (fine timestamps are exact in samples, so there the first decoded frame's own time places it)
    first, g = times[0], 0
    if head is not None and seek and coarse:
        first = head[0]
        g = round_half_up((_anchor(times, pos, sr, res) - head[2]) * sr)
        # Constant-size frames (Opus, AAC) all share one sub-millisecond phase, so every timestamp after the
        # first is rounded the same way and the anchors cannot see the bias; but then the cut lies a whole
        # number of frames after the head's second frame, and the estimate is far closer than half a frame.
        # (The first frame after a seek may be the tail of one: Matroska Opus skips its codec delay again.)
        step = head[1][1] if len(head[1]) > 1 else 0
        j0 = 1 if len(sizes) > 1 and sizes[0] != step else 0
        if step and step / sr > 4 * res and all(n == step for n in head[1][1:]) \
                and all(n == step for n in sizes[j0:-1]):
            ref = head[1][0]
            g = ref + step * round_half_up((g + pos[j0] - ref) / step) - pos[j0]
    total = pos[-1] + sizes[-1]
    if total == raw.shape[1] and pos[-1] == raw.shape[1] - sizes[-1] and _contiguous(pos, sizes):
        data = raw  # no gap, no overlap: the samples as decoded
    else:
        data = np.zeros((raw.shape[0], total), np.float32)
        at = 0
        for p, n in zip(pos, sizes, strict=True):
            data[:, p:p + n] = raw[:, at:at + n]  # later frames win where an overlap was trimmed
            at += n
    a_idx = round_half_up((offset - first) * sr) - g  # index of ``offset`` in ``data``
    if a_idx >= data.shape[1]:
        raise MediaError(f"segment starts at {offset:.3f} s, after the end of the audio stream")
    n = None if duration is None else round_half_up(duration * sr)
    if a_idx < 0:  # the stream starts after the segment does: silence in front
        pad = np.zeros((data.shape[0], -a_idx), np.float32)
        data = np.concatenate([pad, data], axis=1)
        a_idx = 0
    return data[:, a_idx:] if n is None else data[:, a_idx:a_idx + n], sr


def resample(array: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(channels, samples)`` float32 with FFmpeg's swresample (through PyAV; no extra dependency)."""
    channels = array.shape[0]
    if channels > 2:
        # One mono pass per channel (swresample filters channels independently, so the result is the same):
        # PyAV's "<n>c" layouts are wrong-sized for 8 and 16 channels, invalid for 9, and crashed the process
        # (segfault) beyond - a damaged or exotic file must not take the training loop down with it.
        return np.stack([resample(array[c:c + 1], orig_sr, target_sr)[0] for c in range(channels)])
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=target_sr)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = orig_sr
    frame.pts = 0
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    data = np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.float32)
    expected = round_half_up(array.shape[1] * target_sr / orig_sr)
    if data.shape[1] < expected:
        data = np.pad(data, ((0, 0), (0, expected - data.shape[1])))
    return data[:, :expected].astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------- video


# Frame threads pay off only on big frames decoded densely: below this many pixels per frame one thread
# decodes a clip for less CPU time (measured at 720p H.264: 607 vs 738 ms CPU for all 300 frames, 260 vs
# 403 ms for 8 frames), which is what a data loader spends.
THREADED_MIN_PIXELS = 1920 * 1080
# The largest frames array decode_video returns; a request beyond it is refused before anything is decoded.
MAX_VIDEO_BYTES = 2 * 1024**3


def _in_dataloader_worker() -> bool:
    """True inside a torch DataLoader worker; torch is never imported for this (only asked when loaded)."""
    data = sys.modules.get("torch.utils.data")
    info = getattr(data, "get_worker_info", None) if data is not None else None
    return info is not None and info() is not None


def _set_threads(stream: Any, sparse: bool = False) -> int:
    """One decoder thread inside a DataLoader worker, for frames below ``THREADED_MIN_PIXELS`` and for sparse
    sampling (which skips frames packet by packet); FFmpeg frame threads otherwise. Returns the thread count
    chosen (0: FFmpeg's automatic count). Call before the first decode (the codec opens then).

    Why: DataLoader workers already use every core, and each worker's FFmpeg threads on top oversubscribe
    them (measured here, 360p H.264 on 2 cores: 2 workers gave 1.33x the clips/s of 0 workers with frame
    threads in each worker); and at 360p one thread costs less CPU time per clip than frame threads.
    """
    ctx = stream.codec_context
    if sparse or _in_dataloader_worker() or (ctx.width or 0) * (ctx.height or 0) < THREADED_MIN_PIXELS:
        ctx.thread_count = 1
        return 1
    stream.thread_type = "AUTO"
    return 0


class _FrameWriter:
    """Picked frames into one preallocated ``(T, H, W, 3)`` array: one swscale pass per frame (RGB and size
    together) through one single-threaded conversion context per clip, then one copy into the output.

    Why: PyAV's ``VideoFrame.reformat()`` builds a new conversion context per frame, each with its own thread
    pool (0.28 vs 0.09 ms per 360p frame), and holding converted frames to stack them at the end costs a
    second copy into cold memory (~21% of an all-frames decode at 720p).
    """

    def __init__(self, slots: dict[int, list[int]], count: int, size: int | Sequence[int] | None) -> None:
        self.slots = slots  # frame pts -> output rows
        self.count = count
        self.size = size
        self.out: np.ndarray | None = None
        self.target: tuple[int, int] = (0, 0)
        self.reformatter = VideoReformatter()
        self.seen: set[int] = set()

    def take(self, frame: av.VideoFrame) -> bool:
        """Convert ``frame`` if it is picked; True once every picked frame has been written."""
        rows = self.slots.get(frame.pts)
        if rows is not None and frame.pts not in self.seen:
            if self.out is None:
                self.target = _target_size(frame.width, frame.height, self.size) or (frame.width, frame.height)
                w, h = self.target
                _check_budget(self.count, w, h)
                self.out = _frames_array(self.count, h, w)
            w, h = self.target
            rgb = self.reformatter.reformat(frame, width=w, height=h, format="rgb24", threads=1)
            plane = rgb.planes[0]
            pixels = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, : w * 3].reshape(h, w, 3)
            for row in rows:
                self.out[row] = pixels
            self.seen.add(frame.pts)
        return len(self.seen) == len(self.slots)


def _frames_array(count: int, height: int, width: int) -> np.ndarray:
    """An uninitialised ``(count, height, width, 3)`` uint8 array.

    NumPy's own allocation: a hand-made mapping pre-faulted on transparent huge pages was measured no faster
    by its best run (all frames of a 10-s 720p clip: 265-280 vs 257-343 ms) and much slower by the median
    (system time 778-1,043 ms on repeated calls, ~400 huge-page faults each), so it was dropped.
    """
    return np.empty((count, height, width, 3), np.uint8)


def _check_budget(count: int, width: int, height: int) -> None:
    need = count * width * height * 3
    if need > MAX_VIDEO_BYTES:
        raise MediaError(f"{count} frames of {width}x{height} need a {need / 1e9:.1f} GB array (more than the "
                         f"{MAX_VIDEO_BYTES / 1e9:.1f} GB avsets.decoding.MAX_VIDEO_BYTES allows): ask for fewer "
                         "frames (num_frames=, fps=) or a smaller size=, or raise MAX_VIDEO_BYTES")


def _target_size(width: int, height: int, size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as ``(width, height)``: an int scales the shorter side, a pair is ``(height, width)``."""
    if size is None:
        return None
    if isinstance(size, int):
        scale = size / min(width, height)
        return max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    h, w = size
    return int(w), int(h)


def decode_video(
    path: str | None = None,
    data: bytes | None = None,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    num_frames: int | None = None,
    fps: float | None = None,
    size: int | Sequence[int] | None = None,
    clip_id: str | None = None,
) -> VideoClip:
    """Frames whose timestamps lie in ``[offset, offset + duration)``, seeking to the keyframe before.

    Only the frames that are returned are converted to RGB (the conversion dominates decode time).
    """
    check_decode_options(num_frames=num_frames, fps=fps, size=size)
    if data is not None and len(data) == 0:
        raise MediaError("media is empty (0 bytes)", clip_id=clip_id, path=path)
    try:
        return _video_pyav(open_source(path, data), offset, duration, num_frames, fps, size)
    except MediaError as exc:
        raise type(exc)(exc.reason, clip_id=clip_id, path=path) from None
    except _DECODE_ERRORS as exc:
        raise MediaError(f"cannot decode video: {type(exc).__name__}: {exc}", clip_id=clip_id, path=path) from exc


def _video_pyav(src: Any, offset: float, duration: float | None, num_frames: int | None, fps: float | None,
                size: int | Sequence[int] | None) -> VideoClip:
    """Demux first, then decode only up to the last picked frame, converting only picked frames.

    Why packets first: which frames ``num_frames=`` / ``fps=`` pick depends on how many frames lie in the
    segment, which a decode-as-you-go loop only knows at the end, so it must hold every decoded frame until
    then (measured: holding 250 decoded 360p frames doubles the CPU cost of a 10-s segment). Packet
    timestamps give the same count before any decoding, for the price of a demux. Files whose packets
    lack timestamps, or whose decoded frames do not carry their packet's timestamp, take the plain path.
    """
    if not hasattr(src, "read"):
        plan = _video_packets_first(src, offset, duration, num_frames, fps, size)
        if plan is not None:
            return plan
    elif hasattr(src, "seek"):
        pos = src.tell()
        plan = _video_packets_first(src, offset, duration, num_frames, fps, size)
        if plan is not None:
            return plan
        src.seek(pos)
    return _video_pyav_decode_all(src, offset, duration, num_frames, fps, size)


_REORDER_SLACK = 16  # packets read past the end when a container gives no dts (B-frame reordering depth)


def _video_packets_first(src: Any, offset: float, duration: float | None, num_frames: int | None,
                         fps: float | None, size: int | Sequence[int] | None) -> VideoClip | None:
    """The fast path of :func:`_video_pyav`; ``None`` when this file needs the plain decode-all path."""
    with av.open(src, metadata_errors="ignore") as container:
        if not container.streams.video:
            raise MissingStreamError("file has no video stream")
        stream = container.streams.video[0]
        tb = stream.time_base
        if tb is None:
            return None
        end = math.inf if duration is None else offset + duration
        lo, hi = offset - _EPS, end - _EPS
        if offset > 0:
            container.seek(int(offset / tb), stream=stream, backward=True, any_frame=False)
        packets: list[av.Packet] = []
        in_range: list[int] = []
        slack = -1
        tbf = float(tb)  # float, not Fraction, arithmetic per packet
        for pkt in container.demux(stream):
            if pkt.pts is None:
                if pkt.size == 0:
                    continue  # the demuxer's end-of-stream marker
                return None
            key = pkt.dts if pkt.dts is not None else pkt.pts
            if slack < 0 and key * tbf >= hi:
                if pkt.dts is not None:
                    break  # dts only grows and pts >= dts: no later packet shows a frame before the end
                slack = _REORDER_SLACK
            if slack >= 0:
                if slack == 0:
                    break
                slack -= 1
            packets.append(pkt)
            t = pkt.pts * tbf
            if lo <= t < hi:
                in_range.append(pkt.pts)
        native_fps = float(stream.average_rate) if stream.average_rate else 0.0
        if not in_range:
            return None  # let the plain path decide (it names the empty segment)
        in_range.sort()
        if len(set(in_range)) != len(in_range):
            return None
        times = [float(p * tb) - offset for p in in_range]  # exact, as the decode-all path computes them
        picks = _pick_frames(times, duration, num_frames, fps)
        out_fps = _out_fps(native_fps, times, duration, num_frames, fps)
        if not picks:
            return VideoClip(frames=np.zeros((0, stream.height, stream.width, 3), np.uint8),
                             timestamps=np.zeros(0, np.float64), fps=out_fps)
        ctx = stream.codec_context
        target = _target_size(ctx.width, ctx.height, size) or (ctx.width, ctx.height)
        _check_budget(len(picks), *target)  # before anything is decoded or allocated
        slots: dict[int, list[int]] = {}
        for row, i in enumerate(picks):
            slots.setdefault(in_range[i], []).append(row)
        writer = _FrameWriter(slots, len(picks), size)
        sparse = len(slots) < len(in_range)
        threads = _set_threads(stream, sparse)
        try:
            done = _decode_picked(ctx, packets, slots, writer, sparse=sparse, single=threads == 1)
        except _PlainPath:
            return None
        if not done or writer.out is None:
            return None  # a frame that never came out (corrupt packet, odd timestamps): the plain path decides
        return VideoClip(frames=writer.out, timestamps=np.asarray([times[i] for i in picks], np.float64),
                         fps=out_fps)


def _decode_picked(ctx: Any, packets: list[av.Packet], slots: dict[int, list[int]], writer: _FrameWriter, *,
                   sparse: bool, single: bool) -> bool:
    """Decode only what the picked frames need; True when every picked frame was written.

    Two savings when few frames are picked (measured on 360p H.264, 8 of 250 frames: 97 frames decoded
    instead of 250): non-reference frames that no picked frame is are skipped (``skip_frame="NONREF"``:
    nothing refers to them, so the picked frames are bit-identical; single-threaded only, where the setting
    applies packet by packet), and where a keyframe lies between the last fed packet and the next picked
    frame the decoder is drained, flushed and restarted there instead of decoding everything in between
    (not for a picked frame shown before that keyframe: in an open GOP it may refer to frames before it).
    """
    wanted_at = sorted({i for i, pkt in enumerate(packets) if pkt.pts in slots})
    keys = [i for i, pkt in enumerate(packets) if pkt.is_keyframe]

    def feed(pkt: av.Packet | None) -> bool:
        for frame in ctx.decode(pkt):
            if frame.pts is None:
                raise _PlainPath
            if writer.take(frame):
                return True
        return False

    cur = 0
    try:
        for w in wanted_at:
            if w < cur:
                continue
            if sparse:
                j = bisect.bisect_right(keys, w) - 1
                k = keys[j] if j >= 0 else -1
                if k > cur and packets[w].pts >= packets[k].pts:
                    if feed(None):
                        return True
                    ctx.flush_buffers()
                    cur = k
            for i in range(cur, w + 1):
                pkt = packets[i]
                if sparse and single:
                    ctx.skip_frame = "DEFAULT" if (pkt.pts in slots or pkt.is_keyframe) else "NONREF"
                if feed(pkt):
                    return True
            cur = w + 1
        if single:
            ctx.skip_frame = "DEFAULT"
        return feed(None)  # frames the decoder still holds (B-frame reordering)
    finally:
        if single:
            ctx.skip_frame = "DEFAULT"


class _PlainPath(AvsetsError):
    """Internal: the packets-first path cannot map decoded frames to packets for this file."""


def _out_fps(native_fps: float, times: list[float], duration: float | None, num_frames: int | None,
             fps: float | None) -> float:
    if fps is not None:
        return float(fps)
    if num_frames is not None:
        span = duration if duration is not None else (times[-1] + (1.0 / native_fps if native_fps else 0))
        return num_frames / span if span else 0.0
    return native_fps


def _video_pyav_decode_all(src: Any, offset: float, duration: float | None, num_frames: int | None,
                           fps: float | None, size: int | Sequence[int] | None) -> VideoClip:
    """Decode every frame of the segment, keep them, then pick: works whatever the timestamps look like."""
    with av.open(src, metadata_errors="ignore") as container:
        if not container.streams.video:
            raise MissingStreamError("file has no video stream")
        stream = container.streams.video[0]
        _set_threads(stream)
        tb = stream.time_base
        end = math.inf if duration is None else offset + duration
        if offset > 0:
            container.seek(int(offset / tb), stream=stream, backward=True, any_frame=False)
        kept: list[av.VideoFrame] = []
        times: list[float] = []
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * tb)
            if t < offset - _EPS:
                continue
            if t >= end - _EPS:
                break
            kept.append(frame)
            times.append(t - offset)
        native_fps = float(stream.average_rate) if stream.average_rate else 0.0
        if not kept:
            raise MediaError(f"no video frames in [{offset:.3f}, {end:.3f}) s "
                             "(the segment starts after the end of the file?)")
        picks = _pick_frames(times, duration, num_frames, fps)
        out_fps = _out_fps(native_fps, times, duration, num_frames, fps)
        first = kept[0]
        w, h = _target_size(first.width, first.height, size) or (first.width, first.height)
        _check_budget(len(picks), w, h)
        frames = _frames_array(len(picks), h, w)
        reformatter = VideoReformatter()
        for row, idx in enumerate(picks):
            rgb = reformatter.reformat(kept[idx], width=w, height=h, format="rgb24", threads=1)
            plane = rgb.planes[0]
            frames[row] = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, : w * 3].reshape(h, w, 3)
        return VideoClip(frames=frames, timestamps=np.asarray([times[i] for i in picks], np.float64), fps=out_fps)


def _pick_frames(times: list[float], duration: float | None, num_frames: int | None, fps: float | None) -> list[int]:
    n = len(times)
    if num_frames is not None:
        if num_frames <= 0:
            return []
        return [int(round(x)) for x in np.linspace(0, n - 1, num_frames)]
    if fps is not None:
        span = duration if duration is not None else times[-1] + 1e-3
        targets = np.arange(int(math.ceil(span * fps - 1e-9))) / fps
        arr = np.asarray(times)
        idx = np.searchsorted(arr, targets + _EPS, side="right") - 1
        return [int(i) for i in np.clip(idx, 0, n - 1)]
    return list(range(n))


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
    except _DECODE_ERRORS + (MediaError,) as exc:
        return f"{type(exc).__name__}: {exc}"
