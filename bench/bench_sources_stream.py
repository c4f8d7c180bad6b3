#!/usr/bin/env python3
"""Streaming from mirror copies (issue 11), against bare loops over the same files, in one run.

* clips per CPU-second through a ``.tar.gz`` mirror with decoding: ``load_dataset(..., media_dir=<tar.gz>, streaming=True)``
  vs a bare ``tarfile`` (mode ``r|gz``) + soundfile loop; target >= 0.8x.
* peak RSS of a streaming pass (``decode=False``) over a 1 GB vs a 100 MB ``.tar.gz``, each in a fresh
  subprocess; target: within 1.2x (memory does not grow with the archive).
* clips per CPU-second through a Parquet mirror with decoding vs a bare ``pyarrow`` ``iter_batches`` + soundfile loop;
  target >= 0.8x.

Data: VGGSound-shaped metadata (random ids, 10-s rows) and 10-s 16-kHz FLAC members made here.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, bench_main, peak_rss_mb, random_ids  # noqa: E402

SR = 16000
START = 30


def _flac(seconds: float = 10.0, seed: int = 0) -> bytes:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    sig = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, sig.astype(np.float32), SR, format="FLAC")
    return buf.getvalue()


def _meta(root: str, ids: list[str]) -> str:
    import importlib.resources

    meta = os.path.join(root, "meta")
    os.makedirs(meta, exist_ok=True)
    shutil.copy(str(importlib.resources.files("avsets.vggsound") / "sample" / "stat.csv"), os.path.join(meta, "stat.csv"))
    with open(os.path.join(meta, "vggsound.csv"), "w") as f:
        f.writelines(f'{y},{START},"playing tennis",train\n' for y in ids)
    return meta


def _targz(path: str, ids: list[str], blobs: list[bytes]) -> None:
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for i, y in enumerate(ids):
            data = blobs[i % len(blobs)]
            info = tarfile.TarInfo(f"vggsound_00/audio/{i % 7}/{y}_{START:06d}.flac")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _ours(meta: str, media: str, *, decode: bool = True) -> int:
    from avsets import load_dataset

    ds = load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, streaming=True, decode=decode,
                      modalities=("audio",))
    n = 0
    for row in ds:
        assert row["audio"] is not None
        n += 1
    return n


def _bare_tar(path: str) -> int:
    import soundfile as sf

    n = 0
    with tarfile.open(path, "r|gz") as tf:
        for info in tf:
            if info.isfile() and info.name.endswith(".flac"):
                data = tf.extractfile(info).read()
                array, _ = sf.read(io.BytesIO(data), dtype="float32")
                n += array.size > 0
    return n


def _bare_parquet(path: str) -> int:
    import pyarrow.parquet as pq
    import soundfile as sf

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=["video_id", "audio"], batch_size=64):
        for rec in batch.column("audio").field("bytes").to_pylist():
            array, _ = sf.read(io.BytesIO(rec), dtype="float32")
            n += array.size > 0
    return n


def _paired(ours, base, repeat: int) -> tuple[float, float, float, float, float]:
    """Alternating runs of each: the best clips per process-CPU-second (all threads) of ours and of the
    baseline, the wall-clock ratio of the best runs, then the median clips/cpu-s of ours and of the baseline.
    CPU time is the project's measure on shared cores (the README's "How to read it"): one short wall-clock
    run says more about the neighbours than about us; the median shows a path that is fast only once."""
    cpu: dict[str, list[float]] = {"b": [], "o": []}
    wall: dict[str, list[float]] = {"b": [], "o": []}
    for _ in range(repeat):
        for fn, which in ((base, "b"), (ours, "o")):
            c0, t0 = time.process_time(), time.perf_counter()
            n = fn()
            wall[which].append(n / (time.perf_counter() - t0))
            cpu[which].append(n / max(1e-9, time.process_time() - c0))
    return (max(cpu["o"]), max(cpu["b"]), max(wall["o"]) / max(wall["b"]), statistics.median(cpu["o"]),
            statistics.median(cpu["b"]))


def _child(args: list[str]) -> dict:
    meta, media = args
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    t0 = time.perf_counter()
    n = _ours(meta, media, decode=False)
    return {"rows": n, "peak_rss_mb": peak_rss_mb(), "seconds": time.perf_counter() - t0}


def _run_child(meta: str, media: str) -> dict:
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", meta, media], capture_output=True, text=True,
                          env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size: str) -> list[Result]:
    n_clips = {"smoke": 24, "default": 300, "full": 600}[size]  # 150 clips (0.3 s a run) swung 0.72-0.91
    small_mb, big_mb = {"smoke": (8, 80), "default": (100, 1000), "full": (100, 1000)}[size]
    repeat = 1 if size == "smoke" else 7
    results: list[Result] = []
    work = tempfile.mkdtemp(prefix="avsets-bench-sources-")
    try:
        blobs = [_flac(seed=s) for s in range(8)]
        ids = random_ids(n_clips, seed=3)
        meta = _meta(os.path.join(work, "a"), ids)
        tgz = os.path.join(work, "a", "vggsound_00.tar.gz")
        _targz(tgz, ids, blobs)
        _ours(meta, tgz)  # warm: imports and first-use costs are not streaming speed
        ours, base, wall, ours_med, base_med = _paired(lambda: _ours(meta, tgz), lambda: _bare_tar(tgz), repeat)
        ratio = ours / base
        results.append(Result(f"tar.gz mirror streaming + decode, {n_clips} FLAC clips", ours, base, "clips/cpu-s",
                              ratio, ">= 0.8x", ratio >= 0.8, f"baseline: tarfile r|gz + soundfile; wall {wall:.2f}",
                              ours_median=ours_med, baseline_median=base_med))

        import pyarrow as pa
        import pyarrow.parquet as pq

        pq_path = os.path.join(work, "a", "bal_train-00000.parquet")
        recs = [{"video_id": y, "audio": {"bytes": blobs[i % len(blobs)], "path": f"audio/bal_train/{y}.flac"},
                 "labels": ["/m/x"], "human_labels": ["x"]} for i, y in enumerate(ids)]
        pq.write_table(pa.Table.from_pylist(recs), pq_path, row_group_size=64)
        ours, base, wall, ours_med, base_med = _paired(lambda: _ours(meta, pq_path), lambda: _bare_parquet(pq_path),
                                                       repeat)
        ratio = ours / base
        results.append(Result(f"Parquet mirror streaming + decode, {n_clips} FLAC clips", ours, base, "clips/cpu-s",
                              ratio, ">= 0.8x", ratio >= 0.8, f"baseline: iter_batches + soundfile; wall {wall:.2f}",
                              ours_median=ours_med, baseline_median=base_med))

        rss = {}
        for mb in (small_mb, big_mb):
            n = max(8, int(mb * 1e6 / len(blobs[0])))
            sub = os.path.join(work, f"rss{mb}")
            big_ids = random_ids(n, seed=mb)
            m = _meta(sub, big_ids)
            path = os.path.join(sub, "vggsound_00.tar.gz")
            _targz(path, big_ids, blobs)
            got = _run_child(m, path)
            assert got["rows"] == n, got
            rss[mb] = (got, os.path.getsize(path) / 1e6)
            os.unlink(path)
        (small, small_size), (big, big_size) = rss[small_mb], rss[big_mb]
        growth = big["peak_rss_mb"] / small["peak_rss_mb"]
        results.append(Result(f"peak RSS streaming {big_size:.0f} MB vs {small_size:.0f} MB tar.gz",
                              big["peak_rss_mb"], small["peak_rss_mb"], "MB", growth, "<= 1.2x", growth <= 1.2,
                              f"fresh subprocesses; {big['rows']} rows in {big['seconds']:.1f} s"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    bench_main(run, "media sources: archive-order streaming", child=_child, child_nargs=2)
