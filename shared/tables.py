"""Turning a corpus' parsed table into the builder's Arrow schema, and the features every corpus shares."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
