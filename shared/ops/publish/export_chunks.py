"""Writing one export chunk's shards (a contiguous row range of a split, see :mod:`.export`): the local
engine (:func:`run_chunk`: rows cut ahead in a pool, fed to the shard writer in input order) and the Ray
engine (one task per chunk, :func:`run_ray`).  Either resumes a chunk from its recorded state.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict

import fsspec
import pyarrow as pa

from .convert import Converted, ConvertOptions, convert_batch
from .shards import ChunkState, ShardWriter, state_dir
from .takedowns import TAKEDOWNS_FILE, excluded_keys

#: rows handed to the pool per round; a few rounds are in flight, so this bounds memory (videos are bigger)
_ROUND_ROWS = 64
_ROUND_ROWS_VIDEO = 8


def iter_items(table: pa.Table, first_index: int, rows: int,
               drop: frozenset[str] = frozenset()) -> Iterator[list[tuple[int, dict | None]]]:
    """Rounds of ``(input row number, row)``; rows whose ``id`` is in ``drop`` (the folder's ``takedowns.csv``)
    become ``None``: counted like rows without media, never cut, and the row numbering (so resuming) unchanged."""
    idx = first_index
    for batch in table.to_batches(max_chunksize=rows):
        rows = batch.to_pylist()
        yield [(i, None if drop and (r.get("id") in drop or r.get("youtube_id") in drop) else r)
               for i, r in enumerate(rows, start=idx)]
        idx += len(rows)


def taken_down(fs: fsspec.AbstractFileSystem, root: str) -> frozenset[str]:
    """Clip ids and whole-video YouTube ids in the export folder's ``takedowns.csv`` (``avsets export --prune``):
    a re-export leaves them out."""
    path = f"{root}/{TAKEDOWNS_FILE}"
    return excluded_keys(fs.cat_file(path)) if fs.exists(path) else frozenset()


def feed(writer: ShardWriter, results: list[Converted], progress: Callable[[Converted], None] | None = None) -> None:
    """Hand converted rows to the shard writer in input order (a row without media is recorded as skipped)."""
    for c in results:
        if c.row is None:
            writer.skip(c.index)
        else:
            writer.add(c.row, c.nbytes, c.index, copied=c.copied, encoded=c.encoded)
        if progress is not None:
            progress(c)


def run_chunk(
    table: pa.Table,
    state: ChunkState,
    *,
    fs: fsspec.AbstractFileSystem,
    root: str,
    config: str,
    schema: pa.Schema,
    opts: ConvertOptions,
    max_bytes: int,
    pool: cf.Executor | None = None,
    workers: int = 1,
    drop: frozenset[str] = frozenset(),
    progress: Callable[[Converted], None] | None = None,
) -> ChunkState:
    """Write the shards of one chunk; ``table`` holds the chunk's rows from ``state.next_row`` on.

    Rounds of rows are cut ahead in ``pool`` (``workers`` processes, or else two threads: reading and
    cutting release the GIL, so they overlap with Parquet writing) and fed to the writer in input order;
    at most ``2 * workers + 1`` rounds are in flight, which bounds memory.
    """
    writer = ShardWriter(fs, root, config, state, schema, opts.audio_columns + opts.video_columns, max_bytes)
    own = pool is None
    if own:
        pool, workers = cf.ThreadPoolExecutor(2, thread_name_prefix="avsets-export"), 1
    pending: deque[cf.Future] = deque()
    try:
        rows = _ROUND_ROWS_VIDEO if opts.video_columns else _ROUND_ROWS
        for items in iter_items(table, state.next_row, rows, drop):
            pending.append(pool.submit(convert_batch, items, opts))
            if len(pending) > 2 * workers:
                feed(writer, pending.popleft().result(), progress)
        while pending:
            feed(writer, pending.popleft().result(), progress)
        return writer.close()
    except BaseException:
        for f in pending:
            f.cancel()
        writer.abort()
        raise
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def chunk_path(root: str, config: str, split: str, chunk: int) -> str:
    return f"{state_dir(root, config)}/{split}/chunk-{chunk:05d}.json"


def ray_chunk(table: pa.Table, state_d: dict, out: str, storage_options: dict, config: str,
               schema: pa.Schema, opts: ConvertOptions, max_bytes: int, drop: frozenset[str] = frozenset()) -> dict:
    """Body of one Ray task: resolve the fsspec target inside the worker, write the chunk's shards."""
    fs, root = fsspec.core.url_to_fs(out, **storage_options)
    root = root.rstrip("/")
    planned = ChunkState.from_dict(state_d)
    state = ChunkState.load(fs, chunk_path(root, config, planned.split, planned.chunk)) or planned
    if state.done:
        return asdict(state)
    table = table.slice(state.next_row - planned.next_row)  # another attempt may have finished shards
    done = run_chunk(table, state, fs=fs, root=root, config=config, schema=schema, opts=opts, max_bytes=max_bytes,
                     drop=drop)
    return asdict(done)


def run_ray(jobs: list[tuple[pa.Table, ChunkState]], *, out: str, storage_options: dict, config: str,
             schema: pa.Schema, opts: ConvertOptions, max_bytes: int, num_proc: int | None,
             drop: frozenset[str] = frozenset()) -> None:
    """Run every chunk as one Ray task (a cluster the caller started is used as it is, else a local one)."""
    try:
        import ray
    except ImportError as e:  # optional extra
        raise ImportError("engine='ray' needs Ray: pip install 'avsets[ray]'") from e
    started = not ray.is_initialized()  # a caller's cluster (ray.init(address=...)) is used as it is
    if started:
        ray.init(num_cpus=num_proc, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(ray_chunk)
        refs = [task.remote(t, asdict(s), out, storage_options, config, schema, opts, max_bytes, drop)
                for t, s in jobs]
        ray.get(refs)
    finally:
        if started:
            ray.shutdown()
