"""The leakage line per split of ``avsets report --leakage CSV``: how many of a split's clips share a video
(by id: ``avsets overlap``) or content (``avsets duplicates``) with a clip of another split or corpus."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import LeakageUsageError

SIDES = ("corpus", "split", "id")


@dataclass
class SplitLeakage:
    """One split's leakage: distinct clips paired with another split, and with which."""

    split: str
    rows: int
    leaking: int = 0  # distinct clips of this split paired with a clip of another corpus/split
    within: int = 0  # distinct clips paired with another clip of the same split (duplicates inside it)
    partners: dict[str, int] = field(default_factory=dict)  # "corpus/split" -> distinct clips of this split
    kinds: dict[str, int] = field(default_factory=dict)  # "id" (overlap CSV), "audio", "video", "both" -> pairs

    def line(self) -> str:
        """``test: 57 of 102 clips (55.9%) leak: audiosetzsl/test 9, vggsound/train 3; pairs by id 12``."""
        pct = f"{100.0 * self.leaking / self.rows:.1f}%" if self.rows else "-"
        out = f"{self.split}: {self.leaking:,} of {self.rows:,} clips ({pct}) also in another split"
        if self.partners:
            out += ": " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.partners.items(), key=lambda kv: -kv[1]))
        if self.kinds:
            out += "; pairs " + ", ".join(f"{'by id' if k == 'id' else k} {v:,}" for k, v in sorted(self.kinds.items()))
        if self.within:
            out += f"; {self.within:,} clips duplicated within the split"
        return out


def read_pairs(paths: Sequence[str | os.PathLike]) -> pa.Table:
    """The pair rows of overlap/duplicates CSVs: ``corpus_a, split_a, id_a, corpus_b, split_b, id_b, kind``
    (``kind`` is ``id`` for an overlap CSV)."""
    parts = []
    for path in paths:
        try:
            t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in ("corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b",
                                                       "kind", "youtube_id")}))
        except (OSError, pa.ArrowInvalid) as exc:
            raise LeakageUsageError(f"--leakage {path}: cannot read it as CSV ({exc})") from exc
        need = [f"{s}_{x}" for x in "ab" for s in SIDES]
        missing = [c for c in need if c not in t.column_names]
        if missing:
            raise LeakageUsageError(f"--leakage {path}: not an avsets overlap/duplicates CSV (no {', '.join(missing)})")
        kind = t.column("kind") if "kind" in t.column_names else pa.repeat(pa.scalar("id"), t.num_rows)
        parts.append(t.select(need).append_column("kind", kind))
    return pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in
                                                           [*(f"{s}_{x}" for x in "ab" for s in SIDES), "kind"]})


def split_leakage(pairs: pa.Table, corpus: str, rows_per_split: dict[str, int]) -> list[SplitLeakage]:
    """Per split of ``corpus``: the leakage the pair rows say (both sides of each pair are looked at)."""
    sides = []
    for me, other in (("a", "b"), ("b", "a")):
        sides.append(pa.table({
            "split": pairs.column(f"split_{me}"), "id": pairs.column(f"id_{me}"),
            "partner": pc.binary_join_element_wise(pairs.column(f"corpus_{other}"), pairs.column(f"split_{other}"),
                                                   "/"),
            "same": pc.and_(pc.equal(pairs.column(f"corpus_{other}"), pairs.column(f"corpus_{me}")),
                            pc.equal(pairs.column(f"split_{other}"), pairs.column(f"split_{me}"))),
            "kind": pairs.column("kind"),
        }).filter(pc.equal(pairs.column(f"corpus_{me}"), corpus)))
    t = pa.concat_tables(sides)
    out = []
    for split, rows in rows_per_split.items():
        s = t.filter(pc.equal(t.column("split"), split))
        cross = s.filter(pc.invert(s.column("same")))
        inside = s.filter(s.column("same"))
        rec = SplitLeakage(split=split, rows=rows)
        rec.leaking = len(pc.unique(cross.column("id"))) if cross.num_rows else 0
        rec.within = len(pc.unique(inside.column("id"))) if inside.num_rows else 0
        if cross.num_rows:
            per = cross.group_by(["partner"]).aggregate([("id", "count_distinct")])
            rec.partners = dict(zip(per.column("partner").to_pylist(), per.column("id_count_distinct").to_pylist(),
                                    strict=True))
            kinds = cross.group_by(["kind"]).aggregate([("id", "count")])
            rec.kinds = dict(zip(kinds.column("kind").to_pylist(), kinds.column("id_count").to_pylist(), strict=True))
        out.append(rec)
    return out


def leakage_md(lines: Sequence[SplitLeakage]) -> list[str]:
    """The report's Markdown section (nothing without ``--leakage``)."""
    if not lines:
        return []
    return ["", "## Leakage", "", *[f"- {x.line()}" for x in lines]]


def leakage_html(lines: Sequence[SplitLeakage]) -> list[str]:
    """The report's HTML section (nothing without ``--leakage``)."""
    if not lines:
        return []
    e = html.escape
    p = ["<h2>Leakage</h2><table><tr><th>split</th><th>rows</th><th>clips also in another split</th>"
         "<th>with</th><th>pairs</th><th>duplicated within</th></tr>"]
    for x in lines:
        k = e(x.split)
        p.append(f'<tr><td>{k}</td><td class="n">{x.rows}</td><td class="n" data-k="{k}.leaking">{x.leaking}</td>'
                 f"<td>{e(', '.join(f'{a} {b}' for a, b in sorted(x.partners.items())))}</td>"
                 f"<td>{e(', '.join(f'{a} {b}' for a, b in sorted(x.kinds.items())))}</td>"
                 f'<td class="n">{x.within}</td></tr>')
    p.append("</table>")
    return p


def leakage_dict(lines: Sequence[SplitLeakage]) -> dict:
    """The report's JSON entry."""
    return {x.split: {"rows": x.rows, "leaking": x.leaking, "within": x.within, "partners": x.partners,
                      "kinds": x.kinds} for x in lines}
