"""Helpers of the issue-7 benchmarks: paired timing, a media cache, and the benchmarks' torch interpreter.

Why paired CPU timing: these 2 cores are shared with other test runs (load averages of 8-9 were seen while
measuring), so wall time of one short run says more about the neighbours than about us. Both sides of a
ratio run alternately, the fastest of ``repeat`` runs is kept, and single-process ratios use the process
CPU time (all threads), which other processes disturb far less than they disturb wall time.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from _common import Seconds

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TORCH_VENV = os.path.join(BENCH_DIR, ".venv-torch")


@dataclass
class Timing:
    """Fastest wall and CPU seconds of one side over the repeats; each carries the median (``.median``)."""

    wall: Seconds
    cpu: Seconds


def paired(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, Timing]:
    """Run every function ``repeat`` times, alternating, after one warm-up each; keep the fastest and the
    median (a path that is fast once and slow on repeat shows in the median only)."""
    for fn in fns.values():
        fn()
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            gc.collect()
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            c1, w1 = time.process_time(), time.perf_counter()
            walls[k].append(w1 - w0)
            cpus[k].append(c1 - c0)
    return {k: Timing(Seconds(walls[k]), Seconds(cpus[k])) for k in fns}


def media_cache() -> str:
    """A folder in the system temp dir for synthetic media that is slow to encode (kept between runs)."""
    path = os.path.join(tempfile.gettempdir(), "avsets-bench-media-v1")
    os.makedirs(path, exist_ok=True)
    return path


def cached(name: str, make: Callable[[str], None]) -> str:
    """``media_cache()/name``, made by ``make(path)`` once (written to a temp name, then renamed)."""
    path = os.path.join(media_cache(), name)
    if not os.path.exists(path):
        tmp = f"{path}.part{os.getpid()}{os.path.splitext(name)[1]}"
        make(tmp)
        os.replace(tmp, path)
    return path


def torch_python() -> tuple[str | None, str]:
    """An interpreter that imports torch and avsets: this one, or ``bench/.venv-torch``; else why not.

    torch is never a dependency of avsets, so the training and torchcodec benchmarks run in a child
    process of whichever interpreter has it.
    """
    candidates = [sys.executable]
    venv_py = os.path.join(TORCH_VENV, "bin", "python")
    if os.path.exists(venv_py):
        candidates.append(venv_py)
    for py in candidates:
        probe = subprocess.run([py, "-c", "import torch, avsets"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return py, ""
    return None, "torch not installed here nor in bench/.venv-torch (run bench/setup_torch_env.sh)"


def has_torchcodec(python: str) -> bool:
    """Whether ``python`` can really decode with torchcodec (the import fails without system FFmpeg)."""
    probe = subprocess.run([python, "-c", "import torchcodec.decoders"], capture_output=True, check=False)
    return probe.returncode == 0
