"""AVSET-10M scale (issue 3): metadata-only prepare of the ``all`` config vs ``pyarrow.json`` + Arrow write.

Generates AVSET-shaped JSON Lines files (the viewer's keys and value types: ``AVC`` and times as strings,
the flag as 0/1, ``Label`` as comma-joined MIDs; 10M-part rows add a caption and PANNs-style pseudo
labels), ~25,000 rows a file as in the release (10.9M rows / 441 files), 7% of the files in the 700K folder.

* time: ``avsets`` prepare of ``all`` (parse, validate, encode labels, ids, write the Arrow cache through
  ``datasets``) vs the baseline ``pyarrow.json.read_json`` + an Arrow IPC write of the same files, same run;
  target: ratio <= 5.
* memory: the prepare runs in a fresh subprocess at 1M and at 4M rows; its peak RSS must not grow with the
  row count (target: 4M peak <= 1.15 x 1M peak), since memory is bounded by one file.

Run: ``python bench/bench_avset_scale.py [--smoke]``.  Distinct files are generated once per variant and
hard-linked to reach the row count (the parser sees every byte of every file either way).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROWS_PER_FILE = 25_000
VARIANTS = 4
SHARE_700K = 0.07


def _ids(rng: random.Random, n: int) -> list[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return ["".join(rng.choices(alphabet, k=11)) for _ in range(n)]


def _write_file(path: str, n: int, part: str, seed: int) -> None:
    from avsets.metadata.ontology import mids_527

    rng = random.Random(seed)
    mids = mids_527()
    names = [m for m in mids]
    words = "a man woman dog car plays guitar talks drives street in the with room music speech".split()
    with open(path, "w") as f:
        for ytid in _ids(rng, n):
            start = rng.choice((0, 10, 20, 30, 40, 4, 22))
            rec = {
                "Label": ",".join(sorted(rng.sample(mids, rng.randint(1, 4)))) if part == "700k" else "",
                "Flag (Sound Separation)": rng.randint(0, 1),
                "Youtube ID": ytid,
                "AVC": repr(rng.random() * 0.6),
                "Start Time": f"{start:.3f}",
                "End Time": f"{start + 10:.3f}",
            }
            if part == "10m":
                s = rng.random() * 300
                rec["Start Time"] = f"0:{int(s // 60):02d}:{s % 60:06.3f}"
                rec["End Time"] = f"0:{int((s + 10.3) // 60):02d}:{(s + 10.3) % 60:06.3f}"
                rec["caption"] = " ".join(rng.choices(words, k=rng.randint(6, 16))) + "."
                rec["pseudo-label"] = [{"label": rng.choice(names), "score": round(rng.random(), 4)}
                                       for _ in range(rng.randint(1, 3))]
            f.write(json.dumps(rec) + "\n")


def make_corpus(root: str, rows: int) -> list[str]:
    """``root/AVSET-700K/...`` and ``root/AVSET-10M(excluding-700K)/...`` holding ``rows`` rows in total."""
    files = max(2, rows // ROWS_PER_FILE)
    n700 = max(1, round(files * SHARE_700K))
    cache = os.path.join(os.path.dirname(root), "variants")
    os.makedirs(cache, exist_ok=True)
    out = []
    for part, folder, count, fmt in (("700k", "AVSET-700K", n700, "unbalanced_train_segments_part{:02d}.json"),
                                     ("10m", "AVSET-10M(excluding-700K)", files - n700, "split_{:03d}.json")):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for i in range(count):
            src = os.path.join(cache, f"{part}-{i % VARIANTS}.json")
            if not os.path.exists(src):
                _write_file(src, ROWS_PER_FILE, part, seed=hash((part, i % VARIANTS)) & 0xFFFF)
            dst = os.path.join(root, folder, fmt.format(i))
            os.link(src, dst)
            out.append(dst)
    return out


def baseline(files: list[str], out_dir: str) -> float:
    """``pyarrow.json.read_json`` + Arrow IPC write of every file (one at a time, like ours)."""
    import pyarrow as pa
    import pyarrow.json as pajson

    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    for i, path in enumerate(files):
        table = pajson.read_json(path)
        with pa.OSFile(os.path.join(out_dir, f"{i}.arrow"), "wb") as sink, \
                pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return time.perf_counter() - t0


def ours(data_dir: str, cache_dir: str) -> tuple[float, int]:
    import avsets

    t0 = time.perf_counter()
    builder = avsets.load_dataset_builder("avset10m", "all", data_dir=data_dir, cache_dir=cache_dir)
    builder.download_and_prepare()
    elapsed = time.perf_counter() - t0
    return elapsed, builder.info.splits["train"].num_examples


def _child(args: argparse.Namespace) -> None:
    """Subprocess entry: prepare (or baseline) once and print JSON with time, rows and peak RSS."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import peak_rss_mb

    if args.child == "ours":
        elapsed, rows = ours(args.data_dir, args.cache_dir)
    else:
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(args.data_dir) for f in fs)
        elapsed, rows = baseline(files, args.cache_dir), -1
    rss = peak_rss_mb()
    print(json.dumps({"seconds": elapsed, "rows": rows, "peak_rss_mb": rss}))


def run_child(kind: str, data_dir: str, cache_dir: str) -> dict:
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--data-dir", data_dir,
                           "--cache-dir", cache_dir], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(sizes: tuple[int, ...]) -> list[tuple[int, int, dict, dict]]:
    """Generate, then prepare (ours and the baseline) at each size, each in a fresh subprocess."""
    work = tempfile.mkdtemp(prefix="avsets-bench-avset-")
    rows_out = []
    try:
        for rows in sizes:
            data_dir = os.path.join(work, f"data-{rows}")
            files = make_corpus(data_dir, rows)
            base = run_child("baseline", data_dir, os.path.join(work, f"base-{rows}"))
            mine = run_child("ours", data_dir, os.path.join(work, f"cache-{rows}"))
            rows_out.append((rows, len(files), mine, base))
            shutil.rmtree(os.path.join(work, f"base-{rows}"), ignore_errors=True)
            shutil.rmtree(os.path.join(work, f"cache-{rows}"), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows_out


# bench/run sizes: CI smoke, the few-minutes default (this script's --smoke sizes), --full (its default sizes)
RUN_SIZES = {"smoke": (50_000, 100_000), "default": (200_000, 400_000), "full": (1_000_000, 4_000_000)}


def run(size: str = "default") -> list:
    """The same measurements as ``main`` as rows of the one ``bench/run`` table."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import Result

    sizes = RUN_SIZES[size]
    rows_out = _measure(sizes)
    out = []
    for rows, nfiles, mine, base in rows_out:
        ratio = mine["seconds"] / base["seconds"]
        out.append(Result(f"avset10m: metadata-only prepare of all, {rows:,} rows", mine["seconds"],
                          base["seconds"], "s", ratio, "<= 5", ratio <= 5,
                          f"{nfiles} files; baseline: pyarrow.json + IPC write; ours RSS {mine['peak_rss_mb']:.0f} MB"))
    growth = rows_out[-1][2]["peak_rss_mb"] / rows_out[0][2]["peak_rss_mb"]
    out.append(Result(f"avset10m: prepare peak RSS {sizes[-1]:,} vs {sizes[0]:,} rows", rows_out[-1][2]["peak_rss_mb"],
                      rows_out[0][2]["peak_rss_mb"], "MB", growth, "<= 1.15", growth <= 1.15, "fresh subprocesses"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="200k / 400k rows instead of 1M / 4M")
    ap.add_argument("--child", choices=("ours", "baseline"))
    ap.add_argument("--data-dir")
    ap.add_argument("--cache-dir")
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    sizes = (200_000, 400_000) if args.smoke else (1_000_000, 4_000_000)
    rows_out = _measure(sizes)
    print(f"\n== AVSET-10M metadata scale ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    head = (f"{'rows':>10} {'files':>6} {'ours s':>8} {'baseline s':>11} {'ratio':>6} {'target':>7} "
            f"{'ours RSS MB':>12} {'base RSS MB':>12} {'rows/s':>10}")
    print(head)
    print("-" * len(head))
    for rows, nfiles, mine, base in rows_out:
        ratio = mine["seconds"] / base["seconds"]
        print(f"{rows:>10} {nfiles:>6} {mine['seconds']:>8.2f} {base['seconds']:>11.2f} {ratio:>6.2f} "
              f"{'<= 5':>7} {mine['peak_rss_mb']:>12.0f} {base['peak_rss_mb']:>12.0f} "
              f"{mine['rows'] / mine['seconds']:>10.0f}  {'PASS' if ratio <= 5 else 'FAIL'}")
    small, big = rows_out[0][2]["peak_rss_mb"], rows_out[-1][2]["peak_rss_mb"]
    growth = big / small
    print(f"peak RSS {sizes[-1]:,} rows / {sizes[0]:,} rows: {growth:.3f} (target <= 1.15)  "
          f"{'PASS' if growth <= 1.15 else 'FAIL'}")
    for rows, _, mine, _ in rows_out:
        if mine["rows"] != rows - rows % ROWS_PER_FILE:
            print(f"WARNING: prepared {mine['rows']} rows, generated {rows}")


if __name__ == "__main__":
    main()
