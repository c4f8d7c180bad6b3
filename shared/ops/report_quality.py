"""The report's quality section (``avsets report --quality q.parquet``), self-contained.

From a quality table (``avsets quality``) joined by ``id`` onto each split's rows: how many rows have a
result, how many carry each flag, histograms of ``silent_fraction``, ``still_fraction`` and ``rms_dbfs``, and
the classes with the most flagged clips.  Gathering (:func:`quality_section`) and rendering (Markdown,
HTML, JSON, one chart) live here, so another section (the leakage line) can sit beside it the same way.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.build.filters import join_by_id
from avsets.metadata.quality.table import QUALITY_FLAGS, read_quality_table

from .report_charts import data_uri, figure, png

#: the measures drawn as histograms: (column, low edge, high edge, axis label)
HISTOGRAMS: tuple[tuple[str, float, float, str], ...] = (
    ("silent_fraction", 0.0, 1.0, "share of 100-ms windows below the silence threshold"),
    ("still_fraction", 0.0, 1.0, "share of frames barely differing from the previous one"),
    ("rms_dbfs", -100.0, 0.0, "RMS level (dBFS)"),
)
BINS = 20
TOP_CLASSES = 10


@dataclass
class ClassFlags:
    """Rows and flagged rows (any quality flag) of one class in one split."""

    name: str
    rows: int
    flagged: int


@dataclass
class SplitQuality:
    """The quality facts of one split."""

    split: str
    rows: int
    measured: int  # rows the quality table has a result for
    errors: int  # results whose media could not be decoded
    flags: dict[str, int] = field(default_factory=dict)
    flagged: int = 0  # rows with at least one flag
    histograms: dict[str, list[int]] = field(default_factory=dict)  # column -> counts per bin
    classes: list[ClassFlags] = field(default_factory=list)  # most flagged first


@dataclass
class QualitySection:
    """The quality section of a report."""

    source: str  # the quality table's file name
    flags: list[str]
    splits: list[SplitQuality]
    edges: dict[str, list[float]] = field(default_factory=dict)


def quality_section(path: str | os.PathLike[str], tables: dict[str, pa.Table],
                    label_names: Sequence[str] | None = None) -> QualitySection:
    """Gather the section: ``tables`` maps each split to its rows (``id``, optionally ``label`` as class
    indices or lists of them); ``label_names`` names the classes."""
    q = read_quality_table(path)
    flags = [f for f in QUALITY_FLAGS if f in q.column_names]
    measures = [c for c, *_ in HISTOGRAMS if c in q.column_names]
    cols = flags + measures + (["error"] if "error" in q.column_names else [])
    q = q.set_column(0, "id", q.column("id").cast(pa.string()))
    section = QualitySection(source=os.path.basename(os.fspath(path)), flags=flags, splits=[])
    for col, lo, hi, _ in HISTOGRAMS:
        if col in measures:
            section.edges[col] = np.linspace(lo, hi, BINS + 1).tolist()
    for split, rows in tables.items():
        joined, missing = join_by_id(rows.select(["id"] + (["label"] if "label" in rows.column_names else [])),
                                     q, cols)
        section.splits.append(_split_quality(split, joined, missing, flags, section.edges, label_names))
    return section


def _split_quality(split: str, t: pa.Table, missing: pa.Array, flags: list[str], edges: dict[str, list[float]],
                   label_names: Sequence[str] | None) -> SplitQuality:
    n = t.num_rows
    sq = SplitQuality(split=split, rows=n, measured=n - (pc.sum(missing).as_py() or 0),
                      errors=(pc.sum(pc.is_valid(t.column("error"))).as_py() or 0) if "error" in t.column_names else 0)
    any_flag = np.zeros(n, dtype=bool)
    for f in flags:
        mask = pc.fill_null(t.column(f), False).to_numpy(zero_copy_only=False).astype(bool)
        sq.flags[f] = int(mask.sum())
        any_flag |= mask
    sq.flagged = int(any_flag.sum())
    for col, e in edges.items():
        values = t.column(col).cast(pa.float64()).drop_null().to_numpy(zero_copy_only=False)
        values = values[np.isfinite(values)]
        sq.histograms[col] = np.histogram(np.clip(values, e[0], e[-1]), bins=e)[0].tolist()
    if "label" in t.column_names and n:
        sq.classes = _classes(t.column("label").combine_chunks(), any_flag, label_names)
    return sq


def _classes(labels: pa.Array, flagged: np.ndarray, names: Sequence[str] | None) -> list[ClassFlags]:
    if pa.types.is_list(labels.type) or pa.types.is_large_list(labels.type):
        parents = pc.list_parent_indices(labels).to_numpy(zero_copy_only=False)
        labels = pc.list_flatten(labels)
        flagged = flagged[parents]
    g = pa.table({"c": labels, "f": pa.array(flagged.astype(np.int64))}).group_by("c").aggregate(
        [("f", "sum"), ("f", "count")])
    out = []
    for c, f, rows in zip(g["c"].to_pylist(), g["f_sum"].to_pylist(), g["f_count"].to_pylist(), strict=True):
        if c is None or not f:
            continue
        name = names[c] if names is not None and isinstance(c, int) and 0 <= c < len(names) else str(c)
        out.append(ClassFlags(name, rows, f))
    out.sort(key=lambda k: (-k.flagged, -k.flagged / k.rows, k.name))
    return out[:TOP_CLASSES]


# --- rendering --------------------------------------------------------------------------------------------


def quality_dict(section: QualitySection) -> dict[str, Any]:
    return {"source": section.source, "flags": section.flags, "edges": section.edges, "splits": {
        s.split: {"rows": s.rows, "measured": s.measured, "errors": s.errors, "flags": s.flags,
                  "flagged": s.flagged, "histograms": s.histograms,
                  "classes": [{"name": c.name, "rows": c.rows, "flagged": c.flagged} for c in s.classes]}
        for s in section.splits}}


def quality_md(section: QualitySection) -> list[str]:
    out = ["", f"## Quality (from `{section.source}`)", "",
           "| split | rows | measured | decode errors | " + " | ".join(section.flags) + " | any flag |",
           "| --- | ---: | ---: | ---: |" + " ---: |" * (len(section.flags) + 1)]
    for s in section.splits:
        out.append(f"| {s.split} | {s.rows} | {s.measured} | {s.errors} | "
                   + " | ".join(str(s.flags[f]) for f in section.flags) + f" | {s.flagged} |")
    for s in section.splits:
        if s.classes:
            out += ["", f"### {s.split}: classes with the most flagged clips", "", "| class | rows | flagged |",
                    "| --- | ---: | ---: |"]
            out += [f"| {c.name} | {c.rows} | {c.flagged} |" for c in s.classes]
    return out


def chart_quality(section: QualitySection) -> bytes | None:
    """One histogram per measure, the splits stacked."""
    if not section.edges or not any(s.measured for s in section.splits):
        return None
    fig = figure(4.0 * len(section.edges), 3.0)
    for i, (col, edges) in enumerate(section.edges.items()):
        ax = fig.add_subplot(1, len(section.edges), i + 1)
        bottom = np.zeros(len(edges) - 1)
        for s in section.splits:
            h = np.array(s.histograms.get(col, [0] * (len(edges) - 1)))
            ax.bar(edges[:-1], h, width=np.diff(edges), align="edge", bottom=bottom, label=s.split)
            bottom += h
        label = next(text for c, *_, text in HISTOGRAMS if c == col)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("clips")
        ax.set_title(col, fontsize=9)
        ax.legend(fontsize=7)
    return png(fig)


def quality_html(section: QualitySection, chart: bytes | None) -> list[str]:
    """The section's HTML; every number carries ``data-k="<split>.quality.<name>"``."""
    e = html.escape
    p = [f"<h2>Quality (from <code>{e(section.source)}</code>)</h2>",
         "<table><tr><th>split</th><th>rows</th><th>measured</th><th>decode errors</th>"
         + "".join(f"<th>{e(f)}</th>" for f in section.flags) + "<th>any flag</th></tr>"]
    for s in section.splits:
        k = e(s.split)
        p.append(f'<tr><td>{k}</td><td class="n" data-k="{k}.quality.rows">{s.rows}</td>'
                 f'<td class="n" data-k="{k}.quality.measured">{s.measured}</td>'
                 f'<td class="n" data-k="{k}.quality.errors">{s.errors}</td>'
                 + "".join(f'<td class="n" data-k="{k}.quality.{e(f)}">{s.flags[f]}</td>' for f in section.flags)
                 + f'<td class="n" data-k="{k}.quality.flagged">{s.flagged}</td></tr>')
    p.append("</table>")
    if chart:
        p.append(f'<img alt="quality histograms" data-chart="quality" src="{data_uri("image/png", chart)}">')
    for s in section.splits:
        if s.classes:
            k = e(s.split)
            p.append(f"<h3>{k}: classes with the most flagged clips</h3><table><tr><th>class</th><th>rows</th>"
                     "<th>flagged</th></tr>")
            p += [f'<tr><td>{e(c.name)}</td><td class="n">{c.rows}</td>'
                  f'<td class="n" data-k="{k}.quality.class.{e(c.name)}">{c.flagged}</td></tr>' for c in s.classes]
            p.append("</table>")
    return p
