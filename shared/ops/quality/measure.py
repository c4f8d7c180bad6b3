"""Measure one clip in one decode: audio level, silence and clipping; still, black and cut frames; lengths.

The file is demuxed once; audio frames are converted to float and reduced to per-sample power as they
come, video frames are all decoded (the decoded length is the truth, not the header's) but only a few per
second (``Thresholds.sample_fps``) are scaled to a small grey picture (``sample_width`` px wide) by the
decoder's own reformatter and compared in NumPy. This costs less CPU than FFmpeg's freezedetect /
blackdetect / silencedetect / astats filter graph for the same flags (measured in ``docs/quality.md``).

Other per-clip passes can ride on the same decode: pass ``hooks`` (objects with ``audio(block, sr)``
and/or ``frame(grey, t)`` methods) and they see the same samples and small frames.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avsets.core.errors import AvsetsError
from avsets.core.secrets import redact_text
from avsets.core.segments import AUDIO_EXTENSIONS
from avsets.media.decoding import DECODE_ERRORS
from avsets.metadata.quality.table import QUALITY_FLAGS, empty_row
from avsets.metadata.quality.thresholds import DEFAULT_THRESHOLDS, Thresholds

#: the level reported for digital silence (log of zero): below any real recording's noise floor
FLOOR_DBFS = -120.0
#: extensions that never hold video: a clip from such a file is not flagged ``no_video``
AUDIO_ONLY_EXTENSIONS = AUDIO_EXTENSIONS | {"oga", "aac", "wma"}
WINDOW_S = 0.1  # silence windows (the "100-ms windows")
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class ClipHook(Protocol):
    """A consumer of the decoded clip (both methods optional): e.g. an audio or video fingerprint."""

    def audio(self, block: np.ndarray, sampling_rate: int) -> None: ...  # (samples, channels) float32

    def frame(self, grey: np.ndarray, t: float) -> None: ...  # (H, sample_width) uint8, t from segment start


class QualityMeasureError(AvsetsError):
    """A clip that holds no audio and no video stream (or could not be opened)."""


@dataclass
class _Audio:
    """Running audio statistics: decoded blocks are reduced every ``REDUCE_SAMPLES`` samples, so memory stays
    bounded by that (not by the clip's length) and NumPy runs on large arrays, not per 1024-sample frame."""

    sr: int = 0
    channels: int = 0
    samples: int = 0
    peak: float = 0.0
    clipped: int = 0
    power_sum: float = 0.0  # sum over samples of the mean square over channels
    windows: list[np.ndarray] = field(default_factory=list)  # mean power of each full 100-ms window
    carry: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # power of a partial window
    pending: list[np.ndarray] = field(default_factory=list)  # (channels, n) float32 blocks not reduced yet
    pending_n: int = 0

    def reduce(self, clip_level: float) -> None:
        """Fold the pending blocks into peak, clipped count, power sum and 100-ms window means."""
        if not self.pending:
            return
        x = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, axis=1)
        self.pending, self.pending_n = [], 0
        mag = np.abs(x)
        self.peak = max(self.peak, float(mag.max()))
        self.clipped += int(np.count_nonzero(mag >= clip_level))
        power = np.einsum("ij,ij->j", x, x, dtype=np.float32) / np.float32(x.shape[0])
        self.power_sum += float(power.sum(dtype=np.float64))
        if self.carry.size:
            power = np.concatenate([self.carry, power])
        win = max(1, int(round(WINDOW_S * self.sr)))
        full = power.size // win
        if full:
            self.windows.append(power[: full * win].reshape(full, win).mean(axis=1, dtype=np.float64))
        self.carry = power[full * win:]


#: pending audio samples (per channel) that trigger a reduction: ~6 s at 44.1 kHz
REDUCE_SAMPLES = 1 << 18


@dataclass
class _Video:
    frames: int = 0
    first_t: float | None = None
    last_t: float = 0.0
    last_dur: float = 0.0
    width: int | None = None
    height: int | None = None
    sampled: int = 0
    still: int = 0
    pairs: int = 0
    black: int = 0
    cuts: int = 0
    prev: np.ndarray | None = None
    next_sample: float = 0.0
    scaler: VideoReformatter = field(default_factory=VideoReformatter)
    prev_black: bool = False
    last_end: float = 0.0  # when the last picture stops being shown (from frame durations), segment-capped


def _float_block(frame: av.AudioFrame) -> np.ndarray:
    """An audio frame as (channels, samples) float32 in [-1, 1], whatever its sample format."""
    arr = frame.to_ndarray()
    fmt = frame.format
    channels = len(frame.layout.channels)
    if not fmt.is_planar:
        arr = arr.reshape(-1, channels).T
    base = fmt.name.rstrip("p")
    if base in ("flt", "dbl"):
        return arr.astype(np.float32, copy=False)
    scale = _INT_SCALE.get(base, 32768.0)
    if base == "u8":
        return (arr.astype(np.float32) - 128.0) / scale
    return arr.astype(np.float32) / np.float32(scale)


def _db(power: float) -> float:
    return max(FLOOR_DBFS, 10.0 * math.log10(power)) if power > 0 else FLOOR_DBFS


def _open(src: str | bytes | os.PathLike[str] | io.IOBase) -> Any:
    if isinstance(src, (bytes, bytearray, memoryview)):
        src = io.BytesIO(src)
    return av.open(src if not isinstance(src, os.PathLike) else os.fspath(src), mode="r")


def _seek(container: Any, offset: float) -> None:
    if offset > 0:
        container.seek(int(offset * av.time_base), backward=True, any_frame=False)


def measure_clip(
    src: str | bytes | os.PathLike[str] | io.IOBase,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    expect_video: bool | None = None,
    expect_audio: bool = True,
    hooks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Measures and flags of ``[offset, offset + duration)`` of one media file (the whole file by default).

    ``src`` is a path, bytes or a binary file object. ``expect_video``: whether a missing video stream is a
    defect (``no_video``); None decides by extension (audio-only formats expect none). Raises the decoder's
    error (or :class:`QualityMeasureError`) when the file cannot be read at all: :func:`measure_row` turns
    that into a row with ``error`` set.
    """
    end = None if duration is None else offset + duration
    container = _open(src)
    try:
        astream = container.streams.audio[0] if container.streams.audio else None
        vstream = container.streams.video[0] if container.streams.video else None
        if astream is None and vstream is None:
            raise QualityMeasureError("no audio and no video stream")
        _seek(container, offset)
        audio, video = _Audio(), _Video()
        t = thresholds
        audio_hooks = [h.audio for h in hooks if hasattr(h, "audio")]
        frame_hooks = [h.frame for h in hooks if hasattr(h, "frame")]
        streams = [s for s in (astream, vstream) if s is not None]
        done = {s.index: False for s in streams}
        for packet in container.demux(*streams):
            if done[packet.stream.index]:
                continue
            if packet.stream is astream:
                for frame in packet.decode():
                    done[astream.index] = done[astream.index] or _audio_frame(audio, frame, offset, end,
                                                                              audio_hooks, t)
            else:
                for frame in packet.decode():
                    done[vstream.index] = done[vstream.index] or _video_frame(video, frame, offset, end,
                                                                              frame_hooks, t)
            if all(done.values()):
                break
    finally:
        container.close()
    if expect_video is None:
        name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else ""
        expect_video = name.rsplit(".", 1)[-1].lower() not in AUDIO_ONLY_EXTENSIONS if "." in name else True
    return summarize(audio, video, has_audio=astream is not None and audio.samples > 0,
                     has_video=vstream is not None and video.frames > 0, segment=duration, thresholds=t,
                     expect_video=expect_video, expect_audio=expect_audio)


def _audio_frame(a: _Audio, frame: av.AudioFrame, offset: float, end: float | None, hooks: list, t: Thresholds
                 ) -> bool:
    """Add one audio frame's samples inside the segment; True once the segment's end is passed."""
    if frame.pts is None or frame.time_base is None:
        start = offset + a.samples / (frame.sample_rate or 1)
    else:
        start = float(frame.pts * frame.time_base)
    sr = frame.sample_rate
    block = _float_block(frame)
    lo = max(0, round((offset - start) * sr))
    hi = block.shape[1] if end is None else min(block.shape[1], round((end - start) * sr))
    if hi <= lo:
        return end is not None and start >= end - 1e-9
    if lo or hi < block.shape[1]:
        block = block[:, lo:hi]
    if not a.sr:
        a.sr, a.channels = sr, block.shape[0]
    a.samples += block.shape[1]
    a.pending.append(block)
    a.pending_n += block.shape[1]
    if a.pending_n >= REDUCE_SAMPLES:
        a.reduce(t.clip_level)
    for hook in hooks:
        hook(block.T, sr)
    return False


def _video_frame(v: _Video, frame: av.VideoFrame, offset: float, end: float | None, hooks: list, t: Thresholds
                 ) -> bool:
    """Count one video frame inside the segment (and measure it when sampled); True once past the end."""
    if frame.pts is None:
        return False
    ts = float(frame.pts * frame.time_base)
    if end is not None and ts >= end - 1e-6:
        return True
    if ts < offset - 1e-6:
        return False
    if v.first_t is None:
        v.first_t = ts
        v.width, v.height = frame.width, frame.height
        v.next_sample = ts
    elif ts > v.last_t:
        v.last_dur = ts - v.last_t
    v.last_t = max(v.last_t, ts)
    if frame.duration:  # how long this picture is shown (a still-image upload: one frame for the whole clip)
        shown = ts + float(frame.duration * frame.time_base)
        v.last_end = max(v.last_end, shown if end is None else min(shown, end))
    v.frames += 1
    _hold(v, ts, t)
    if ts + 1e-6 < v.next_sample:
        return False
    v.next_sample += 1.0 / t.sample_fps
    if v.next_sample <= ts:  # cannot happen after _hold; kept as a guard against a backwards timestamp
        v.next_sample = ts + 1.0 / t.sample_fps
    w = t.sample_width
    h = max(2, int(round(frame.height * w / max(1, frame.width) / 2)) * 2)
    # AREA averages every source pixel into the small picture (codec noise cancels out); swscale's default
    # bicubic cost 1.2 ms a 640x360 frame here, AREA 0.19 ms, with one reformatter kept for the clip
    grey = v.scaler.reformat(frame, width=w, height=h, format="gray", interpolation="AREA").to_ndarray()
    v.sampled += 1
    dark = np.count_nonzero(grey < t.black_luma * 255.0)
    if dark >= t.black_pixel_share * grey.size:
        v.black += 1
    if v.prev is not None:
        diff = float(np.mean(np.abs(grey.astype(np.int16) - v.prev)))
        v.pairs += 1
        if diff < t.still_threshold:
            v.still += 1
        if diff > t.scene_cut:
            v.cuts += 1
    v.prev = grey.astype(np.int16)
    v.prev_black = dark >= t.black_pixel_share * grey.size
    for hook in hooks:
        hook(grey, ts - offset)
    return False


def _hold(v: _Video, until: float, t: Thresholds) -> None:
    """Sample times that no new frame reached before ``until`` still show the previous picture: each is a
    still pair (and black when that picture was). A video of one picture held for 10 s (a frame rate far
    below ``sample_fps``) is then as still as the same picture repeated at 25 fps."""
    step = 1.0 / t.sample_fps
    # grid point g is held when no new picture arrived within a step after it (at 25 fps one always does)
    while v.prev is not None and v.next_sample + step <= until + 1e-6:
        v.sampled += 1
        v.pairs += 1
        v.still += 1
        v.black += int(v.prev_black)
        v.next_sample += step


def summarize(audio: _Audio, video: _Video, *, has_audio: bool, has_video: bool, segment: float | None,
              thresholds: Thresholds, expect_video: bool, expect_audio: bool) -> dict[str, Any]:
    """The table row (measures and flags) from what the decode collected."""
    t = thresholds
    row = empty_row()
    row.update(has_audio=has_audio, has_video=has_video)
    audio_s = video_s = None
    if has_audio:
        audio.reduce(t.clip_level)
        audio_s = audio.samples / audio.sr
        win = max(1, int(round(WINDOW_S * audio.sr)))
        means = list(audio.windows)
        if audio.carry.size and (audio.carry.size >= win // 2 or not means):
            means.append(np.array([audio.carry.mean(dtype=np.float64)]))
        sums = np.concatenate(means)
        floor = 10.0 ** (t.silence_db / 10.0)
        row.update(
            rms_dbfs=_db(audio.power_sum / audio.samples),
            peak_dbfs=_db(audio.peak * audio.peak),
            silent_fraction=float(np.count_nonzero(sums < floor) / sums.size),
            clipped_fraction=audio.clipped / (audio.samples * audio.channels),
            sample_rate=audio.sr, channels=audio.channels,
        )
    if has_video:
        video_end = max(video.last_end, video.last_t + video.last_dur)
        _hold(video, video_end, t)
        video_s = video_end - (video.first_t or 0.0)
        row.update(
            still_fraction=video.still / video.pairs if video.pairs else 0.0,
            black_fraction=video.black / video.sampled if video.sampled else 0.0,
            scene_cuts=video.cuts,
            fps=round(video.frames / video_s, 3) if video_s else None,
            width=video.width, height=video.height,
        )
    lengths = [x for x in (audio_s, video_s) if x is not None]
    row["duration_s"] = round(max(lengths), 6) if lengths else 0.0  # microseconds: no 10.000000000000002
    if audio_s is not None and video_s is not None:
        row["av_length_diff_s"] = round(audio_s - video_s, 6)
    row.update(flags(row, segment=segment, thresholds=t, expect_video=expect_video, expect_audio=expect_audio))
    return row


def flags(row: dict[str, Any], *, segment: float | None, thresholds: Thresholds, expect_video: bool,
          expect_audio: bool) -> dict[str, bool]:
    """The boolean flags of a measured row (see ``Thresholds`` for what each threshold means)."""
    t = thresholds
    expected = segment if segment else None
    duration = row["duration_s"] or 0.0
    short = duration < t.short_fraction * expected if expected else duration < t.min_duration_s
    out = {
        "silent": bool(row["has_audio"]) and (row["silent_fraction"] or 0.0) >= t.silent_fraction,
        "still": bool(row["has_video"]) and (row["still_fraction"] or 0.0) >= t.still_fraction,
        "black": bool(row["has_video"]) and (row["black_fraction"] or 0.0) >= t.black_fraction,
        "short": bool(short),
        "no_audio": expect_audio and not row["has_audio"],
        "no_video": expect_video and not row["has_video"],
        "av_mismatch": row["av_length_diff_s"] is not None and abs(row["av_length_diff_s"]) > t.av_mismatch_s,
    }
    return {name: out[name] for name in QUALITY_FLAGS}


AUDIO_COLUMNS = ("has_audio", "rms_dbfs", "peak_dbfs", "silent_fraction", "clipped_fraction", "sample_rate",
                 "channels")
VIDEO_COLUMNS = ("has_video", "still_fraction", "black_fraction", "scene_cuts", "fps", "width", "height")


def summarize_pair(audio_row: dict[str, Any], video_row: dict[str, Any], *, segment: float | None,
                   thresholds: Thresholds) -> dict[str, Any]:
    """One row from a clip whose audio and video are two files (each measured by :func:`measure_row`)."""
    errors = [r["error"] for r in (audio_row, video_row) if r.get("error")]
    if errors:
        return error_row("; ".join(errors))
    row = empty_row()
    row.update({k: audio_row[k] for k in AUDIO_COLUMNS})
    row.update({k: video_row[k] for k in VIDEO_COLUMNS})
    audio_s = audio_row["duration_s"] if audio_row["has_audio"] else None
    video_s = video_row["duration_s"] if video_row["has_video"] else None
    lengths = [x for x in (audio_s, video_s) if x is not None]
    row["duration_s"] = max(lengths) if lengths else 0.0
    if audio_s is not None and video_s is not None:
        row["av_length_diff_s"] = audio_s - video_s
    row.update(flags(row, segment=segment, thresholds=thresholds, expect_video=True, expect_audio=True))
    return row


def error_row(message: str) -> dict[str, Any]:
    """The row of a clip that could not be measured: ``error`` set, measures and flags null."""
    row = empty_row()
    row["error"] = (redact_text(message) or "")[:500]  # a signed URL in an error never lands in the table
    return row


def measure_row(src: str | bytes | os.PathLike[str] | io.IOBase, **kwargs: Any) -> dict[str, Any]:
    """:func:`measure_clip`, but a clip that cannot be decoded gives a row with ``error`` set, never a raise."""
    try:
        return measure_clip(src, **kwargs)
    except (AvsetsError, *DECODE_ERRORS) as exc:
        return error_row(f"{type(exc).__name__}: {exc}")
