"""Turning a corpus' parsed table into the builder's Arrow schema, and the features every corpus shares."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

import datasets
import pyarrow as pa

from .media_index import MediaIndex
from .resolve import ResolveOptions, ResolveStats, attach_media, ensure_ids

logger = logging.getLogger(__name__)


def common_features(corpus_features: dict[str, datasets.features.features.FeatureType]) -> datasets.Features:
    """``id, youtube_id, start, end, <corpus columns>, audio, video, media_offset`` (DESIGN.md order).

    Media columns are the stock ``Audio(decode=False)`` / ``Video(decode=False)`` storage features: the
    builder yields Arrow tables, so ``Audio.encode_example`` (which imports torch) never runs.
    """
    feats: dict = {
        "id": datasets.Value("string"),
        "youtube_id": datasets.Value("string"),
        "start": datasets.Value("float64"),
        "end": datasets.Value("float64"),
    }
    feats.update(corpus_features)
    feats["audio"] = datasets.Audio(decode=False)
    feats["video"] = datasets.Video(decode=False)
    feats["media_offset"] = datasets.Value("float64")
    return datasets.Features(feats)


def label_names_of(features: datasets.Features) -> dict[str, Sequence[str]]:
    """ClassLabel names per column (also inside ``Sequence``/``List``), for templates and cards."""
    out: dict[str, Sequence[str]] = {}
    for name, feat in features.items():
        if isinstance(feat, datasets.ClassLabel):
            out[name] = feat.names
        else:
            inner = getattr(feat, "feature", None)
            if isinstance(inner, datasets.ClassLabel):
                out[name] = inner.names
    return out


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast columns into ``schema`` order; columns the corpus did not give are all-null."""
    arrays = []
    n = table.num_rows
    for fld in schema:
        if fld.name in table.column_names:
            col = table.column(fld.name)
            if col.type != fld.type:
                col = col.cast(fld.type)
            arrays.append(col)
        else:
            arrays.append(pa.nulls(n, fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def batch_tables(tables: Iterable[pa.Table], max_rows: int = 65_536) -> Iterator[pa.Table]:
    """Concatenate consecutive small tables (up to ``max_rows``) so per-table costs are paid rarely.

    A streaming shard reaches the builder alone, so this changes nothing there; a map-style prepare gets
    all shards of a split at once and writes them in a few large batches.
    """
    pending: list[pa.Table] = []
    rows = 0
    for table in tables:
        if pending and rows + table.num_rows > max_rows:
            yield pa.concat_tables(pending, promote_options="permissive") if len(pending) > 1 else pending[0]
            pending, rows = [], 0
        pending.append(table)
        rows += table.num_rows
    if pending:
        yield pa.concat_tables(pending, promote_options="permissive") if len(pending) > 1 else pending[0]


def finalize_shard(
    table: pa.Table,
    index: MediaIndex | None,
    opts: ResolveOptions,
    schema: pa.Schema,
) -> tuple[pa.Table, ResolveStats]:
    """ids, media, ``on_missing``, schema: the shared tail of every corpus' shard."""
    table = ensure_ids(table)
    table, stats = attach_media(table, index, opts)
    return conform(table, schema), stats
