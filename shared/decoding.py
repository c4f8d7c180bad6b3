"""Decode exactly ``[offset, offset + duration)`` of a media file with soundfile or PyAV, no torch.

soundfile (libsndfile) reads WAV/FLAC/OGG sample-exactly and faster than any FFmpeg wrapper; PyAV takes
everything else (AAC/MP3/Opus in mp4/webm/mkv and all video).  Two measured traps are handled here:
AAC priming (a seek to 0 drops the priming packet, so we never seek when the pre-roll would reach 0) and
MP3 via libsndfile (not sample-aligned, so MP3 goes through PyAV).
"""

from __future__ import annotations

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

from .errors import MediaError, MissingStreamError

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
        return (array.mean(axis=0) if array.shape[0] > 1 else array[0]).astype(np.float32, copy=False), sr
    return np.ascontiguousarray(array, dtype=np.float32), sr


def _audio_soundfile(src: Any, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(src) as f:
        sr = f.samplerate
        start = int(round(offset * sr))
        if start > f.frames:
            raise MediaError(f"segment starts at {offset:.3f} s, after the end of the file ({f.frames / sr:.3f} s)")
        f.seek(start)
        frames = -1 if duration is None else int(round(duration * sr))
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


def _audio_pyav(src: Any, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    with av.open(src, metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise MissingStreamError("file has no audio stream")
        stream = container.streams.audio[0]
        sr = stream.codec_context.sample_rate or stream.rate
        if offset - AUDIO_PREROLL_S > 0:
            container.seek(int((offset - AUDIO_PREROLL_S) / stream.time_base), stream=stream, backward=True)
        end = math.inf if duration is None else offset + duration
        chunks: list[np.ndarray] = []
        first_t: float | None = None
        next_t: float | None = None
        tb: float | None = None  # as a float once: Fraction arithmetic per frame cost ~10% of an AAC cut
        for frame in container.decode(stream):
            if tb is None and frame.time_base is not None:
                tb = float(frame.time_base)
            t0 = frame.pts * tb if frame.pts is not None and tb is not None else next_t
            if t0 is None:
                t0 = 0.0
            if first_t is None:
                first_t = t0
            elif next_t is not None and abs(t0 - next_t) > 0.5 / sr:
                # a gap or overlap in timestamps: pad or trim so that sample index stays time-exact
                expected = int(round((t0 - first_t) * sr))
                have = sum(c.shape[1] for c in chunks)
                if expected > have:
                    chunks.append(np.zeros((chunks[0].shape[0], expected - have), np.float32))
            arr = _frame_array(frame)
            chunks.append(arr)
            next_t = t0 + arr.shape[1] / sr
            if next_t >= end + 0.05:
                break
    if not chunks:
        return np.zeros((1, 0), np.float32), sr
    data = np.concatenate(chunks, axis=1)
    assert first_t is not None
    a = max(0, int(round((offset - first_t) * sr)))
    if a > data.shape[1]:
        raise MediaError(f"segment starts at {offset:.3f} s, after the end of the audio stream")
    b = data.shape[1] if duration is None else a + int(round(duration * sr))
    return data[:, a:b], sr


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
    expected = int(round(array.shape[1] * target_sr / orig_sr))
    if data.shape[1] < expected:
        data = np.pad(data, ((0, 0), (0, expected - data.shape[1])))
    return data[:, :expected].astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------- video


def _set_threads(stream: Any) -> None:
    """FFmpeg frame threads in a plain process; one thread inside a torch DataLoader worker.

    Why: DataLoader workers already use every core, and each worker's FFmpeg threads on top oversubscribe
    them (measured here, 360p H.264 on 2 cores: 2 workers gave 1.33x the clips/s of 0 workers with frame
    threads in each worker). torch is never imported for this: only asked when the user already has it.
    """
    data = sys.modules.get("torch.utils.data")
    info = getattr(data, "get_worker_info", None) if data is not None else None
    if info is not None and info() is not None:
        stream.codec_context.thread_count = 1
    else:
        stream.thread_type = "AUTO"


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
        _set_threads(stream)
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
        wanted = {in_range[i] for i in picks}
        last_wanted = max(wanted) if wanted else None
        got: dict[int, av.VideoFrame] = {}  # RGB frames, copied once into the output array at the end
        target: tuple[int, int] | None = None
        codec = stream.codec_context
        done = not wanted

        def take(frame: av.VideoFrame) -> bool:
            nonlocal target
            if frame.pts is None:
                raise _PlainPath
            if frame.pts in wanted:
                if target is None:
                    target = _target_size(frame.width, frame.height, size) or (0, 0)
                if target == (0, 0):
                    got[frame.pts] = frame.reformat(format="rgb24")
                else:
                    got[frame.pts] = frame.reformat(width=target[0], height=target[1], format="rgb24")
            return frame.pts >= last_wanted and len(got) == len(wanted)

        try:
            for pkt in packets:
                if done:
                    break
                for frame in codec.decode(pkt):
                    if take(frame):
                        done = True
                        break
            if not done:
                for frame in codec.decode(None):
                    if take(frame):
                        done = True
                        break
        except _PlainPath:
            return None
        if len(got) != len(wanted):
            return None  # a frame that never came out (corrupt packet, odd timestamps): the plain path decides
        out_fps = _out_fps(native_fps, times, duration, num_frames, fps)
        if picks:
            frames = _stack_rgb([got[in_range[i]] for i in picks])
        else:
            frames = np.zeros((0, stream.height, stream.width, 3), np.uint8)
        return VideoClip(frames=frames, timestamps=np.asarray([times[i] for i in picks], np.float64), fps=out_fps)


def _stack_rgb(frames: list[av.VideoFrame]) -> np.ndarray:
    """RGB frames as one (T, H, W, 3) array, each frame's pixels copied once.

    Why not ``np.stack(f.to_ndarray() ...)``: that copies every frame twice, and fresh pages are slow here
    (measured: stacking 22 MB of frames cost 24 ms, mostly page faults), which DataLoader workers feel most.
    """
    h, w = frames[0].height, frames[0].width
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, frame in enumerate(frames):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)
        out[i] = rows[:, : w * 3].reshape(h, w, 3)
    return out


class _PlainPath(Exception):
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
        target = _target_size(first.width, first.height, size)
        arrays = []
        for idx in picks:
            frame = kept[idx]
            if target is None:
                arrays.append(frame.to_ndarray(format="rgb24"))
            else:
                arrays.append(frame.reformat(width=target[0], height=target[1], format="rgb24").to_ndarray())
        frames = np.stack(arrays) if arrays else np.zeros((0, first.height, first.width, 3), np.uint8)
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
