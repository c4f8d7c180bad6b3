"""Export an avsets dataset to the Hub layout: ``data/<config>/<split>-XXXXX-of-NNNNN.parquet`` + ``README.md``.

``export_dataset`` takes any ``datasets.Dataset``/``DatasetDict`` whose media columns are ``Audio``/``Video``
storage (``{bytes, path}``) plus ``start``/``end``/``media_offset``; ``export`` is the thin wrapper that
loads a corpus with ``avsets.load_dataset(..., decode=False, on_missing="keep")`` first, so rows without
media are counted in the card's availability table instead of vanishing silently.

Work is cut into chunks (contiguous row ranges of a split, recorded in ``plan.json``). The local engine
runs them one after another and cuts media in a process pool (``num_proc``); the Ray engine runs one task
per chunk, each writing its own shards to the fsspec target. Either way a rerun with the same input and
options resumes (``shards.py``), and a rerun with different ones refuses unless ``overwrite=True``.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import inspect
import json
import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import filelock
import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features
from datasets.utils.py_utils import convert_file_size_to_int

from avsets.build.filters import FilterSummary, summarize
from avsets.core.errors import AvsetsError
from avsets.core.notices import MISSING_MEDIA, quiet
from avsets.metadata.manifest import Manifest, export_manifest_path, manifest_hash, write_text_atomic

from .archive_media import stage_archive_sources
from .card import SplitStats, build_card
from .convert import Converted, ConvertOptions, media_columns, output_features
from .export_chunks import chunk_path, run_chunk, run_ray, taken_down
from .media import AUDIO_FORMATS
from .shards import (
    STATE_DIR,
    ChunkState,
    finalize_split,
    read_json,
    state_dir,
    write_json_atomic,
)
from .sync_local import finish_interrupted

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: ``load_dataset`` keywords that make an export a filtered one (its card gets a "Filters" section)
FILTER_KEYWORDS = ("only_ids", "exclude", "quality", "overlays", "drop")


@dataclass
class SplitResult:
    """What one split of an export holds."""

    files: list[str]
    num_rows: int
    metadata_rows: int
    num_bytes: int
    copied: int
    encoded: int
    skipped: int


@dataclass
class ExportResult:
    """Where an export went and what it holds, per split."""

    out: str
    corpus: str
    config: str
    splits: dict[str, SplitResult] = field(default_factory=dict)


class ExportEmptyError(AvsetsError, ValueError):
    """No row of any split had media to embed: nothing would load, so no card is written."""


class ExportMismatchError(AvsetsError, ValueError):
    """The output folder holds an unfinished export of the same config made from other input or options."""


def _as_dict(dataset: Dataset | DatasetDict) -> DatasetDict:
    if isinstance(dataset, DatasetDict):
        return dataset
    return DatasetDict({str(dataset.split) if dataset.split is not None else "train": dataset})


def _hash_column(h: Any, col: pa.ChunkedArray | pa.Array) -> None:
    for chunk in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        if chunk.offset:
            chunk = pa.concat_arrays([chunk])  # a slice: copy so the buffers hold exactly its values
        for buf in chunk.buffers():
            if buf is not None:
                h.update(buf)


def _fingerprint(corpus: str, config: str, dsd: DatasetDict, options: dict[str, Any], media: list[str]) -> str:
    """Identify input + options cheaply: row counts, ``id`` and the media paths (never media contents).

    The paths make a rerun notice media added (or lost) since the export it would otherwise resume.
    """
    h = hashlib.sha256(json.dumps([corpus, config, options], sort_keys=True).encode())
    for split, ds in dsd.items():
        h.update(f"|{split}:{len(ds)}|".encode())
        if not len(ds):
            continue
        arrow = ds.with_format("arrow")
        if "id" in ds.column_names:
            _hash_column(h, arrow["id"])
        for name in media:
            col = arrow[name]
            chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
            for chunk in chunks:
                _hash_column(h, pc.struct_field(chunk, "path"))
    return h.hexdigest()


def _plan_chunks(n: int, rows_per_chunk: int | None) -> list[list[int]]:
    if n == 0:
        return [[0, 0]]
    step = n if not rows_per_chunk else max(1, rows_per_chunk)
    return [[a, min(n, a + step)] for a in range(0, n, step)]


def _schema(features: Features) -> pa.Schema:
    meta = {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}
    return features.arrow_schema.with_metadata(meta)


def _one_writer(fn):
    """Serialize exports of one config into one local folder: two at once wrote the same ``.tmp`` shard (a
    second run now waits, then finds the work done).  Remote targets are not locked."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        out, config = bound.arguments["out"], bound.arguments["config"]
        fs, root = fsspec.core.url_to_fs(out, **(bound.arguments.get("storage_options") or {}))
        if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            return fn(*args, **kwargs)
        os.makedirs(os.path.join(root, STATE_DIR), exist_ok=True)
        with filelock.FileLock(os.path.join(root, STATE_DIR, f"{config}.lock")):  # beside the state; push skips it
            finish_interrupted(root)  # a killed prune's journal: finished (or dropped if stale) before writing
            return fn(*args, **kwargs)

    return wrapper


@dataclass
class _Setup:
    """What every stage of one export shares: the target, the schema and the conversion options."""

    fs: fsspec.AbstractFileSystem
    root: str
    corpus: str
    config: str
    features: Features
    schema: pa.Schema
    opts: ConvertOptions
    max_bytes: int
    options: dict[str, Any]


def _setup(dsd: DatasetDict, corpus: str, config: str, out: str, *, video: bool, audio_format: str,
           max_shard_size: int | str, engine: str, storage_options: dict) -> _Setup:
    """Check the options and derive the published schema and the conversion options."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {sorted(AUDIO_FORMATS)}, got {audio_format!r}")
    max_bytes = convert_file_size_to_int(max_shard_size)
    fs, root = fsspec.core.url_to_fs(out, **storage_options)
    first = next(iter(dsd.values()))
    audio_cols, video_cols = media_columns(first.features)
    features = output_features(first.features, video)
    opts = ConvertOptions(tuple(audio_cols), tuple(video_cols) if video else (), tuple(features), audio_format)
    options = {"video": video, "audio_format": audio_format, "max_bytes": max_bytes, "features": features.to_dict()}
    return _Setup(fs, root.rstrip("/"), corpus, config, features, _schema(features), opts, max_bytes, options)


def _open_plan(st: _Setup, dsd: DatasetDict, out: str, rows_per_task: int | None, overwrite: bool) -> dict:
    """The export's ``plan.json``: reused when input and options are the same, else refused (or restarted
    with ``overwrite``)."""
    fp = _fingerprint(st.corpus, st.config, dsd, st.options, list(st.opts.audio_columns + st.opts.video_columns))
    sdir = state_dir(st.root, st.config)
    plan_path = f"{sdir}/plan.json"
    plan = read_json(st.fs, plan_path)
    if plan is not None and plan.get("fingerprint") != fp:
        if not overwrite:
            raise ExportMismatchError(
                f"{out} holds an export of {st.corpus}/{st.config} made from other input or options; "
                "pass overwrite=True (--overwrite) or use another output folder"
            )
        st.fs.rm(sdir, recursive=True)
        plan = None
    if plan is None:
        plan = {"fingerprint": fp, "corpus": st.corpus, "config": st.config, "options": st.options,
                "splits": {s: _plan_chunks(len(ds), rows_per_task) for s, ds in dsd.items()}}
        st.fs.makedirs(sdir, exist_ok=True)
        write_json_atomic(st.fs, plan_path, plan)
    return plan


def _pending_jobs(st: _Setup, dsd: DatasetDict, plan: dict) -> tuple[dict[str, list[ChunkState]],
                                                                     list[tuple[pa.Table, ChunkState]]]:
    """Every chunk's state (resumed from its file) and the rows of the chunks still to write."""
    states: dict[str, list[ChunkState]] = {}
    jobs: list[tuple[pa.Table, ChunkState]] = []
    for split, ds in dsd.items():
        states[split] = []
        arrow = ds.with_format("arrow")
        for ci, (a, b) in enumerate(plan["splits"][split]):
            state = ChunkState.load(st.fs, chunk_path(st.root, st.config, split, ci)) or ChunkState(split, ci, a, b)
            states[split].append(state)
            if not state.done:
                jobs.append((arrow[state.next_row : b] if b > state.next_row else arrow[0:0], state))
    return states, jobs


def _run_jobs(st: _Setup, jobs: list[tuple[pa.Table, ChunkState]], states: dict[str, list[ChunkState]],
              plan: dict, *, out: str, engine: str, num_proc: int | None, storage_options: dict,
              progress: Callable[[Converted], None] | None) -> dict[str, list[ChunkState]]:
    """Write the pending chunks (local process pool or Ray); returns the chunk states afterwards."""
    if not jobs:
        return states
    logger.info("export %s/%s: %d chunk(s) to write", st.corpus, st.config, len(jobs))
    drop = taken_down(st.fs, st.root)
    if engine == "ray":
        run_ray(jobs, out=out, storage_options=storage_options, config=st.config, schema=st.schema, opts=st.opts,
                 max_bytes=st.max_bytes, num_proc=num_proc, drop=drop)
        return {s: [ChunkState.load(st.fs, chunk_path(st.root, st.config, s, i)) for i in range(len(plan["splits"][s]))]
                for s in states}
    if progress is not None and hasattr(progress, "set_total"):
        progress.set_total(sum(t.num_rows for t, _ in jobs), desc=f"export {st.config}")
    workers = num_proc or 1
    pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    try:
        for table, state in jobs:
            run_chunk(table, state, fs=st.fs, root=st.root, config=st.config, schema=st.schema, opts=st.opts,
                      max_bytes=st.max_bytes, pool=pool, workers=workers, drop=drop, progress=progress)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return states


def _collect(st: _Setup, out: str, dsd: DatasetDict, states: dict[str, list[ChunkState]],
             metadata_rows: dict[str, int] | None) -> ExportResult:
    """Finish every split (rename its shards) and count what it holds; refuse an export with no row."""
    result = ExportResult(out=out, corpus=st.corpus, config=st.config)
    for split, chunks in states.items():
        if not all(c is not None and c.done for c in chunks):
            raise RuntimeError(f"export of {st.config}/{split} did not finish every chunk")
        names = finalize_split(st.fs, st.root, st.config, split, chunks)
        result.splits[split] = SplitResult(
            files=[f"data/{st.config}/{n}" for n in names],
            num_rows=sum(s.num_rows for c in chunks for s in c.shards),
            metadata_rows=(metadata_rows or {}).get(split, len(dsd[split])),
            num_bytes=sum(s.num_bytes for c in chunks for s in c.shards),
            copied=sum(c.copied for c in chunks),
            encoded=sum(c.encoded for c in chunks),
            skipped=sum(c.skipped for c in chunks),
        )
    if not any(r.num_rows for r in result.splits.values()):
        raise ExportEmptyError(
            f"{st.corpus}/{st.config}: no row has media to embed ("
            + ", ".join(f"{s}: 0 of {r.metadata_rows}" for s, r in result.splits.items())
            + "); check media_dir (`avsets verify` lists what is missing)")
    return result


@_one_writer
def export_dataset(
    dataset: Dataset | DatasetDict,
    corpus: str,
    config: str,
    out: str,
    *,
    video: bool = False,
    audio_format: str = "flac",
    max_shard_size: int | str = "500MB",
    num_proc: int | None = None,
    engine: str = "local",
    rows_per_task: int | None = None,
    metadata_rows: dict[str, int] | None = None,
    overwrite: bool = False,
    storage_options: dict | None = None,
    progress: Callable[[Converted], None] | None = None,
    filters: FilterSummary | None = None,
) -> ExportResult:
    """Export ``dataset`` (one config of ``corpus``) into ``out`` (a folder or fsspec URL); resumable.

    ``metadata_rows`` gives the per-split row counts of the corpus metadata for the availability table; by
    default the number of input rows is used (rows without media are dropped here and counted).
    ``progress`` is called with each converted row (local engine), e.g. an ``ExportProgress``.
    ``filters`` (what :func:`avsets.build.filters.summarize` says about the load) puts the filters, their counts
    per split and the quality thresholds on the card.
    """
    storage_options = storage_options or {}
    dsd = _as_dict(dataset)
    st = _setup(dsd, corpus, config, out, video=video, audio_format=audio_format, max_shard_size=max_shard_size,
                engine=engine, storage_options=storage_options)
    if engine == "ray" and rows_per_task is None:
        rows_per_task = 10_000
    plan = _open_plan(st, dsd, out, rows_per_task, overwrite)
    states, jobs = _pending_jobs(st, dsd, plan)
    states = _run_jobs(st, jobs, states, plan, out=out, engine=engine, num_proc=num_proc,
                       storage_options=storage_options, progress=progress)
    result = _collect(st, out, dsd, states, metadata_rows)
    manifest = write_export_manifest(st.fs, st.root, corpus, config, result)
    _write_card(st.fs, st.root, corpus, config, st.features, next(iter(dsd.values())), result, manifest,
                load_target=_display_target(out), filters=filters)
    return result


def write_export_manifest(fs: fsspec.AbstractFileSystem, root: str, corpus: str, config: str,
                          result: ExportResult) -> Manifest:
    """``manifests/<config>.json``: the ids the written shards hold, per split (read back from the shards'
    ``id`` column, so it lists what was really exported)."""
    import pyarrow.parquet as pq

    splits: dict[str, list[str]] = {}
    for split, r in result.splits.items():
        ids: list[str] = []
        for rel in r.files:
            with fs.open(f"{root}/{rel}", "rb") as f:
                ids += pq.read_table(f, columns=["id"]).column("id").to_pylist()
        splits[split] = ids
    manifest = Manifest(splits, corpus=corpus, config=config, source="avsets export")
    write_text_atomic(fs, export_manifest_path(root, config), manifest.dumps())
    return manifest


def _display_target(out: str) -> str:
    """The export folder as the local card's loading example names it: credentials in a URL are dropped."""
    parts = urlsplit(out)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1], query=""))
    return out


def _write_card(fs: fsspec.AbstractFileSystem, root: str, corpus: str, config: str, features: Features,
                ds: Dataset, result: ExportResult, manifest: Manifest | None = None,
                load_target: str | None = None, filters: FilterSummary | None = None) -> None:
    path = f"{root}/README.md"
    existing = fs.cat_file(path).decode("utf-8") if fs.exists(path) else None
    stats = {s: SplitStats(r.num_rows, r.num_bytes, r.metadata_rows) for s, r in result.splits.items()}
    hashes = None if manifest is None else {s: (len(ids), manifest_hash(ids)) for s, ids in manifest.splits.items()}
    text = build_card(corpus=corpus, config=config, features=features, splits=stats, existing=existing,
                      citation=ds.info.citation, description=ds.info.description, manifest=hashes,
                      load_target=load_target, filters=filters)
    with fs.open(f"{path}.tmp", "w", encoding="utf-8") as f:
        f.write(text)
    fs.mv(f"{path}.tmp", path)


def export(
    corpus: str,
    config: str | None = None,
    *,
    data_dir: str | None = None,
    media_dir: str | list[str] | None = None,
    out: str,
    video: bool = False,
    audio_format: str = "flac",
    max_shard_size: int | str = "500MB",
    num_proc: int | None = None,
    engine: str = "local",
    split: str | None = None,
    overwrite: bool = False,
    storage_options: dict | None = None,
    progress: Callable[[Converted], None] | None = None,
    **load_kwargs: Any,
) -> ExportResult:
    """Load ``corpus``/``config`` with avsets (media undecoded) and export it to ``out`` (see ``export_dataset``).

    The load's filters (``quality=``, ``drop=``, ``exclude=``, ``only_ids=``, ``overlays=`` in
    ``load_kwargs``) shape the rows and columns exported, and their counts go on the card.
    """
    import avsets  # the foundation; imported here so the publish modules work on plain datasets too

    kwargs = {k: v for k, v in dict(data_dir=data_dir, media_dir=media_dir, **load_kwargs).items() if v is not None}
    kwargs.setdefault("on_missing", "keep")
    if config is None:
        config = avsets.get_dataset_config_names(corpus)[0]
    kwargs = stage_archive_sources(corpus, config, out, split=split, video=video, load_kwargs=kwargs)  # .tar.gz
    summary = rows = None
    with quiet(MISSING_MEDIA):  # the export's summary and card count the rows without media
        if any(k in kwargs for k in FILTER_KEYWORDS):
            # the builder's cache holds the filters' counts; with filters "rows in metadata" counts the rows
            # before any filter (the card's filter table says where the others went)
            dsd, builder = avsets.build.api.load_with_builder(corpus, config, split=split, decode=False, **kwargs)
            summary = summarize(builder)
            rows = {s: c.rows for s, c in summary.counts.items()} or None
        else:
            dsd = avsets.load_dataset(corpus, config, split=split, decode=False, **kwargs)
    return export_dataset(dsd, corpus, config, out, video=video, audio_format=audio_format,
                          max_shard_size=max_shard_size, num_proc=num_proc, engine=engine, metadata_rows=rows,
                          overwrite=overwrite, storage_options=storage_options, progress=progress,
                          filters=summary)
