"""Parquet mirrors (AudioSet copies on the Hub): rows of a media struct column ``{bytes, path}``.

Indexing reads the footer and only the key columns: a key column (``video_id``, ``youtube_id``, ``ytid``,
``id``, or the one ``key_column`` names) and each media struct's ``path`` leaf, never the media bytes.
A row becomes a member named by its struct ``path`` (``audio/bal_train/{ytid}.flac``), with the key column's
value as a second name to match rows by.

Reading one row costs two requests: the footer (its length is in the locator, so exactly that range) and
the row group's ``bytes`` column chunk.  **Bytes moved are one row group's media column, not one member**:
a mirror with 100-row row groups moves ~100 members to serve one.  The decoded row group is kept (one per
process), so reading the rows of a row group in order moves each byte once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MediaError, MediaSourceError, MetadataError
from .ranged import RangeFile, RangeReader
from .records import Member, SourceStats, safe_member_name

KEY_COLUMNS = ("video_id", "youtube_id", "ytid", "id")


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)


def media_columns(schema: pa.Schema) -> list[tuple[str, bool]]:
    """``[(column, has a path field)]`` for every struct column with a binary ``bytes`` field."""
    out = []
    for fld in schema:
        if pa.types.is_struct(fld.type):
            names = {fld.type.field(i).name: fld.type.field(i).type for i in range(fld.type.num_fields)}
            if "bytes" in names and _is_binary(names["bytes"]):
                out.append((fld.name, "path" in names and (pa.types.is_string(names["path"])
                                                            or pa.types.is_large_string(names["path"]))))
    return out


def _default_ext(column: str) -> str:
    return "mp4" if "video" in column.lower() else "flac"


def index_parquet(url: str, reader: RangeReader, size: int, *, key_column: str | None = None
                  ) -> tuple[list[Member], SourceStats]:
    """One member per row and media column (rows whose struct is null are not members)."""
    stats = SourceStats()
    f = RangeFile(reader, size)
    try:
        pf = pq.ParquetFile(f, pre_buffer=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MediaSourceError(f"not a readable Parquet file ({exc})", source=url) from None
    schema = pf.schema_arrow
    found = list(schema.names)
    mcols = media_columns(schema)
    if not mcols:
        raise MetadataError(f"no media column (a struct with a binary 'bytes' field); columns found: {found}",
                            file=url)
    if key_column is not None and key_column not in found:
        raise MetadataError(f"key column {key_column!r} (media_key_column) not found; columns found: {found}",
                            file=url)
    key = key_column or next((c for c in KEY_COLUMNS if c in found), None)
    if key is None and not any(has_path for _, has_path in mcols):
        raise MetadataError(f"no key column ({', '.join(KEY_COLUMNS)}) and no media 'path' field to match rows "
                            f"by; columns found: {found}. Name one with media_key_column=...", file=url)
    md = pf.metadata
    footer = md.serialized_size
    cols = ([key] if key else []) + [f"{c}.path" for c, has_path in mcols if has_path]
    n_url = len(url)
    members: list[Member] = []
    try:
        for rg in range(md.num_row_groups):
            t = pf.read_row_group(rg, columns=cols)
            keys = t.column(key).cast(pa.string()).to_pylist() if key else [None] * t.num_rows
            for c, has_path in mcols:
                if has_path:
                    structs = t.column(c)
                    paths = pa.chunked_array([ch.field("path") for ch in structs.chunks], pa.string()).to_pylist()
                    valid = structs.is_valid().to_pylist()
                else:
                    paths, valid = [None] * t.num_rows, [True] * t.num_rows
                qc = c.replace("%", "%25").replace(",", "%2C").replace("=", "%3D").replace(":", "%3A")
                for r in range(t.num_rows):
                    if not valid[r]:
                        continue
                    kv, p = keys[r], paths[r]
                    ext = p.rsplit(".", 1)[-1] if p and "." in p.rsplit("/", 1)[-1] else _default_ext(c)
                    name = p if p else (f"{kv}.{ext}" if kv else None)
                    if name is None:
                        continue
                    rel = safe_member_name(name)
                    if rel is None:
                        stats.unsafe += 1
                        continue
                    alias = f"{kv}.{ext}" if kv and kv != rel.rsplit("/", 1)[-1].rsplit(".", 1)[0] else None
                    members.append(Member(rel, f"avsets:parquet:rg={rg},r={r},col={qc},fs={size},ft={footer},"
                                               f"n={n_url}:{url}!/{rel}", -1, alias))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MediaSourceError(f"Parquet data is damaged ({exc})", source=url) from None
    finally:
        stats.requests += f.requests
    return members, stats


_LOCK = threading.Lock()
_FOOTERS: OrderedDict[tuple[str, int], Any] = OrderedDict()
_GROUPS: OrderedDict[tuple[str, int, str], pa.Array] = OrderedDict()
KEEP_GROUPS = 1


def _footer(reader: RangeReader, fs: int, ft: int) -> Any:
    key = (reader.url, fs)
    with _LOCK:
        md = _FOOTERS.get(key)
    if md is not None:
        return md
    tail = reader.read(fs - ft - 8, fs)
    if len(tail) != ft + 8 or tail[-4:] != b"PAR1":
        raise MediaError("Parquet footer not where the index says: the file changed or is damaged")
    try:
        md = pq.read_metadata(pa.BufferReader(b"PAR1" + tail))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MediaError(f"Parquet footer is damaged ({exc})") from None
    with _LOCK:
        _FOOTERS[key] = md
        while len(_FOOTERS) > 64:
            _FOOTERS.popitem(last=False)
    return md


def read_parquet_member(reader: RangeReader, fields: dict[str, str]) -> bytes:
    """One row's media bytes: the footer (cached per process) and the row group's ``bytes`` column chunk."""
    rg, r, col, fs, ft = int(fields["rg"]), int(fields["r"]), fields["col"], int(fields["fs"]), int(fields["ft"])
    gkey = (reader.url, rg, col)
    with _LOCK:
        arr = _GROUPS.get(gkey)
    if arr is None:
        md = _footer(reader, fs, ft)
        try:
            pf = pq.ParquetFile(RangeFile(reader, fs), metadata=md, pre_buffer=True)
            t = pf.read_row_group(rg, columns=[f"{col}.bytes"])
        except (pa.ArrowInvalid, OSError, IndexError, KeyError) as exc:
            raise MediaError(f"cannot read row group {rg} column {col!r} ({exc})") from None
        arr = pa.concat_arrays([ch.field("bytes") for ch in t.column(col).chunks]) if t.num_rows else pa.array(
            [], pa.binary())
        with _LOCK:
            _GROUPS[gkey] = arr
            while len(_GROUPS) > KEEP_GROUPS:
                _GROUPS.popitem(last=False)
    if r >= len(arr):
        raise MediaError(f"row {r} is past the end of row group {rg}: the file changed")
    value = arr[r].as_py()
    if value is None:
        raise MediaError("the row's media bytes are null")
    return value
