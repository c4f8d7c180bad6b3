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

from avsets.core.errors import MissingMediaError, UnsafePathError
from avsets.core.paths import safe_relpath

from .media_index import MediaIndex, pattern_is_trimmed, render_template, template_values
from .sources.clip_or_video import segment_offset
from .sources.keys import NAMING_RULES, clip_keys, row_keys

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
    corrupt: int = 0
    unsafe: int = 0
    missing_ids: list[str] = field(default_factory=list)

    def add(self, other: ResolveStats) -> None:
        self.rows += other.rows
        self.found += other.found
        self.missing += other.missing
        self.empty += other.empty
        self.corrupt += other.corrupt
        self.unsafe += other.unsafe
        room = 1000 - len(self.missing_ids)
        if room > 0:
            self.missing_ids.extend(other.missing_ids[:room])


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
    pattern = opts.media_pattern
    extra = pattern is not None or CANDIDATES_COLUMN in cols
    # Built-in names as key columns, looked up in C++ (``index_in``): per-row Python work is paid only by
    # rows that hit a name, and by every row when a template or corpus paths need per-row text.
    hits = _builtin_hits(table, index)
    if extra:
        visit = np.arange(n)
    elif hits:
        any_hit = np.zeros(n, dtype=bool)
        for _, pos in hits:
            any_hit |= pos >= 0
        visit = np.flatnonzero(any_hit)
    else:
        visit = np.zeros(0, dtype=np.int64)
    starts = table.column("start").to_numpy(zero_copy_only=False) if "start" in cols else np.full(n, np.nan)
    ends = table.column("end").to_numpy(zero_copy_only=False) if "end" in cols else np.full(n, np.nan)
    pattern_rows = table.select([c for c in cols if not c.startswith("_")]).to_pylist() if pattern else None
    candidates = table.column(CANDIDATES_COLUMN).to_pylist() if CANDIDATES_COLUMN in cols else None
    trimmed_flags = table.column(TRIMMED_COLUMN).to_pylist() if TRIMMED_COLUMN in cols else None
    pattern_trimmed = pattern_is_trimmed(pattern) if pattern else False

    audio_paths: list[str | None] = [None] * n
    video_paths: list[str | None] = [None] * n
    offsets: list[float | None] = [None] * n
    found = np.zeros(n, dtype=bool)
    for i in visit.tolist():
        start = None if np.isnan(starts[i]) else float(starts[i])
        slots = []
        if extra:
            slots = _extra_slots(index, i, start, pattern, pattern_rows, pattern_trimmed, opts, candidates,
                                 trimmed_flags)
        for kind_slots, pos in hits:
            j = pos[i]
            if j < 0:
                continue
            slot, rule = kind_slots[0][j], kind_slots[1]
            if rule == "auto":  # named by the id alone: clip or whole video per file, from its duration
                end = None if np.isnan(ends[i]) else float(ends[i])
                slots.extend(({k: f}, segment_offset(index.seconds.get(f.path), start, end)) for k, f in slot.items())
            else:
                slots.append((slot, rule if rule != "start" else (start or 0.0)))
        if not slots:
            continue
        a_path, v_path, off, empty = _choose(slots, want_audio, want_video)
        stats.empty += int(empty)
        if a_path is None and v_path is None:
            continue
        found[i] = True
        audio_paths[i], video_paths[i], offsets[i] = a_path, v_path, off
    stats.found = int(found.sum())
    stats.missing = n - stats.found
    if stats.missing:
        missed = np.flatnonzero(~found)[:1000]
        id_col = table.column("id") if "id" in cols else table.column("youtube_id")
        stats.missing_ids = [str(x) for x in id_col.take(pa.array(missed)).to_pylist()]
    keep = found if opts.on_missing == "skip" else None

    if stats.missing and opts.on_missing == "error":
        shown = ", ".join(stats.missing_ids[:5])
        raise MissingMediaError(
            f"{stats.missing} of {n} rows have no media under {list(index.roots)} (first: {shown}). "
            "Fetch them with `avsets fetch`, or pass on_missing='skip' (drop) / 'keep' (None media)."
        )
    table = _set_media(table, audio_paths, video_paths, offsets)
    if keep is not None and not keep.all():
        table = table.filter(pa.array(keep))
    return _drop_private(table), stats


def _builtin_hits(table: pa.Table, index: MediaIndex) -> list[tuple[tuple[list, object], np.ndarray]]:
    """For each naming present in the index: ``((slots, offset rule), position per row or -1)``.

    The row keys and each naming's rule come from :func:`avsets.media.sources.keys.row_keys` (the rule archive-order
    streaming matches by too); the offset rule is ``0.0`` for trimmed names, ``"start"`` for whole videos and
    ``"auto"`` for names holding the id alone when the index probed them (``id_named="auto"``): decided per
    file and row by :func:`avsets.media.sources.clip_or_video.segment_offset`, as streaming decides per member.
    """
    hits = []
    auto = index.options[0] == "auto"
    for naming, keys in row_keys(table, index.namings):
        names, slots = index.naming_table(naming)
        pos = pc.index_in(keys, value_set=names).to_numpy(zero_copy_only=False)
        pos = np.where(np.isnan(pos), -1, pos).astype(np.int64) if pos.dtype.kind == "f" else pos.astype(np.int64)
        rule = 0.0 if NAMING_RULES[naming] == "trimmed" else "auto" if naming == "w" and auto else "start"
        hits.append(((slots, rule), pos))
    return hits


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
