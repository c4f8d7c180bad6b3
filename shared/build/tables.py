"""Turning a corpus' parsed table into the builder's Arrow schema, and the features every corpus shares."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.errors import MissingMediaError
from avsets.media.decoding import probe_media
from avsets.media.media_index import MediaIndex
from avsets.media.resolve import ResolveOptions, ResolveStats, attach_media, ensure_ids

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
    *,
    verify_media: bool = False,
    keep_ids: pa.Array | None = None,
) -> tuple[pa.Table, ResolveStats]:
    """ids, media, ``on_missing``, schema: the shared tail of every corpus' shard.

    With ``verify_media`` every resolved file is opened first and a file that fails counts as missing,
    so ``on_missing`` decides about corrupt files too (DESIGN: the full probe is opt-in).  ``keep_ids``
    (``only_ids``) drops every other row before media are resolved, so counts and ``on_missing`` see only
    the chosen clips.
    """
    table = ensure_ids(table)
    if keep_ids is not None:
        table = table.filter(pc.is_in(table.column("id"), value_set=keep_ids))
    if verify_media and index is not None:
        probe_opts = ResolveOptions(modalities=opts.modalities, media_pattern=opts.media_pattern,
                                    on_missing="keep", label_names=opts.label_names)
        table, stats = attach_media(table, index, probe_opts)
        table = _drop_unreadable(table, stats)
        table = _apply_on_missing(table, stats, opts.on_missing, index)
        return conform(table, schema), stats
    table, stats = attach_media(table, index, opts)
    return conform(table, schema), stats


def _drop_unreadable(table: pa.Table, stats: ResolveStats) -> pa.Table:
    """Null the media of rows whose file fails a full open; count them as corrupt."""
    paths = {m["path"] for col in ("audio", "video") for m in table.column(col).to_pylist() if m is not None}
    with ThreadPoolExecutor(max_workers=4) as pool:
        bad = {p for p, reason in zip(paths, pool.map(probe_media, paths), strict=True) if reason is not None}
    if not bad:
        return table
    for p in sorted(bad):
        logger.warning("verify_media: %s is unreadable; treated as missing", p)
    cols = {}
    for col in ("audio", "video"):
        values = table.column(col).to_pylist()
        cols[col] = [None if (v is not None and v["path"] in bad) else v for v in values]
    n_bad = 0
    offsets = table.column("media_offset").to_pylist()
    for i in range(table.num_rows):
        had = offsets[i] is not None
        if had and cols["audio"][i] is None and cols["video"][i] is None:
            offsets[i] = None
            n_bad += 1
    stats.found -= n_bad
    stats.missing += n_bad
    stats.corrupt += n_bad
    for col in ("audio", "video"):
        table = table.set_column(table.column_names.index(col), col, pa.array(cols[col], table.schema.field(col).type))
    return table.set_column(table.column_names.index("media_offset"), "media_offset",
                            pa.array(offsets, pa.float64()))


def _apply_on_missing(table: pa.Table, stats: ResolveStats, on_missing: str, index: MediaIndex) -> pa.Table:
    has = pc.is_valid(table.column("media_offset"))
    if on_missing == "error" and not pc.all(has).as_py():
        missing = table.filter(pc.invert(has)).column("id").to_pylist()[:5]
        raise MissingMediaError(f"{stats.missing} rows have no readable media under {list(index.roots)} "
                                f"(first: {', '.join(missing)}); pass on_missing='skip' or 'keep'")
    if on_missing == "skip":
        return table.filter(has)
    return table
