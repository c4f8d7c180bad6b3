"""The quality pass: every clip of a corpus that has media, measured once, into one Parquet table.

The corpus is read through avsets' own loader with ``streaming=True, decode=False``, so every media source
``media_dir`` accepts works unchanged (folders; zip, tar, tar.gz, WebDataset and Parquet mirrors; local or
remote): rows arrive with ``{bytes, path}`` cells and ``media_offset``, archives in archive order.

Resumable: each result is keyed by clip id plus the content key of its media
(:mod:`avsets.media.sources.content_key`, the key the fingerprint table uses too: size, mtime and head/tail hash of
a local file, CRC of a zip member, ETag/size of a remote file...) plus the segment cut from it. Results are written as part files next to the
output (``OUT.parts/part-NNNNN.parquet``, each under a temporary name, then renamed; Ctrl-C writes what
finished), so a killed run loses at most one part's worth of clips; the next run reuses every part and the
previous table's rows whose fingerprint still matches, measures the rest, writes the table atomically and
removes the parts.
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from avsets import __version__
from avsets.build.api import load_dataset
from avsets.core.errors import AvsetsError
from avsets.core.progress import ClipProgress
from avsets.core.secrets import redact_url
from avsets.media.sources.access import read_media_bytes
from avsets.media.sources.content_key import ContentKeys
from avsets.media.sources.locator import is_member
from avsets.media.sources.ranged import is_local, local_path
from avsets.metadata.quality.table import (
    QUALITY_FLAGS,
    SCHEMA,
    TABLE_VERSION,
    read_quality_table,
    rows_to_table,
    table_metadata,
    write_quality_table,
)
from avsets.metadata.quality.thresholds import DEFAULT_THRESHOLDS, Thresholds

from .measure import error_row, measure_row, summarize_pair

logger = logging.getLogger("avsets")

#: results per part file: a kill loses at most this many finished clips (plus those in flight)
PART_ROWS = 256
#: ... or this many seconds of work, whichever comes first
PART_SECONDS = 60.0


class QualitySetupError(AvsetsError, ValueError):
    """The pass cannot start or found nothing to measure (exit 2)."""


class QualityProgress(ClipProgress):
    """Progress of ``avsets quality``: clips measured, reused from an earlier run, and failed."""

    ORDER = ("measured", "reused", "error")


@dataclass
class QualityReport:
    """What a pass did; ``exit_code`` is 0 when every clip was measured, 1 when some gave an error row."""

    out: str
    measured: int = 0
    reused: int = 0
    errors: int = 0
    per_split: dict[str, int] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def summary(self) -> str:
        total = self.measured + self.reused
        splits = ", ".join(f"{k} {v}" for k, v in self.per_split.items())
        flags = ", ".join(f"{k} {v}" for k, v in self.flag_counts.items() if v) or "none"
        return (f"quality: {total} clips ({splits}) -> {self.out}: measured {self.measured}, reused "
                f"{self.reused}, errors {self.errors}; flags: {flags}; {self.seconds:.1f} s")


# ------------------------------------------------------------------------------------------ fingerprints


def _cell_source(cell: dict[str, Any] | None, keys: ContentKeys) -> tuple[Any, str | None]:
    """(what the decoder opens, its content key) of a ``{bytes, path}`` cell.

    The key is :class:`avsets.media.sources.content_key.ContentKeys`' (the one the fingerprint table uses too).
    A local file is opened by the worker by path; an archive member or a remote file is read here, once,
    and its bytes go to the worker (a worker process or Ray task need not reach the source)."""
    if not cell:
        return None, None
    key, read = keys.identify(cell)  # a tar or Parquet member is read to be keyed: those bytes are decoded
    data, path = (cell.get("bytes") if read is None else read), cell.get("path")
    if data is None and path and not is_member(path) and is_local(path):
        return local_path(path), key
    if data is None and path:
        data = read_media_bytes(path)
    if data is None:
        return None, None
    return bytes(data), key


@dataclass
class ClipJob:
    """One clip to measure: picklable (sent to a worker process or a Ray task)."""

    key: dict[str, Any]
    audio: Any
    video: Any
    offset: float
    duration: float | None
    name: str


def measure_job(job: ClipJob, thresholds: Thresholds) -> dict[str, Any]:
    """The table row of one job: keys + measures (+ ``error``); never raises for a bad clip."""
    common = {"offset": job.offset, "duration": job.duration, "thresholds": thresholds}
    if job.video is not None and (job.audio is None or job.audio is job.video or job.audio == job.video):
        row = measure_row(job.video, expect_video=True, expect_audio=job.audio is not None, **common)
    elif job.video is None:
        row = measure_row(job.audio, expect_video=False, **common)
    else:  # audio and video in two files: each measured, then joined
        a = measure_row(job.audio, expect_video=False, **common)
        v = measure_row(job.video, expect_video=True, expect_audio=False, **common)
        row = summarize_pair(a, v, segment=job.duration, thresholds=thresholds)
    row.update(job.key)
    return row


def _jobs(rows: Iterator[dict[str, Any]], split: str, keys: ContentKeys | None = None
          ) -> Iterator[tuple[ClipJob | None, dict[str, Any]]]:
    """(job, key) for each row with media; a row whose media cannot be read gives (None, error key)."""
    keys = keys or ContentKeys()
    for r in rows:
        audio_cell, video_cell = r.get("audio"), r.get("video")
        if not audio_cell and not video_cell:
            continue
        start, end = r.get("start"), r.get("end")
        key = {"id": r["id"], "split": split, "youtube_id": r.get("youtube_id"), "start": start, "end": end}
        duration = (end - start) if start is not None and end is not None and end > start else None
        offset = float(r.get("media_offset") or 0.0)
        name = (video_cell or audio_cell).get("path") or r["id"]
        try:
            if audio_cell and video_cell and audio_cell.get("path") == video_cell.get("path") \
                    and audio_cell.get("bytes") is video_cell.get("bytes"):
                src, fp = _cell_source(video_cell, keys)
                audio, video, fps = src, src, [fp]
            else:
                audio, afp = _cell_source(audio_cell, keys)
                video, vfp = _cell_source(video_cell, keys)
                fps = [x for x in (afp, vfp) if x]
        except (AvsetsError, OSError) as exc:
            yield None, {**key, "error": f"{type(exc).__name__}: {exc}"[:500]}
            continue
        key["fingerprint"] = "|".join(fps) + f"@{offset:.3f}+{duration if duration is not None else -1:.3f}"
        yield ClipJob(key, audio, video, offset, duration, str(name)), key


# ----------------------------------------------------------------------------------------------- engines


class _Engine:
    """Runs jobs with at most ``window`` in flight and yields finished rows (in any order)."""

    def __init__(self, kind: str, num_proc: int, thresholds: Thresholds):
        self.kind, self.num_proc, self.thresholds = kind, max(1, num_proc), thresholds
        self.window = 2 * self.num_proc
        self.pool: Any = None
        self.started_ray = False
        if kind == "ray":
            try:
                import ray
            except ImportError as exc:
                raise QualitySetupError("--engine ray needs Ray: pip install 'avsets[ray]'") from exc
            if not ray.is_initialized():  # a caller's cluster (ray.init(address=...)) is used as it is
                ray.init(num_cpus=self.num_proc, include_dashboard=False, log_to_driver=False,
                         ignore_reinit_error=True)
                self.started_ray = True
            self.ray = ray
            self.remote = ray.remote(measure_job)
            self.window = 4 * self.num_proc
        elif kind == "local":
            if self.num_proc > 1:
                # workers fork from a server that imported the measuring code once (importing avsets, i.e.
                # `datasets`, took 6-8 s a process on this VM); never fork this process (its threads)
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["avsets.ops.quality.measure"])
                self.pool = cf.ProcessPoolExecutor(self.num_proc, mp_context=ctx)
        else:
            raise QualitySetupError(f"unknown engine {kind!r} (local or ray)")

    def run(self, jobs: Iterator[ClipJob]) -> Iterator[dict[str, Any]]:
        if self.kind == "local" and self.pool is None:
            for job in jobs:
                yield measure_job(job, self.thresholds)
            return
        pending: dict[Any, ClipJob] = {}
        for job in jobs:
            pending[self._submit(job)] = job
            while len(pending) >= self.window:
                yield from self._drain(pending, first=True)
        while pending:
            yield from self._drain(pending, first=True)

    def _submit(self, job: ClipJob) -> Any:
        if self.kind == "ray":
            return self.remote.remote(job, self.thresholds)
        return self.pool.submit(measure_job, job, self.thresholds)

    def _drain(self, pending: dict[Any, ClipJob], first: bool) -> Iterator[dict[str, Any]]:
        if self.kind == "ray":
            done, _ = self.ray.wait(list(pending), num_returns=1)
        else:
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
        for fut in done:
            job = pending.pop(fut)
            try:
                yield self.ray.get(fut) if self.kind == "ray" else fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died (crash, OOM) loses one clip, not the run
                yield {**error_row(f"worker failed: {type(exc).__name__}: {exc}"), **job.key}

    def close(self) -> None:
        """Stop what this engine started: its process pool, and a Ray it started itself (its raylet and
        idle workers otherwise stay up and keep taking CPU from whatever the process does next)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


# ---------------------------------------------------------------------------------------------- the pass


def parts_dir(out: str) -> str:
    """Where a run keeps its part files until the table is written."""
    return f"{out}.parts"


@dataclass
class _Previous:
    """Rows of an earlier run kept as Arrow (compact: 200k rows are a few MB, not 200k dicts), with an
    index ``id -> (row, fingerprint, split, failed)``; a later part overrides an earlier row."""

    table: pa.Table | None = None
    index: dict[str, tuple[int, str | None, str | None, bool]] = field(default_factory=dict)


def _previous(out: str, thresholds: Thresholds) -> _Previous:
    """Rows of an earlier run (the table, then its leftover parts) made with the same thresholds."""
    tables: list[pa.Table] = []
    if os.path.exists(out):
        try:
            table = read_quality_table(out)
            if table_metadata(table).get("thresholds") == thresholds.to_dict():
                tables.append(table)
            else:
                logger.info("%s was made with other thresholds: every clip is measured again", out)
        except AvsetsError as exc:
            raise QualitySetupError(f"{exc} (choose another --out, or delete the file)") from None
    for part in sorted(glob.glob(os.path.join(parts_dir(out), "part-*.parquet"))):
        try:
            table = pq.read_table(part)
        except (pa.ArrowException, OSError):
            logger.warning("%s: unreadable part file, ignored", part)
            continue
        if table_metadata(table).get("thresholds") == thresholds.to_dict():
            tables.append(table)
    if not tables:
        return _Previous()
    table = pa.concat_tables([t.select(SCHEMA.names).cast(SCHEMA).replace_schema_metadata(None) for t in tables])
    ids, fps, splits = (table.column(c).to_pylist() for c in ("id", "fingerprint", "split"))
    failed = pc.is_valid(table.column("error")).to_pylist()
    index = {i: (n, fp, sp, bad) for n, (i, fp, sp, bad) in enumerate(zip(ids, fps, splits, failed, strict=True))}
    return _Previous(table, index)


def run_quality(
    corpus: str,
    config: str | None = None,
    *,
    data_dir: str | None = None,
    media_dir: str | Sequence[str] | None = None,
    out: str,
    split: str | Sequence[str] | None = None,
    num_proc: int | None = None,
    engine: str = "local",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    quiet: bool = False,
    progress: ClipProgress | None = None,
    part_rows: int = PART_ROWS,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    **config_kwargs: Any,
) -> QualityReport:
    """Measure every clip of ``corpus`` that has media into the Parquet table ``out``; see the module doc.

    Rows of splits this run does not cover are kept from an earlier table at ``out``. ``on_row`` sees each
    finished row (tests, custom logging); a reused one as ``{id, split, error (bool), reused: True}``.
    """
    if media_dir is None:
        raise QualitySetupError("the quality pass needs --media-dir (the clips to measure)")
    out = os.fspath(out)
    if os.path.isdir(out):
        raise QualitySetupError(f"--out {out} is a folder; give a file path such as {out}/quality.parquet")
    if os.path.dirname(os.path.abspath(out)) and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise QualitySetupError(f"--out {out}: its folder does not exist")
    t0 = time.monotonic()
    previous = _previous(out, thresholds)
    ds = load_dataset(corpus, config, data_dir=data_dir, media_dir=media_dir, streaming=True, decode=False,
                      on_missing="skip", **config_kwargs)
    wanted = [split] if isinstance(split, str) else list(split) if split else list(ds)
    unknown = [s for s in wanted if s not in ds]
    if unknown:
        raise QualitySetupError(f"no split {', '.join(unknown)} in {corpus} (splits: {', '.join(ds)})")
    roots = [media_dir] if isinstance(media_dir, (str, os.PathLike)) else list(media_dir)
    meta = {
        "version": TABLE_VERSION, "corpus": corpus, "config": config, "splits": wanted,
        "media_dir": [redact_url(os.fspath(r)) for r in roots], "thresholds": thresholds.to_dict(),
        "avsets": __version__, "pyav": av.__version__,
        "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
    }
    report = QualityReport(out=out)
    progress = progress or QualityProgress(quiet=quiet, desc="quality")
    progress.open_bar()
    os.makedirs(parts_dir(out), exist_ok=True)
    new_batches: list[pa.Table] = []
    buffer: list[dict[str, Any]] = []
    reused: list[int] = []
    last_flush = time.monotonic()
    part_no = 1 + max((int(os.path.basename(p)[5:-len(".parquet")]) for p in glob.glob(os.path.join(parts_dir(out), "part-[0-9]*.parquet"))),
                      default=-1)
    eng = _Engine(engine, num_proc or 1, thresholds)

    def flush() -> None:
        nonlocal part_no, last_flush
        if not buffer:
            return
        table = rows_to_table(buffer, meta)
        path = os.path.join(parts_dir(out), f"part-{part_no:05d}.parquet")
        write_quality_table(table, path)
        part_no += 1
        new_batches.append(table)
        buffer.clear()
        last_flush = time.monotonic()

    def finish(row: dict[str, Any], kind: str) -> None:
        report.per_split[row["split"]] = report.per_split.get(row["split"], 0) + 1
        if row.get("error"):
            report.errors += 1
            kind = "error"
        progress.count(kind)
        if on_row is not None:
            on_row(row)

    keys = ContentKeys()

    def todo() -> Iterator[ClipJob]:
        for name in wanted:
            for job, key in _jobs(iter(ds[name]), name, keys):
                old = previous.index.get(key["id"])
                if job is None:
                    row = {**error_row(key.pop("error")), **key}
                    buffer.append(row)
                    report.measured += 1
                    finish(row, "measured")
                elif old is not None and old[1] == key["fingerprint"] and old[2] == name:
                    reused.append(old[0])
                    report.reused += 1
                    finish({"id": key["id"], "split": old[2], "error": old[3], "reused": True}, "reused")
                else:
                    yield job

    try:
        for row in eng.run(todo()):
            buffer.append(row)
            report.measured += 1
            finish(row, "measured")
            if len(buffer) >= part_rows or time.monotonic() - last_flush >= PART_SECONDS:
                flush()
        flush()
    except BaseException:  # Ctrl-C or a set-up error mid-run: keep what finished for the next run
        flush()
        raise
    finally:
        eng.close()
        progress.close()
    if report.measured + report.reused == 0:
        raise QualitySetupError(f"no clip of {corpus} ({', '.join(wanted)}) has media in {', '.join(map(str, roots))}"
                                " (check --media-dir and --split)")
    pieces = [*new_batches]
    kept = [n for n, _, sp, _ in previous.index.values() if sp not in wanted]  # other splits' rows stay
    if previous.table is not None and (reused or kept):
        pieces.append(previous.table.take(pa.array(reused + kept, pa.int64())))
    table = pa.concat_tables([p.replace_schema_metadata(None) for p in pieces])
    table = table.take(pc.sort_indices(table, [("split", "ascending"), ("id", "ascending")]))
    meta["splits"] = sorted(set(table.column("split").to_pylist()) - {None})  # kept rows' splits too
    table = table.replace_schema_metadata(rows_to_table([], meta).schema.metadata)
    write_quality_table(table, out)
    for part in glob.glob(os.path.join(parts_dir(out), "part-*.parquet")):
        os.unlink(part)
    try:
        os.rmdir(parts_dir(out))
    except OSError:
        pass
    for flag in QUALITY_FLAGS:
        report.flag_counts[flag] = int(pc.sum(pc.fill_null(table[flag], False)).as_py() or 0)
    report.seconds = time.monotonic() - t0
    return report
