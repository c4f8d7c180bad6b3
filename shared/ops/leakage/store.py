"""Fingerprints per clip, computed once and kept in a Parquet table keyed by clip id + media fingerprint.

A rerun recomputes only the clips whose media changed (their content key, :mod:`avsets.media.sources.content_key`,
the key the quality table uses too, or their segment) or that failed last time; every 256 new clips are
flushed to ``<out>.parts/`` so an interrupted run resumes where it stopped.  The table's schema metadata records the algorithm parameters and the avsets/PyAV/FFmpeg versions
that made it; a table made with other parameters is recomputed, never mixed.

Media comes through avsets' own loading (``avsets.ops.verify.split_tables``: every media source kind, local or
remote; ``{bytes, path}`` cells and ``media_offset``) and decoding (``decode_audio`` at 5,512 Hz mono,
``decode_small``: the frames shown at 4 a second, 32x32 grayscale), so what is fingerprinted is exactly the
segment a user loads.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from avsets import __version__
from avsets.core.errors import AvsetsError, MediaError, MissingStreamError
from avsets.core.secrets import redact_text
from avsets.media.decoding import decode_audio
from avsets.media.sources.content_key import ContentKeys

from . import audio_fp, video_fp
from .decode_small import small_gray_frames
from .index import Packed
from .units import Unit

logger = logging.getLogger(__name__)

#: everything that changes the bits; a table with other values is recomputed
PARAMS = {
    "audio": {"algorithm": "haitsma-kalker", "sampling_rate": audio_fp.SAMPLING_RATE, "frame": audio_fp.FRAME,
              "hop": audio_fp.HOP, "bands": audio_fp.BANDS, "f_lo": audio_fp.F_LO, "f_hi": audio_fp.F_HI,
              "silence_rms": audio_fp.SILENCE_RMS},
    "video": {"algorithm": "phash-dct", "fps": video_fp.FPS, "size": video_fp.SIZE, "hash": video_fp.HASH,
              "flat_ac": video_fp.FLAT_AC},
}

SCHEMA = pa.schema([
    ("corpus", pa.string()), ("config", pa.string()), ("split", pa.string()), ("id", pa.string()),
    ("media_key", pa.string()),
    ("audio", pa.binary()),  # little-endian uint32 sub-fingerprints, null: no audio stream
    ("video", pa.binary()),  # little-endian uint64 frame hashes, null: no video stream
    ("error", pa.string()),  # why the clip could not be fingerprinted (null: it was)
])

FLUSH_EVERY = 256


class FingerprintStoreError(AvsetsError, ValueError):
    """A fingerprint table that cannot be used (not ours, or unreadable)."""


def table_metadata() -> dict[bytes, bytes]:
    versions = {"avsets": __version__, "pyav": av.__version__,
                "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}}
    return {b"avsets.fingerprints": json.dumps({"params": PARAMS, "versions": versions}).encode()}


def _params_of(schema: pa.Schema) -> dict | None:
    raw = (schema.metadata or {}).get(b"avsets.fingerprints")
    if raw is None:
        return None
    return json.loads(raw).get("params")


def keyed_row(row: dict, keys: ContentKeys | None = None) -> tuple[str, dict]:
    """``(media key, row)``: the content key of the row's audio and video (:mod:`avsets.media.sources.content_key`,
    the key the quality table uses too) and which segment of them; the row comes back with the bytes of any
    member that had to be read to be keyed (a tar or Parquet member) in its cells, so it is decoded from
    those bytes and never read twice.  Media that cannot be reached gets the key ``?`` (the decode says
    why; such a row is never reused)."""
    keys = keys or ContentKeys()
    out = dict(row)
    parts = []
    seen: dict[tuple[object, int], tuple[str, bytes | None]] = {}
    for col in ("audio", "video"):
        cell = row.get(col)
        if cell is None:
            parts.append("-")
            continue
        same = (cell.get("path"), id(cell.get("bytes")))  # audio and video of one file: keyed (and read) once
        if same not in seen:
            try:
                key, data = keys.identify(cell)
                seen[same] = (key or "-", data)
            except MediaError:
                seen[same] = ("?", None)
        key, data = seen[same]
        if data is not None:
            out[col] = {**cell, "bytes": data}
        parts.append(key)
    offset = row.get("media_offset") or 0.0
    start, end = row.get("start"), row.get("end")
    span = "" if start is None or end is None else f"{end - start:.3f}"
    return f"a:{parts[0]}|v:{parts[1]}|{offset:.3f}+{span}", out


def media_key(row: dict, keys: ContentKeys | None = None) -> str:
    """The media key of a row (:func:`keyed_row`'s key)."""
    return keyed_row(row, keys)[0]


@dataclass
class ClipPrint:
    """One clip's fingerprints (``None``: that modality is absent) or the error that stopped it."""

    audio: np.ndarray | None
    video: np.ndarray | None
    error: str | None = None


def fingerprint_row(row: dict) -> ClipPrint:
    """Decode one row small (5,512 Hz mono; 4 fps, 32x32) and fingerprint both modalities."""
    offset = float(row.get("media_offset") or 0.0)
    start, end = row.get("start"), row.get("end")
    duration = None if start is None or end is None else float(end) - float(start)
    out = ClipPrint(None, None)
    errors = []
    for col in ("audio", "video"):
        cell = row.get(col)
        if cell is None:
            continue
        try:
            if col == "audio":  # mono first, then to 5,512 Hz (one channel: half the cost of two)
                samples, sr = decode_audio(cell.get("path"), cell.get("bytes"), offset=offset, duration=duration,
                                           mono=True, clip_id=row.get("id"))
                out.audio = audio_fp.audio_fingerprint(audio_fp.to_fingerprint_rate(samples, sr))
            else:
                luma = small_gray_frames(cell.get("path"), cell.get("bytes"), offset=offset, duration=duration,
                                         clip_id=row.get("id"))
                out.video = video_fp.phash_frames(luma)
        except MissingStreamError:
            continue
        except MediaError as exc:  # the reason may name a URL: never store or print its secrets
            errors.append(redact_text(f"{col}: {exc}"))
    if errors and out.audio is None and out.video is None:
        out.error = "; ".join(errors)
    return out


def _row_of(unit: Unit, clip_id: str, key: str, fp: ClipPrint) -> dict:
    return {"corpus": unit.corpus, "config": unit.config, "split": unit.split, "id": clip_id, "media_key": key,
            "audio": None if fp.audio is None else fp.audio.astype("<u4").tobytes(),
            "video": None if fp.video is None else fp.video.astype("<u8").tobytes(), "error": fp.error}


def read_fingerprints(path: str | os.PathLike) -> pa.Table:
    """A fingerprint table written by :func:`fingerprint_units` (raises if it is not one, or of other params)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise FingerprintStoreError(f"cannot read fingerprints {path}: {exc}") from exc
    params = _params_of(table.schema)
    if params is None or not set(SCHEMA.names) <= set(table.column_names):
        raise FingerprintStoreError(f"{path} is not an avsets fingerprint table (avsets fingerprint --out)")
    if params != json.loads(json.dumps(PARAMS)):
        raise FingerprintStoreError(f"{path} was made with other fingerprint parameters; recompute it "
                                    "(delete it and rerun avsets fingerprint)")
    return table.select(SCHEMA.names).cast(SCHEMA)


def _cached(out: str) -> pa.Table | None:
    """Rows reusable from an earlier run: the table at ``out`` and any flushed parts (other params: none)."""
    tables = []
    if os.path.exists(out):
        try:
            tables.append(read_fingerprints(out))
        except FingerprintStoreError as exc:
            logger.warning("avsets: %s; recomputing every clip", exc)
    for part in sorted(glob.glob(os.path.join(f"{out}.parts", "*.parquet"))):
        try:
            tables.append(read_fingerprints(part))
        except FingerprintStoreError:
            continue
    if not tables:
        return None
    return pa.concat_tables(tables)


@dataclass
class FingerprintRun:
    """What one :func:`fingerprint_units` call did."""

    table: pa.Table  # the rows of the units fingerprinted (cached or new)
    computed: int
    reused: int
    failed: int
    failed_ids: list[tuple[str, str, str]]  # (unit label, id, error)


def _media_rows(unit: Unit) -> Iterable[dict]:
    t = unit.table
    has = pc.or_(pc.is_valid(t.column("audio")), pc.is_valid(t.column("video")))
    cols = [c for c in ("id", "start", "end", "audio", "video", "media_offset") if c in t.column_names]
    yield from t.filter(has).select(cols).to_pylist()


def fingerprint_units(units: Sequence[Unit], out: str | os.PathLike, *, workers: int = 2, progress: bool = True,
                      compute: Callable[[dict], ClipPrint] = fingerprint_row) -> FingerprintRun:
    """Fingerprint every row with media of ``units`` into the table at ``out`` (reusing what it holds).

    Rows of other units already in ``out`` stay; the table is rewritten atomically at the end.
    """
    out = os.fspath(out)
    cached = _cached(out)
    reuse: dict[tuple[str, str], dict] = {}
    if cached is not None:
        ok = cached.filter(pc.is_null(cached.column("error")))
        for r in ok.select(["id", "media_key", "audio", "video"]).to_pylist():
            reuse[(r["id"], r["media_key"])] = r
    parts_dir = f"{out}.parts"
    os.makedirs(parts_dir, exist_ok=True)
    n_parts = len(glob.glob(os.path.join(parts_dir, "*.parquet")))
    rows: list[dict] = []
    pending: list[dict] = []
    failed: list[tuple[str, str, str]] = []
    reused = computed = 0
    keys = ContentKeys()
    items = [(unit, row) for unit in units for row in _media_rows(unit)]

    def one(item: tuple[Unit, dict]) -> tuple[str, ClipPrint | None, dict | None]:
        """Key a row, then reuse its cached prints or compute them (in the worker: a member read to be keyed
        is decoded from the same bytes)."""
        key, row = keyed_row(item[1], keys)
        hit = reuse.get((row["id"], key))
        return (key, None, hit) if hit is not None else (key, compute(row), None)

    def flush() -> None:
        nonlocal n_parts
        if pending:
            pq.write_table(pa.Table.from_pylist(pending, schema=SCHEMA.with_metadata(table_metadata())),
                           os.path.join(parts_dir, f"part-{n_parts:05d}.parquet"))
            n_parts += 1
            pending.clear()

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        results = pool.map(one, items)
        for (unit, row), (key, fp, hit) in tqdm(zip(items, results, strict=True), total=len(items),
                                                disable=not progress, desc="fingerprinting", unit="clip"):
            if hit is not None:
                rows.append({"corpus": unit.corpus, "config": unit.config, "split": unit.split, "id": row["id"],
                             "media_key": key, "audio": hit["audio"], "video": hit["video"], "error": None})
                reused += 1
                continue
            assert fp is not None
            computed += 1
            rec = _row_of(unit, row["id"], key, fp)
            rows.append(rec)
            pending.append(rec)
            if fp.error is not None:
                failed.append((unit.label, row["id"], fp.error))
            if len(pending) >= FLUSH_EVERY:
                flush()
    finally:  # Ctrl-C: keep what was computed, and do not wait for the clips not started
        flush()
        pool.shutdown(wait=False, cancel_futures=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    _write_merged(out, table, cached)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return FingerprintRun(table, computed=computed, reused=reused, failed=len(failed), failed_ids=failed)


def _write_merged(out: str, table: pa.Table, cached: pa.Table | None) -> None:
    """``table`` plus the cached rows of other (corpus, config, split) units, written atomically."""
    keep = [table]
    if cached is not None and os.path.exists(out):
        old = read_fingerprints(out)
        done = {(r["corpus"], r["config"], r["split"]) for r in
                table.select(["corpus", "config", "split"]).group_by(["corpus", "config", "split"]).aggregate([])
                .to_pylist()}
        mask = np.array([(c, g, s) not in done for c, g, s in zip(old.column("corpus").to_pylist(),
                                                                  old.column("config").to_pylist(),
                                                                  old.column("split").to_pylist(), strict=True)],
                        dtype=bool)
        if mask.any():
            keep.append(old.filter(pa.array(mask)))
    merged = pa.concat_tables(keep).replace_schema_metadata(table_metadata())
    tmp = f"{out}.tmp"
    pq.write_table(merged, tmp)
    os.replace(tmp, out)


def decode_prints(table: pa.Table) -> tuple[Packed, Packed]:
    """The audio (uint32) and video (uint64) fingerprints of a table's rows, flat (no copy per clip)."""
    return Packed.from_arrow(table.column("audio"), "<u4"), Packed.from_arrow(table.column("video"), "<u8")
