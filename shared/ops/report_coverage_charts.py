"""The coverage report's charts (classes, the worst-covered classes, coverage over time, media durations and
sample rates) as PNG bytes, and the one-line summaries shown beside them; :mod:`.report_render` places them
in each format.  matplotlib (the ``report`` extra) draws them without a display (:mod:`.report_charts`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .report import COVERAGE_BINS, CoverageReport, SplitReport
from .report_charts import figure, png

#: partly present classes drawn per split (every class is in the CSV download); few enough for 8-pt labels
MAX_CLASS_BARS = 15


def pct(n: int, d: int) -> str:
    """``n`` of ``d`` as a percentage with one decimal, ``-`` when there is nothing to count."""
    return f"{100.0 * n / d:.1f}%" if d else "-"




def chart_classes(rep: CoverageReport) -> bytes | None:
    """How many classes have none, some or all of their clips present, per split (grouped bars).

    A first report usually has most classes at 0%: this shows how many in one glance; the classes worth a
    look are drawn by :func:`chart_worst`, and every class is in the per-class CSV.
    """
    splits = [s for s in rep.splits if s.classes]
    if len({b for s in splits for b, n in s.class_bins().items() if n}) < 2:
        return None  # every class in one bin (nothing fetched yet, or everything): the table says it
    fig = figure(7.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(splits)
    for i, s in enumerate(splits):
        bins = s.class_bins()
        x = [j + (i - (len(splits) - 1) / 2) * width for j in range(len(COVERAGE_BINS))]
        bars = ax.bar(x, list(bins.values()), width, label=f"{s.split} ({len(s.classes)} classes)")
        ax.bar_label(bars, fontsize=8, padding=1)
    ax.set_xticks(range(len(COVERAGE_BINS)), [f"{b} present" if b in ("none", "all") else b for b in COVERAGE_BINS],
                  fontsize=8)
    ax.set_ylabel("classes")
    ax.set_xlabel("share of the class' clips present")
    ax.margins(y=0.15)
    ax.set_title("coverage per class: how many classes have none, some or all of their clips", fontsize=9)
    ax.legend(fontsize=8)
    return png(fig)


def chart_worst(rep: CoverageReport) -> bytes | None:
    """Per split, the partly present classes with the lowest coverage (classes with nothing present are
    counted by :func:`chart_classes`, not drawn as rows of empty bars)."""
    splits = [s for s in rep.splits if s.partly_present()]
    if not splits:
        return None
    counts = [len(s.partly_present(MAX_CLASS_BARS)) for s in splits]
    # splits one under the other, each as tall as its bars: a split with one such class gets one bar's room
    fig = figure(7.5, sum(0.8 + 0.24 * n for n in counts))
    grid = fig.add_gridspec(len(splits), 1, height_ratios=[0.8 + 0.24 * n for n in counts])
    for i, s in enumerate(splits):
        ax = fig.add_subplot(grid[i, 0])
        worst = s.partly_present(MAX_CLASS_BARS)
        n = len(worst)
        names = [c.name if len(c.name) <= 30 else c.name[:29] + "…" for c in worst]
        shares = [100.0 * c.share for c in worst]
        y = [n - 1 - j for j in range(n)]  # lowest coverage at the top
        ax.set_ylim(-0.6, n - 0.4)
        ax.barh(y, shares, color=["#c0392b" if v < 50 else "#e67e22" for v in shares])
        for yy, v, c in zip(y, shares, worst, strict=True):
            ax.text(v + 1, yy, f"{c.present}/{c.rows}", va="center", fontsize=8, color="#444")
        ax.set_yticks(y, names, fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_xlabel("clips present (%)")
        total = len(s.partly_present())
        shown = (f"{n} of {total} partly present classes, lowest first" if total > n else
                 "the one partly present class" if n == 1 else f"all {n} partly present classes, lowest first")
        ax.set_title(f"{s.split}: {shown}", fontsize=9)
    return png(fig)


def chart_over_time(rep: CoverageReport) -> bytes | None:
    """Coverage of each split after each fetch or unpack run (one point per run); ``None`` for a single
    point, which :func:`over_time_summary` says in words."""
    splits = [s for s in rep.splits if s.over_time]
    if not splits or max(len(s.over_time) for s in splits) < 2:
        return None
    fig = figure(7.5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    for s in splits:  # every split has the same sequence of points (runs, or dates of the ledger)
        ax.plot(range(len(s.over_time)), [100.0 * p.ok / p.rows if p.rows else 0 for p in s.over_time], marker="o",
                label=s.split)
    longest = max(splits, key=lambda s: len(s.over_time)).over_time
    when = [p.label.replace("T", "\n").replace("+00:00", "") for p in longest]
    ticks = [f"run {i + 1}\n{w}" for i, w in enumerate(when)] if rep.history == "runs" else when
    ax.set_xticks(range(len(longest)), ticks, fontsize=7)
    ax.set_ylabel("clips ok in the ledger (%)")
    ax.set_ylim(0, 105)
    ax.set_title("coverage after each run (fetch or unpack)" if rep.history == "runs" else
                 "coverage by date of last outcome",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def media_panels(rep: CoverageReport) -> list[str]:
    """The histograms worth drawing: ``duration`` and ``sample rate`` only when the files differ in it (one
    bar says no more than the sentence of :func:`media_summary`)."""
    durations = {round(d, 1) for s in rep.splits for d in s.durations}
    rates = {r for s in rep.splits for r in s.sample_rates}
    return [name for name, values in (("duration", durations), ("sample rate", rates)) if len(values) > 1]


def media_summary(s: SplitReport) -> str:
    """What the files present of one split are, in one sentence (shown whether or not a chart is drawn)."""
    if not s.present_files:
        return f"{s.split}: no file present."
    if not s.probed_files:
        return f"{s.split}: {s.present_files} files present, none opened."
    parts = [f"{s.split}: {s.probed_files} of {s.present_files} files opened"]
    if s.durations:
        d = np.asarray(s.durations)
        lo, mid, hi = np.min(d), np.median(d), np.max(d)
        parts.append(f"duration {lo:.1f} s each" if round(lo, 1) == round(hi, 1) else
                     f"duration {lo:.1f}-{hi:.1f} s (median {mid:.1f} s)")
    if s.sample_rates:
        counts = sorted(Counter(s.sample_rates).items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append("sample rate " + (f"{counts[0][0]} Hz each" if len(counts) == 1 else
                                       ", ".join(f"{r} Hz ({n})" for r, n in counts)))
    return "; ".join(parts) + "."


def over_time_summary(rep: CoverageReport) -> str | None:
    """The coverage-over-time section in words when it has one point (a first fetch or unpack)."""
    splits = [s for s in rep.splits if s.over_time]
    if not splits or max(len(s.over_time) for s in splits) != 1:
        return None
    when = splits[0].over_time[0].label
    what = "the ledger's one run" if rep.history == "runs" else "the ledger's one date of outcomes"
    shares = ", ".join(f"{s.split} {pct(s.over_time[0].ok, s.over_time[0].rows)}" for s in splits)
    return (f"After {what} ({when}): clips ok in the ledger {shares}. Each later fetch or unpack run adds a "
            "point, and a chart appears here.")


def chart_media(rep: CoverageReport) -> bytes | None:
    """Histograms of the duration and the audio sample rate of the files present, each only when it has
    more than one bar (see :func:`media_panels`)."""
    panels = media_panels(rep)
    splits = [s for s in rep.splits if s.durations or s.sample_rates]
    if not splits or not panels:
        return None
    fig = figure(4.0 * len(panels), 3.0)
    if "duration" in panels:
        ax1 = fig.add_subplot(1, len(panels), 1)
        ax1.hist([s.durations for s in splits], bins=30, label=[s.split for s in splits], stacked=True)
        ax1.set_xlabel("file duration (s)")
        ax1.set_ylabel("files")
        ax1.set_title("duration of the files present", fontsize=9)
        ax1.legend(fontsize=8)
    if "sample rate" in panels:
        ax2 = fig.add_subplot(1, len(panels), len(panels))
        rates = sorted({r for s in splits for r in s.sample_rates})
        bottom = [0] * len(rates)
        for s in splits:
            h = [s.sample_rates.count(r) for r in rates]
            ax2.bar([str(r) for r in rates], h, bottom=bottom, label=s.split)
            bottom = [a + b for a, b in zip(bottom, h, strict=True)]
        ax2.set_xlabel("audio sample rate (Hz)")
        ax2.set_ylabel("files")
        ax2.set_title("sample rate of the files present", fontsize=9)
        ax2.legend(fontsize=8)
    return png(fig)
