"""Decode exactly ``[offset, offset + duration)`` of the audio of a media file with soundfile or PyAV.

soundfile (libsndfile) reads WAV/FLAC/OGG sample-exactly and faster than any FFmpeg wrapper; PyAV takes
everything else (AAC/MP3/Opus in mp4/webm/mkv).  Two measured traps are handled here: AAC priming (a seek
to 0 drops the priming packet, so we never seek when the pre-roll would reach 0) and MP3 via libsndfile
(not sample-aligned, so MP3 goes through PyAV).
"""

from __future__ import annotations

import math
from typing import Any

import av
import numpy as np
import soundfile as sf

from avsets.core.errors import MediaError, MissingStreamError

from .common import (
    AUDIO_PREROLL_S,
    DECODE_ERRORS,
    SOUNDFILE_EXTENSIONS,
    _ext_of,
    check_decode_options,
    open_source,
    round_half_up,
)


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
    except DECODE_ERRORS + (sf.LibsndfileError,) as exc:
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
    if not sr:  # FFmpeg probed something it calls audio with no rate: not a file we can cut by time
        raise MediaError("the audio stream declares no sample rate (not a decodable audio file)")
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
