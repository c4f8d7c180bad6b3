"""Against the field (issue 7): avsets' audio decoding vs stock ``datasets`` decoding with torchcodec.

The same trimmed 10-s clips (16 kHz mono, 16-bit; FLAC and WAV), one ``datasets.Dataset`` of paths each,
read row by row through ``datasets``' map-style access: stock ``Audio()`` (torchcodec's ``AudioDecoder``,
``["array"]``) against ``avsets.decode`` on the same dataset cast to ``Audio(decode=False)`` (soundfile).
Target: ratio of clips/s > 1 (we beat it). Needs torch + torchcodec (+ system FFmpeg) in this interpreter or
in ``bench/.venv-torch``; skipped with the reason otherwise.
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
    from avsets.synth import write_audio

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
            out[fmt] = {"ours_cpu": t["ours"].cpu, "stock_cpu": t["stock"].cpu, "ours_wall": t["ours"].wall,
                        "stock_wall": t["stock"].wall, "n": n}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(size: str = "default") -> list[Result]:
    names = {fmt: f"field: {SIZES[size][0]} 10-s {fmt.upper()} clips, avsets vs datasets+torchcodec" for fmt in FORMATS}
    py, why = torch_python()
    if py is not None and not has_torchcodec(py):
        py, why = None, "torchcodec does not import (needs torchcodec==0.13.0 and system FFmpeg)"
    if py is None:
        return [skipped(names[f], why, "> 1.00") for f in FORMATS]
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
                          ratio > 1.0, f"torchcodec {res['torchcodec']}; wall {m['stock_wall'] / m['ours_wall']:.2f}"))
    return out


if __name__ == "__main__":
    bench_main(run, "against the field (issue 7)", child=_child, child_choices=sorted(SIZES))
