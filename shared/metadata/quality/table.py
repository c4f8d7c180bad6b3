"""The quality table: one Parquet row per clip, key column ``id``, measures, flags and how it was made.

This module is the contract with the readers (``load_dataset(quality=...)``, ``export --quality``,
``report --quality``): they import :data:`QUALITY_FLAGS`, :data:`MEASURE_COLUMNS` and
:func:`read_quality_table` from here and nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from avsets.core.errors import AvsetsError

#: key of the JSON document in the Parquet file's key-value metadata that says how the table was made
METADATA_KEY = b"avsets.metadata.quality"
#: format of that document; bumped when a column changes meaning
TABLE_VERSION = 1

#: the boolean flag columns, in the order reports list them
QUALITY_FLAGS: tuple[str, ...] = ("silent", "still", "black", "short", "no_audio", "no_video", "av_mismatch")

#: the measure columns (not flags, not keys), with their Arrow types; units are in docs/quality.md
MEASURE_COLUMNS: tuple[str, ...] = (
    "duration_s", "has_audio", "has_video", "av_length_diff_s", "rms_dbfs", "peak_dbfs", "silent_fraction",
    "clipped_fraction", "still_fraction", "black_fraction", "scene_cuts", "fps", "width", "height",
    "sample_rate", "channels",
)

#: which clip and which media a row measured (``fingerprint`` decides whether a rerun recomputes it)
KEY_COLUMNS: tuple[str, ...] = ("id", "split", "youtube_id", "start", "end", "fingerprint")

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("youtube_id", pa.string()),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("fingerprint", pa.string()),
        ("duration_s", pa.float64()),
        ("has_audio", pa.bool_()),
        ("has_video", pa.bool_()),
        ("av_length_diff_s", pa.float64()),
        ("rms_dbfs", pa.float64()),
        ("peak_dbfs", pa.float64()),
        ("silent_fraction", pa.float64()),
        ("clipped_fraction", pa.float64()),
        ("still_fraction", pa.float64()),
        ("black_fraction", pa.float64()),
        ("scene_cuts", pa.int32()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sample_rate", pa.int32()),
        ("channels", pa.int32()),
    ]
    + [(flag, pa.bool_()) for flag in QUALITY_FLAGS]
    + [("error", pa.string())]
)


class QualityTableError(AvsetsError, ValueError):
    """A file given as a quality table is missing, not Parquet, or not a table ``avsets quality`` wrote."""


def empty_row() -> dict[str, Any]:
    """A row with every column null (measures fill what they can)."""
    return {name: None for name in SCHEMA.names}


def rows_to_table(rows: Iterable[Mapping[str, Any]], meta: Mapping[str, Any] | None = None) -> pa.Table:
    """Rows (dicts keyed by column name; missing keys are null) as a table of :data:`SCHEMA`."""
    rows = list(rows)
    table = pa.Table.from_pylist([{k: r.get(k) for k in SCHEMA.names} for r in rows], schema=SCHEMA)
    if meta is not None:
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(dict(meta), sort_keys=True).encode()})
    return table


def write_quality_table(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write ``table`` to ``path`` atomically (a part file renamed into place: a killed run leaves no half file)."""
    path = os.fspath(path)
    tmp = f"{path}.part-{os.getpid()}"
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def table_metadata(table_or_path: pa.Table | str | os.PathLike[str]) -> dict[str, Any]:
    """The ``avsets.metadata.quality`` metadata document (thresholds, versions) of a table or a file."""
    if isinstance(table_or_path, pa.Table):
        raw = (table_or_path.schema.metadata or {}).get(METADATA_KEY)
    else:
        raw = (pq.read_schema(os.fspath(table_or_path)).metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise QualityTableError(f"{table_or_path if not isinstance(table_or_path, pa.Table) else 'table'}: "
                                "no 'avsets.metadata.quality' metadata; write the table with `avsets quality`")
    return json.loads(raw)


def read_quality_table(path: str | os.PathLike[str]) -> pa.Table:
    """The quality table at ``path`` (its schema metadata holds the ``avsets.metadata.quality`` document).

    Raises :class:`QualityTableError` when the file is missing, not Parquet, lacks the ``id`` column or a
    flag column, or was not written by ``avsets quality``. Columns a newer avsets added are kept.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise QualityTableError(f"{path}: no such quality table (make one with `avsets quality ...`)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise QualityTableError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in ("id", *QUALITY_FLAGS, "error") if c not in table.column_names]
    if missing:
        raise QualityTableError(f"{path}: not a quality table (no column {', '.join(missing)})")
    if METADATA_KEY not in (table.schema.metadata or {}):
        raise QualityTableError(f"{path}: no 'avsets.metadata.quality' metadata; write the table with `avsets quality`")
    return table
