"""Coverage of a media mirror: per split, rows in the metadata, media found, missing, corrupt.

Reads the builder's own Arrow tables (no cache is written) with ``on_missing="keep"``, so the numbers are
exactly what ``load_dataset`` would see; probing every file is what makes this the opt-in full check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import DownloadManager, StreamingDownloadManager
from tqdm.auto import tqdm

from avsets.build.api import load_dataset_builder
from avsets.core.csvsafe import csv_writer
from avsets.core.secrets import redact_text
from avsets.media.decoding import probe_media
from avsets.media.sources.locator import public_path
from avsets.media.sources.stream import probe_member


@dataclass
class SplitCoverage:
    """One line of the coverage table."""

    split: str
    rows: int = 0
    found: int = 0
    missing: int = 0
    corrupt: int = 0
    missing_ids: list[str] = field(default_factory=list)
    corrupt_ids: list[tuple[str, str, str]] = field(default_factory=list)  # (id, path, reason)


def verify(
    corpus: str,
    config: str | None = None,
    *,
    data_dir: str | None = None,
    media_dir: str | Sequence[str] | None = None,
    probe: bool = True,
    missing_csv: str | os.PathLike | None = None,
    progress: bool = True,
    workers: int = 4,
    splits: Sequence[str] | None = None,
    **config_kwargs: Any,
) -> list[SplitCoverage]:
    """Count rows, found, missing and corrupt media per split (``splits``: only those; a name the corpus does
    not have is a ``ValueError`` naming the ones it has); optionally write the missing ids to a CSV."""
    report, seen = [], []
    for split, tables in split_tables(corpus, config, data_dir=data_dir, media_dir=media_dir, **config_kwargs):
        seen.append(split)
        if not splits or split in splits:
            report.append(split_coverage(split, tables, probe=probe, progress=progress, workers=workers))
    unknown = sorted(set(splits or ()) - set(seen))
    if unknown:
        raise ValueError(f"no split {', '.join(unknown)} in {corpus}/{config or 'default'} (it has {', '.join(seen)})")
    if missing_csv is not None:
        write_missing_csv(report, missing_csv)
    return report


def split_tables(
    corpus: str,
    config: str | None = None,
    *,
    data_dir: str | None = None,
    media_dir: str | Sequence[str] | None = None,
    **config_kwargs: Any,
) -> Iterator[tuple[str, Iterator[pa.Table]]]:
    """``(split, its Arrow tables)`` as the builder makes them with ``on_missing="keep"`` (no cache written).

    ``verify`` and ``avsets report`` both count from these tables, so their numbers agree by construction.
    """
    builder = load_dataset_builder(corpus, config, data_dir=data_dir, media_dir=media_dir, on_missing="keep",
                                   quiet_missing=True, **config_kwargs)  # the caller prints these counts itself
    # sources with random access are read through the media index, like a map-style load; only sources
    # without it (a .tar.gz) need the archive-order streaming pass
    streamed = bool(builder.plan is not None and builder.plan.streaming_only)
    manager = StreamingDownloadManager if streamed else DownloadManager
    dl_manager = manager(base_path=None, download_config=None, dataset_name=corpus, data_dir=builder.config.data_dir)
    for gen in builder._split_generators(dl_manager):
        yield gen.name, (table for _, table in builder._generate_tables(**gen.gen_kwargs))


def present_mask(table: pa.Table) -> pa.ChunkedArray:
    """Rows whose audio or video resolved to a file (what "found" counts)."""
    return pc.or_(pc.is_valid(table.column("audio")), pc.is_valid(table.column("video")))


def split_coverage(
    split: str,
    tables: Iterable[pa.Table],
    *,
    probe: bool = True,
    progress: bool = True,
    workers: int = 4,
    on_table: Callable[[pa.Table, pa.ChunkedArray], None] | None = None,
    probe_streamed: bool | None = None,
) -> SplitCoverage:
    """One split's coverage line from its tables; ``on_table(table, present)`` sees each table on the way
    (the report gathers labels and ids from the very tables it counts).  ``probe_streamed`` (default:
    ``probe``) probes members streamed from a ``.tar.gz`` from their bytes, which only this pass holds."""
    probe_streamed = probe if probe_streamed is None else probe_streamed
    cov = SplitCoverage(split=split)
    to_probe: dict[str, list[str]] = {}
    embedded_bad: set[str] = set()
    for table in tables:
        has = present_mask(table)
        if on_table is not None:
            on_table(table, has)
        n_found = int(pc.sum(has.cast("int64")).as_py() or 0)
        cov.rows += table.num_rows
        cov.found += n_found
        cov.missing += table.num_rows - n_found
        cov.missing_ids += pc.filter(table.column("id"), pc.invert(has)).to_pylist()
        if n_found and (probe or (probe_streamed and _holds_bytes(table))):
            found = table.filter(has)
            ids = found.column("id").to_pylist()
            audio = found.column("audio").to_pylist()
            video = found.column("video").to_pylist()
            for clip_id, a, v in zip(ids, audio, video, strict=True):
                for x in (a, v) if probe_streamed else ():
                    if x is not None and x.get("bytes") is not None:  # a streamed member: probe it now
                        reason = probe_member(x["bytes"], x["path"])
                        if reason is not None and clip_id not in embedded_bad:
                            embedded_bad.add(clip_id)
                            cov.corrupt_ids.append((clip_id, x["path"], reason))
            if probe:
                add_probe_targets(to_probe, ids, [_file_path(a) for a in audio], [_file_path(v) for v in video])
    cov.corrupt += len(embedded_bad)
    count_corrupt(cov, to_probe, progress=progress, workers=workers)
    return cov


def _holds_bytes(table: pa.Table) -> bool:
    """Whether any media cell carries its bytes (members streamed from a ``.tar.gz``)."""
    return any(pc.any(pc.is_valid(pc.struct_field(table.column(c), "bytes"))).as_py() for c in ("audio", "video"))


def _file_path(media: dict | None) -> str | None:
    """The path to open for a media cell; None for no media or a streamed member (probed from its bytes)."""
    return None if media is None or media.get("bytes") is not None else media["path"]


def add_probe_targets(to_probe: dict[str, list[str]], ids: Sequence[str], audio_paths: Sequence[str | None],
                      video_paths: Sequence[str | None]) -> None:
    """``{media path: [clip ids it serves]}`` for rows with media (a whole video may serve several clips)."""
    for clip_id, a, v in zip(ids, audio_paths, video_paths, strict=True):
        for m in {x for x in (a, v) if x is not None}:
            to_probe.setdefault(m, []).append(clip_id)


def count_corrupt(cov: SplitCoverage, to_probe: dict[str, list[str]], *, progress: bool = True,
                  workers: int = 4) -> None:
    """Open every file of ``to_probe`` (``probe_media``); clips served by an unreadable one are corrupt."""
    if not to_probe:
        return
    paths = list(to_probe)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(probe_media, paths)
        bar = tqdm(zip(paths, results, strict=True), total=len(paths), disable=not progress,
                   desc=f"probing {cov.split}")
        bad_ids: set[str] = set()
        for path, reason in bar:
            if reason is not None:
                for clip_id in to_probe[path]:
                    if clip_id not in bad_ids:
                        bad_ids.add(clip_id)
                        cov.corrupt_ids.append((clip_id, path, reason))
        cov.corrupt += len(bad_ids)


def write_missing_csv(report: list[SplitCoverage], path: str | os.PathLike,
                      ledger: Mapping[str, tuple[str, str]] | None = None) -> None:
    """``split,id,status,path,reason,ledger_status,ledger_reason`` for every missing or corrupt clip (feed it
    to ``avsets fetch``). ``ledger`` (``{clip id or youtube id: (status, reason)}``, from the fetch ledgers)
    says why a clip is missing: never fetched (empty), ``unavailable``, ``private``, ``error``..."""
    ledger = ledger or {}

    def why(clip_id: str) -> list[str]:
        hit = ledger.get(clip_id)
        if hit is None and clip_id.count("_") >= 2:  # {youtube_id}_{start_ms}_{end_ms}; a youtube id may hold "_"
            hit = ledger.get(clip_id.rsplit("_", 2)[0])
        return list(hit) if hit else ["", ""]

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv_writer(f)
        w.writerow(["split", "id", "status", "path", "reason", "ledger_status", "ledger_reason"])
        for cov in report:
            for clip_id in cov.missing_ids:
                w.writerow([cov.split, clip_id, "missing", "", "", *why(clip_id)])
            for clip_id, p, reason in cov.corrupt_ids:
                w.writerow([cov.split, clip_id, "corrupt", public_path(p), redact_text(reason), *why(clip_id)])


def format_table(report: list[SplitCoverage]) -> str:
    """The coverage table as aligned text."""
    head = ("split", "rows", "found", "missing", "corrupt", "coverage")
    lines = [head]
    for c in report:
        cover = f"{100.0 * (c.found - c.corrupt) / c.rows:.1f}%" if c.rows else "-"
        lines.append((c.split, str(c.rows), str(c.found), str(c.missing), str(c.corrupt), cover))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))) for row in lines)
