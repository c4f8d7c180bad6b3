"""Scale (issue 7): streaming 1M AVSET-shaped rows with media resolution in flat memory; 10.9M-row prepare.

* Streaming: ``avsets.load_dataset("avset10m", "all", media_dir=..., streaming=True, decode=False,
  on_missing="keep")`` over generated AVSET-shaped JSON files (``bench_avset_scale``'s generator: the
  viewer's keys and value types, 25,000 rows a file, 7% in the 700K folder), every row read, in a fresh
  subprocess per size, in batches of 1,000 rows; the media folder (a few thousand whole-video files named by YouTube id, hits in
  every file) is the same for both sizes. Target: peak RSS at 1M rows <= 1.2x peak RSS at 100k rows, since a
  stream holds one file's table at a time.
* ``--full`` only: metadata-only preparation of 10.9M generated rows (441 files), time and peak RSS, with
  ``pyarrow.json.read_json`` + an Arrow IPC write of the same files as the baseline (for scale, no target).

Run: ``python bench/bench_scale.py [--smoke|--full]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, bench_main, peak_rss_mb  # noqa: E402

# streaming sizes (small, big); rows for the metadata-only prepare (None: skip it)
SIZES = {"smoke": ((50_000, 200_000), None), "default": ((100_000, 1_000_000), None),
         "full": ((100_000, 1_000_000), 10_900_000)}
MEDIA_PER_FILE = 500


def make_media(data_dir: str, media: str) -> int:
    """Whole-video files for ``MEDIA_PER_FILE`` ids of every distinct generated file (hard-link variants)."""
    os.makedirs(media, exist_ok=True)
    seen: set[tuple[int, int]] = set()
    made = 0
    for dp, _, fs in os.walk(data_dir):
        for f in sorted(fs):
            st = os.stat(os.path.join(dp, f))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with open(os.path.join(dp, f)) as fh:
                for i, line in enumerate(fh):
                    if i >= MEDIA_PER_FILE:
                        break
                    ytid = json.loads(line)["Youtube ID"]
                    with open(os.path.join(media, f"{ytid}.mp4"), "wb") as out:
                        out.write(b"x")  # resolution only looks at names, sizes and extensions
                    made += 1
    return made


def _child_stream(data_dir: str, media: str, cache: str) -> dict:

    import avsets

    t0 = time.perf_counter()
    ds = avsets.load_dataset("avset10m", "all", split="train", data_dir=data_dir, media_dir=media,
                             cache_dir=cache, streaming=True, decode=False, on_missing="keep")
    rows = with_media = 0
    for batch in ds.iter(batch_size=1000):  # row dicts cost datasets ~60 us each; batches stream the same way
        rows += len(batch["id"])
        with_media += sum(v is not None for v in batch["video"])
    return {"rows": rows, "with_media": with_media, "seconds": time.perf_counter() - t0,
            "peak_rss_mb": peak_rss_mb()}


def _child(argv: list[str]) -> dict:
    kind, *args = argv
    if kind == "stream":
        return _child_stream(*args)
    raise ValueError(kind)


def run_child(*args: str) -> dict:
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scale child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_stream(work: str, sizes: tuple[int, int]) -> Result:
    import bench_avset_scale as gen

    media = os.path.join(work, "media")
    out = {}
    for rows in sizes:
        gen.make_corpus(os.path.join(work, f"data-{rows}"), rows)
    make_media(os.path.join(work, f"data-{sizes[-1]}"), media)  # every generated variant has hits
    for rows in sizes:
        data_dir = os.path.join(work, f"data-{rows}")
        out[rows] = run_child("stream", data_dir, media, os.path.join(work, f"cache-{rows}"))
        expected = max(2, rows // gen.ROWS_PER_FILE) * gen.ROWS_PER_FILE
        if out[rows]["rows"] != expected:
            raise RuntimeError(f"streamed {out[rows]['rows']} rows of {expected}")
    small, big = (out[s] for s in sizes)
    growth = big["peak_rss_mb"] / small["peak_rss_mb"]
    return Result(f"scale: streaming peak RSS {sizes[1]:,} vs {sizes[0]:,} AVSET rows + media", big["peak_rss_mb"],
                  small["peak_rss_mb"], "MB", growth, "<= 1.20", growth <= 1.2,
                  f"{big['rows'] / big['seconds']:,.0f} rows/s at {sizes[1]:,}; {big['with_media']:,} with media")


def bench_prepare(work: str, rows: int) -> list[Result]:
    import bench_avset_scale as gen

    data_dir = os.path.join(work, f"data-{rows}")
    files = gen.make_corpus(data_dir, rows)
    base = gen.run_child("baseline", data_dir, os.path.join(work, "prep-base"))
    shutil.rmtree(os.path.join(work, "prep-base"), ignore_errors=True)
    mine = gen.run_child("ours", data_dir, os.path.join(work, "prep-cache"))
    ratio = mine["seconds"] / base["seconds"]
    note = f"{mine['rows']:,} rows in {len(files)} files; {mine['rows'] / mine['seconds']:,.0f} rows/s"
    return [Result(f"scale: metadata-only prepare avset10m/all, {mine['rows'] / 1e6:.1f}M rows", mine["seconds"],
                   base["seconds"], "s", ratio, "report", True, note + "; baseline: pyarrow.json + IPC write"),
            Result(f"scale: peak RSS of that prepare, {mine['rows'] / 1e6:.1f}M rows", mine["peak_rss_mb"],
                   base["peak_rss_mb"], "MB", mine["peak_rss_mb"] / base["peak_rss_mb"], "report", True,
                   "baseline: pyarrow.json's peak RSS (one file at a time)")]


def run(size: str = "default") -> list[Result]:
    stream_sizes, prepare_rows = SIZES[size]
    work = tempfile.mkdtemp(prefix="avsets-bench-scale-")
    try:
        results = [bench_stream(work, stream_sizes)]
        if prepare_rows:
            results += bench_prepare(work, prepare_rows)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    bench_main(run, "scale (issue 7)", child=_child, child_nargs="+")
