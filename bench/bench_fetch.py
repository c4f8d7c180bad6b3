"""Fetch targets (issue 5): clips/s with 1 vs 4 workers, and bytes moved per clip vs the whole file.

Against the tests' loopback mirror (``tests/fetch_server.py``: a real HTTP server with Range support serving
PyAV-made 5-minute H.264 + AAC videos).  Two server settings: no added latency (the cost is then our CPU
work: ffmpeg's decode/encode), and 30 ms before every response body (a nearby CDN), where workers overlap
waiting and the speed-up shows.  Baselines are measured in the same run: 1 worker for the speed-up, the
whole file's size for bytes.

Run: ``python bench/bench_fetch.py [--smoke|--full]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from _common import Result, machine, print_table  # noqa: E402
from fetch_server import Behavior, start_server  # noqa: E402

from avsets.core.segments import Segment  # noqa: E402
from avsets.ops.fetch import fetch  # noqa: E402

SIZES = {"smoke": 12, "default": 32, "full": 96}
REPEAT = {"smoke": 1, "default": 2, "full": 3}


def _segments(n: int, tag: str) -> list[Segment]:
    return [Segment(f"{tag}{i:0{11 - len(tag)}d}", float((i * 37) % 280), float((i * 37) % 280) + 10) for i in range(n)]


def clips_per_second(srv, n: int, workers: int, delay: float, kinds: dict, repeat: int = 1) -> tuple[float, float]:
    """Best and median of ``repeat`` runs (the best is the least disturbed by other load on a shared 2-core
    machine; the median shows a path that is fast only once)."""
    rates = [_clips_per_second(srv, n, workers, delay, kinds, f"w{workers}d{int(delay * 1000)}r{r}")
             for r in range(repeat)]
    return max(rates), statistics.median(rates)


def _clips_per_second(srv, n: int, workers: int, delay: float, kinds: dict, tag: str) -> float:
    segs = _segments(n, tag)
    for s in segs:
        srv.behaviors[s.youtube_id] = Behavior(media="long", delay=delay)
    out = tempfile.mkdtemp(prefix="avsets-bench-fetch-")
    try:
        t0 = time.perf_counter()
        report = fetch(segs, out=out, workers=workers, source_url_template=srv.media_template(), **kinds)
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if report.counts.get("ok", 0) != n:
        raise RuntimeError(f"benchmark fetch failed: {report.summary()}")
    return n / elapsed


def bytes_per_clip(srv, kinds: dict, n: int = 3) -> tuple[float, int]:
    segs = _segments(n, "bytes")
    for s in segs:
        srv.behaviors[s.youtube_id] = Behavior(media="long")
    srv.reset_counters()
    out = tempfile.mkdtemp(prefix="avsets-bench-fetch-")
    try:
        report = fetch(segs, out=out, workers=1, source_url_template=srv.media_template(), **kinds)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if report.counts.get("ok", 0) != n:
        raise RuntimeError(f"benchmark fetch failed: {report.summary()}")
    sent = sum(srv.bytes_sent[s.youtube_id] for s in segs)
    return sent / n, srv.file_size(segs[0].youtube_id)


def run(size: str) -> list[Result]:
    n, repeat = SIZES[size], REPEAT[size]
    srv = start_server()
    results = []
    try:
        _clips_per_second(srv, 2, 1, 0.0, dict(audio=True, video=True), "warmup")  # imports, first ffmpeg runs
        for label, kinds in (("audio FLAC", dict(audio=True)), ("video mp4 (copy)", dict(video=True))):
            for delay in (0.0, 0.03):
                one, one_med = clips_per_second(srv, n, 1, delay, kinds, repeat)
                four, four_med = clips_per_second(srv, n, 4, delay, kinds, repeat)
                target = 1.2 if delay == 0 else 2.0
                ratio = four / one
                results.append(Result(f"clips/s 4 vs 1 workers, {label}, {int(delay * 1000)} ms/response", four, one,
                                      "clips/s", ratio, f">= {target}", ratio >= target, ours_median=four_med,
                                      baseline_median=one_med))
        for label, kinds in (("audio FLAC", dict(audio=True)), ("video mp4 (copy)", dict(video=True)),
                             ("FLAC + mp4 --exact", dict(audio=True, video=True, exact=True))):
            per_clip, whole = bytes_per_clip(srv, kinds)
            frac = per_clip / whole
            results.append(Result(f"bytes sent per 10-s clip of a 5-min video, {label}", per_clip, whole, "bytes",
                                  frac, "<= 0.25", frac <= 0.25, "baseline: whole file"))
    finally:
        srv.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--full", action="store_true")
    a = parser.parse_args()
    size = "smoke" if a.smoke else "full" if a.full else "default"
    print(f"machine: {machine()}; {SIZES[size]} clips per measurement")
    print_table(run(size), "fetch (issue 5)")


if __name__ == "__main__":
    main()
