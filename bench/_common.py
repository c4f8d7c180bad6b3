"""Shared helpers for the benchmarks: timing, one result row format, and the table printer.

Every benchmark compares against a baseline measured in the same run on the same data (these machines
are noisy); no test ever asserts a wall time.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import string
import time
from collections.abc import Callable
from dataclasses import dataclass


class Seconds(float):
    """The fastest of several timed runs, carrying their median (``.median``) and count (``.runs``).

    Why both: the minimum is the least disturbed run on a shared machine, but a path that is fast once and
    slow on repeat (page faults on fresh memory, a cache that thrashes) shows only in the median.  A float
    so existing arithmetic on the minimum keeps working; rows take ``.median`` beside it.
    """

    median: float
    runs: int

    def __new__(cls, samples: list[float]) -> Seconds:
        value = super().__new__(cls, min(samples))
        value.median = statistics.median(samples)
        value.runs = len(samples)
        return value

    def scaled(self, factor: float) -> Seconds:
        """The same runs times ``factor`` (seconds to ms)."""
        out = super().__new__(Seconds, float(self) * factor)
        out.median, out.runs = self.median * factor, self.runs
        return out


def median_of(value: float) -> float | None:
    """``value.median`` when ``value`` is a :class:`Seconds`, else None (a single measurement)."""
    return getattr(value, "median", None)


@dataclass
class Result:
    """One line of the benchmark table: the best run of each side and, where repeated, their medians.

    ``ours_median``/``baseline_median`` default to the medians carried by :class:`Seconds` values; rows of
    rates (clips/s) pass them explicitly (``n / t.median``).  None means the row was measured once.
    """

    name: str
    ours: float
    baseline: float
    unit: str
    ratio: float
    target: str
    passed: bool
    note: str = ""
    skipped: bool = False  # not measurable in this environment (missing torch, say): ``note`` says why
    ours_median: float | None = None
    baseline_median: float | None = None

    def __post_init__(self) -> None:
        if self.ours_median is None:
            self.ours_median = median_of(self.ours)
        if self.baseline_median is None:
            self.baseline_median = median_of(self.baseline)
        self.ours, self.baseline = float(self.ours), float(self.baseline)

    @property
    def median_text(self) -> str:
        """``ours/baseline`` medians for the table; ``once`` for a row measured a single time."""
        if self.ours_median is None and self.baseline_median is None:
            return "once"
        return "/".join("=" if m is None else f"{m:.4g}" for m in (self.ours_median, self.baseline_median))


def skipped(name: str, reason: str, target: str = "") -> Result:
    """A table row for a benchmark that cannot run here; it neither passes nor fails."""
    return Result(name, float("nan"), float("nan"), "", float("nan"), target, True, reason, skipped=True)


def best_of(fn: Callable[[], object], repeat: int = 3) -> Seconds:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by other load), with their median."""
    runs = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return Seconds(runs)


def random_ids(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct, valid YouTube-shaped ids (some start with ``-``, many contain ``_``)."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-_"
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(alphabet) for _ in range(11)))
    return sorted(out)


def print_table(results: list[Result], title: str = "") -> None:
    """The one table format every benchmark prints."""
    if title:
        print(f"\n== {title}")
    head = (f"{'benchmark':<58} {'ours':>12} {'baseline':>12} {'unit':<9} {'ratio':>7} {'target':<10} {'ok':<4} "
            f"{'median ours/base':<20}")
    print(head)
    print("-" * len(head))
    for r in results:
        if r.skipped:
            print(f"{r.name:<58} {'-':>12} {'-':>12} {'':<9} {'-':>7} {r.target:<10} SKIP {'-':<20} {r.note}")
            continue
        print(f"{r.name:<58} {r.ours:>12.4g} {r.baseline:>12.4g} {r.unit:<9} {r.ratio:>7.2f} {r.target:<10} "
              f"{'PASS' if r.passed else 'FAIL':<4} {r.median_text:<20} {r.note}")


def peak_rss_mb() -> float:
    """This process' own peak resident set size in MB: ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's resident size at ``fork`` into the
    child's ``ru_maxrss`` across ``exec``, so a "fresh subprocess" of a 1-GB benchmark runner reported 1 GB
    whatever it did (measured: a child that peaked at 11 MB reported 312 MB under a 300-MB parent), and two
    such children compared equal. ``VmHWM`` is the high-water mark of the process' own address space.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def machine() -> str:
    """A one-line description of the machine, for the README table."""
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def bench_main(run: Callable[[str], list[Result]], title: str, child: Callable | None = None,
               child_nargs: str | None = None, child_choices: list[str] | None = None) -> None:
    """The command line every benchmark module shares: ``[--smoke|--full]``, and ``--child`` for the ones
    that measure in a subprocess (it prints the child's JSON result instead of the table)."""
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--full", action="store_true")
    if child is not None:
        parser.add_argument("--child", nargs=child_nargs, choices=child_choices)
    a = parser.parse_args()
    if child is not None and a.child:
        print(json.dumps(child(a.child)))
        return
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    t0 = time.perf_counter()
    print_table(run("smoke" if a.smoke else "full" if a.full else "default"), title)
    print(f"total {time.perf_counter() - t0:.1f} s")
