"""Leakage by id: the YouTube videos two corpus splits share, and whether their segments overlap in time.

Everything is an Arrow join (``Table.join`` on ``youtube_id`` after ``is_in`` semi-joins that shrink every
unit to the ids some other unit has), never a Python loop over rows: AVSET-10M's 10.9M rows against all the
other splits cost one hash probe of the big side (:func:`shared_keys`).  ``overlap_s`` is the length of the intersection of ``[start, end)`` of the two clips
(0 when the same video is used at disjoint times; empty when a side has no segment, e.g. ASCC without
``big_data.csv``, where the whole video is the clip).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .units import Unit

#: the CSV that ``avsets overlap --out`` writes (``load_dataset(exclude=...)`` reads ``id_a``/``id_b``)
OVERLAP_COLUMNS = ("corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "youtube_id", "overlap_s")


@dataclass
class PairSummary:
    """One line of the summary table: unit A against unit B."""

    a: str
    b: str
    rows_a: int
    rows_b: int
    videos: int  # distinct YouTube ids in both
    pairs: int  # clip pairs (a, b) with the same YouTube id
    clips_a: int  # distinct clips of A that share a video with B
    clips_b: int
    overlapping: int  # pairs whose segments overlap (overlap_s > 0)
    disjoint: int  # same video, disjoint segments (overlap_s == 0)
    unknown: int  # a side without a segment


def _keys(unit: Unit) -> pa.Table:
    t = unit.table.select(["id", "youtube_id", "start", "end"])
    if t.column("youtube_id").null_count == 0:  # the usual case: no copy of AVSET-10M's 10.9M rows
        return t
    return t.filter(pc.is_valid(t.column("youtube_id")))


def shared_keys(units: Sequence[Unit]) -> list[pa.Table]:
    """Each unit's key rows whose YouTube id is also in some other unit: all that any pair's join can use.

    The largest unit is shrunk first, against the ids of all the others: AVSET-10M's 10.9M rows are hashed
    once (one ``is_in`` against the others' few hundred thousand ids), not once per pair.  Each later unit is
    shrunk against the already shrunk ones, which is exact: a row of ``u`` whose id is in ``v`` is kept in
    shrunk ``v`` too, since that id is in ``u``, a unit other than ``v``.
    """
    tables = [_keys(u) for u in units]
    for i in sorted(range(len(tables)), key=lambda k: -tables[k].num_rows):
        others = [pc.unique(tables[j].column("youtube_id").combine_chunks()) for j in range(len(tables)) if j != i]
        ids = pc.unique(pa.concat_arrays(others)) if others else pa.array([], pa.string())
        tables[i] = tables[i].filter(pc.is_in(tables[i].column("youtube_id"), value_set=ids))
    return tables


def pair_overlap(a: Unit, b: Unit, ta: pa.Table | None = None, tb: pa.Table | None = None) -> pa.Table:
    """The rows of the overlap CSV for units ``a`` and ``b`` (sorted by youtube_id, id_a, id_b).

    ``ta``/``tb``: their key rows when already narrowed (:func:`shared_keys`), else read from the units.
    """
    ta = _keys(a) if ta is None else ta
    tb = _keys(b) if tb is None else tb
    shared = pc.unique(ta.column("youtube_id").combine_chunks()) if ta.num_rows <= tb.num_rows else \
        pc.unique(tb.column("youtube_id").combine_chunks())
    ta = ta.filter(pc.is_in(ta.column("youtube_id"), value_set=shared))
    tb = tb.filter(pc.is_in(tb.column("youtube_id"), value_set=pc.unique(ta.column("youtube_id").combine_chunks())))
    ta = ta.rename_columns(["id_a", "youtube_id", "start_a", "end_a"])
    tb = tb.rename_columns(["id_b", "youtube_id", "start_b", "end_b"])
    j = ta.join(tb, keys="youtube_id", join_type="inner", use_threads=True)
    lo = pc.max_element_wise(j.column("start_a"), j.column("start_b"), skip_nulls=False)
    hi = pc.min_element_wise(j.column("end_a"), j.column("end_b"), skip_nulls=False)
    overlap = pc.max_element_wise(pc.subtract(hi, lo), pa.scalar(0.0), skip_nulls=False)
    n = j.num_rows
    out = pa.table({
        "corpus_a": pa.repeat(pa.scalar(a.corpus, pa.string()), n),
        "split_a": pa.repeat(pa.scalar(a.split, pa.string()), n),
        "id_a": j.column("id_a"),
        "corpus_b": pa.repeat(pa.scalar(b.corpus, pa.string()), n),
        "split_b": pa.repeat(pa.scalar(b.split, pa.string()), n),
        "id_b": j.column("id_b"),
        "youtube_id": j.column("youtube_id"),
        "overlap_s": pc.round(overlap, 3),
    })
    return out.sort_by([("youtube_id", "ascending"), ("id_a", "ascending"), ("id_b", "ascending")])


def summarize(a: Unit, b: Unit, rows: pa.Table) -> PairSummary:
    """Counts of one pair's overlap rows."""
    ov = rows.column("overlap_s")
    valid = pc.is_valid(ov)
    return PairSummary(
        a=a.label, b=b.label, rows_a=a.table.num_rows, rows_b=b.table.num_rows,
        videos=len(pc.unique(rows.column("youtube_id"))) if rows.num_rows else 0,
        pairs=rows.num_rows,
        clips_a=len(pc.unique(rows.column("id_a"))) if rows.num_rows else 0,
        clips_b=len(pc.unique(rows.column("id_b"))) if rows.num_rows else 0,
        overlapping=int(pc.sum(pc.and_(valid, pc.greater(ov, 0.0)).cast("int64")).as_py() or 0),
        disjoint=int(pc.sum(pc.and_(valid, pc.equal(ov, 0.0)).cast("int64")).as_py() or 0),
        unknown=int(pc.sum(pc.invert(valid).cast("int64")).as_py() or 0),
    )


def overlap_units(units: Sequence[Unit]) -> tuple[pa.Table, list[PairSummary]]:
    """Every pair of distinct units (in the order given): the CSV rows, and one summary per pair."""
    parts: list[pa.Table] = []
    summaries: list[PairSummary] = []
    keys = shared_keys(units)
    for (a, ta), (b, tb) in itertools.combinations(zip(units, keys, strict=True), 2):
        rows = pair_overlap(a, b, ta, tb)
        parts.append(rows)
        summaries.append(summarize(a, b, rows))
    if parts:
        table = pa.concat_tables(parts)
    else:
        table = empty_overlap_table()
    return table, summaries


def empty_overlap_table() -> pa.Table:
    types = {"overlap_s": pa.float64()}
    return pa.table({c: pa.array([], types.get(c, pa.string())) for c in OVERLAP_COLUMNS})


def write_overlap_csv(table: pa.Table, path: str | os.PathLike) -> None:
    """Write the rows with the header ``OVERLAP_COLUMNS`` (nulls as empty cells), atomically."""
    tmp = f"{os.fspath(path)}.part"
    pacsv.write_csv(table.select(list(OVERLAP_COLUMNS)), tmp,
                    write_options=pacsv.WriteOptions(quoting_style="needed", quoting_header="none"))
    os.replace(tmp, path)


def format_summary(summaries: Sequence[PairSummary]) -> str:
    """The printed table: one line per pair of units."""
    head = ("A", "B", "rows A", "rows B", "videos", "clips A", "clips B", "pairs", "overlap", "disjoint", "no seg")
    lines = [head]
    for s in summaries:
        lines.append((s.a, s.b, f"{s.rows_a:,}", f"{s.rows_b:,}", f"{s.videos:,}", f"{s.clips_a:,}", f"{s.clips_b:,}",
                      f"{s.pairs:,}", f"{s.overlapping:,}", f"{s.disjoint:,}", f"{s.unknown:,}"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in lines)
