"""``avsets verify`` without media: what the metadata holds, per split (rows, labels used), and the rows the
parsers skipped (``errors="skip"``, unsafe file names).

A user who has only fetched the metadata, or is about to fetch, gets facts about it instead of a coverage
table of zeros; nothing is missing yet, so this is a success (exit 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from avsets.build.tables import label_names_of
from avsets.metadata.readers import collect_row_errors


@dataclass
class SplitMetadata:
    """One split of the metadata: rows and the label ids its rows use."""

    split: str
    rows: int = 0
    labels_used: set[int] = field(default_factory=set)


@dataclass
class MetadataReport:
    corpus: str
    config: str
    splits: list[SplitMetadata]
    label_column: str | None
    label_space: int  # names in the fixed label list of that column (0: the corpus has none)
    skipped: list[tuple[str, int, list[str]]]  # (where, rows skipped, first reasons)

    @property
    def skipped_rows(self) -> int:
        return sum(n for _, n, _ in self.skipped)


def _label_ids(column: pa.ChunkedArray) -> set[int]:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = pc.list_flatten(column)
    return {v for v in pc.unique(column).to_pylist() if v is not None}


def metadata_report(corpus: str, config: str | None = None, *, data_dir: str | None = None,
                    **config_kwargs: Any) -> MetadataReport:
    """Read ``corpus``/``config``'s metadata as ``load_dataset`` would (no media, no cache written)."""
    from datasets import DownloadManager

    from avsets.build.api import load_dataset_builder

    builder = load_dataset_builder(corpus, config, data_dir=data_dir, **config_kwargs)
    dl_manager = DownloadManager(dataset_name=corpus, data_dir=builder.config.data_dir)
    names = label_names_of(builder.info.features)
    label_column = next((c for c in ("label", "labels") if c in names), next(iter(names), None))
    splits: list[SplitMetadata] = []
    with collect_row_errors() as sink:
        for gen in builder._split_generators(dl_manager):
            sm = SplitMetadata(gen.name)
            for _, table in builder._generate_tables(**gen.gen_kwargs):
                sm.rows += table.num_rows
                if label_column is not None and label_column in table.column_names:
                    sm.labels_used |= _label_ids(table.column(label_column))
            splits.append(sm)
    skipped = [(where, errs.count, list(errs.examples)) for where, errs in sink if errs.count]
    for relpath, n in (getattr(builder, "unsafe_rows", None) or {}).items():
        if n:
            skipped.append((relpath, n, ["file name with a '..' part or an absolute path"]))
    return MetadataReport(corpus, builder.config.name, splits, label_column,
                          len(names[label_column]) if label_column else 0, skipped)


def format_metadata_report(rep: MetadataReport) -> str:
    """The report as aligned text: a table per split, then the skipped rows."""
    head: Sequence[str] = ("split", "rows") + (("labels used",) if rep.label_column else ())
    lines = [tuple(head)]
    for s in rep.splits:
        row = (s.split, str(s.rows))
        if rep.label_column:
            row += (f"{len(s.labels_used)} of {rep.label_space}",)
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    out = [f"{rep.corpus}/{rep.config}: metadata only (no --media-dir given; add it to check media coverage)"]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in lines]
    if rep.skipped:
        out.append(f"skipped rows: {rep.skipped_rows}")
        for where, n, examples in rep.skipped:
            out.append(f"  {where}: {n} skipped; first: " + "; ".join(examples[:3]))
    else:
        out.append("skipped rows: 0")
    return "\n".join(out)
