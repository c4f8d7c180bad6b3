"""Turn one row of an avsets dataset (media as paths + offsets) into one self-contained published row.

Kept apart from the writer so that the same pure function runs in the local process pool and in Ray tasks
(it takes and returns plain dicts, which pickle cheaply).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from datasets import Audio, Features, Video

from .media import cut_audio, cut_video

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertOptions:
    """What the published media look like; everything a worker needs besides the row itself."""

    audio_columns: tuple[str, ...]
    video_columns: tuple[str, ...]  # empty unless video=True
    columns: tuple[str, ...]  # the published columns, in order (video columns dropped unless video=True)
    audio_format: str = "flac"


@dataclass
class Converted:
    """A converted row (``row`` is None when no requested media could be embedded)."""

    index: int
    row: dict | None
    nbytes: int = 0
    copied: int = 0
    encoded: int = 0
    error: str | None = None


def media_columns(features: Features) -> tuple[list[str], list[str]]:
    """Names of the Audio and Video columns, found by feature type rather than by name."""
    audio = [k for k, f in features.items() if isinstance(f, Audio)]
    video = [k for k, f in features.items() if isinstance(f, Video)]
    return audio, video


def output_features(features: Features, video: bool) -> Features:
    """The published schema: media as ``Audio()`` / ``Video()`` with decoding on (Hub users decode by default).

    The decode flag and sampling rate are persisted in the card, so a ``decode=False`` storage feature must
    not leak into the publication. Video columns are dropped unless ``video`` is set.
    """
    out = {}
    for name, feat in features.items():
        if isinstance(feat, Audio):
            out[name] = Audio()
        elif isinstance(feat, Video):
            if video:
                out[name] = Video()
        else:
            out[name] = feat
    return Features(out)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def cell_name(row: dict, index: int, ext: str) -> str:
    """The ``path`` stored next to the bytes: a readable, flat file name (AVMIT ids contain slashes)."""
    key = row.get("id")
    stem = _UNSAFE.sub("_", str(key)).strip("_") if key not in (None, "") else f"row{index:09d}"
    return f"{stem}.{ext}"


def _source(cell: dict | None) -> str | bytes | None:
    if not cell:
        return None
    if cell.get("bytes") is not None:
        return cell["bytes"]
    return cell.get("path")


def convert_row(index: int, row: dict, opts: ConvertOptions) -> Converted:
    """Cut every requested media cell of ``row`` to its segment; never raises for bad media.

    A file that fails to decode is reported (``error``) and its cell becomes None; a row left with no media
    at all is dropped by the writer and counted, as ``on_missing="skip"`` would do at load time.
    """
    start, end = row.get("start"), row.get("end")
    duration = None if start is None or end is None else float(end) - float(start)
    offset = float(row.get("media_offset") or 0.0)
    out = {k: row.get(k) for k in opts.columns}
    res = Converted(index, None)
    present = 0
    errors = []
    for col in opts.audio_columns + opts.video_columns:
        src = _source(row.get(col))
        out[col] = None
        if src is None:
            continue
        hint = row[col].get("path")
        try:
            if col in opts.audio_columns:
                cut = cut_audio(src, offset, duration, opts.audio_format, path_hint=hint)
            else:
                cut = cut_video(src, offset, duration, path_hint=hint)
        except Exception as e:  # corrupt or unreadable media: count and go on (see module doc)
            errors.append(f"{col} of row {row.get('id', index)!r} ({hint}): {type(e).__name__}: {e}")
            continue
        out[col] = {"bytes": cut.data, "path": cell_name(row, index, cut.ext)}
        res.nbytes += len(cut.data)
        res.copied += int(cut.copied)
        res.encoded += int(not cut.copied)
        present += 1
    if errors:
        res.error = "; ".join(errors)
        logger.warning("export: could not cut %s", res.error)
    if "media_offset" in out:
        out["media_offset"] = 0.0
    res.row = out if present else None
    return res


def convert_batch(items: list[tuple[int, dict | None]], opts: ConvertOptions) -> list[Converted]:
    """Batch form for process pools and Ray tasks (fewer, larger messages); a ``None`` row (taken down, see
    ``export_chunks.iter_items``) is passed through as a row without media."""
    return [Converted(i, None, error="taken down") if r is None else convert_row(i, r, opts) for i, r in items]
