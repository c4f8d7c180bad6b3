"""A Parquet media file read front to back, row group by row group, with only its key and media columns
(the archive-order half of the Parquet kind).

One Parquet row is one group (its audio and its video cell); a cell is a member named by its struct
``path``, or by the key column when that path is absent or unsafe (the rule of
:func:`.parquetsrc.index_parquet`).  Member bytes are zero-copy slices of the batch's buffer.
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from avsets.core.errors import MediaSourceError, MetadataError
from avsets.core.segments import MEDIA_EXTENSIONS

from .kinds import Source
from .members import Want, damaged, group_and_ext, public_url
from .ranged import is_local
from .records import Member, SourceStats, safe_member_name
from .sequential import ArchiveProgress, remote_size

#: Parquet columns that name a row's clip, tried in this order (``media_key_column`` in the config overrides).
KEY_COLUMNS = ("video_id", "youtube_id", "ytid", "id")


def media_struct_columns(schema) -> list[str]:
    """Columns of a Parquet/Arrow schema that hold ``{bytes, path}`` media structs."""
    out = []
    for fld in schema:
        t = fld.type
        if pa.types.is_struct(t):
            names = {t.field(i).name for i in range(t.num_fields)}
            if "bytes" in names:
                out.append(fld.name)
    return out


def iter_parquet(source: Source, stats: SourceStats, want: Want | None, key_column: str | None = None
                 ) -> Iterator[Member]:
    """Every media cell of a Parquet file as a member, row by row; locally, row groups no member of which
    ``want`` accepts are never read (:func:`_wanted_row_groups`)."""
    url = public_url(source.url)
    try:
        # a local file through Arrow's own reader: a Python file object made Arrow call back into Python
        # (and take the GIL) for every read, 1.9x the CPU of a pass without decoding (measured)
        f = (fsspec.open(source.url, "rb", block_size=8 << 20).open() if "://" in source.url
             else pa.OSFile(source.url, "rb"))
    except (OSError, ValueError) as exc:
        raise MediaSourceError(f"cannot open Parquet file: {type(exc).__name__}: {exc}", source=url) from None
    progress = None if "://" not in source.url or is_local(source.url) else ArchiveProgress(source, stats)
    if progress is not None:
        progress.opened(remote_size(f))
    try:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            raise damaged(source, stats, exc) from None
        schema = pf.schema_arrow
        media_cols = media_struct_columns(schema)
        if not media_cols:
            raise MediaSourceError("no media column (a struct with 'bytes' and 'path') in this Parquet file; "
                                   f"columns: {', '.join(schema.names)}", source=url)
        names = schema.names
        if key_column is not None and key_column not in names:
            raise MetadataError(f"media_key_column {key_column!r} is not in this Parquet file; columns: "
                                f"{', '.join(names)}", file=url)
        key = key_column or next((c for c in KEY_COLUMNS if c in names), None)
        columns = ([key] if key else []) + media_cols
        row_no = 0
        try:
            # locally, row groups no row wants are skipped (their key columns are read by pread, a few KB);
            # remotely a file is read in 8-MiB blocks, so a first pass over the key columns would move the
            # file twice: every row group is read once instead
            groups = None if want is None or "://" in source.url else _wanted_row_groups(pf, key, media_cols, want)
            for batch in pf.iter_batches(columns=columns, batch_size=64, row_groups=groups):
                if progress is not None:
                    progress.tick(stats.bytes_read)
                keys = batch.column(key).to_pylist() if key else [None] * batch.num_rows
                cols = []
                for col in media_cols:
                    arr = batch.column(col)
                    has_path = "path" in {arr.type.field(i).name for i in range(arr.type.num_fields)}
                    data = arr.field("bytes")
                    # zero-copy views of the batch's buffer (a Python bytes per row would copy every member)
                    byts = buffers_of(data)
                    cols.append((col, byts, arr.field("path").to_pylist() if has_path else [None] * len(byts)))
                for i, k in enumerate(keys):
                    row_no += 1
                    for col, byts, paths in cols:  # one Parquet row is one group: its audio and its video
                        member = _parquet_member(stats, k, byts[i], paths[i], col, row_no)
                        if member is not None and (want is None or want(member._replace(data=None))):
                            yield member
        except (pa.ArrowException, OSError) as exc:
            raise damaged(source, stats, exc) from None
    finally:
        f.close()


def _wanted_row_groups(pf, key: str | None, media_cols: list[str], want: Want) -> list[int]:
    """Row groups holding at least one member ``want`` accepts, judged from the key column and the struct
    ``path`` leaves alone: the media bytes of the other row groups are never read."""
    paths_of = [c for c in media_cols if "path" in {f.name for f in pf.schema_arrow.field(c).type}]
    cols = ([key] if key else []) + [f"{c}.path" for c in paths_of]
    out = []
    for rg in range(pf.num_row_groups):
        if not cols:  # nothing names the rows without their bytes: read them all
            return list(range(pf.num_row_groups))
        t = pf.read_row_group(rg, columns=cols)
        keys = t.column(key).to_pylist() if key else [None] * t.num_rows
        named = [[s.get("path") if s else None for s in t.column(c).to_pylist()] for c in paths_of]
        for i, k in enumerate(keys):
            names = [p[i] for p in named] or [None]
            if any(want(_bare_parquet_member(k, p, c)) for p, c in zip(names, paths_of or media_cols, strict=False)):
                out.append(rg)
                break
    return out


def _bare_parquet_member(key: object, path: str | None, column: str) -> Member:
    """The member a cell will be, named as :func:`_parquet_member` names it, before its bytes are read."""
    ext = "mp4" if "video" in column.lower() else "flac"
    name = safe_member_name(path) if path else None
    if name is None:
        name = safe_member_name(f"{key}.{ext}") if key is not None else None
    name = name or f"row.{ext}"
    if group_and_ext(name)[1] not in MEDIA_EXTENSIONS:
        name = f"{name}.{ext}"
    return Member(name, "", -1, f"{key}.{group_and_ext(name)[1]}" if key is not None else None)


def buffers_of(data) -> list:
    """Each value of a binary Arrow array as a zero-copy ``pyarrow.Buffer`` (None when null), sliced from the
    array's one data buffer: a scalar per value cost as much as reading the row group."""
    if pa.types.is_large_binary(data.type):
        width = np.int64
    elif pa.types.is_binary(data.type):
        width = np.int32
    else:  # binary views and the like: the slow, general way
        return [None if not v.is_valid else v.as_buffer() for v in data]
    bufs = data.buffers()
    offsets = np.frombuffer(bufs[1], dtype=width, count=len(data) + 1, offset=data.offset * np.dtype(width).itemsize)
    values = bufs[2]
    valid = data.is_valid().to_numpy(zero_copy_only=False) if data.null_count else None
    out = []
    for i in range(len(data)):
        if valid is not None and not valid[i]:
            out.append(None)
            continue
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        out.append(values.slice(lo, hi - lo) if values is not None else pa.py_buffer(b""))
    return out


def _parquet_member(stats: SourceStats, key: object, data, path: str | None, column: str,
                    row_no: int) -> Member | None:
    """One Parquet cell as a member named by its struct ``path``; a path that is unsafe as a file name
    (``/home/...``, ``C:\\...``) or absent gives way to the key column's value: the key still names the clip
    (the same rule as :func:`avsets.media.sources.parquetsrc.index_parquet`)."""
    stats.members += 1
    if data is None:
        stats.junk += 1
        return None
    stats.bytes_read += len(data)
    name = safe_member_name(path) if path else None
    if path and name is None and key is None:
        stats.note_unsafe(path)
        return None
    if name is None:
        name = f"{key if key is not None else 'row'}.{_guess_ext(data, column)}"
        name = safe_member_name(name) or f"row{row_no}.{_guess_ext(data, column)}"
    ext = group_and_ext(name)[1]
    if ext not in MEDIA_EXTENSIONS:
        ext = _guess_ext(data, column)
        name = f"{name}.{ext}"
    stats.media += 1
    alias = f"{key}.{ext}" if key is not None else None
    return Member(name, "", len(data), alias, (), data, f"\0row{row_no}")


def _guess_ext(data, column: str) -> str:
    """The container a byte string holds, from its magic number (Parquet rows may carry no path)."""
    head = bytes(memoryview(data)[:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"RIFF"):
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "mp3"
    if head[4:8] == b"ftyp":
        return "mp4" if column != "audio" else "m4a"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return "flac" if column == "audio" else "mp4"
