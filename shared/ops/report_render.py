"""Render a :class:`~avsets.ops.report.CoverageReport`: one self-contained HTML file, Markdown, JSON or PNG.

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
from collections.abc import Sequence
from typing import Any

from avsets.core.csvsafe import csv_writer, safe_cell
from avsets.core.secrets import redact_url
from avsets.metadata.manifest import manifest_hash, write_text_atomic

from .leakage.report_section import leakage_dict, leakage_html, leakage_md
from .report import COVERAGE_BINS, CoverageReport
from .report_charts import data_uri, figure, png
from .report_coverage_charts import (
    chart_classes,
    chart_media,
    chart_over_time,
    chart_worst,
    media_summary,
    over_time_summary,
    pct,
)
from .report_quality import chart_quality, quality_dict, quality_html, quality_md

FORMATS = ("html", "md", "json", "png")


def _redact(text: str) -> str:
    """A path or URL without userinfo, tokens or signed query parameters (DESIGN "Secrets")."""
    return redact_url(text) or ""


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
        out.append(f"| {s.split} | {c.rows} | {c.found} | {c.missing} | {corrupt} | {pct(s.usable, c.rows)} "
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
            out += [f"| {c.name} | {c.rows} | {c.present} | {pct(c.present, c.rows)} |" for c in worst]
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
                 f'{corrupt}<td class="n" data-k="{k}.coverage">{pct(s.usable, c.rows)}</td>'
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

    fig = figure(8.0, 0.6 + 0.3 * (len(rep.splits) + 1))
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    ax.set_title(f"Coverage report: {rep.corpus} / {rep.config or 'default'}", fontsize=11)
    cells = [[s.split, s.coverage.rows, s.coverage.found, s.coverage.missing,
              s.coverage.corrupt if rep.corrupt_checked else "-", pct(s.usable, s.coverage.rows),
              manifest_hash(s.present_ids)] for s in rep.splits]
    ax.table(cellText=cells, colLabels=["split", "rows", "present", "missing", "corrupt", "coverage", "manifest"],
             loc="center")
    images = [png(fig)] + [img for img in all_charts(rep).values() if img]
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
