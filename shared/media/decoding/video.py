"""Decode the frames of ``[offset, offset + duration)`` of a video with PyAV: frame-exact, no torch.

Packets are read first and only the frames a request picks are decoded (``num_frames``/``fps``); a plain
decode-everything path takes files whose packets cannot be mapped to frames.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avsets.core.errors import AvsetsError, MediaError, MissingStreamError

from .common import _EPS, DECODE_ERRORS, check_decode_options, open_source


@dataclass
class VideoClip:
    """Frames of one segment: ``frames`` (T, H, W, 3) uint8, ``timestamps`` seconds from the segment start."""

    frames: np.ndarray
    timestamps: np.ndarray
    fps: float




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
                         f"{MAX_VIDEO_BYTES / 1e9:.1f} GB avsets.media.decoding.video.MAX_VIDEO_BYTES allows): ask for fewer "
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
    except DECODE_ERRORS as exc:
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
