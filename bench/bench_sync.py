"""``avsets push --sync`` benchmark: removing clips from a published export uploads only the shards that held them.

An export of ``--shards`` shards (``--per-shard`` trimmed FLAC clips each) is pushed to the loopback Hub
(``tests/hub_server.py``, the real ``huggingface_hub`` client), then ``sync_hub`` removes ``--remove`` clips
taken from different shards. The Hub counts every request body it receives. Target: the bytes uploaded by
the sync are at most the size of the shards that held the removed clips plus the card, the manifest and
``takedowns.csv`` (ratio <= 1). Printed beside it: uploaded bytes as a share of the whole export, and the
bytes the sync downloaded (``id`` columns of every shard by ranged reads + the touched shards) as a share.

Run: ``python bench/bench_sync.py [--shards 50] [--per-shard 5] [--seconds 10] [--remove 10] [--smoke]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN_ARGS = {"smoke": ["--smoke"], "default": [], "full": ["--per-shard", "20"]}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=50)
    ap.add_argument("--per-shard", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--remove", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="10 shards of 2 short clips, 3 removed")
    args = ap.parse_args(argv)
    if args.smoke:
        args.shards, args.per_shard, args.seconds, args.remove = 10, 2, 2.0, 3
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "tests"))
    import huggingface_hub.constants as hc
    from bench_publish import make_dataset, make_media
    from hub_server import HubServer

    from avsets.ops.publish.export import export_dataset
    from avsets.ops.publish.push import push_folder
    from avsets.ops.publish.sync_hub import sync_hub
    from avsets.ops.publish.takedowns import Takedown

    saved = hc.HF_HUB_OFFLINE, hc.HF_HUB_DISABLE_XET
    hc.HF_HUB_OFFLINE, hc.HF_HUB_DISABLE_XET = False, True  # bench/run makes the process offline; this is loopback
    try:
        with tempfile.TemporaryDirectory(prefix="avsets-bench-sync-") as tmp, HubServer() as hub:
            root = Path(tmp)
            n = args.shards * args.per_shard
            paths = make_media(root / "media", n, args.seconds)
            clip = paths[0].stat().st_size
            out = root / "export"
            # each shard holds per_shard clips: the bound sits half a clip above per_shard clips' bytes
            export_dataset(make_dataset(paths, args.seconds), "bench", "default", str(out),
                           max_shard_size=int(clip * (args.per_shard + 0.5)) + 4096)
            shards = sorted((out / "data" / "default").glob("*.parquet"))
            total = sum(p.stat().st_size for p in shards)
            push_folder(out, "bench/sync", endpoint=hub.url, token="hf_bench")
            import pyarrow.parquet as pq

            ids_by_shard = {p.name: pq.read_table(p, columns=["id"])["id"].to_pylist() for p in shards}
            rng = random.Random(0)
            picked = rng.sample(sorted(ids_by_shard), min(args.remove, len(shards)))  # different shards: worst case
            gone = [rng.choice(ids_by_shard[name]) for name in picked]
            takedowns = {i: Takedown(i, "2026-01-01", "bench") for i in gone}
            before_in, before_out = hub.state.bytes_in, hub.state.bytes_out
            t0 = time.perf_counter()
            res = sync_hub("bench/sync", takedowns, endpoint=hub.url, token="hf_bench")
            seconds = time.perf_counter() - t0
            uploaded = hub.state.bytes_in - before_in
            downloaded = hub.state.bytes_out - before_out
            files = hub.files("bench/sync")
            holders = sum(p.stat().st_size for p in shards if p.name in picked)
            extras = sum(len(files[f]) for f in ("README.md", "manifests/default.json", "takedowns.csv") if f in files)
            bound = holders + extras
            # what a sync should read: the touched shards whole, the small files, and per scanned shard at
            # most two 64 KiB blocks (the footer, and the id/youtube_id column chunks at the row group's start)
            read_bound = holders + extras + len(shards) * 2 * 64 * 1024
            print(f"export: {len(shards)} shards, {n} clips, {total / 1e6:.2f} MB")
            print(f"sync removed {len(res.plan.removed)} clips from {len(res.plan.changes)} shards in {seconds:.2f} s")
            print(f"uploaded: {uploaded} bytes; bound (holding shards {holders} + card/manifest/takedowns "
                  f"{extras}): {bound} bytes; ratio {uploaded / bound:.3f}")
            print(f"uploaded / whole export: {uploaded / total:.3f}; downloaded: {downloaded} bytes, "
                  f"{downloaded / total:.3f} of the export, {downloaded / read_bound:.3f} of the read bound "
                  f"(holding shards + small files + 128 KiB per shard scanned)")
            return {"uploaded": uploaded, "bound": bound, "total": total, "downloaded": downloaded,
                    "read_bound": read_bound,
                    "shards": len(shards), "removed": len(res.plan.removed), "seconds": seconds}
    finally:
        hc.HF_HUB_OFFLINE, hc.HF_HUB_DISABLE_XET = saved


def run(size: str = "default") -> list:
    """``bench/run`` rows: uploaded bytes vs the bound (target <= 1), and the share of the export read."""
    sys.path.insert(0, str(HERE))
    from _common import Result

    m = main(RUN_ARGS[size])
    ratio = m["uploaded"] / m["bound"]
    label = f"sync: remove {m['removed']} clips from {m['shards']} shards, bytes up"
    return [
        Result(label, m["uploaded"], m["bound"], "bytes", ratio, "<= 1.0", ratio <= 1.0,
               f"baseline: holding shards + card/manifest/takedowns; {m['uploaded'] / m['total']:.2f} of export"),
        Result("sync: bytes read from the Hub, vs the read bound", m["downloaded"], m["read_bound"], "bytes",
               m["downloaded"] / m["read_bound"], "<= 1.0", m["downloaded"] <= m["read_bound"],
               f"bound: holding shards + 128 KiB/shard scanned; {m['downloaded'] / m['total']:.2f} of export"),
    ]


if __name__ == "__main__":
    main()
