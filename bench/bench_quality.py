"""``avsets quality`` benchmark: CPU of the quality pass vs decoding, the FFmpeg-filter alternative, memory.

Rows (ratios from one run, CPU seconds of this process, so the other load on these 2 shared cores
disturbs them little):

1. measure: the quality measures of N 10-s H.264+AAC clips (640x360, 25 fps, real footage: the chaplin
   fixture's frames and sound, looped to 10 s) vs decoding the same clips' audio and video at native size
   with avsets' decoders (``decode_audio`` + ``decode_video``: the per-clip work of ``avsets.decode``).
   Target <= 1.5x. Both sides run alternately ``repeat`` times; the minimum is the ratio, the median is
   printed beside it; clips/s of one core in the note.
2. filters: the same measures made by FFmpeg's filters through PyAV's ``av.filter.Graph`` (freezedetect,
   blackdetect, scdet on the frames; asetnsamples + astats per 100-ms window on the audio) vs ours.
   Informative (no target): it is the measurement behind the choice of NumPy (docs/quality.md); the note
   says whether both give the same flags on the clip.
3. pass: ``run_quality`` over a VGGSound corpus of 4N such clips (whole pipeline: metadata, folder,
   table), clips/s with ``--num-proc 2`` from the first finished clip to the last (start-up apart: it is
   in the note). Informative.
4. memory: peak RSS (VmHWM of a fresh subprocess) of the pass over 1k vs 10k tiny clips (0.2-s FLAC,
   one file hard-linked under 10k names); target <= 1.2x (smoke: 100 vs 400, so CI stays fast). Measured
   beside it once: iterating the same corpus with ``load_dataset(streaming=True, decode=False)`` alone grows
   189.5 -> 207.8 MB from 1k to 10k rows, the pass 198.3 -> 220.1 MB: the pass adds ~4 MB per 9k clips.

Run: ``python bench/bench_quality.py [--smoke | --full]``.
"""

from __future__ import annotations

import fractions
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHAPLIN = ROOT / "tests" / "data" / "real" / "h264_aac_chaplin_6s.mp4"
SIZES = {  # clips for rows 1-3, repeats, memory row small/big
    "smoke": (2, 1, 100, 400),
    "default": (6, 5, 1000, 10000),
    "full": (12, 7, 1000, 10000),
}


# ---------------------------------------------------------------------------------------------- media


def make_clip(path: str) -> None:
    """A 10-s 640x360 25-fps H.264 + AAC clip of real footage: chaplin's 6 s, then its frames backwards."""
    import av
    import numpy as np

    with av.open(str(CHAPLIN)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(CHAPLIN)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)  # (2, n) fltp
    seq = frames + frames[::-1]
    sr = 44100
    audio = np.concatenate([audio, audio[:, ::-1]], axis=1)[:, : 10 * sr].astype(np.float32)
    with av.open(path, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "23", "g": "50"}
        a = out.add_stream("aac", rate=sr, layout="stereo")
        for i in range(250):
            f = av.VideoFrame.from_ndarray(seq[i % len(seq)], format="rgb24")
            f.pts, f.time_base = i, fractions.Fraction(1, 25)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        for i in range(0, audio.shape[1], 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, i:i + 1024]), format="fltp", layout="stereo")
            f.sample_rate, f.pts, f.time_base = sr, i, fractions.Fraction(1, sr)
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)


def clip_path() -> str:
    sys.path.insert(0, str(HERE))
    from _perf import cached

    return cached("quality_chaplin_10s_v1.mp4", make_clip)


# ------------------------------------------------------------------------------ FFmpeg filter variant


def _drain(graph: Any, out: list) -> None:
    import av

    while True:
        try:
            out.append(graph.pull())
        except (av.BlockingIOError, av.EOFError):
            return


def measure_ffmpeg(path: str, *, sample: bool = True, silence_db: float = -60.0, still_db: float = -48.0,
                   freeze_s: float = 0.3
                   ) -> dict[str, float]:
    """The quality measures by FFmpeg's own filters, read from ``Frame.metadata`` (PyAV >= 18.1).

    ``sample``: ``fps=4,scale=64:-2`` first (the sampling ours uses); else the filters see every native frame.
    ``still_db`` -48 dB is our still threshold (1.0 of 255) in freezedetect's units.
    """
    import av
    import av.filter

    with av.open(path) as c:
        vs, as_ = c.streams.video[0], c.streams.audio[0]
        vg = av.filter.Graph()
        chain = [vg.add_buffer(template=vs)]
        if sample:
            chain += [vg.add("fps", "4"), vg.add("scale", "64:-2")]
        chain += [vg.add("freezedetect", f"n={still_db}dB:d={freeze_s}"),
                  vg.add("blackdetect", "d=0:pic_th=0.98:pix_th=0.10"),
                  vg.add("scdet", "threshold=10"), vg.add("buffersink")]
        vg.link_nodes(*chain).configure()
        ag = av.filter.Graph()
        win = int(round(0.1 * as_.codec_context.sample_rate))
        achain = [ag.add_abuffer(template=as_), ag.add("asetnsamples", f"n={win}:p=0"),
                  ag.add("astats", "metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level+Peak_level"),
                  ag.add("abuffersink")]
        ag.link_nodes(*achain).configure()
        vout: list = []
        aout: list = []
        for packet in c.demux(vs, as_):
            for frame in packet.decode():
                if packet.stream is vs:
                    vg.push(frame)
                    _drain(vg, vout)
                else:
                    ag.push(frame)
                    _drain(ag, aout)
        vg.push(None)
        _drain(vg, vout)
        ag.push(None)
        _drain(ag, aout)
    times = [float(f.pts * f.time_base) for f in vout]
    step = (times[-1] - times[0]) / max(1, len(times) - 1)
    span = times[-1] - times[0] + step
    frozen = black = 0.0
    freeze_at = black_at = None
    cuts = 0
    for f in vout:
        md = f.metadata
        if "lavfi.freezedetect.freeze_start" in md:
            freeze_at = float(md["lavfi.freezedetect.freeze_start"])
        if "lavfi.freezedetect.freeze_end" in md and freeze_at is not None:
            frozen += float(md["lavfi.freezedetect.freeze_end"]) - freeze_at
            freeze_at = None
        if "lavfi.black_start" in md:
            black_at = float(md["lavfi.black_start"])
        if "lavfi.black_end" in md and black_at is not None:
            black += float(md["lavfi.black_end"]) - black_at
            black_at = None
        if "lavfi.scd.time" in md:
            cuts += 1
    end = times[-1] + step
    frozen += (end - freeze_at) if freeze_at is not None else 0.0
    black += (end - black_at) if black_at is not None else 0.0
    levels = [float(f.metadata.get("lavfi.astats.Overall.RMS_level", "-inf")) for f in aout]
    return {
        "silent_fraction": sum(lv < silence_db for lv in levels) / max(1, len(levels)),
        "still_fraction": min(1.0, frozen / span) if span else 0.0,
        "black_fraction": min(1.0, black / span) if span else 0.0,
        "scene_cuts": cuts,
    }


# ------------------------------------------------------------------------------------------ the rows


def _cpu_runs(fns: dict[str, Any], repeat: int) -> dict[str, list[float]]:
    """CPU seconds of each function, alternating, after one warm-up each."""
    import gc

    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            gc.collect()
            c0 = time.process_time()
            fn()
            out[k].append(time.process_time() - c0)
    return out


def _vgg_corpus(root: Path, media_file: str, n: int, ext: str) -> tuple[Path, Path]:
    """A VGGSound metadata folder of ``n`` rows and a media folder of ``n`` hard links to ``media_file``."""
    import importlib.resources

    meta, media = root / "meta", root / "media"
    meta.mkdir(parents=True)
    media.mkdir()
    shutil.copy(str(importlib.resources.files("avsets.vggsound") / "sample" / "stat.csv"), meta / "stat.csv")
    lines = []
    for i in range(n):
        ytid = f"q{i:010d}"
        lines.append(f"{ytid},{i % 100},dog barking,{'test' if i % 10 == 0 else 'train'}\n")
        os.link(media_file, media / f"{ytid}_{i % 100:06d}.{ext}")
    (meta / "vggsound.csv").write_text("".join(lines))
    return meta, media


def child_memory(args: list[str]) -> dict[str, float]:
    """In a fresh process: the pass over the corpus in ``args`` (meta, media, out); its VmHWM."""
    sys.path.insert(0, str(HERE))
    from _common import peak_rss_mb

    from avsets.ops.quality.run import run_quality

    t0 = time.perf_counter()
    report = run_quality("vggsound", data_dir=args[0], media_dir=args[1], out=args[2], quiet=True)
    return {"rss_mb": peak_rss_mb(), "clips": report.measured, "seconds": time.perf_counter() - t0}


def _memory(n: int, tmp: Path, flac: str) -> dict[str, float]:
    meta, media = _vgg_corpus(tmp / f"mem{n}", flac, n, "flac")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp / f"cache{n}"), "AVSETS_SOURCE_CACHE": str(tmp / f"src{n}")}
    proc = subprocess.run([sys.executable, __file__, "--child", str(meta), str(media), str(tmp / f"q{n}.parquet")],
                          capture_output=True, text=True, timeout=3000, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size: str = "default") -> list:
    """``bench/run`` rows (see the module doc)."""
    sys.path.insert(0, str(HERE))
    import numpy as np
    import soundfile as sf
    from _common import Result

    from avsets.media.decoding import decode_audio, decode_video
    from avsets.ops.quality.measure import measure_clip
    from avsets.ops.quality.run import run_quality

    n, repeat, small, big = SIZES[size]
    clip = clip_path()
    paths = [clip] * n

    def ours() -> None:
        for p in paths:
            measure_clip(p, duration=10.0)

    def decode() -> None:
        for p in paths:
            decode_audio(p, duration=10.0, mono=False)
            decode_video(p, duration=10.0)

    def filters() -> None:
        for p in paths:
            measure_ffmpeg(p)

    runs = _cpu_runs({"ours": ours, "decode": decode, "filters": filters}, repeat)
    lo = {k: min(v) for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    r1 = lo["ours"] / lo["decode"]
    mine = measure_clip(clip, duration=10.0)
    theirs = measure_ffmpeg(clip)
    keys = ("silent_fraction", "still_fraction", "black_fraction")
    gap = max(abs(mine[k] - theirs[k]) for k in keys)
    same = all((mine[k] >= 0.9) == (theirs[k] >= 0.9) for k in keys)
    rows = [
        Result(f"quality: measure {n} 10-s 640x360 clips vs avsets decode", lo["ours"], lo["decode"], "cpu s", r1,
               "<= 1.5", r1 <= 1.5, f"median {med['ours'] / med['decode']:.2f}x; {n / lo['ours']:.1f} clips/s "
               f"on one core (decode {n / lo['decode']:.1f})"),
        Result("quality: FFmpeg filter graph vs ours (same sampling)", lo["filters"], lo["ours"], "cpu s",
               lo["filters"] / lo["ours"], "info", True,
               f"median {med['filters'] / med['ours']:.2f}x; same flags: {same}, fractions differ <= {gap:.3f}"),
    ]
    with tempfile.TemporaryDirectory(prefix="avsets-bench-quality-") as tmp_s:
        tmp = Path(tmp_s)
        meta, media = _vgg_corpus(tmp / "pass", clip, 4 * n, "mp4")
        stamps: list[float] = []
        t0 = time.perf_counter()
        report = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=str(tmp / "q.parquet"),
                             quiet=True, num_proc=2, cache_dir=str(tmp / "cache"),
                             on_row=lambda _row: stamps.append(time.perf_counter()))
        wall = time.perf_counter() - t0
        steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
        rows.append(Result(f"quality: whole pass, {report.measured} clips, --num-proc 2", steady,
                           float("nan"), "clips/s", float("nan"), "info", report.errors == 0,
                           f"first to last clip; {report.measured / wall:.2f} clips/s over {wall:.1f} s incl. "
                           f"start-up (metadata, 2 worker processes); errors {report.errors}"))
        flac = str(tmp / "tiny.flac")
        sf.write(flac, (0.1 * np.sin(np.arange(1600) / 5.0)).astype(np.float32), 8000)
        a, b = _memory(small, tmp, flac), _memory(big, tmp, flac)
        ratio = b["rss_mb"] / a["rss_mb"]
        rows.append(Result(f"quality: peak RSS, {big} vs {small} clips", b["rss_mb"], a["rss_mb"], "MB", ratio,
                           "<= 1.2", ratio <= 1.2, f"fresh subprocesses; {big} clips in {b['seconds']:.1f} s "
                           f"({b['clips'] / b['seconds']:.0f} clips/s, one process)"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child_memory(sys.argv[2:])))
    else:
        sys.path.insert(0, str(HERE))
        from _common import bench_main

        bench_main(run, "avsets quality benchmark")
