"""Leakage (issue 21): fingerprinting cost, duplicate-search scaling, and the id overlap at AVSET scale.

* fingerprint: process CPU time of ``avsets.ops.leakage.store.fingerprint_row`` (decode small: 5,512 Hz mono,
  4 fps at 32x32; fingerprint both modalities) vs ``avsets.decode`` of the same rows with its defaults
  (native rate, every frame at native size), alternating, on the real fixture clips of
  ``tests/data/real/leakage`` re-encoded to 640x360 H.264 High (x264 "medium": B-frames, deblocking) + AAC,
  the format of YouTube's 360p downloads that VGGSound-style mirrors hold;
  target <= 0.5 by the median of the repeats (the minimum is printed beside it).  Two rows show the gain of
  the fingerprint's hand-written steps over what they replace, in the same run on the same audio: the
  polyphase decimator to 5,512 Hz against FFmpeg's swresample (``avsets.media.decoding.resample``), and the band
  energies transformed in cache-sized chunks against one transform of all frames.
* duplicate search: synthetic fingerprints (10-s clips: 430 audio words, 40 frame hashes) with 1% planted
  copies (8% of the bits flipped, shifted by up to 1 s), searched in a fresh subprocess per size (time and
  peak RSS); target: time per clip at the larger size <= 1.5x the smaller (close to linear), all copies found.
* overlap, reader: CPU to read the keys of generated AVSET-shaped files (the generator of
  ``bench_avset_scale``, the release layout) with ``avsets.avset10m.keys.read_keys`` vs the full parser
  (``read_file`` without captions, what the overlap read before), alternating, same rows checked; target <= 0.5.
* overlap, end to end: ``avsets overlap avset10m:all vggsound audiosetzsl ascc`` (plus the bundled real
  metadata) with its default 2 reader processes, wall and CPU (own + the readers'); baseline: the same command
  through the full parser in one process, same run, same CSV checked; target: 10.9M rows under 25 s wall
  (measured with ``--full``; smaller sizes extrapolate the CPU and spread it over 2 cores).

Run: ``python bench/bench_leakage.py [--smoke]`` or ``bench/run --only leakage``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

CLIPS = ["bbb_00.mp4", "bbb_12.mp4", "bbb_24.mp4", "chaplin_00.mp4", "smpte_00.mp4", "vwfa_00.mp4"]
SIZES = {"smoke": {"search": (2_000, 20_000), "overlap": 100_000, "repeat": 1},
         "default": {"search": (20_000, 200_000), "overlap": 1_000_000, "repeat": 3},
         "full": {"search": (20_000, 200_000), "overlap": 10_900_000, "repeat": 5}}
AVSET_ROWS = 10_900_000


# --- fingerprinting CPU vs avsets.decode --------------------------------------------------------------

def _bench_media() -> str:
    from _perf import cached
    from leakage_media import real_clip, transcode

    folder = os.path.join(tempfile.gettempdir(), "avsets-bench-leakage-v2")
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(CLIPS):
        yt = f"leakbench{i:02d}"
        cached(f"leakage2-{name}", lambda p, n=name: transcode(real_clip(n), p, seconds=6.0, size=(640, 360),
                                                               video_options={"preset": "medium", "crf": "23"}))
        dst = os.path.join(folder, f"{yt}_000000.mp4")
        if not os.path.exists(dst):
            shutil.copyfile(os.path.join(_media_cache(), f"leakage2-{name}"), dst)
    return folder


def _media_cache() -> str:
    from _perf import media_cache

    return media_cache()


def fingerprint_vs_decode(repeat: int) -> tuple[list[float], list[float], int]:
    """CPU seconds of (fingerprinting, avsets.decode) of the same rows, one entry per repeat."""
    from helpers import writable_sample

    import avsets
    from avsets.ops.leakage.store import fingerprint_row

    media = _bench_media()
    root = tempfile.mkdtemp(prefix="avsets-bench-leak-")
    try:
        meta = writable_sample("vggsound", os.path.join(root, "meta"))
        ids = sorted(f.split("_")[0] for f in os.listdir(media))
        (meta / "vggsound.csv").write_text("".join(f"{y},0,playing bass guitar,test\r\n" for y in ids))
        ds = avsets.load_dataset("vggsound", split="test", data_dir=str(meta), media_dir=media, decode=False,
                                 cache_dir=os.path.join(root, "cache"))
        rows = [ds[i] for i in range(len(ds))]
        decoded = avsets.decode(ds)

        def ours() -> None:
            for r in rows:
                fp = fingerprint_row(r)
                assert fp.error is None and fp.audio is not None and fp.video is not None

        def base() -> None:
            for i in range(len(decoded)):
                assert decoded[i]["video"] is not None

        ours(), base()  # warm-up
        t_ours, t_base = [], []
        for _ in range(repeat):
            for fn, acc in ((ours, t_ours), (base, t_base)):
                c0 = time.process_time()
                fn()
                acc.append(time.process_time() - c0)
        return t_ours, t_base, len(rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fingerprint_steps(repeat: int) -> list:
    """Rows: the fingerprint's hand-written audio steps against what they replace, CPU ms over the bench clips'
    audio (decoded once, mono), alternating, ``repeat`` rounds."""
    import numpy as np
    from _common import Result, Seconds

    from avsets.media.decoding import decode_audio, resample
    from avsets.ops.leakage import audio_fp

    media = _bench_media()
    clips = [decode_audio(os.path.join(media, f), None, mono=True) for f in sorted(os.listdir(media))]
    at_rate = [audio_fp.to_fingerprint_rate(x, sr) for x, sr in clips]
    edges = audio_fp._EDGES

    def whole_transform(x: np.ndarray) -> np.ndarray:  # what the chunked loop replaced
        frames = np.lib.stride_tricks.sliding_window_view(x, audio_fp.FRAME)[::audio_fp.HOP]
        spec = np.fft.rfft(frames * audio_fp._WINDOW, axis=1)[:, edges[0]:edges[-1]]
        return np.add.reduceat(spec.real ** 2 + spec.imag ** 2, edges[:-1] - edges[0], axis=1)

    pairs = {
        "decimate": (lambda: [audio_fp.to_fingerprint_rate(x, sr) for x, sr in clips],
                     lambda: [resample(x[None], sr, audio_fp.SAMPLING_RATE) for x, sr in clips]),
        "bands": (lambda: [audio_fp.audio_fingerprint(x) for x in at_rate],
                  lambda: [whole_transform(x) for x in at_rate]),
    }
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
    for fns in pairs.values():  # warm-up
        fns[0](), fns[1]()
    for _ in range(repeat):
        for k, fns in pairs.items():
            for fn, acc in zip(fns, times[k], strict=True):
                c0 = time.process_time()
                fn()
                acc.append((time.process_time() - c0) * 1e3)
    rows = []
    for k, name, base in (("decimate", "44.1 kHz -> 5,512 Hz: polyphase decimator", "swresample"),
                          ("bands", "whole fingerprint, band energies in chunks of 64",
                           "band energies alone, all frames at once")):
        ours, ref = times[k]
        ratio = statistics.median(ours) / statistics.median(ref)
        rows.append(Result(f"leakage: {name}", Seconds(ours), Seconds(ref), "ms cpu", ratio, "median < 1",
                           ratio < 1, f"{len(clips)} clips of 6 s; baseline: {base}; ratio by median"))
    return rows


# --- duplicate search on synthetic fingerprints ---------------------------------------------------------

def synthetic(n: int, seed: int = 0):
    """``n`` clips of random fingerprints (flat, as a fingerprint table gives them); 1% are copies of another
    clip: 8% of the audio bits and 3% of the frame-hash bits flipped, shifted by up to 1 s (zeros past the end:
    no information)."""
    import numpy as np

    from avsets.ops.leakage.index import Packed

    rng = np.random.default_rng(seed)
    wa, wv = 430, 40
    audio = rng.integers(1, 2**32, (n, wa), dtype=np.uint32)  # no 64-bit temporary: RSS is the search's
    video = rng.integers(1, 2**63, (n, wv), dtype=np.uint64)
    planted = []
    for k in range(n // 100):
        src, dst = 2 * k, n - 1 - k
        shift = int(rng.integers(0, 44))
        a = audio[src][shift:].copy()
        a ^= (rng.random((a.size, 32)) < 0.08).dot(1 << np.arange(32, dtype=np.uint64)).astype(np.uint32)
        v = video[src][shift // 11:].copy()
        v ^= (rng.random((v.size, 64)) < 0.03).dot(1 << np.arange(64, dtype=np.uint64)).astype(np.uint64)
        audio[dst] = np.r_[a, np.zeros(wa - a.size, np.uint32)]
        video[dst] = np.r_[v, np.zeros(wv - v.size, np.uint64)]
        planted.append((src, dst))
    present = np.ones(n, bool)
    return (Packed(audio.ravel(), np.arange(n + 1, dtype=np.int64) * wa, present),
            Packed(video.ravel(), np.arange(n + 1, dtype=np.int64) * wv, present), planted)


def _search_child(n: int) -> None:
    from _common import peak_rss_mb

    from avsets.ops.leakage.index import find_duplicates

    audio, video, planted = synthetic(n)
    input_mb = (audio.values.nbytes + video.values.nbytes) / 1e6
    before_mb = peak_rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    matches, candidates = find_duplicates(audio, video)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    found = {(m.i, m.j) for m in matches}
    print(json.dumps({"n": n, "seconds": wall, "cpu": cpu, "candidates": candidates, "matches": len(matches),
                      "recall": len(found & set(planted)) / max(1, len(planted)), "peak_rss_mb": peak_rss_mb(), "input_mb": input_mb,
                      "before_mb": before_mb}))


def search(n: int) -> dict:
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--search-child", str(n)], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"search child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- overlap at AVSET scale -------------------------------------------------------------------------------

def _distinct_files(files: list[str]) -> list[tuple[str, int]]:
    """One path per distinct file (the generator hard-links a few variants) and how many paths it has."""
    seen: dict[int, list] = {}
    for f in files:
        seen.setdefault(os.stat(f).st_ino, [f, 0])[1] += 1
    return [(f, n) for f, n in seen.values()]


def reader_vs_parser(files: list[str], repeat: int) -> tuple[list[float], list[float]]:
    """CPU seconds to read every AVSET file's keys: ``avsets.avset10m.keys.read_keys`` vs the full parser
    (``read_file`` without captions, what the overlap used before), alternating, one file at a time, per run."""
    from avsets.avset10m.keys import read_keys
    from avsets.avset10m.metadata import ReadOptions, read_file
    from avsets.metadata.readers import RowErrors

    distinct = _distinct_files(files)
    keys, full = [], []
    for _ in range(repeat):
        k = f = 0.0
        for path, count in distinct:
            c0 = time.process_time()
            got = read_keys(path)
            c1 = time.process_time()
            want = read_file(path, ReadOptions(with_text=False), RowErrors())
            c2 = time.process_time()
            assert got.equals(want.select(["id", "youtube_id", "start", "end"])), path
            k += (c1 - c0) * count
            f += (c2 - c1) * count
        keys.append(k)
        full.append(f)
    return keys, full


def _timed_overlap(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds of this process and its reader processes, wall seconds) of one ``avsets`` command."""
    import resource

    from avsets.cli.app import main

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    assert main(argv) == 0
    return cpu() - c0, time.perf_counter() - t0


def _pool_start() -> tuple[float, float]:
    """(CPU, wall) seconds of starting the overlap's 2 reader processes with nothing to read."""
    import resource

    from avsets.avset10m.keys import fast_keys
    from avsets.ops.leakage.units import _pool_map

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    assert _pool_map(fast_keys, [b"", b""], 2) == [None, None]
    return cpu() - c0, time.perf_counter() - t0


def overlap_at_scale(rows: int, repeat: int) -> dict:
    """The key reader vs the full parser, and ``avsets overlap avset10m:all vggsound audiosetzsl ascc`` end to
    end: with the key reader in 2 processes (the default) and, as the baseline, through the full parser in
    this process (the path before the key reader), each checked to write the same CSV."""
    import importlib.resources

    from bench_avset_scale import make_corpus

    from avsets.audiosetzsl.metadata import bundled_archive, extract_archive
    from avsets.avset10m.avset10m import AVSET10M
    from avsets.ops.leakage.units import MIN_POOL_SHARDS

    work = tempfile.mkdtemp(prefix="avsets-bench-overlap-")
    try:
        avset = os.path.join(work, "avset")
        files = make_corpus(avset, rows)
        n = len(files) * 25_000
        keys, full = reader_vs_parser(files, repeat)
        zsl = extract_archive(bundled_archive(), os.path.join(work, "zsl"))
        vgg = str(importlib.resources.files("avsets.vggsound") / "sample")
        ascc = str(importlib.resources.files("avsets.ascc") / "sample")
        dirs = ["--data-dir", f"avset10m={avset}", "--data-dir", f"vggsound={vgg}", "--data-dir",
                f"audiosetzsl={zsl}", "--data-dir", f"ascc={ascc}"]
        fixed_cpu, fixed_wall = _timed_overlap(["overlap", "vggsound", "audiosetzsl", "ascc", *dirs,
                                                "--out", os.path.join(work, "f.csv")])
        spec = ["overlap", "avset10m:all", "vggsound", "audiosetzsl", "ascc", *dirs]
        cpu, wall = _timed_overlap([*spec, "--out", os.path.join(work, "o.csv")])
        old_reader = AVSET10M._key_reader
        AVSET10M._key_reader = lambda self: None  # the full parser, one file at a time, in this process
        try:
            base_cpu, base_wall = _timed_overlap([*spec, "--workers", "1", "--out", os.path.join(work, "b.csv")])
        finally:
            AVSET10M._key_reader = old_reader
        with open(os.path.join(work, "o.csv"), "rb") as a, open(os.path.join(work, "b.csv"), "rb") as b:
            assert a.read() == b.read(), "the key reader changed the overlap CSV"
        return {"rows": n, "keys": keys, "pool_start": _pool_start(), "pooled": len(files) >= MIN_POOL_SHARDS, "full": full, "cpu": cpu, "wall": wall, "base_cpu": base_cpu,
                "base_wall": base_wall, "fixed_cpu": fixed_cpu, "fixed_wall": fixed_wall,
                "load": os.getloadavg()[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def overlap_rows(rows: int, repeat: int) -> list:
    """The overlap rows of the ``bench/run`` table: reader vs parser, and the command end to end."""
    from _common import Result, Seconds

    m = overlap_at_scale(rows, repeat)
    keys, full, n = Seconds(m["keys"]), Seconds(m["full"]), m["rows"]
    scale = AVSET_ROWS / n
    out = [Result(f"leakage: AVSET-10M key reader vs full parser, {n:,} rows", keys, full, "s cpu", keys / full,
                  "<= 0.5", keys / full <= 0.5,
                  f"median {keys.median:.2f} vs {full.median:.2f} s (ratio {keys.median / full.median:.2f}); "
                  f"10.9M rows: {keys * scale:.0f} vs {full * scale:.0f} s CPU; same rows checked")]
    cpu_full = m["fixed_cpu"] + (m["cpu"] - m["fixed_cpu"]) * scale
    if n >= AVSET_ROWS:
        measured, wall_full = "measured", m["wall"]
    else:  # the reader processes' start is paid once, not per row: scale the rest, spread over 2 cores
        start_cpu, start_wall = m["pool_start"]
        paid = start_cpu if m["pooled"] else 0.0  # a run of fewer than MIN_POOL_SHARDS files starts no readers
        cpu_full = m["fixed_cpu"] + start_cpu + (m["cpu"] - m["fixed_cpu"] - paid) * scale
        measured = f"extrapolated, {start_wall:.1f} s of reader start kept fixed"
        wall_full = m["fixed_wall"] + start_wall + (cpu_full - m["fixed_cpu"] - start_cpu) / 2
    out.append(Result(f"leakage: overlap avset10m:all ({n:,} rows) + 3 corpora, wall", m["wall"], m["base_wall"], "s",
                      m["wall"] / m["base_wall"], "10.9M < 25 s", wall_full < 25,
                      f"10.9M rows: {wall_full:.0f} s wall, {cpu_full:.0f} s CPU ({measured}); CPU {m['cpu']:.1f} vs "
                      f"{m['base_cpu']:.1f} s; baseline: full parser in-process; same CSV; "
                      f"load avg {m['load']:.1f} on {os.cpu_count()} cores"))
    return out


def run(size: str = "default") -> list:
    """Rows of the one ``bench/run`` table."""
    from _common import Result, Seconds

    cfg = SIZES[size]
    out = []
    t_ours, t_base, n = fingerprint_vs_decode(max(cfg["repeat"], 5) if size != "smoke" else 1)
    ratio = statistics.median(t_ours) / statistics.median(t_base)
    out.append(Result(f"leakage: fingerprint CPU vs avsets.decode, {n} clips", Seconds(t_ours), Seconds(t_base),
                      "s cpu", ratio, "median <= 0.5", ratio <= 0.5,
                      f"ratio by median (by minimum {min(t_ours) / min(t_base):.2f}); 640x360 H.264 High+AAC, 6 s"))
    out.extend(fingerprint_steps(5 if size != "smoke" else 2))
    small, big = (search(n) for n in cfg["search"])
    growth = (big["cpu"] / big["n"]) / (small["cpu"] / small["n"])
    for r in (small, big):
        out.append(Result(f"leakage: duplicate search, {r['n']:,} synthetic clips", r["seconds"], float("nan"), "s",
                          float("nan"), "recall 1", r["recall"] == 1.0,
                          f"CPU {r['cpu']:.1f} s; peak RSS {r['peak_rss_mb']:.0f} MB ({r['before_mb']:.0f} before the "
                          f"search); {r['candidates']:,} candidates, "
                          f"{r['matches']:,} pairs; recall {r['recall']:.3f}"))
    out.append(Result(f"leakage: search CPU per clip {big['n']:,} vs {small['n']:,}", big["cpu"] / big["n"] * 1e6,
                      small["cpu"] / small["n"] * 1e6, "us/clip", growth, "<= 1.5", growth <= 1.5,
                      f"peak RSS {big['peak_rss_mb']:.0f} vs {small['peak_rss_mb']:.0f} MB (inputs "
                      f"{big['input_mb']:.0f} vs {small['input_mb']:.0f} MB)"))
    out.extend(overlap_rows(cfg["overlap"], cfg["repeat"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--search-child", type=int)
    args = ap.parse_args()
    if args.search_child:
        _search_child(args.search_child)
        return
    from _common import print_table

    print_table(run("smoke" if args.smoke else "full" if args.full else "default"), "leakage")


if __name__ == "__main__":
    main()
