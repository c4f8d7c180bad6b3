"""Publish benchmarks: two ratios against baselines measured in the same run, on media made here.

1. Export throughput (MB of media per second) when every source is already a trimmed 16-bit FLAC (so the
   exporter copies bytes), as a ratio to ``shutil.copyfile`` of the same files. Target >= 0.5.
2. Streaming read of the exported Parquet with stock ``datasets`` (``load_dataset(folder, config,
   streaming=True).decode(False)``, rows as dicts) as a ratio to iterating the same files with ``pyarrow``
   (``ParquetFile.iter_batches`` + ``to_pylist``, rows as dicts). Target >= 0.7. The one-off
   ``load_dataset`` set-up (data-file resolution, card parsing) is printed apart, not in the ratio.

Run: ``python bench/bench_publish.py [--clips 400] [--seconds 10] [--repeat 5] [--smoke]``. Prints one line per
measurement and the two ratios; the best of ``--repeat`` runs is kept for each side (less noise on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
from datasets import Audio, ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Value  # noqa: E402
from datasets.splits import NamedSplit  # noqa: E402
from datasets.table import InMemoryTable  # noqa: E402

from avsets.ops.publish.export import export_dataset  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, Seconds  # noqa: E402


def make_media(folder: Path, clips: int, seconds: float, sr: int = 16000) -> list[Path]:
    """Trimmed 16-bit FLAC clips of tone + noise (noise keeps FLAC near real-world compression)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(clips):
        x = 0.3 * np.sin(2 * np.pi * (200 + i) * t) + 0.1 * rng.standard_normal(t.shape)
        p = folder / f"clip{i:06d}_0_{int(seconds * 1000)}.flac"
        sf.write(p, x.astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def make_dataset(paths: list[Path], seconds: float) -> DatasetDict:
    """avsets-shaped rows (``decode=False`` storage), built from Arrow (``Audio.encode_example`` needs torch)."""
    feats = Features({"id": Value("string"), "youtube_id": Value("string"), "start": Value("float64"),
                      "end": Value("float64"), "label": ClassLabel(names=["a", "b", "c"]),
                      "audio": Audio(decode=False), "media_offset": Value("float64")})
    n = len(paths)
    cols = {"id": [p.stem for p in paths], "youtube_id": [p.stem[:11] for p in paths], "start": [0.0] * n,
            "end": [seconds] * n, "label": [i % 3 for i in range(n)],
            "audio": [{"bytes": None, "path": str(p)} for p in paths], "media_offset": [0.0] * n}
    table = pa.Table.from_pydict(cols, schema=feats.arrow_schema)
    ds = Dataset(InMemoryTable(table), info=DatasetInfo(features=feats), split=NamedSplit("train"))
    return DatasetDict({"train": ds})


def best_pair(a, b, repeat: int) -> tuple[Seconds, Seconds]:
    """Best (and median) time of ``a`` and of ``b`` over ``repeat`` alternating runs (alternation spreads
    machine noise)."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return Seconds(ta), Seconds(tb)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--max-shard-size", default="20MB")
    ap.add_argument("--smoke", action="store_true", help="tiny run for CI: prints the ratios, always exits 0")
    args = ap.parse_args(argv)
    if args.smoke:
        args.clips, args.seconds, args.repeat = 60, 5.0, 2

    with tempfile.TemporaryDirectory(prefix="avsets-bench-publish-") as tmp:
        root = Path(tmp)
        paths = make_media(root / "media", args.clips, args.seconds)
        total = sum(p.stat().st_size for p in paths)
        dsd = make_dataset(paths, args.seconds)
        print(f"media: {len(paths)} trimmed FLAC clips, {total / 1e6:.1f} MB")

        def copy_all() -> None:
            dst = root / "copy"
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir()
            for p in paths:
                shutil.copyfile(p, dst / p.name)

        run = iter(range(10**6))

        def export_all() -> None:
            export_dataset(dsd, "bench", "default", str(root / f"out{next(run)}"),
                           max_shard_size=args.max_shard_size)

        t_copy, t_export = best_pair(copy_all, export_all, args.repeat)
        copy_mbs, export_mbs = total / t_copy / 1e6, total / t_export / 1e6
        print(f"shutil.copyfile: {copy_mbs:8.1f} MB/s ({t_copy:.3f} s; median {total / t_copy.median / 1e6:.1f} MB/s)")
        print(f"avsets export:   {export_mbs:8.1f} MB/s ({t_export:.3f} s; median {total / t_export.median / 1e6:.1f} MB/s)")

        out = root / "out0"
        files = sorted((out / "data/default").glob("train-*.parquet"))
        print(f"export: {len(files)} shard(s), {sum(f.stat().st_size for f in files) / 1e6:.1f} MB")

        def read_pyarrow() -> int:
            n = 0
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches():
                    for _row in batch.to_pylist():
                        n += 1
            return n

        cache = root / "cache"
        t0 = time.perf_counter()
        stream = datasets.load_dataset(str(out), "default", split="train", streaming=True,
                                       cache_dir=str(cache)).decode(False)
        t_setup = time.perf_counter() - t0

        def read_stock() -> int:  # a fresh pass re-opens every shard, as each epoch does
            return sum(1 for _ in stream)

        assert read_pyarrow() == read_stock() == len(paths)
        t_pa, t_ds = best_pair(read_pyarrow, read_stock, args.repeat)
        print(f"pyarrow iter_batches rows: {len(paths) / t_pa:10.0f} rows/s ({total / t_pa / 1e6:.0f} MB/s; "
              f"median {len(paths) / t_pa.median:.0f} rows/s)")
        print(f"datasets streaming rows:   {len(paths) / t_ds:10.0f} rows/s ({total / t_ds / 1e6:.0f} MB/s; "
              f"median {len(paths) / t_ds.median:.0f} rows/s)"
              f"  (+ {t_setup:.2f} s once for load_dataset: data-file resolution, card, builder)")
        export_ratio, stream_ratio = export_mbs / copy_mbs, t_pa / t_ds
        print(f"RATIO export/copyfile = {export_ratio:.2f} (target >= 0.5)")
        print(f"RATIO datasets-streaming/pyarrow = {stream_ratio:.2f} (target >= 0.7)")
    return 0 if args.smoke or (export_ratio >= 0.5 and stream_ratio >= 0.7) else 1


# bench/run sizes, as this script's own arguments (default = its --smoke plus more clips; full = its default)
RUN_ARGS = {"smoke": ["--smoke"], "default": ["--clips", "200", "--repeat", "3"], "full": []}


def run(size: str = "default") -> list:
    """The same measurements as ``main``, read back from its printed lines, as ``bench/run`` table rows."""
    import contextlib
    import io
    import re

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(RUN_ARGS[size])
    text = buf.getvalue()

    def num(pattern: str) -> float:
        return float(re.search(pattern, text).group(1))

    copy, export = num(r"shutil.copyfile:\s+([\d.]+) MB/s"), num(r"avsets export:\s+([\d.]+) MB/s")
    pa_rows, ds_rows = num(r"pyarrow iter_batches rows:\s+([\d.]+) rows/s"), num(r"datasets streaming rows:\s+([\d.]+)")
    clips = int(num(r"media: (\d+) trimmed"))
    med = {k: num(rf"{k}:.*median ([\d.]+)") for k in ("shutil.copyfile", "avsets export", "pyarrow iter_batches rows",
                                                       "datasets streaming rows")}
    return [Result(f"publish: export of {clips} trimmed FLAC clips vs copyfile", export, copy, "MB/s", export / copy,
                   ">= 0.5", export / copy >= 0.5, "baseline: shutil.copyfile of the same files",
                   ours_median=med["avsets export"], baseline_median=med["shutil.copyfile"]),
            Result("publish: stock datasets streaming of the export vs pyarrow", ds_rows, pa_rows, "rows/s",
                   ds_rows / pa_rows, ">= 0.7", ds_rows / pa_rows >= 0.7, "baseline: ParquetFile.iter_batches rows",
                   ours_median=med["datasets streaming rows"], baseline_median=med["pyarrow iter_batches rows"])]


if __name__ == "__main__":
    sys.exit(main())
