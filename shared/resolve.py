"""Attach media to a table of rows: the ``audio`` / ``video`` storage structs and ``media_offset``.

This is the per-shard step every corpus shares.  It works on Arrow tables and plain Python lists (one dict
lookup per row and candidate), never on the file system: the :class:`MediaIndex` scan already answered
every existence question.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from .errors import MissingMediaError, UnsafePathError
from .media_index import MediaFile, MediaIndex, pattern_is_trimmed, render_template, template_values
from .paths import safe_relpath
from .segments import clip_key, to_ms

logger = logging.getLogger(__name__)

MEDIA_STRUCT = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
CANDIDATES_COLUMN = "_media_paths"  # optional list<string> of corpus-specific relative paths
TRIMMED_COLUMN = "_media_trimmed"  # optional bool: the corpus says its candidate files are trimmed clips


@dataclass
class ResolveOptions:
    """What the user asked for: which modalities, which template, what to do with missing media."""

    modalities: Sequence[str] = ("audio", "video")
    media_pattern: str | None = None
    on_missing: str = "skip"
    label_names: dict[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class ResolveStats:
    """Counts for one shard or split, added up by the builder and reported to the user."""

    rows: int = 0
    found: int = 0
    missing: int = 0
    empty: int = 0
    unsafe: int = 0
    missing_ids: list[str] = field(default_factory=list)

    def add(self, other: ResolveStats) -> None:
        self.rows += other.rows
        self.found += other.found
        self.missing += other.missing
        self.empty += other.empty
        self.unsafe += other.unsafe
        room = 1000 - len(self.missing_ids)
        if room > 0:
            self.missing_ids.extend(other.missing_ids[:room])


def ensure_ids(table: pa.Table) -> pa.Table:
    """Add the stable ``id`` column (``{youtube_id}_{start_ms}_{end_ms}``) where the corpus gave none."""
    if "id" in table.column_names:
        return table
    ytids = table.column("youtube_id").to_pylist()
    starts = table.column("start").to_pylist()
    ends = table.column("end").to_pylist()
    ids = [
        (clip_key(y, s, e) if s is not None and e is not None else y)
        for y, s, e in zip(ytids, starts, ends, strict=True)
    ]
    return table.add_column(0, "id", pa.array(ids, pa.string()))


def attach_media(table: pa.Table, index: MediaIndex | None, opts: ResolveOptions) -> tuple[pa.Table, ResolveStats]:
    """Resolve every row, add ``audio``/``video``/``media_offset``, and apply ``on_missing``.

    Without an index (no ``media_dir``) rows stay metadata-only and nothing is dropped.
    """
    n = table.num_rows
    stats = ResolveStats(rows=n)
    if index is None:
        table = _set_media(table, [None] * n, [None] * n, [None] * n)
        return _drop_private(table), stats

    want_audio = "audio" in opts.modalities
    want_video = "video" in opts.modalities
    cols = table.column_names
    ytids = table.column("youtube_id").to_pylist() if "youtube_id" in cols else [None] * n
    starts = table.column("start").to_pylist() if "start" in cols else [None] * n
    ends = table.column("end").to_pylist() if "end" in cols else [None] * n
    candidates = table.column(CANDIDATES_COLUMN).to_pylist() if CANDIDATES_COLUMN in cols else None
    trimmed_flags = table.column(TRIMMED_COLUMN).to_pylist() if TRIMMED_COLUMN in cols else None
    ids = table.column("id").to_pylist() if "id" in cols else None
    pattern = opts.media_pattern
    pattern_trimmed = pattern_is_trimmed(pattern) if pattern else False
    pattern_rows = table.select([c for c in cols if not c.startswith("_")]).to_pylist() if pattern else None

    files = index.files
    audio_out: list[dict | None] = [None] * n
    video_out: list[dict | None] = [None] * n
    offsets: list[float | None] = [None] * n
    keep = [True] * n

    for i in range(n):
        ytid, start, end = ytids[i], starts[i], ends[i]
        # (key, offset) candidates, most specific first
        keys: list[tuple[str, float]] = []
        if pattern_rows is not None:
            try:
                rel = safe_relpath(render_template(pattern, template_values(pattern_rows[i], opts.label_names)),
                                   what="media_pattern result")
                keys.append(("r:" + rel, 0.0 if pattern_trimmed or start is None else float(start)))
            except (KeyError, ValueError, UnsafePathError):
                pass
        if candidates is not None and candidates[i]:
            trimmed = True if trimmed_flags is None else bool(trimmed_flags[i])
            for rel in candidates[i]:
                keys.append(("r:" + rel, 0.0 if trimmed or start is None else float(start)))
        if ytid is not None:
            if start is not None and end is not None:
                keys.append((f"ms:{ytid}_{to_ms(start)}_{to_ms(end)}", 0.0))
                if float(start).is_integer():
                    keys.append((f"s:{ytid}_{int(start)}", 0.0))
            keys.append(("w:" + ytid, 0.0 if start is None else float(start)))

        audio: tuple[MediaFile, float] | None = None
        video: tuple[MediaFile, float] | None = None
        for key, off in keys:
            slot = files.get(key)
            if not slot:
                continue
            if audio is None and "audio" in slot:
                audio = (slot["audio"], off)
            if video is None and "video" in slot:
                video = (slot["video"], off)
            if audio is not None and video is not None:
                break
        if not want_video:
            video_choice = None
        else:
            video_choice = video
        if want_audio:
            if audio is None or (want_video and video is not None and audio[1] != video[1]):
                # A video file serves audio too; one file per row keeps media_offset unambiguous.
                audio = video if video is not None else audio
        else:
            audio = None
        # Empty files are the one corruption that costs nothing to detect (DESIGN: "corrupt media").
        if audio is not None and audio[0].size == 0:
            audio = None
            stats.empty += 1
        if video_choice is not None and video_choice[0].size == 0:
            video_choice = None
            stats.empty += 0 if audio is None and want_audio else 1
        if audio is None and video_choice is None:
            stats.missing += 1
            if len(stats.missing_ids) < 1000:
                stats.missing_ids.append(ids[i] if ids is not None else str(ytid))
            if opts.on_missing == "skip":
                keep[i] = False
            continue
        stats.found += 1
        if audio is not None:
            audio_out[i] = {"bytes": None, "path": audio[0].path}
            offsets[i] = audio[1]
        if video_choice is not None:
            video_out[i] = {"bytes": None, "path": video_choice[0].path}
            offsets[i] = video_choice[1]

    if stats.missing and opts.on_missing == "error":
        shown = ", ".join(stats.missing_ids[:5])
        raise MissingMediaError(
            f"{stats.missing} of {n} rows have no media under {list(index.roots)} (first: {shown}). "
            "Fetch them with `avsets fetch`, or pass on_missing='skip' (drop) / 'keep' (None media)."
        )
    table = _set_media(table, audio_out, video_out, offsets)
    if not all(keep):
        table = table.filter(pa.array(keep, pa.bool_()))
    return _drop_private(table), stats


def _set_media(table: pa.Table, audio: list, video: list, offsets: list) -> pa.Table:
    for name, values, typ in (("audio", audio, MEDIA_STRUCT), ("video", video, MEDIA_STRUCT),
                              ("media_offset", offsets, pa.float64())):
        arr = pa.array(values, typ)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


def _drop_private(table: pa.Table) -> pa.Table:
    private = [c for c in table.column_names if c.startswith("_")]
    return table.drop_columns(private) if private else table


def summarize(stats: ResolveStats) -> Counter:
    """Stats as a Counter, for logs and the ``verify`` table."""
    return Counter(rows=stats.rows, found=stats.found, missing=stats.missing, empty=stats.empty)
