"""Against the field (issues 7 and 13): avsets' decoding vs torchcodec (what stock ``datasets`` decodes with).

Audio through ``datasets`` (issue 7): the same trimmed 10-s clips (16 kHz mono, 16-bit; FLAC and WAV), one
``datasets.Dataset`` of paths each, read row by row: stock ``Audio()`` (torchcodec's ``AudioDecoder``) against
``avsets.decode`` on the same dataset cast to ``Audio(decode=False)``. Target: clips/s ratio > 1.

Video and audio files (issue 13, clips in ``_field.py``), CPU time of the fastest alternating run, ratio =
avsets / torchcodec: 8 frames and all frames of 10-s 360p25 / 720p30 H.264 clips with keyframes every 2 s and
7 s, 8 frames of a 10-s VP9 WebM segment at 4:00, and 8 rows x 8 frames through ``datasets`` (stock
``Video()`` vs ``avsets.decode``): target <= 0.90. A short whole ``.m4a`` (AAC) and ``.webm`` (Opus):
target <= 1.00. All frames against ``ffmpeg -threads 1`` decoding to rawvideo rgb24 (no torch needed):
target <= 1.20. Needs torch + torchcodec (+ system FFmpeg) in this interpreter or in ``bench/.venv-torch``
(``bench/setup_torch_env.sh``); skipped with the reason otherwise.
Run: ``python bench/bench_torchcodec.py [--smoke|--full]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, bench_main, skipped  # noqa: E402
from _perf import has_torchcodec, paired, torch_python  # noqa: E402

SIZES = {"smoke": (8, 2), "default": (64, 5), "full": (256, 7)}  # clips per format, repeats
FORMATS = ("flac", "wav")


def _child(size: str) -> dict:
    """Runs where torchcodec imports: measure both formats, return clips/s (CPU and wall)."""
    import datasets
    import numpy as np

    import avsets
    from avsets.media.synth import write_audio

    n, repeat = SIZES[size]
    work = tempfile.mkdtemp(prefix="avsets-bench-tc-")
    out: dict = {"torchcodec": __import__("torchcodec").__version__}
    try:
        for fmt in FORMATS:
            paths = []
            for i in range(n):
                p = os.path.join(work, f"clip{i:04d}.{fmt}")
                write_audio(p, seconds=10.0, sr=16000, start=float(i))
                paths.append(p)
            storage = datasets.Dataset.from_dict({"audio": paths}).cast_column("audio", datasets.Audio(decode=False))
            stock = storage.cast_column("audio", datasets.Audio())
            ours = avsets.decode(storage)
            a, b = stock[0]["audio"]["array"], ours[0]["audio"]["array"]
            assert a.shape == b.shape == (160000,), (a.shape, b.shape)
            assert np.max(np.abs(np.asarray(a, np.float32) - b)) < 1e-4  # the same samples

            def read(ds) -> None:
                for row in ds:
                    row["audio"]["array"]

            t = paired({"ours": lambda o=ours: read(o), "stock": lambda s=stock: read(s)}, repeat)
            out[fmt] = {"ours_cpu": float(t["ours"].cpu), "stock_cpu": float(t["stock"].cpu),
                        "ours_cpu_median": t["ours"].cpu.median, "stock_cpu_median": t["stock"].cpu.median,
                        "ours_wall": float(t["ours"].wall), "stock_wall": float(t["stock"].wall), "n": n}
        from _field import audio_rows, clips, datasets_rows, video_rows

        paths = clips(size)
        out["files"] = {**video_rows(size, paths), **datasets_rows(size, paths), **audio_rows(size, paths)}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# row name prefix -> (target ratio ours/baseline, what the baseline is)
FILE_TARGETS = {"whole": (1.00, "torchcodec AudioDecoder"), "datasets": (0.90, "stock datasets Video()"),
                "": (0.90, "torchcodec VideoDecoder")}


def _file_results(rows: dict, version: str) -> list[Result]:
    out = []
    for name, m in rows.items():
        target, base = next(v for k, v in FILE_TARGETS.items() if name.startswith(k))
        ratio = m["ours_cpu"] / m["base_cpu"]
        same = {True: "; same output", False: "; OUTPUT DIFFERS", None: ""}[m["identical"]]
        out.append(Result(f"field: {name}", m["ours_cpu"] * 1000, m["base_cpu"] * 1000, "ms cpu", ratio,
                          f"<= {target:.2f}", ratio <= target, f"vs {base} {version}{same}",
                          ours_median=m["ours_cpu_median"] * 1000, baseline_median=m["base_cpu_median"] * 1000))
    return out


def _cli_results(size: str) -> list[Result]:
    from _field import clips, ffmpeg_cli_rows

    out = []
    for name, m in ffmpeg_cli_rows(size, clips(size)).items():
        ratio = m["ours_cpu"] / m["base_cpu"]
        out.append(Result(f"field: {name}", m["ours_cpu"] * 1000, m["base_cpu"] * 1000, "ms cpu", ratio, "<= 1.20",
                          ratio <= 1.2, "ffmpeg -threads 1 to rawvideo rgb24 (child CPU time)",
                          ours_median=m["ours_cpu_median"] * 1000, baseline_median=m["base_cpu_median"] * 1000))
    return out


def run(size: str = "default") -> list[Result]:
    names = {fmt: f"field: {SIZES[size][0]} 10-s {fmt.upper()} clips, avsets vs datasets+torchcodec" for fmt in FORMATS}
    py, why = torch_python()
    if py is not None and not has_torchcodec(py):
        py, why = None, "torchcodec does not import (needs torchcodec==0.13.0 and system FFmpeg)"
    if py is None:
        return [skipped(names[f], why, "> 1.00") for f in FORMATS] + _cli_results(size)
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([py, os.path.abspath(__file__), "--child", size], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"torchcodec benchmark child failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    out = []
    for fmt in FORMATS:
        m = res[fmt]
        ratio = m["stock_cpu"] / m["ours_cpu"]
        out.append(Result(names[fmt], m["n"] / m["ours_cpu"], m["n"] / m["stock_cpu"], "clips/s", ratio, "> 1.00",
                          ratio > 1.0, f"torchcodec {res['torchcodec']}; wall {m['stock_wall'] / m['ours_wall']:.2f}",
                          ours_median=m["n"] / m["ours_cpu_median"], baseline_median=m["n"] / m["stock_cpu_median"]))
    return out + _file_results(res["files"], res["torchcodec"]) + _cli_results(size)


if __name__ == "__main__":
    bench_main(run, "against the field (issue 7)", child=_child, child_choices=sorted(SIZES))
