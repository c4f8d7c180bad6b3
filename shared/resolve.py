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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import MissingMediaError, UnsafePathError
from .media_index import MediaIndex, pattern_is_trimmed, render_template, template_values
from .paths import safe_relpath

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


def _ms_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Seconds -> integer-millisecond text, vectorized (same rounding as :func:`to_ms`)."""
    ms = pc.round(pc.multiply(column.cast(pa.float64()), 1000.0), ndigits=0, round_mode="half_to_even")
    return ms.cast(pa.int64()).cast(pa.string())


def clip_keys(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """``{youtube_id}_{start_ms}_{end_ms}`` per row, vectorized; the bare id where a row has no segment."""
    ytid = table.column("youtube_id")
    joined = pc.binary_join_element_wise(ytid, _ms_text(table.column("start")), _ms_text(table.column("end")), "_")
    return pc.coalesce(joined, ytid)


def ensure_ids(table: pa.Table) -> pa.Table:
    """Add the stable ``id`` column (``{youtube_id}_{start_ms}_{end_ms}``) where the corpus gave none."""
    if "id" in table.column_names:
        return table
    return table.add_column(0, "id", clip_keys(table).cast(pa.string()))


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
    candidates = table.column(CANDIDATES_COLUMN).to_pylist() if CANDIDATES_COLUMN in cols else None
    trimmed_flags = table.column(TRIMMED_COLUMN).to_pylist() if TRIMMED_COLUMN in cols else None
    ids = table.column("id").to_pylist() if "id" in cols else None
    pattern = opts.media_pattern
    pattern_trimmed = pattern_is_trimmed(pattern) if pattern else False
    pattern_rows = table.select([c for c in cols if not c.startswith("_")]).to_pylist() if pattern else None

    files = index.files
    # The built-in names, as keys built column-wise: one dict lookup per row and naming, no string work.
    have_seg = "start" in cols and "end" in cols and "youtube_id" in cols
    none = [None] * n
    ms_keys = s_keys = w_keys = none
    if have_seg and "ms" in index.namings:
        ms_keys = _lookup(files, pc.binary_join_element_wise("ms:", clip_keys(table), ""))
    if have_seg and "s" in index.namings:
        start_col = table.column("start").cast(pa.float64())
        whole_s = pc.equal(pc.floor(start_col), start_col)
        start_s = start_col.cast(pa.int64(), safe=False).cast(pa.string())
        s_text = pc.binary_join_element_wise("s:", pc.binary_join_element_wise(table.column("youtube_id"),
                                                                               start_s, "_"), "")
        s_keys = _lookup(files, pc.if_else(whole_s, s_text, None))
    if "youtube_id" in cols and "w" in index.namings:
        w_keys = _lookup(files, pc.binary_join_element_wise("w:", table.column("youtube_id"), ""))
    audio_paths: list[str | None] = [None] * n
    video_paths: list[str | None] = [None] * n
    offsets: list[float | None] = [None] * n
    keep = np.ones(n, dtype=bool)
    skip_missing = opts.on_missing == "skip"
    simple = pattern_rows is None and candidates is None
    if simple:
        # Only rows that hit some name need per-row work; misses are counted column-wise.
        rows_to_visit = [i for i in range(n) if ms_keys[i] is not None or s_keys[i] is not None
                         or w_keys[i] is not None]
    else:
        rows_to_visit = range(n)
    visited = [False] * n if simple else None

    for i in rows_to_visit:
        start = starts[i]
        ms_slot, s_slot, w_slot = ms_keys[i], s_keys[i], w_keys[i]
        if simple:
            visited[i] = True
            # fast path: most rows hit exactly one built-in name
            if ms_slot is not None and s_slot is None and w_slot is None:
                slots = ((ms_slot, 0.0),)
            elif w_slot is not None and ms_slot is None and s_slot is None:
                slots = ((w_slot, 0.0 if start is None else float(start)),)
            elif s_slot is not None and ms_slot is None and w_slot is None:
                slots = ((s_slot, 0.0),)
            else:
                slots = _builtin_slots(ms_slot, s_slot, w_slot, start)
        else:
            slots = _extra_slots(index, i, start, pattern, pattern_rows, pattern_trimmed, opts, candidates,
                                 trimmed_flags) + _builtin_slots(ms_slot, s_slot, w_slot, start)
        chosen = _choose(slots, want_audio, want_video) if slots else None
        if chosen is not None and chosen[3]:
            stats.empty += 1
        if chosen is None or (chosen[0] is None and chosen[1] is None):
            _count_missing(stats, i, ids, ytids)
            if skip_missing:
                keep[i] = False
            continue
        stats.found += 1
        audio_paths[i], video_paths[i], offsets[i] = chosen[0], chosen[1], chosen[2]
    if visited is not None:
        missed = [i for i in range(n) if not visited[i]]
        stats.missing += len(missed)
        room = max(0, 1000 - len(stats.missing_ids))
        stats.missing_ids.extend((ids[i] if ids is not None else str(ytids[i])) for i in missed[:room])
        if skip_missing and missed:
            keep[np.asarray(missed)] = False

    if stats.missing and opts.on_missing == "error":
        shown = ", ".join(stats.missing_ids[:5])
        raise MissingMediaError(
            f"{stats.missing} of {n} rows have no media under {list(index.roots)} (first: {shown}). "
            "Fetch them with `avsets fetch`, or pass on_missing='skip' (drop) / 'keep' (None media)."
        )
    table = _set_media(table, audio_paths, video_paths, offsets)
    if not keep.all():
        table = table.filter(pa.array(keep))
    return _drop_private(table), stats


def _count_missing(stats: ResolveStats, i: int, ids: list | None, ytids: list) -> None:
    stats.missing += 1
    if len(stats.missing_ids) < 1000:
        stats.missing_ids.append(ids[i] if ids is not None else str(ytids[i]))


def _builtin_slots(ms_slot, s_slot, w_slot, start) -> list:
    out = []
    if ms_slot is not None:
        out.append((ms_slot, 0.0))
    if s_slot is not None:
        out.append((s_slot, 0.0))
    if w_slot is not None:
        out.append((w_slot, 0.0 if start is None else float(start)))
    return out


def _extra_slots(index, i, start, pattern, pattern_rows, pattern_trimmed, opts, candidates, trimmed_flags) -> list:
    """Slots from the user's template and the corpus' own relative paths (tried before built-in names)."""
    out = []
    if pattern_rows is not None:
        try:
            rel = safe_relpath(render_template(pattern, template_values(pattern_rows[i], opts.label_names)),
                               what="media_pattern result")
        except (KeyError, ValueError, UnsafePathError):
            rel = None
        slot = index.relpath_slot(rel) if rel else None
        if slot:
            out.append((slot, 0.0 if pattern_trimmed or start is None else float(start)))
    if candidates is not None and candidates[i]:
        trimmed = True if trimmed_flags is None else bool(trimmed_flags[i])
        for rel in candidates[i]:
            slot = index.relpath_slot(rel)
            if slot:
                out.append((slot, 0.0 if trimmed or start is None else float(start)))
    return out


def _choose(slots, want_audio: bool, want_video: bool) -> tuple[str | None, str | None, float | None, bool]:
    """``(audio path, video path, offset, saw an empty file)`` from the slots, most specific first.

    A video file serves audio too; when the first audio and the first video file disagree on the offset,
    audio comes from the video file, so one ``media_offset`` describes the row.  Empty files are the one
    corruption that costs nothing to detect (DESIGN: "corrupt media"); they count as absent.
    """
    audio = video = None
    empty = False
    for slot, off in slots:
        if audio is None:
            f = slot.get("audio")
            if f is not None:
                if f.size == 0:
                    empty = True
                else:
                    audio = (f, off)
        if video is None:
            f = slot.get("video")
            if f is not None:
                if f.size == 0:
                    empty = True
                else:
                    video = (f, off)
        if audio is not None and video is not None:
            break
    if want_audio:
        if audio is None or (want_video and video is not None and audio[1] != video[1]):
            audio = video if video is not None else audio
    else:
        audio = None
    if not want_video:
        video = None
    if audio is None and video is None:
        return None, None, None, empty
    offset = video[1] if video is not None else audio[1]
    return (audio[0].path if audio else None), (video[0].path if video else None), offset, empty


def _lookup(files: dict, keys: pa.ChunkedArray | pa.Array) -> list:
    """``files.get(key)`` for every key (None for null keys), as one list comprehension."""
    get = files.get
    return [get(k) if k is not None else None for k in keys.to_pylist()]


def _media_struct(paths: list[str | None]) -> pa.StructArray:
    path_arr = pa.array(paths, pa.string())
    return pa.StructArray.from_arrays([pa.nulls(len(paths), pa.binary()), path_arr], fields=list(MEDIA_STRUCT),
                                      mask=path_arr.is_null())


def _set_media(table: pa.Table, audio: list, video: list, offsets: list) -> pa.Table:
    for name, arr in (("audio", _media_struct(audio)), ("video", _media_struct(video)),
                      ("media_offset", pa.array(offsets, pa.float64()))):
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
