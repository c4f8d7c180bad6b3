"""Near-duplicate clips within and across corpus splits, from a fingerprint table: the ``dups.csv`` writer."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .index import Match, find_duplicates
from .store import decode_prints

DUPLICATE_COLUMNS = ("corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "kind", "score")


@dataclass
class DuplicateResult:
    """The verified pairs as the CSV's table, the index's candidate count, and pairs per unit pair."""

    table: pa.Table
    candidates: int
    clips: int
    per_pair: Counter


def duplicates_from_table(prints: pa.Table, **options) -> DuplicateResult:
    """Search the rows of a fingerprint table (rows with an error are left out) for near-duplicates."""
    prints = prints.filter(pc.is_null(prints.column("error")))
    audio, video = decode_prints(prints)
    matches, candidates = find_duplicates(audio, video, **options)
    return DuplicateResult(_as_table(prints, matches), candidates, prints.num_rows, _per_pair(prints, matches))


def _label(corpus: str, config: str | None, split: str) -> str:
    return f"{corpus}{':' + config if config else ''}/{split}"


def _per_pair(prints: pa.Table, matches: list[Match]) -> Counter:
    corpus, config, split = (prints.column(c).to_pylist() for c in ("corpus", "config", "split"))
    out: Counter = Counter()
    for m in matches:
        a = _label(corpus[m.i], config[m.i], split[m.i])
        b = _label(corpus[m.j], config[m.j], split[m.j])
        out[(a, b, m.kind)] += 1
    return out


def _as_table(prints: pa.Table, matches: list[Match]) -> pa.Table:
    i = pa.array([m.i for m in matches], pa.int64())
    j = pa.array([m.j for m in matches], pa.int64())
    cols = {}
    for side, idx in (("a", i), ("b", j)):
        for c in ("corpus", "split", "id"):
            cols[f"{c}_{side}"] = pc.take(prints.column(c), idx)
    cols["kind"] = pa.array([m.kind for m in matches], pa.string())
    cols["score"] = pa.array([m.score for m in matches], pa.float64())
    table = pa.table({c: cols[c] for c in DUPLICATE_COLUMNS})
    return table.sort_by([("score", "descending"), ("id_a", "ascending"), ("id_b", "ascending")])


def write_duplicates_csv(table: pa.Table, path: str | os.PathLike) -> None:
    """``corpus_a,split_a,id_a,corpus_b,split_b,id_b,kind,score``, written atomically."""
    tmp = f"{os.fspath(path)}.part"
    pacsv.write_csv(table.select(list(DUPLICATE_COLUMNS)), tmp,
                    write_options=pacsv.WriteOptions(quoting_style="needed", quoting_header="none"))
    os.replace(tmp, path)


def format_duplicates(result: DuplicateResult) -> str:
    """One line per (unit A, unit B, kind) with its pair count, then the totals."""
    lines = [f"{'A':<28} {'B':<28} {'kind':<6} {'pairs':>7}"]
    for (a, b, kind), n in sorted(result.per_pair.items()):
        lines.append(f"{a:<28} {b:<28} {kind:<6} {n:>7,}")
    lines.append(f"{result.clips:,} clips fingerprinted, {result.candidates:,} candidate pairs from the index, "
                 f"{result.table.num_rows:,} near-duplicate pairs")
    return "\n".join(lines)
