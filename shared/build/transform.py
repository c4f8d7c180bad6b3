"""The decode step: storage ``{bytes, path}`` -> arrays, for map-style and streaming datasets alike.

Map-style gets a lazy ``with_transform`` (rows decode on access; ``ds.features`` keeps the storage types),
streaming gets a batched ``map`` so that, under ``on_missing="skip"``, a clip that fails to decode is dropped
instead of stopping the training loop.  Either way every failure is named in a warning and counted.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from avsets.core.errors import MediaError, MissingStreamError
from avsets.media.decoding import check_decode_options, decode_audio, decode_video

logger = logging.getLogger("avsets")


class MediaWarning(UserWarning):
    """A clip could not be decoded and was dropped or returned as None."""


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: DESIGN.md's defaults are native rate, mono, every frame at native size."""

    sampling_rate: int | None = None
    mono: bool = True
    num_frames: int | None = None
    fps: float | None = None
    size: int | tuple[int, int] | None = None
    on_error: str = "skip"  # "skip" | "keep" | "error" (the load's on_missing)
    columns: Sequence[str] = ("audio", "video")


class DecodeCounter:
    """Process-wide counts of decoded and failed clips, so a training loop can report them.

    ``print(avsets.DECODE_STATS)`` shows ``DecodeStats(audio_ok=318, audio_failed=2, video_ok=0,
    video_failed=0, dropped=2)``: clips whose audio/video decoded or failed (a failed column is ``None``, or
    raises under ``on_missing="error"``) and streaming rows dropped under ``"skip"``. ``as_dict()`` gives the
    same numbers, ``reset()`` zeroes them (per epoch, say). Counts are per process: each DataLoader worker
    counts its own clips.
    """

    #: the keys always shown, in this order (others, if any, follow sorted)
    KEYS = ("audio_ok", "audio_failed", "video_ok", "video_failed", "dropped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def as_dict(self) -> dict[str, int]:
        """The counts, every key of ``KEYS`` present (0 when nothing happened)."""
        with self._lock:
            counts = dict(self.counts)
        out = {k: int(counts.pop(k, 0)) for k in self.KEYS}
        out.update({k: int(counts[k]) for k in sorted(counts)})
        return out

    def __getitem__(self, key: str) -> int:
        return self.as_dict().get(key, 0)

    def __repr__(self) -> str:
        return "DecodeStats(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"


DECODE_STATS = DecodeCounter()


def _segment(row: dict[str, Any]) -> tuple[float, float | None]:
    offset = row.get("media_offset") or 0.0
    start, end = row.get("start"), row.get("end")
    duration = (end - start) if start is not None and end is not None else None
    return float(offset), duration


def decode_row(row: dict[str, Any], opts: DecodeOptions) -> tuple[dict[str, Any], bool]:
    """Decode one row's media columns; return the new row and whether it is usable.

    Usable: every present column decoded, or at least one did and the others only lack that stream (a video
    without an audio track keeps its frames; DESIGN: a row has media when one requested modality resolves).
    """
    out = dict(row)
    ok = True
    decoded = absent = 0
    offset, duration = _segment(row)
    clip_id = row.get("id")
    for col in opts.columns:
        value = row.get(col)
        if value is None or (value.get("bytes") is None and value.get("path") is None):
            continue
        try:
            if col == "audio":
                array, sr = decode_audio(value.get("path"), value.get("bytes"), offset=offset, duration=duration,
                                         sampling_rate=opts.sampling_rate, mono=opts.mono, clip_id=clip_id)
                out[col] = {"array": array, "sampling_rate": sr, "path": value.get("path")}
            else:
                clip = decode_video(value.get("path"), value.get("bytes"), offset=offset, duration=duration,
                                    num_frames=opts.num_frames, fps=opts.fps, size=opts.size, clip_id=clip_id)
                out[col] = {"frames": clip.frames, "timestamps": clip.timestamps, "fps": clip.fps,
                            "path": value.get("path")}
            DECODE_STATS.add(f"{col}_ok")
            decoded += 1
        except MediaError as exc:
            DECODE_STATS.add(f"{col}_failed")
            if opts.on_error == "error":
                raise
            warnings.warn(f"avsets: {exc} ({col} set to None)", MediaWarning, stacklevel=2)
            out[col] = None
            if isinstance(exc, MissingStreamError):
                absent += 1
            else:
                ok = False
    # one rule for map-style and streaming: a row with a column that decoded is kept (the failed column is
    # None, as map-style returns it); a row none of whose media decodes is dropped under "skip" (streaming)
    return out, decoded > 0 or (ok and absent == 0)


def _batch_rows(batch: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: batch[k][i] for k in keys} for i in range(n)]


def _rows_batch(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, list]:
    return {k: [r[k] for r in rows] for k in keys}


class _MapStyleTransform:
    """``with_transform`` callable: decode on access, failures become None (a row cannot vanish)."""

    def __init__(self, opts: DecodeOptions) -> None:
        self.opts = opts

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [decode_row(r, self.opts)[0] for r in _batch_rows(batch)]
        return _rows_batch(rows, list(batch))


class _StreamingTransform:
    """Batched ``map`` callable: under ``skip`` a row whose media fails to decode is dropped."""

    def __init__(self, opts: DecodeOptions) -> None:
        self.opts = opts

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        keep = []
        for row in _batch_rows(batch):
            new, ok = decode_row(row, self.opts)
            if ok or self.opts.on_error == "keep":
                keep.append(new)
            else:
                DECODE_STATS.add("dropped")
        return _rows_batch(keep, list(batch))


def decode(ds: Any, *, sampling_rate: int | None = None, mono: bool = True, num_frames: int | None = None,
           fps: float | None = None, size: int | tuple[int, int] | None = None, on_error: str = "skip",
           columns: Sequence[str] = ("audio", "video")) -> Any:
    """Attach avsets' decoding to a ``Dataset``, ``IterableDataset`` or their dicts.

    Use it after ``with_format(...)`` or ``cast_column`` replaced the transform, or on stock-loaded data.
    """
    check_decode_options(sampling_rate=sampling_rate, num_frames=num_frames, fps=fps, size=size)
    if on_error not in ("skip", "keep", "error"):
        raise ValueError(f"on_error must be 'skip', 'keep' or 'error', not {on_error!r}")
    opts = DecodeOptions(sampling_rate=sampling_rate, mono=mono, num_frames=num_frames, fps=fps, size=size,
                         on_error=on_error, columns=tuple(columns))
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return type(ds)({k: decode(v, sampling_rate=sampling_rate, mono=mono, num_frames=num_frames, fps=fps,
                                   size=size, on_error=on_error, columns=columns) for k, v in ds.items()})
    if isinstance(ds, datasets.IterableDataset):
        ds = _storage_only(ds)
        return ds.map(_StreamingTransform(opts), batched=True, batch_size=1)
    if isinstance(ds, datasets.Dataset):
        ds = _storage_only(ds)
        return ds.with_transform(_MapStyleTransform(opts))
    raise TypeError(f"decode() takes a datasets Dataset/IterableDataset or their dicts, not {type(ds).__name__}")


def _storage_only(ds: Any) -> Any:
    """Media columns as ``decode=False`` storage, so ``datasets`` never reaches for torchcodec."""
    feats = ds.features
    if feats is None:
        return ds
    for name, feat in feats.items():
        if isinstance(feat, (datasets.Audio, datasets.Video)) and feat.decode:
            ds = ds.cast_column(name, type(feat)(decode=False))
    return ds
