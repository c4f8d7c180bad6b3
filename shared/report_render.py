"""Render a :class:`~avsets.report.CoverageReport`: one self-contained HTML file, Markdown, JSON or PNG.

The HTML needs no network and no script: charts are matplotlib PNGs (Agg, no display) embedded as data
URIs, downloads (missing ids, per-class coverage, the manifest) are data-URI links.  Every number cell
carries ``data-k="<split>.<name>"`` so a test (or a scraper) can read the numbers back.  Paths and URLs
are shown with credentials and query strings removed.
"""

from __future__ import annotations

import html
import io
import json
import os
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .csvsafe import csv_writer, safe_cell
from .leakage.report_section import leakage_dict, leakage_html, leakage_md
from .manifest import manifest_hash, write_text_atomic
from .report import COVERAGE_BINS, CoverageReport, SplitReport
from .report_charts import data_uri, figure, png
from .report_quality import chart_quality, quality_dict, quality_html, quality_md

FORMATS = ("html", "md", "json", "png")
#: partly present classes drawn per split (every class is in the CSV download); few enough for 8-pt labels
MAX_CLASS_BARS = 15


def _redact(text: str) -> str:
    """A path or URL without userinfo, tokens or signed query parameters (DESIGN "Secrets")."""
    try:
        from .secrets import redact_url  # the project's rule, when present
    except ImportError:
        redact_url = None
    if redact_url is not None:
        return redact_url(text)
    if "://" not in text:
        return text
    parts = urllib.parse.urlsplit(text)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}%" if d else "-"


# --- charts ----------------------------------------------------------------------------------------------


_figure = figure
_png = png


def chart_classes(rep: CoverageReport) -> bytes | None:
    """How many classes have none, some or all of their clips present, per split (grouped bars).

    A first report usually has most classes at 0%: this shows how many in one glance; the classes worth a
    look are drawn by :func:`chart_worst`, and every class is in the per-class CSV.
    """
    splits = [s for s in rep.splits if s.classes]
    if len({b for s in splits for b, n in s.class_bins().items() if n}) < 2:
        return None  # every class in one bin (nothing fetched yet, or everything): the table says it
    fig = _figure(7.5, 3.0)
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
    return _png(fig)


def chart_worst(rep: CoverageReport) -> bytes | None:
    """Per split, the partly present classes with the lowest coverage (classes with nothing present are
    counted by :func:`chart_classes`, not drawn as rows of empty bars)."""
    splits = [s for s in rep.splits if s.partly_present()]
    if not splits:
        return None
    counts = [len(s.partly_present(MAX_CLASS_BARS)) for s in splits]
    # splits one under the other, each as tall as its bars: a split with one such class gets one bar's room
    fig = _figure(7.5, sum(0.8 + 0.24 * n for n in counts))
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
    return _png(fig)


def chart_over_time(rep: CoverageReport) -> bytes | None:
    """Coverage of each split after each fetch or unpack run (one point per run); ``None`` for a single
    point, which :func:`over_time_summary` says in words."""
    splits = [s for s in rep.splits if s.over_time]
    if not splits or max(len(s.over_time) for s in splits) < 2:
        return None
    fig = _figure(7.5, 3.2)
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
    return _png(fig)


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
    shares = ", ".join(f"{s.split} {_pct(s.over_time[0].ok, s.over_time[0].rows)}" for s in splits)
    return (f"After {what} ({when}): clips ok in the ledger {shares}. Each later fetch or unpack run adds a "
            "point, and a chart appears here.")


def chart_media(rep: CoverageReport) -> bytes | None:
    """Histograms of the duration and the audio sample rate of the files present, each only when it has
    more than one bar (see :func:`media_panels`)."""
    panels = media_panels(rep)
    splits = [s for s in rep.splits if s.durations or s.sample_rates]
    if not splits or not panels:
        return None
    fig = _figure(4.0 * len(panels), 3.0)
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
    return _png(fig)


# --- downloads -------------------------------------------------------------------------------------------


def missing_csv(rep: CoverageReport) -> str:
    """``split,id,status,path,reason``: missing clips with their ledger status, then corrupt ones.

    Written with ``pyarrow.csv`` (a 200,000-row list in a fraction of a second), corrupt rows with ``csv``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    parts = []
    for s in rep.splits:
        ids = s.coverage.missing_ids
        status = [s.missing_status.get(i, "missing") for i in ids] if len(s.missing_status) != len(ids) \
            else list(s.missing_status.values())
        empty = pa.array([""] * len(ids), pa.string())
        parts.append(pa.table({"split": pa.array([safe_cell(s.split)] * len(ids), pa.string()),
                               "id": pa.array([safe_cell(i) for i in ids], pa.string()),
                               "status": pa.array(status, pa.string()), "path": empty, "reason": empty}))
    table = pa.concat_tables(parts) if parts else pa.table({k: pa.array([], pa.string()) for k in
                                                            ("split", "id", "status", "path", "reason")})
    pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
    text = io.StringIO()
    text.write(buf.getvalue().decode("utf-8").replace("\r\n", "\n"))
    w = csv_writer(text, lineterminator="\n")
    for s in rep.splits:
        for clip, path, reason in s.coverage.corrupt_ids:
            w.writerow([s.split, clip, "corrupt", _redact(path), reason])
    return text.getvalue()


def classes_csv(rep: CoverageReport) -> str:
    buf = io.StringIO()
    w = csv_writer(buf, lineterminator="\n")
    w.writerow(["split", "class", "rows", "present", "coverage"])
    for s in rep.splits:
        for c in s.classes:
            w.writerow([s.split, c.name, c.rows, c.present, f"{c.share:.4f}"])
    return buf.getvalue()


_data_uri = data_uri


# --- formats ---------------------------------------------------------------------------------------------


def to_dict(rep: CoverageReport) -> dict[str, Any]:
    """Every number of the report (the JSON format)."""
    return {
        "corpus": rep.corpus, "config": rep.config, "created": rep.created,
        "data_dir": _redact(rep.data_dir) if rep.data_dir else None,
        "media_dirs": [_redact(m) for m in rep.media_dirs], "ledgers": [_redact(x) for x in rep.ledgers],
        "history": rep.history, "corrupt_checked": rep.corrupt_checked, "notes": rep.notes,
        "manifest_hash": rep.manifest().hash,
        "runs": [{"started_at": r.started_at, "finished_at": r.finished_at, "counts": r.counts, "totals": r.totals}
                 for r in rep.runs],
        "splits": {s.split: {
            "rows": s.coverage.rows, "found": s.coverage.found, "missing": s.coverage.missing,
            "corrupt": s.coverage.corrupt if rep.corrupt_checked else None,
            "manifest_hash": manifest_hash(s.present_ids), "present_ids": len(s.present_ids),
            "missing_by_status": s.missing_by_status,
            "missing_ids": s.coverage.missing_ids,
            "corrupt_ids": [list(c) for c in s.coverage.corrupt_ids],
            "classes": [{"name": c.name, "rows": c.rows, "present": c.present} for c in s.classes],
            "classes_by_coverage": s.class_bins() if s.classes else {},
            "over_time": [{"at": p.label, "ok": p.ok, "rows": p.rows} for p in s.over_time],
            "present_files": s.present_files, "probed_files": s.probed_files,
            "durations": s.durations, "sample_rates": s.sample_rates,
        } for s in rep.splits},
        "quality": quality_dict(rep.quality) if rep.quality is not None else None,
        "leakage": leakage_dict(rep.leakage),
    }


def render_json(rep: CoverageReport) -> str:
    return json.dumps(to_dict(rep), indent=1) + "\n"


def _statuses(rep: CoverageReport) -> list[str]:
    seen: dict[str, int] = {}
    for s in rep.splits:
        for k, v in s.missing_by_status.items():
            seen[k] = seen.get(k, 0) + v
    return sorted(seen, key=lambda k: (-seen[k], k))


def render_md(rep: CoverageReport) -> str:
    """The report's tables as Markdown (no charts)."""
    out = [f"# Coverage report: {rep.corpus} / {rep.config or 'default'}", "", f"Generated {rep.created}.", ""]
    out += ["| split | rows | present | missing | corrupt | coverage | manifest |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for s in rep.splits:
        c = s.coverage
        corrupt = str(c.corrupt) if rep.corrupt_checked else "not checked"
        out.append(f"| {s.split} | {c.rows} | {c.found} | {c.missing} | {corrupt} | {_pct(s.usable, c.rows)} "
                   f"| `{manifest_hash(s.present_ids)}` |")
    statuses = _statuses(rep)
    if statuses:
        out += ["", "## Missing clips by ledger status", "", "| split | " + " | ".join(statuses) + " |",
                "| --- |" + " ---: |" * len(statuses)]
        for s in rep.splits:
            out.append(f"| {s.split} | " + " | ".join(str(s.missing_by_status.get(k, 0)) for k in statuses) + " |")
    with_classes = [s for s in rep.splits if s.classes]
    if with_classes:
        out += ["", "## Classes by share of their clips present", "",
                "| split | classes | " + " | ".join(COVERAGE_BINS) + " |", "| --- |" + " ---: |" * (1 + len(COVERAGE_BINS))]
        out += [f"| {s.split} | {len(s.classes)} | " + " | ".join(str(n) for n in s.class_bins().values()) + " |"
                for s in with_classes]
    for s in with_classes:
        worst = s.partly_present(10)
        if worst:
            out += ["", f"## {s.split}: partly present classes with the lowest coverage", "",
                    "| class | rows | present | coverage |", "| --- | ---: | ---: | ---: |"]
            out += [f"| {c.name} | {c.rows} | {c.present} | {_pct(c.present, c.rows)} |" for c in worst]
    if any(s.probed_files for s in rep.splits):
        out += ["", "## What is present", "", *[f"- {media_summary(s)}" for s in rep.splits]]
    if rep.runs:
        out += ["", "## Fetch and unpack runs", "", "| finished | this run | ledger after the run |", "| --- | --- | --- |"]
        for r in rep.runs:
            out.append(f"| {r.finished_at or r.started_at} | {_counts(r.counts)} | {_counts(r.totals)} |")
    if rep.quality is not None:
        out += quality_md(rep.quality)
    out += leakage_md(rep.leakage)
    out += ["", *[f"> {n}" for n in rep.notes]] if rep.notes else []
    return "\n".join(out) + "\n"


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "-"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:14px}td,th{border:1px solid #ddd;padding:4px 10px}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#666;font-size:13px}.note{background:#fff8e1;border-left:3px solid #f0ad4e;padding:6px 10px;font-size:13px}
img{max-width:100%;display:block;margin:8px 0}a.dl{margin-right:16px}code{font-size:13px}
"""


def render_html(rep: CoverageReport, charts: dict[str, bytes | None] | None = None) -> str:
    """One self-contained page (see module doc)."""
    e = html.escape
    charts = charts if charts is not None else all_charts(rep)
    man = rep.manifest()
    p: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                    f"<title>avsets coverage: {e(rep.corpus)} / {e(rep.config or 'default')}</title>",
                    f"<style>{_CSS}</style></head><body>",
                    f"<h1>Coverage report: {e(rep.corpus)} / {e(rep.config or 'default')}</h1>"]
    meta = [f"generated {e(rep.created)}"]
    if rep.data_dir:
        meta.append(f"metadata <code>{e(_redact(rep.data_dir))}</code>")
    meta += [f"media <code>{e(_redact(m))}</code>" for m in rep.media_dirs]
    meta += [f"ledger <code>{e(_redact(x))}</code>" for x in rep.ledgers]
    p.append(f'<p class="meta">{" · ".join(meta)}</p>')

    p.append("<h2>Splits</h2><table><tr><th>split</th><th>rows</th><th>present</th><th>missing</th>"
             "<th>corrupt</th><th>coverage</th><th>manifest hash</th></tr>")
    for s in rep.splits:
        c, k = s.coverage, e(s.split)
        corrupt = (f'<td class="n" data-k="{k}.corrupt">{c.corrupt}</td>' if rep.corrupt_checked
                   else '<td class="n">not checked</td>')
        p.append(f'<tr><td>{k}</td><td class="n" data-k="{k}.rows">{c.rows}</td>'
                 f'<td class="n" data-k="{k}.found">{c.found}</td><td class="n" data-k="{k}.missing">{c.missing}</td>'
                 f'{corrupt}<td class="n" data-k="{k}.coverage">{_pct(s.usable, c.rows)}</td>'
                 f'<td><code data-k="{k}.manifest">{manifest_hash(s.present_ids)}</code></td></tr>')
    p.append("</table>")
    p.append(f'<p class="meta">Coverage counts clips present and, when probed, readable. Manifest of every split '
             f'together: <code data-k="manifest">{man.hash}</code> ({len(man.all_ids())} clips).</p>')
    p += leakage_html(rep.leakage)

    statuses = _statuses(rep)
    if statuses:
        p.append("<h2>Missing clips by ledger status</h2><table><tr><th>split</th>"
                 + "".join(f"<th>{e(x)}</th>" for x in statuses) + "</tr>")
        for s in rep.splits:
            k = e(s.split)
            p.append(f"<tr><td>{k}</td>" + "".join(
                f'<td class="n" data-k="{k}.missing.{e(x)}">{s.missing_by_status.get(x, 0)}</td>' for x in statuses)
                + "</tr>")
        p.append("</table>")

    def img(key: str, title: str) -> None:
        if charts.get(key):
            p.append(f'<img alt="{e(title)}" data-chart="{key}" src="{_data_uri("image/png", charts[key])}">')

    with_classes = [s for s in rep.splits if s.classes]
    if with_classes:
        p.append("<h2>Coverage per class</h2>")
        img("classes", "Classes by share of their clips present")
        p.append("<table><tr><th>split</th><th>classes</th>" + "".join(f"<th>{e(b)}</th>" for b in COVERAGE_BINS)
                 + "</tr>")
        for s in with_classes:
            k = e(s.split)
            p.append(f'<tr><td>{k}</td><td class="n" data-k="{k}.classes">{len(s.classes)}</td>' + "".join(
                f'<td class="n" data-k="{k}.classes.{e(b)}">{n}</td>' for b, n in s.class_bins().items()) + "</tr>")
        p.append("</table>")
        img("worst", "Partly present classes with the lowest coverage")
        p.append('<p class="meta">Share of each class\' clips present; the per-class CSV below lists every class, '
                 "those with no clip present too.</p>")
    single = over_time_summary(rep)
    if charts.get("time") or single:
        p.append("<h2>Coverage over time</h2>")
        img("time", "Coverage over time")
        if single and not charts.get("time"):
            p.append(f'<p data-k="over_time">{e(single)}</p>')
    if any(s.probed_files for s in rep.splits):
        p.append("<h2>What is present</h2>")
        img("media", "What is present")
        p += [f'<p data-k="{e(s.split)}.media">{e(media_summary(s))}</p>' for s in rep.splits]

    if rep.quality is not None:
        p += quality_html(rep.quality, charts.get("quality"))

    if rep.runs:
        p.append("<h2>Fetch and unpack runs</h2><table><tr><th>started</th><th>finished</th><th>this run</th>"
                 "<th>ledger after the run</th></tr>")
        for r in rep.runs:
            p.append(f"<tr><td>{e(r.started_at)}</td><td>{e(r.finished_at or '-')}</td><td>{e(_counts(r.counts))}</td>"
                     f"<td>{e(_counts(r.totals))}</td></tr>")
        p.append("</table>")

    p.append("<h2>Downloads</h2><p>")
    stem = f"{rep.corpus}-{rep.config or 'default'}"
    p.append(f'<a class="dl" download="{e(stem)}-missing.csv" href="{_data_uri("text/csv", missing_csv(rep))}">'
             f"missing and corrupt clips (CSV, feeds <code>avsets fetch --segments</code>)</a>")
    if any(s.classes for s in rep.splits):
        p.append(f'<a class="dl" download="{e(stem)}-classes.csv" href="{_data_uri("text/csv", classes_csv(rep))}">'
                 "coverage per class (CSV)</a>")
    p.append(f'<a class="dl" download="{e(stem)}-manifest.json" '
             f'href="{_data_uri("application/json", man.dumps())}">manifest (JSON)</a></p>')
    for n in rep.notes:
        p.append(f'<p class="note">{e(n)}</p>')
    p.append('<p class="meta">Made by <code>avsets report</code>.</p></body></html>')
    return "\n".join(p) + "\n"


def all_charts(rep: CoverageReport) -> dict[str, bytes | None]:
    return {"classes": chart_classes(rep), "worst": chart_worst(rep), "time": chart_over_time(rep),
            "media": chart_media(rep),
            "quality": chart_quality(rep.quality) if rep.quality is not None else None}


def render_png(rep: CoverageReport) -> bytes:
    """The summary table and every chart stacked into one PNG."""
    from PIL import Image

    fig = _figure(8.0, 0.6 + 0.3 * (len(rep.splits) + 1))
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    ax.set_title(f"Coverage report: {rep.corpus} / {rep.config or 'default'}", fontsize=11)
    cells = [[s.split, s.coverage.rows, s.coverage.found, s.coverage.missing,
              s.coverage.corrupt if rep.corrupt_checked else "-", _pct(s.usable, s.coverage.rows),
              manifest_hash(s.present_ids)] for s in rep.splits]
    ax.table(cellText=cells, colLabels=["split", "rows", "present", "missing", "corrupt", "coverage", "manifest"],
             loc="center")
    images = [_png(fig)] + [png for png in all_charts(rep).values() if png]
    pics = [Image.open(io.BytesIO(b)).convert("RGB") for b in images]
    out = Image.new("RGB", (max(i.width for i in pics), sum(i.height for i in pics)), "white")
    y = 0
    for i in pics:
        out.paste(i, (0, y))
        y += i.height
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def format_of(out: str, fmt: str | None) -> str:
    """The format asked for, else the one the file name ends with, else HTML."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    ext = os.path.splitext(out.split("?", 1)[0] if "://" in out else out)[1].lower().lstrip(".")
    if not ext:
        return "html"
    if ext not in (*FORMATS, "htm", "markdown"):  # `--out r.pdf` wrote HTML into r.pdf
        raise ValueError(f"{out}: avsets cannot write a .{ext} report; name it .html, .md, .json or .png, or "
                         "give --format")
    return {"htm": "html", "markdown": "md"}.get(ext, ext)


def manifest_path_for(out: str) -> str:
    """The manifest written beside a report: ``report.html`` -> ``report.manifest.json``."""
    root, _ = os.path.splitext(out)
    return f"{root}.manifest.json"


def write_report(rep: CoverageReport, out: str | os.PathLike[str], fmt: str | None = None) -> list[str]:
    """Write the report (atomically) and its manifest beside it; return both paths."""
    import fsspec

    out = os.fspath(out)
    fmt = format_of(out, fmt)
    fs, path = fsspec.core.url_to_fs(out)
    if fmt == "png":
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with fs.open(tmp, "wb") as f:
            f.write(render_png(rep))
        fs.mv(tmp, path)
    else:
        text = {"html": render_html, "md": render_md, "json": render_json}[fmt](rep)
        write_text_atomic(fs, path, text)
    man = manifest_path_for(out)
    rep.manifest().write(man)
    return [out, man]


def summary_lines(rep: CoverageReport, paths: Sequence[str]) -> list[str]:
    """What the CLI prints after writing."""
    lines = [f"{s.split}: {s.coverage.found} of {s.coverage.rows} clips present"
             + (f", missing: {_counts(s.missing_by_status)}" if s.missing_by_status else "") for s in rep.splits]
    lines += [f"leakage {x.line()}" for x in rep.leakage]
    lines.append(f"report written to {paths[0]}; manifest {rep.manifest().hash} in {paths[1]}")
    return lines
