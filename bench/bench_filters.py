"""Filters (issue 20): what ``quality=``, ``exclude=`` and ``drop=`` add to a load of 200,000 VGGSound rows.

* Ours: ``avsets.load_dataset("vggsound", quality=q, exclude=dups, drop=["silent", "still"])`` map-style
  into a fresh cache: the metadata parse, the quality join (17 columns), the exclude and drop filters with
  their counts, the Arrow cache written.
* Baseline: what a user would do by hand, in the same run on the same files: the same load without filters,
  then a pyarrow-only left join of the quality table and the same filters on the loaded rows (the second
  row's baseline).  Target: at most 1.5x (ours also writes the 17 joined columns into the Arrow cache).
* Second row, the join itself: ``avsets.build.filters.apply_filters`` on the loaded rows against a pyarrow-only
  left join (``Table.join``) plus the same two filters.  Target: at most 2x.

The quality table covers 90% of the rows (5% silent, 5% still); the dups CSV holds 2,000 pairs.
Run: ``python bench/bench_filters.py [--smoke|--full]``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, bench_main, best_of, random_ids  # noqa: E402

SIZES = {"smoke": 5_000, "default": 200_000, "full": 200_000}
FLAGS = ("silent", "still", "black", "short", "no_audio", "no_video", "av_mismatch")


def make_inputs(root: str, n: int) -> tuple[str, str, str, list[str]]:
    """Metadata folder, quality table and dups CSV for ``n`` rows; returns them and the clip ids."""
    from avsets.ops.demo import sample_data_dir

    meta = os.path.join(root, "meta")
    os.makedirs(meta)
    shutil.copy(os.path.join(sample_data_dir(), "stat.csv"), meta)
    with open(os.path.join(meta, "stat.csv"), newline="", encoding="utf-8") as f:
        labels = [r[0] for r in csv.reader(f)]
    ids = []
    with open(os.path.join(meta, "vggsound.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        for i, y in enumerate(random_ids(n, seed=20)):
            start = (i * 7) % 290
            w.writerow([y, start, labels[i % len(labels)], "test" if i % 10 == 3 else "train"])
            ids.append(f"{y}_{start * 1000}_{start * 1000 + 10000}")
    measured = ids[: n * 9 // 10]
    m = len(measured)
    cols: dict = {"id": measured}
    for name in ("duration_s", "av_length_diff_s", "rms_dbfs", "peak_dbfs", "silent_fraction", "clipped_fraction",
                 "still_fraction", "black_fraction", "fps"):
        cols[name] = pa.array([float(i % 97) / 97.0 for i in range(m)], pa.float64())
    for name in ("scene_cuts", "width", "height"):
        cols[name] = pa.array([i % 640 for i in range(m)], pa.int32())
    cols["has_audio"] = cols["has_video"] = pa.array([True] * m)
    for f in FLAGS:
        cols[f] = pa.array([(f == "silent" and i % 20 == 0) or (f == "still" and i % 20 == 1) for i in range(m)])
    cols["error"] = pa.nulls(m, pa.string())
    q = os.path.join(root, "q.parquet")
    pq.write_table(pa.table(cols).replace_schema_metadata({"avsets.metadata.quality": json.dumps({"thresholds": {}})}), q)
    dups = os.path.join(root, "dups.csv")
    with open(dups, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "kind", "score"])
        for k in range(min(2000, n // 4)):
            w.writerow(["vggsound", "train", ids[2 * k + 5], "vggsound", "test", ids[2 * k + 6], "both", "0.9"])
    return meta, q, dups, ids


def run(size: str) -> list[Result]:
    import avsets
    from avsets.build.filters import FilterCounts, FilterPlan, apply_filters, quality_columns, read_exclude

    n = SIZES[size]
    root = tempfile.mkdtemp(prefix="avsets-bench-filters-")
    try:
        meta, q, dups, _ = make_inputs(root, n)
        runs = {"k": 0}

        def load(**kw) -> object:
            runs["k"] += 1
            return avsets.load_dataset("vggsound", data_dir=meta, cache_dir=os.path.join(root, f"c{runs['k']}"), **kw)

        filters = dict(quality=q, exclude=dups, drop=["silent", "still"])
        load(), load(**filters)  # warm-up: imports, page cache
        t_plain = t_filtered = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            plain = load()
            t_plain = min(t_plain, time.perf_counter() - t0)
            t0 = time.perf_counter()
            filtered = load(**filters)
            t_filtered = min(t_filtered, time.perf_counter() - t0)
        kept = sum(len(d) for d in filtered.values())
        rows = sum(len(d) for d in plain.values())

        table = pa.concat_tables([d.data.table.select(["id", "youtube_id", "start", "end", "label"])
                                  for d in plain.values()])
        fields = tuple(f.name for f in quality_columns(pq.read_schema(q), set(table.column_names)))
        plan = FilterPlan(exclude=read_exclude(dups), quality=q, quality_fields=fields, drop=("silent", "still"))
        apply_filters(table, plan, FilterCounts())  # reads the quality table once (cached per process)
        qt = pq.read_table(q)
        ex = pa.array(plan.exclude.ids, pa.string())

        def baseline() -> pa.Table:
            t = table.filter(pc.invert(pc.is_in(table["id"], value_set=ex)))
            t = t.join(qt, "id", join_type="left outer")
            for flag in ("silent", "still"):
                t = t.filter(pc.invert(pc.fill_null(t[flag], False)))
            return t

        t_apply = best_of(lambda: apply_filters(table, plan, FilterCounts()), 5)
        t_base = best_of(baseline, 5)
        assert baseline().num_rows == kept, (baseline().num_rows, kept)
        by_hand = t_plain + t_base
        return [
            Result(f"load {rows:,} rows with quality+exclude+drop vs load + pyarrow join", t_filtered, by_hand, "s",
                   t_filtered / by_hand, "<= 1.5x", t_filtered / by_hand <= 1.5,
                   f"{kept:,} rows kept; fresh cache each run; plain load alone {t_plain:.2f} s"),
            Result(f"apply_filters on {rows:,} rows vs pyarrow join+filter", t_apply, t_base, "s",
                   t_apply / t_base, "<= 2x", t_apply / t_base <= 2.0, "row order kept, counts per filter"),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    bench_main(run, "filters (issue 20)")
