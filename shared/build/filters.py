"""The one filter pipeline of a load: ``only_ids``, ``exclude``, ``drop``, then ``on_missing``, counted per split.

DESIGN ("Filters compose and count"): every filter runs in that order, removes rows from an Arrow table
before media are resolved (so ``on_missing`` only sees the rows the other filters kept), counts what it
removed per split, and those counts reach the log (one line per filter and split) and the export's card.

* ``only_ids``: keep just these clip ids (a manifest, a CSV of ids, a text file, or the ids).
* ``exclude``: drop these clip ids.  A dups/overlap CSV of the leakage audit (``id_a``/``id_b`` columns)
  excludes both sides and remembers, for each excluded id, which *other* corpus/split it leaks into.
* ``quality``: a quality table (``avsets quality``; Parquet, one row per clip, key ``id``) whose measure
  and flag columns are joined onto every row by ``id``; a row without a result is kept with
  ``quality_missing=True``.
* overlays (:mod:`avsets.build.overlays`): pinned files of other projects (VGGSounder, AudioSet QA) joined the
  same way; their boolean columns are flags too.
* ``drop``: remove rows whose flag (a quality flag, an overlay flag or a boolean corpus column such as
  AVSET-10M's ``sound_separation``) is true; each row is counted under the first flag of ``drop`` that
  removed it, so the per-flag counts add up to the rows removed.

Counts of a map-style prepare are also written beside the cache (``avsets_filters/<split>-*.json``), so an
export of a cached dataset reads them without a second pass (:func:`cached_counts`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from avsets.core.errors import AvsetsError
from avsets.core.notices import warn_once
from avsets.media.resolve import ensure_ids
from avsets.metadata.manifest import read_ids
from avsets.metadata.quality.table import MEASURE_COLUMNS, read_quality_table, table_metadata

logger = logging.getLogger("avsets")

#: True on a row the quality table has no result for (the row is kept)
QUALITY_MISSING = "quality_missing"
#: names of the filters, in the order they run (``on_missing`` runs last, in :mod:`avsets.media.resolve`)
FILTER_ORDER: tuple[str, ...] = ("only_ids", "exclude", "drop", "on_missing")
COUNTS_DIR = "avsets_filters"

_CLIP_ID = re.compile(r"^.+_\d+_\d+$")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_SECONDS_ID = re.compile(r"^[A-Za-z0-9_-]{11}_\d{1,6}$")


class FilterError(AvsetsError, ValueError):
    """A filter argument avsets cannot use: a bad id, an unknown flag, an unreadable quality or exclude file."""


# --- reading the inputs ----------------------------------------------------------------------------------


def quality_thresholds(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The thresholds and versions a quality table says it was made with (its ``avsets.metadata.quality`` metadata).

    Only what says how the table was made goes on a card: never the media paths it was measured from."""
    meta = table_metadata(path)
    return {k: meta[k] for k in ("thresholds", "avsets", "pyav", "ffmpeg", "version") if k in meta}


def quality_columns(schema: pa.Schema, taken: Iterable[str] = ()) -> list[pa.Field]:
    """The columns a quality table adds to rows: its measures, its boolean flags and ``error`` (never ``id``,
    nor bookkeeping such as the media fingerprint), minus names the corpus already uses."""
    taken = set(taken)
    names = [n for n in MEASURE_COLUMNS if n in schema.names]
    names += [f.name for f in schema if pa.types.is_boolean(f.type) and f.name not in names
              and f.name not in ("has_audio", "has_video")]
    if "error" in schema.names:
        names.append("error")
    return [schema.field(n) for n in names if n not in taken]


def quality_features(path: str, taken: Iterable[str] = ()) -> dict[str, Any]:
    """``datasets`` features of the columns ``quality=path`` adds, ``quality_missing`` last."""
    fields = quality_columns(pq.read_schema(path), taken)
    feats = dict(datasets.Features.from_arrow_schema(pa.schema(fields)))
    feats[QUALITY_MISSING] = datasets.Value("bool")
    return feats


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (first 16 hex): the cache key of a quality or overlay file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def check_ids(values: Iterable[Any], what: str) -> tuple[str, ...]:
    """Sorted unique ids; a non-string element is an error naming it and its position."""
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise FilterError(f"{what} takes clip id strings; element {i} is {v!r} ({type(v).__name__})")
        out.append(v)
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class Exclusion:
    """Ids to exclude and, for ids from a leakage CSV, which other corpus/split each one leaks into."""

    ids: tuple[str, ...]
    # (id, "corpus/split") pairs, sorted, as two parallel tuples: the builder config is hashed by pickling, and
    # 4,000 small tuples cost 0.25 s there, two tuples of strings a fraction of that
    into_ids: tuple[str, ...] = ()
    into_where: tuple[str, ...] = ()
    source: str = "list"

    @property
    def into(self) -> list[tuple[str, str]]:
        """The ``(id, "corpus/split")`` pairs."""
        return list(zip(self.into_ids, self.into_where, strict=True))


def read_exclude(value: Any) -> Exclusion:
    """``exclude=``: a dups/overlap CSV (``id_a``/``id_b``), a CSV with ``id``, a manifest, a text file of
    ids, or an iterable of ids."""
    if isinstance(value, Exclusion):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if path.lower().endswith(".csv"):
            pairs = _leak_pairs(path)
            if pairs is not None:
                ids = tuple(sorted({i for i, _ in pairs}))
                ordered = sorted(set(pairs))
                return Exclusion(ids, tuple(i for i, _ in ordered), tuple(w for _, w in ordered), source=path)
        return Exclusion(tuple(sorted(read_ids(path))), source=path)
    return Exclusion(check_ids(value, "exclude"))


def _leak_pairs(path: str) -> list[tuple[str, str]] | None:
    """``(id, where its twin lives)`` for both sides of every row of a CSV with ``id_a``/``id_b`` columns,
    or None when the CSV has no such columns."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        if not {"id_a", "id_b"} <= fields:
            return None
        out = []
        for row in reader:
            a, b = (row.get("id_a") or "").strip(), (row.get("id_b") or "").strip()
            where_a = "/".join(x for x in ((row.get("corpus_a") or "").strip(), (row.get("split_a") or "").strip()) if x)
            where_b = "/".join(x for x in ((row.get("corpus_b") or "").strip(), (row.get("split_b") or "").strip()) if x)
            if a:
                out.append((a, where_b or "?"))
            if b:
                out.append((b, where_a or "?"))
        return out


# --- the plan a builder hands to each shard --------------------------------------------------------------


@dataclass(frozen=True)
class FilterPlan:
    """Everything the filters of one load need, picklable (it travels in ``gen_kwargs`` to workers)."""

    only_ids: tuple[str, ...] | None = None
    exclude: Exclusion | None = None
    quality: str | None = None
    quality_fields: tuple[str, ...] = ()
    overlays: tuple[Any, ...] = ()  # bound overlays (avsets.build.overlays.BoundOverlay)
    drop: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.only_ids is not None or self.exclude or self.quality or self.overlays or self.drop)


@dataclass
class FilterCounts:
    """What the filters removed from one split (and what the pass read)."""

    rows: int = 0  # rows read before any filter
    only_ids: int = 0
    exclude: int = 0
    exclude_into: Counter = field(default_factory=Counter)  # "corpus/split" -> rows excluded as leaking there
    drop: Counter = field(default_factory=Counter)  # flag -> rows it removed
    quality_missing: int = 0
    on_missing: int = 0
    kept: int = 0
    sample: list[str] = field(default_factory=list)  # the first row ids read, to name their kind

    def add(self, other: FilterCounts) -> None:
        for name in ("rows", "only_ids", "exclude", "quality_missing", "on_missing", "kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.exclude_into.update(other.exclude_into)
        self.drop.update(other.drop)
        self.sample = (self.sample + other.sample)[:3]

    def removed(self, name: str) -> int:
        """Rows the filter ``name`` removed."""
        return sum(self.drop.values()) if name == "drop" else int(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "only_ids": self.only_ids, "exclude": self.exclude,
                "exclude_into": dict(self.exclude_into), "drop": dict(self.drop),
                "quality_missing": self.quality_missing, "on_missing": self.on_missing, "kept": self.kept,
                "sample": self.sample}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FilterCounts:
        return cls(rows=d.get("rows", 0), only_ids=d.get("only_ids", 0), exclude=d.get("exclude", 0),
                   exclude_into=Counter(d.get("exclude_into", {})), drop=Counter(d.get("drop", {})),
                   quality_missing=d.get("quality_missing", 0), on_missing=d.get("on_missing", 0),
                   kept=d.get("kept", 0), sample=list(d.get("sample", [])))


_QUALITY_CACHE: dict[tuple[str, float, int], pa.Table] = {}
_QUALITY_LOCK = threading.Lock()


def _quality_for(path: str, fields: Sequence[str]) -> pa.Table:
    """The quality table's ``id`` + ``fields`` columns, read once per process and file version."""
    st = os.stat(path)
    key = (path, st.st_mtime, st.st_size)
    with _QUALITY_LOCK:
        table = _QUALITY_CACHE.get(key)
        if table is None:
            table = read_quality_table(path).select(["id", *fields])
            table = table.set_column(0, "id", table.column("id").cast(pa.string()))
            _QUALITY_CACHE.clear()  # one version of one file kept: a changed file replaces the old one
            _QUALITY_CACHE[key] = table
        return table


_ARRAYS: dict[int, tuple[Any, Any]] = {}


def _arrow_of(key: Any, make: Any) -> Any:
    """An Arrow form of a plan's tuple, made once per process (a shard of 1,000 rows would otherwise rebuild
    a 200,000-id array); keyed by the tuple object itself, which the plan keeps alive."""
    hit = _ARRAYS.get(id(key))
    if hit is None or hit[0] is not key:
        while len(_ARRAYS) >= 8:  # a long session's older loads: let their ids go
            _ARRAYS.pop(next(iter(_ARRAYS)))
        hit = _ARRAYS[id(key)] = (key, make())
    return hit[1]


def join_by_id(table: pa.Table, other: pa.Table, columns: Sequence[str], key: str = "id") -> tuple[pa.Table, pa.Array]:
    """``table`` with ``columns`` of ``other`` added by ``key`` (left join, first match wins, row order
    kept); also returns the boolean mask of rows that found no match.

    A batch of a sixteenth of ``other`` or more is matched with ``pc.index_in`` (it hashes all of ``other``:
    0.17 s for 200k ids on this VM); a smaller one, such as a 1,000-row streaming shard, through a key -> row
    dict of ``other`` made once per process (0.8 ms a shard against 118 ms for ``index_in``)."""
    if table.num_rows * 16 >= other.num_rows:
        pos = pc.index_in(table.column(key), value_set=other.column(key).combine_chunks())
    else:
        lookup = _arrow_of(other, lambda: _first_rows(other.column(key)))
        pos = pa.array([lookup.get(k) for k in table.column(key).to_pylist()], pa.int64())
    missing = pc.is_null(pos)
    for name in columns:
        col = other.column(name).combine_chunks()
        values = pc.take(col, pos) if len(col) else pa.nulls(table.num_rows, col.type)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, values)
        else:
            table = table.append_column(name, values)
    return table, missing


def _first_rows(keys: pa.ChunkedArray) -> dict[Any, int]:
    """``{key: first row holding it}``."""
    out: dict[Any, int] = {}
    for i, k in enumerate(keys.to_pylist()):
        out.setdefault(k, i)
    return out


def apply_filters(table: pa.Table, plan: FilterPlan, counts: FilterCounts) -> pa.Table:
    """``only_ids``, ``exclude``, the quality and overlay joins, then ``drop``; counts added to ``counts``.

    Runs on the metadata rows before media are resolved; ``on_missing`` comes after, in the caller.
    """
    table = ensure_ids(table)
    counts.rows += table.num_rows
    if len(counts.sample) < 3 and table.num_rows:
        counts.sample.extend(str(x) for x in table.column("id").slice(0, 3 - len(counts.sample)).to_pylist())
    if plan.only_ids is not None:
        n = table.num_rows
        keep = _arrow_of(plan.only_ids, lambda: pa.array(plan.only_ids, pa.string()))
        table = table.filter(pc.is_in(table.column("id"), value_set=keep))
        counts.only_ids += n - table.num_rows
    if plan.exclude is not None and plan.exclude.ids:
        gone = _arrow_of(plan.exclude.ids, lambda: pa.array(plan.exclude.ids, pa.string()))
        hit = pc.is_in(table.column("id"), value_set=gone)
        n_hit = pc.sum(hit).as_py() or 0
        if n_hit:
            if plan.exclude.into_ids:
                _count_leaks(table.filter(hit).column("id"), plan.exclude, counts)
            table = table.filter(pc.invert(hit))
            counts.exclude += n_hit
    if plan.quality:
        qt = _quality_for(plan.quality, plan.quality_fields)
        table, missing = join_by_id(table, qt, plan.quality_fields)
        table = table.append_column(QUALITY_MISSING, missing)
        counts.quality_missing += pc.sum(missing).as_py() or 0
    for overlay in plan.overlays:
        table = overlay.join(table)
    for flag in plan.drop:
        if flag not in table.column_names:
            continue  # a boolean corpus column another corpus lacks; checked when the plan was made
        hit = pc.fill_null(table.column(flag), False)
        n_hit = pc.sum(hit).as_py() or 0
        if n_hit:
            table = table.filter(pc.invert(hit))
            counts.drop[flag] += n_hit
    return table


def _count_leaks(ids: pa.ChunkedArray, exclusion: Exclusion, counts: FilterCounts) -> None:
    """Add, per other corpus/split, how many of the excluded ``ids`` leak into it (vectorized: the pairs are
    an Arrow table made once)."""
    pairs = _arrow_of(exclusion.into_ids, lambda: pa.table({"id": list(exclusion.into_ids),
                                                             "where": list(exclusion.into_where)}))
    hit = pairs.filter(pc.is_in(pairs.column("id"), value_set=ids.combine_chunks()))
    for row in pc.value_counts(hit.column("where")).to_pylist():
        counts.exclude_into[row["values"]] += row["counts"]


# --- telling the user ------------------------------------------------------------------------------------


def id_kind(clip: str) -> str:
    """What an id looks like: ``clip`` (``{youtube_id}_{start_ms}_{end_ms}``), ``youtube`` (11 characters),
    ``youtube+seconds`` (VGGSound file stems such as ``abc_000030``) or ``other``."""
    if _SECONDS_ID.match(clip):
        return "youtube+seconds"
    if _YOUTUBE_ID.match(clip):
        return "youtube"
    if _CLIP_ID.match(clip):
        return "clip"
    return "other"


def _kind_text(kind: str) -> str:
    return {"clip": "clip ids ({youtube_id}_{start_ms}_{end_ms})", "youtube": "YouTube ids",
            "youtube+seconds": "VGGSound file stems ({youtube_id}_{start_seconds:06d})",
            "other": "ids of another form"}[kind]


def mismatch_text(given: Sequence[str], row_ids: Sequence[str]) -> str:
    """Why ids may match no row: their kind next to the rows' kind, with an example of each."""
    if not given:
        return "the list is empty"
    g = Counter(id_kind(i) for i in given).most_common(1)[0][0]
    r = Counter(id_kind(i) for i in row_ids).most_common(1)[0][0] if row_ids else None
    ex = f"e.g. {given[0]!r}"
    if r is None:
        return f"they look like {_kind_text(g)} ({ex})"
    if g != r:
        return (f"they look like {_kind_text(g)} ({ex}) but rows are keyed by {_kind_text(r)} "
                f"(e.g. {row_ids[0]!r}); pass ids of the rows' kind (a manifest, or the id_a/id_b columns of "
                "a dups/overlap CSV)")
    return f"they look like the rows' ids ({ex}, rows e.g. {row_ids[0]!r}) but none is in this corpus/config"


def warn_no_match(what: str, given: Sequence[str], row_ids: Sequence[str], where: str) -> None:
    """Say once that an id filter matched no row of the whole load (DESIGN "No silent miss")."""
    key = ("filters.nomatch", what, where, hashlib.sha256("\n".join(given).encode()).hexdigest())
    warn_once(logger, key, "%s: none of the %d %s ids matches a row: %s", where, len(given), what,
              mismatch_text(given, row_ids))


def log_counts(where: str, split: str, counts: FilterCounts, plan: FilterPlan, key: Any = None) -> None:
    """One line per filter and split (said once per pass, like ``on_missing``'s notice)."""
    base = (where, split, key)
    if plan.only_ids is not None:
        warn_once(logger, (*base, "only_ids", counts.only_ids, counts.rows),
                  "%s %s: only_ids removed %d of %d rows", where, split, counts.only_ids, counts.rows)
    if plan.exclude is not None:
        into = ", ".join(f"{n} leak into {w}" for w, n in sorted(counts.exclude_into.items()))
        warn_once(logger, (*base, "exclude", counts.exclude, counts.rows),
                  "%s %s: exclude removed %d of %d rows%s", where, split, counts.exclude, counts.rows,
                  f" ({into})" if into else "")
    if plan.quality and counts.quality_missing:
        warn_once(logger, (*base, "quality_missing", counts.quality_missing),
                  "%s %s: %d rows have no result in the quality table (kept, quality_missing=True)", where,
                  split, counts.quality_missing)
    for flag in plan.drop:
        warn_once(logger, (*base, "drop", flag, counts.drop.get(flag, 0), counts.rows),
                  "%s %s: drop %s removed %d of %d rows", where, split, flag, counts.drop.get(flag, 0),
                  counts.rows)


# --- counts beside the cache -----------------------------------------------------------------------------


def write_counts(output_dir: str, split: str, counts: FilterCounts) -> None:
    """Save one generating job's counts in the (incomplete) cache folder; moved with it when done."""
    folder = os.path.join(output_dir, COUNTS_DIR)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{split}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(counts.to_dict(), f)
    os.replace(path + ".tmp", path)


def cached_counts(cache_dir: str) -> dict[str, FilterCounts]:
    """The filter counts of a prepared (map-style) dataset, per split, summed over its generating jobs."""
    folder = os.path.join(cache_dir, COUNTS_DIR)
    out: dict[str, FilterCounts] = {}
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        split = name.rsplit("-", 2)[0]
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            out.setdefault(split, FilterCounts()).add(FilterCounts.from_dict(json.load(f)))
    return out


@dataclass
class FilterSummary:
    """What an export's card says about the filters of the load it published."""

    counts: dict[str, FilterCounts]
    only_ids: str | None = None  # where the ids came from ("list of N ids" or a file name)
    exclude: str | None = None
    quality: str | None = None  # the quality table's file name
    thresholds: dict[str, Any] = field(default_factory=dict)
    overlays: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    on_missing: str = "skip"

    @property
    def active(self) -> bool:
        return bool(self.only_ids or self.exclude or self.quality or self.overlays or self.drop)


def summarize(builder: Any) -> FilterSummary:
    """The filters of a prepared builder and their counts (read from beside its cache)."""
    cfg = builder.config
    counts = cached_counts(builder.cache_dir) or dict(getattr(builder, "filter_counts", {}))
    only = None
    if cfg.only_ids is not None:
        only = f"{len(cfg.only_ids)} ids"
    exclude = None
    if cfg.exclude is not None:
        src = cfg.exclude.source
        exclude = f"{len(cfg.exclude.ids)} ids" + ("" if src == "list" else f" from `{os.path.basename(src)}`")
    return FilterSummary(
        counts=counts, only_ids=only, exclude=exclude,
        quality=os.path.basename(cfg.quality) if cfg.quality else None,
        thresholds=quality_thresholds(cfg.quality) if cfg.quality else {},
        overlays=tuple(cfg.overlays), drop=tuple(cfg.drop), on_missing=cfg.on_missing)
