"""Write rows into size-bounded Parquet shards, resumably.

Layout of an export folder (any fsspec target)::

    data/<config>/<split>-00000-of-00003.parquet   # final shards, the Hub layout stock `datasets` reads
    .avsets/<config>/plan.json                     # what was asked (fingerprint, options, chunk row ranges)
    .avsets/<config>/<split>/chunk-00000.json      # progress of one chunk: its finished shards
    .avsets/<config>/parts/<split>-c00000-s00002.parquet      # finished shards before the final rename
    .avsets/<config>/parts/<split>-c00000-s00003.parquet.tmp  # the shard being written

Why this shape: the shard count ``NNNNN`` is known only once every row has been cut (re-encoded sizes are
unknown up front), so shards are filled by their *real* byte size and renamed at the end. A finished shard
is renamed from ``.tmp`` and recorded in its chunk's progress file; a rerun reads that file and restarts at
the first row after the last finished shard, never touching finished shards. Chunks are contiguous row
ranges so several writers (Ray tasks) can work on one split at once, each with its own progress file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

STATE_DIR = ".avsets"
#: a row group holds at most this many bytes of media and this many rows (streaming reads a row group at a time)
ROW_GROUP_BYTES = 64 * 2**20
ROW_GROUP_ROWS = 1000

def fixed_overhead(schema: pa.Schema) -> int:
    """Bytes a shard costs besides its rows: the footer holds the schema (with the features JSON) twice."""
    meta = sum(len(k) + len(v) for k, v in (schema.metadata or {}).items())
    return 2 * meta + 64 * len(schema) + 2048


def row_overhead(row: dict, media: tuple[str, ...]) -> int:
    """Estimated bytes of a row besides its media payloads (strings, lists, scalars, media paths)."""
    n = 16
    for k, v in row.items():
        if k in media:
            n += 8 + len((v or {}).get("path") or "")
        elif isinstance(v, (str, bytes)):
            n += 4 + len(v)
        elif isinstance(v, (list, tuple)):
            n += 4 + sum(4 + len(x) if isinstance(x, str) else 8 for x in v)
        else:
            n += 8
    return n


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def state_dir(root: str, config: str) -> str:
    return f"{root}/{STATE_DIR}/{config}"


def write_json_atomic(fs: fsspec.AbstractFileSystem, path: str, obj: Any) -> None:
    """Write JSON so that a reader sees the old or the new file, never half of one (kill -9 safe)."""
    tmp = f"{path}.tmp"
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    fs.mv(tmp, path)


def read_json(fs: fsspec.AbstractFileSystem, path: str) -> Any | None:
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        return json.load(f)


@dataclass
class ShardRecord:
    """One finished shard: its part file and the row range of the *input* it covers."""

    name: str
    row_start: int
    row_stop: int
    num_rows: int
    num_bytes: int  # file size on the target


@dataclass
class ChunkState:
    """Progress of one contiguous row range ``[row_start, row_stop)`` of one split."""

    split: str
    chunk: int
    row_start: int
    row_stop: int
    shards: list[ShardRecord] = field(default_factory=list)
    done: bool = False
    skipped: int = 0  # rows of finished shards' ranges that had no exportable media
    copied: int = 0  # media cells copied byte for byte
    encoded: int = 0  # media cells re-encoded

    @property
    def next_row(self) -> int:
        return self.shards[-1].row_stop if self.shards else self.row_start

    @classmethod
    def from_dict(cls, d: dict) -> ChunkState:
        return cls(**{**d, "shards": [ShardRecord(**s) for s in d.get("shards", [])]})

    @classmethod
    def load(cls, fs: fsspec.AbstractFileSystem, path: str) -> ChunkState | None:
        d = read_json(fs, path)
        return None if d is None else cls.from_dict(d)

    def save(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        write_json_atomic(fs, path, asdict(self))


def parquet_writer_options(schema: pa.Schema, media_columns: Iterable[str]) -> dict[str, Any]:
    """Writer options: media bytes are already compressed (FLAC, H.264), so store them as they are.

    Compressing, dictionary-encoding or computing min/max statistics of multi-megabyte binary cells costs
    CPU and gains nothing; the small columns keep zstd, dictionaries and statistics.
    """
    media = set(media_columns)
    leaf: list[str] = []

    def walk(prefix: str, t: pa.DataType) -> None:
        if pa.types.is_struct(t):
            for f in t:
                walk(f"{prefix}.{f.name}", f.type)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(f"{prefix}.list.element", t.value_type)
        else:
            leaf.append(prefix)

    for f in schema:
        walk(f.name, f.type)
    plain = [c for c in leaf if c.split(".")[0] not in media]
    compression = {c: ("zstd" if c in plain else "none") for c in leaf}
    return {
        "compression": compression,
        "use_dictionary": plain,
        "write_statistics": plain,
        # Not one page per media cell (with a page index, avsets could then read one clip of a shard by its
        # page): pyarrow closes pages only between write batches, and batches of one row made stock
        # ``datasets`` streaming of the shards 17% slower (measured); stock readers come first.
        "data_page_size": 1 << 20,
    }


def media_column(cells: list[dict | None], type_: pa.StructType) -> pa.ChunkedArray:
    """A ``struct<bytes, path>`` column whose bytes are the cells' own buffers, one chunk per row.

    ``Table.from_pylist`` would copy every media payload once more into a contiguous Arrow buffer; wrapping
    each cell's buffer (zero-copy for ``bytes`` and Arrow buffers) lets the Parquet writer read them where
    they are. That copy is a large share of an export that only copies trimmed clips.
    """
    chunks = []
    bytes_field, path_field = type_.field("bytes"), type_.field("path")
    for cell in cells:
        if cell is None:
            chunks.append(pa.nulls(1, type_))
            continue
        data = cell.get("bytes")
        if data is None:
            b = pa.nulls(1, bytes_field.type)
        else:
            buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
            offsets = pa.py_buffer(np.array([0, buf.size], dtype=np.int32))
            b = pa.Array.from_buffers(bytes_field.type, 1, [None, offsets, buf])
        p = pa.array([cell.get("path")], path_field.type)
        chunks.append(pa.StructArray.from_arrays([b, p], fields=[bytes_field, path_field]))
    return pa.chunked_array(chunks, type=type_)


def rows_to_table(rows: list[dict], schema: pa.Schema, media: tuple[str, ...]) -> pa.Table:
    """Rows (dicts) -> an Arrow table of ``schema``; media columns via :func:`media_column`."""
    plain = [{k: v for k, v in r.items() if k not in media} for r in rows]
    table = pa.Table.from_pylist(plain, schema=pa.schema([f for f in schema if f.name not in media]))
    for name in sorted((m for m in media if m in schema.names), key=schema.get_field_index):
        field_ = schema.field(name)
        table = table.add_column(schema.get_field_index(name), field_,
                                 media_column([r.get(name) for r in rows], field_.type))
    return table.replace_schema_metadata(schema.metadata)


class ShardWriter:
    """Fill the shards of one chunk in order, each to at most ``max_bytes`` (a bigger row gets its own shard).

    ``add(row, nbytes, index)`` takes converted rows in input order; ``index`` is the input row number
    (rows without media are reported with ``skip(index)`` so a resume knows where a shard's range ends).
    """

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        root: str,
        config: str,
        state: ChunkState,
        schema: pa.Schema,
        media_columns: Iterable[str],
        max_bytes: int,
        *,
        row_group_bytes: int | None = None,
        row_group_rows: int | None = None,
    ) -> None:
        self.fs, self.root, self.config, self.state = fs, root, config, state
        self.schema = schema
        self.media = tuple(media_columns)
        self.options = parquet_writer_options(schema, self.media)
        self._fixed = fixed_overhead(schema)
        self.max_bytes = max_bytes
        self.rg_bytes = row_group_bytes or ROW_GROUP_BYTES
        self.rg_rows = row_group_rows or ROW_GROUP_ROWS
        self.state_path = f"{state_dir(root, config)}/{state.split}/chunk-{state.chunk:05d}.json"
        self.parts_dir = f"{state_dir(root, config)}/parts"
        fs.makedirs(self.parts_dir, exist_ok=True)
        self._writer: pq.ParquetWriter | None = None
        self._file: Any = None
        self._buf: list[dict] = []
        self._buf_bytes = 0
        self._shard_bytes = 0
        self._shard_rows = 0
        self._shard_start = state.next_row
        self._skipped = 0
        self._copied = 0
        self._encoded = 0

    # -- public ---------------------------------------------------------------------------------------
    def add(self, row: dict, nbytes: int, index: int, *, copied: int = 0, encoded: int = 0) -> None:
        nbytes += row_overhead(row, self.media)
        if self._shard_rows and self._fixed + self._shard_bytes + self._buf_bytes + nbytes > self.max_bytes:
            self._finish_shard(index)
        self._buf.append(row)
        self._buf_bytes += nbytes
        self._shard_rows += 1
        self._copied += copied
        self._encoded += encoded
        if len(self._buf) >= self.rg_rows or self._buf_bytes >= self.rg_bytes:
            self._flush()
        if self._fixed + nbytes > self.max_bytes:  # one oversize row: alone in its shard
            self._finish_shard(index + 1)

    def skip(self, index: int) -> None:
        """Input row ``index`` had no exportable media: it is counted, and belongs to the open shard's range."""
        self._skipped += 1

    def close(self) -> ChunkState:
        """Finish the last shard and mark the chunk done."""
        if self._shard_rows:
            self._finish_shard(self.state.row_stop)
        else:  # only rows without media since the last finished shard: count them
            self.state.skipped += self._skipped
            self._skipped = 0
        self.state.done = True
        self.state.save(self.fs, self.state_path)
        return self.state

    def abort(self) -> None:
        """Drop the open (unfinished) shard; the progress file still says where to restart."""
        if self._writer is not None:
            self._writer.close()
            if self._file is not None:
                self._file.close()
            self._writer = self._file = None

    # -- internals ------------------------------------------------------------------------------------
    def _part_name(self) -> str:
        return f"{self.state.split}-c{self.state.chunk:05d}-s{len(self.state.shards):05d}.parquet"

    def _flush(self) -> None:
        if not self._buf:
            return
        if self._writer is None:
            tmp = f"{self.parts_dir}/{self._part_name()}.tmp"
            if _is_local(self.fs):  # Arrow's native file writer: no Python-level write() per page
                self._file = None
                self._writer = pq.ParquetWriter(tmp, self.schema, **self.options)
            else:
                self._file = self.fs.open(tmp, "wb")
                self._writer = pq.ParquetWriter(self._file, self.schema, **self.options)
        table = rows_to_table(self._buf, self.schema, self.media)
        self._writer.write_table(table, row_group_size=len(self._buf))
        self._shard_bytes += self._buf_bytes
        self._buf, self._buf_bytes = [], 0

    def _finish_shard(self, stop: int) -> None:
        """Close the open shard, rename it from .tmp, and record it; ``stop`` is the first input row after it."""
        self._flush()
        assert self._writer is not None
        self._writer.close()
        if self._file is not None:
            self._file.close()
        self._writer = self._file = None
        name = self._part_name()
        tmp, final = f"{self.parts_dir}/{name}.tmp", f"{self.parts_dir}/{name}"
        self.fs.mv(tmp, final)
        rec = ShardRecord(name, self._shard_start, stop, self._shard_rows, int(self.fs.size(final)))
        self.state.shards.append(rec)
        self.state.skipped += self._skipped
        self.state.copied += self._copied
        self.state.encoded += self._encoded
        self.state.save(self.fs, self.state_path)
        logger.info("finished shard %s (%d rows, %d bytes)", name, rec.num_rows, rec.num_bytes)
        self._shard_start, self._shard_rows, self._shard_bytes = stop, 0, 0
        self._skipped = self._copied = self._encoded = 0


def final_names(split: str, n: int) -> list[str]:
    return [f"{split}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]


def finalize_split(
    fs: fsspec.AbstractFileSystem, root: str, config: str, split: str, chunks: list[ChunkState]
) -> list[str]:
    """Rename the finished parts of ``split`` to ``data/<config>/<split>-XXXXX-of-NNNNN.parquet``.

    Idempotent: a part already renamed is skipped, so a crash here is fixed by a rerun. Stale shards of an
    earlier export of the same split (a different NNNNN) are removed so ``<split>-*`` globs only this one.
    """
    records = [s for c in sorted(chunks, key=lambda c: c.chunk) for s in c.shards]
    names = final_names(split, len(records))
    data_dir = f"{root}/data/{config}"
    fs.makedirs(data_dir, exist_ok=True)
    parts_dir = f"{state_dir(root, config)}/parts"
    present = []
    for rec, name in zip(records, names, strict=True):
        src, dst = f"{parts_dir}/{rec.name}", f"{data_dir}/{name}"
        if fs.exists(src):
            fs.mv(src, dst)
        elif not fs.exists(dst):
            if rec.num_rows == 0:  # every row taken down by `export --prune`: the shard was deleted
                continue
            raise FileNotFoundError(f"shard {rec.name} of {config}/{split} is neither in {parts_dir} nor at {dst}")
        present.append(name)
    keep = set(names)
    for path in fs.glob(f"{data_dir}/{split}-*.parquet"):
        if path.rsplit("/", 1)[-1] not in keep:
            fs.rm(path)
    return present
