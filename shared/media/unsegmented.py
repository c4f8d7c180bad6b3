"""Rows that name a YouTube video but not its segment (ASCC without ``big_data.csv``).

The resolver keys trimmed clips by ``{ytid}_{start_ms}_{end_ms}`` / ``{ytid}_{start_s}``, which such a row
cannot build.  A user's mirror usually holds those trimmed clips anyway (fetched while the segment was
known), so this module finds them by YouTube id alone - from the one scan the index already made - and hands
them to the resolver as ``_media_paths`` candidates (trimmed: the whole file is the clip).  Only an id whose
files all belong to *one* segment is matched: two different segments of one video would be a guess.
"""

from __future__ import annotations

import pyarrow as pa

from .media_index import MediaIndex
from .resolve import CANDIDATES_COLUMN, TRIMMED_COLUMN

_CACHE: dict[tuple[tuple[str, ...], str], dict[str, list[str]]] = {}


def trimmed_by_youtube_id(index: MediaIndex) -> dict[str, list[str]]:
    """``{youtube_id: [relpath, ...]}`` of the trimmed clips under the index (ids with one segment only)."""
    key = (index.roots, index.fingerprint)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    segments: dict[str, set[str]] = {}
    paths: dict[str, list[str]] = {}
    for name, slot in index.files.items():
        kind, _, rest = name.partition(":")
        if kind not in ("ms", "s") or len(rest) < 12:
            continue
        ytid = rest[:11]
        segments.setdefault(ytid, set()).add(name)
        paths.setdefault(ytid, []).extend(mf.relpath for mf in slot.values())
    out = {ytid: sorted(set(rels)) for ytid, rels in paths.items() if len(segments[ytid]) == 1}
    _CACHE[key] = out
    return out


def add_trimmed_candidates(table: pa.Table, index: MediaIndex | None) -> pa.Table:
    """Append, for rows whose ``start`` is null, the trimmed clips of their YouTube id to ``_media_paths``.

    Rows with a known segment are untouched (the resolver's own keys serve them).  Candidates the corpus
    already gave come first; every candidate is marked trimmed (``_media_trimmed``).
    """
    if index is None or table.num_rows == 0:
        return table
    by_id = trimmed_by_youtube_id(index)
    ytids = table.column("youtube_id").to_pylist()
    starts = table.column("start").to_pylist()
    cols = table.column_names
    given = table.column(CANDIDATES_COLUMN).to_pylist() if CANDIDATES_COLUMN in cols else [None] * table.num_rows
    merged = []
    for ytid, start, cands in zip(ytids, starts, given, strict=True):
        extra = by_id.get(ytid, []) if start is None and ytid is not None else []
        merged.append(list(cands or []) + [p for p in extra if p not in (cands or [])])
    column = pa.array(merged, pa.list_(pa.string()))
    if CANDIDATES_COLUMN in cols:
        table = table.set_column(cols.index(CANDIDATES_COLUMN), CANDIDATES_COLUMN, column)
    else:
        table = table.append_column(CANDIDATES_COLUMN, column)
    if TRIMMED_COLUMN not in table.column_names:
        table = table.append_column(TRIMMED_COLUMN, pa.array([True] * table.num_rows, pa.bool_()))
    return table
