"""Parquet mirrors (AudioSet copies on the Hub): rows of a media struct column ``{bytes, path}``.

Indexing reads the footer and only the key columns: a key column (``video_id``, ``youtube_id``, ``ytid``,
``id``, or the one ``key_column`` names) and each media struct's ``path`` leaf, never the media bytes.
A row becomes a member named by its struct ``path`` (``audio/bal_train/{ytid}.flac``), with the key column's
value as a second name to match rows by.

Reading one row, when the file has a page index (``datasets`` writes one; :mod:`.parquet_pages`): one
request for the row's data page (a few members at most), plus one for the chunk's dictionary page when
that page is dictionary-encoded; the page's place is in the locator.  Without a page index: two requests,
the footer (its length is in the locator, so exactly that range) and the row group's ``bytes`` column
chunk, so **bytes moved are one row group's media column**: a mirror of 100-row row groups moves ~100
members to serve one.  That decoded row group is kept (one per process), so reading the rows of a row group
in order moves each byte once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from avsets.core.errors import MediaError, MediaSourceError, MetadataError

from .parquet_pages import (
    PageUnsupported,
    chunk_plans,
    dictionary_values,
    page_locations,
    page_of_row,
    row_value,
)
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
    pages = _page_fields(pf, f, size, footer, [c for c, _ in mcols])
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
                    if rel is None and kv:  # a path unsafe as a file name (/home/..., C:\\...) is still named
                        rel = safe_member_name(f"{kv}.{ext}")  # by the row's key column: served under that
                    if rel is None:
                        stats.unsafe += 1
                        continue
                    alias = f"{kv}.{ext}" if kv and kv != rel.rsplit("/", 1)[-1].rsplit(".", 1)[0] else None
                    extra = pages.get((c, rg))
                    where = f"{extra[0]},pg={_page_field(extra[1], r)}," if extra else ""
                    members.append(Member(rel, f"avsets:parquet:rg={rg},r={r},col={qc},fs={size},ft={footer},"
                                               f"{where}n={n_url}:{url}!/{rel}", -1, alias))
    except (pa.ArrowInvalid, OSError) as exc:
        raise MediaSourceError(f"Parquet data is damaged ({exc})", source=url) from None
    finally:
        stats.requests += f.requests
    return members, stats


def _page_fields(pf: Any, f: RangeFile, size: int, footer: int, columns: list[str]
                 ) -> dict[tuple[str, int], tuple[str, list[tuple[int, int, int]]]]:
    """``{(column, row group): (locator fields, page locations)}`` for each media ``bytes`` column chunk the
    file's page index describes (two ranged reads: the raw footer and the offset indexes); ``{}`` for files
    without one, or whose layout the page reader does not handle (the row-group path serves those)."""
    levels = {}
    schema = pf.schema
    for i in range(len(schema)):
        col = schema.column(i)
        levels[col.path] = (col.max_definition_level, col.max_repetition_level)
    wanted = [c for c in columns if levels.get(f"{c}.bytes", (0, 1))[1] == 0]  # known and not repeated
    md = pf.metadata
    if not wanted or md.num_row_groups == 0:
        return {}
    if not any(md.row_group(0).column(j).has_offset_index for j in range(md.num_columns)):
        return {}  # no page index: nothing to learn from the raw footer
    try:
        f.seek(size - 8 - footer)
        raw = f.read(footer)
        by_path = chunk_plans(raw, [(c, "bytes") for c in wanted])
        plans = {c: by_path[(c, "bytes")] for c in wanted}
        spans = [(p.index_offset, p.index_offset + p.index_length) for ps in plans.values() for p in ps
                 if p is not None and p.index_offset >= 0 and p.index_length > 0]
        if not spans:
            return {}
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        if hi > size or hi - lo > 64 << 20:
            return {}
        f.seek(lo)
        region = f.read(hi - lo)
        out = {}
        for c, ps in plans.items():
            max_def = levels[f"{c}.bytes"][0]
            for rg, p in enumerate(ps):
                if p is None or p.index_offset < 0 or p.index_length <= 0:
                    continue
                try:
                    locs = page_locations(region[p.index_offset - lo:p.index_offset - lo + p.index_length], size)
                except PageUnsupported:
                    continue  # this chunk's index is not trusted: its rows are read by row group
                if locs:
                    out[(c, rg)] = (f"cd={p.codec},dl={max_def},dp={p.dict_offset}_{p.dict_length}", locs)
        return out
    except (PageUnsupported, OSError, ValueError):
        return {}


def _page_field(pages: list[tuple[int, int, int]], row: int) -> str:
    off, length, first = page_of_row(pages, row)
    return f"{off}_{length}_{first}"


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


_DICTS: OrderedDict[tuple[str, int], tuple[bytes, list[tuple[int, int]]]] = OrderedDict()


def _inside(offset: int, length: int, file_size: int) -> None:
    """A page range from the file's own index must lie inside the file before anything is read (a crafted
    size would otherwise ask ``os.pread`` or the server for gigabytes): else the row group serves the row."""
    if offset < 0 or length <= 0 or offset + length > file_size:
        raise PageUnsupported(f"page range {offset}+{length} lies outside the {file_size}-byte file")


def _read_page_member(reader: RangeReader, fields: dict[str, str]) -> bytes:
    """The row's value from its data page (and its chunk's dictionary page, when the page needs it)."""
    off, length, first = (int(x) for x in fields["pg"].split("_"))
    codec, max_def, row, fs = int(fields["cd"]), int(fields["dl"]), int(fields["r"]), int(fields["fs"])
    _inside(off, length, fs)
    raw = reader.read(off, off + length)
    if len(raw) != length:
        raise PageUnsupported("the page is shorter than the index says")
    value = row_value(raw, codec, max_def, row - first)
    if value == "dictionary":
        doff, dlen = (int(x) for x in fields["dp"].split("_"))
        if doff < 0:
            raise PageUnsupported("a dictionary-encoded page without a dictionary page")
        _inside(doff, dlen, fs)
        key = (reader.url, doff)
        with _LOCK:
            words = _DICTS.get(key)
        if words is None:
            words = dictionary_values(reader.read(doff, doff + dlen), codec)
            with _LOCK:
                _DICTS[key] = words
                while len(_DICTS) > 4:
                    _DICTS.popitem(last=False)
        value = row_value(raw, codec, max_def, row - first, words)
    if value is None:
        raise MediaError("the row's media bytes are null")
    assert isinstance(value, bytes)
    return value


def read_parquet_member(reader: RangeReader, fields: dict[str, str]) -> bytes:
    """One row's media bytes: from its data page when the locator knows it (:mod:`.parquet_pages`), else
    through the footer (cached per process) and the row group's ``bytes`` column chunk."""
    if "pg" in fields:
        try:
            return _read_page_member(reader, fields)
        except PageUnsupported:
            pass  # a page this reader does not handle: the row group path below reads it
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
