"""Archive-order streaming: each archive is one streaming shard, read once front to back, its members joined
to the split's rows by key, rows yielded with the member's bytes embedded (``{bytes, path}``) so the usual
decode step runs unchanged.

Joining members to rows (the row index, WebDataset groups, clip or whole video per member) is
:mod:`.row_join`, the rule set random access matches by too; this module runs the passes and turns the
rows served into tables.

Where rows without a member go (the choice, documented in the README): archives are shards, so a row's
archive is unknown until the archives have been read.  Each process keeps one *pass* per split: the rows its
shards served (so a clip held twice is yielded once, first wins, and counted as a duplicate) and the
archives it finished.  The process whose pass has finished *every* archive of the split - plain iteration,
one DataLoader worker, or nodes iterated one after the other - counts the rows no archive held as missing
at the end of the pass and, under ``on_missing="keep"``, yields them with ``None`` media after the last
archive (``"error"`` raises).  When archives are divided among DataLoader workers or nodes, no process sees
them all: each yields the rows its archives hold, and rows held by no archive are neither yielded nor
counted there (``keep`` then behaves like ``skip``); ``avsets verify`` or ``avsets unpack`` count them.
"""

from __future__ import annotations

import io
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import soundfile as sf

from avsets.core.errors import MediaSourceError, MissingMediaError

from ..decoding import probe_media
from ..resolve import MEDIA_STRUCT, ResolveStats
from .base import media_source
from .kinds import Source
from .members import ReadStats, public_url
from .ranged import is_local
from .records import Member
from .row_join import RowIndex, Serve, iter_groups, serve_group
from .sequential import prefetch

logger = logging.getLogger("avsets")

_BATCH_ROWS = 16
_BATCH_BYTES = 32 << 20


@dataclass
class Pass:
    """One process' pass over a split's archives (see the module docstring)."""

    rows: RowIndex
    archives: tuple[str, ...]
    done: set[str] = field(default_factory=set)
    served: set[int] = field(default_factory=set)
    duplicates: int = 0
    unsafe: int = 0
    damaged: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.done.clear()
        self.served.clear()
        self.duplicates = self.unsafe = 0
        self.damaged.clear()


_PASSES: dict[str, Pass] = {}
_LOCK = threading.Lock()


@dataclass
class StreamSpec:
    """What the builder tells the streamer (all picklable)."""

    corpus: str
    config_name: str
    split: str
    archives: tuple[Source, ...]
    modalities: tuple[str, ...] = ("audio", "video")
    media_pattern: str | None = None
    on_missing: str = "skip"
    label_names: dict = field(default_factory=dict)
    assume_trimmed: bool | None = None
    key_column: str | None = None
    scope: str = ""  # the builder's config id and hash: other metadata or ``only_ids`` make another pass
    quiet: bool = False  # the caller (``avsets verify``) prints the counts itself

    @property
    def token(self) -> str:
        return "\0".join([self.corpus, self.config_name, self.scope, self.split, *(a.url for a in self.archives)])


def _get_pass(spec: StreamSpec, read_rows: Callable[[], pa.Table]) -> Pass:
    with _LOCK:
        p = _PASSES.get(spec.token)
        if p is None:
            rows = RowIndex.build(read_rows(), media_pattern=spec.media_pattern, label_names=spec.label_names)
            p = _PASSES[spec.token] = Pass(rows=rows, archives=tuple(a.url for a in spec.archives))
        return p


def _media_array(members: list[Member | None], archive: str) -> pa.ChunkedArray:
    """``{bytes, path}`` structs, one chunk per row whose bytes buffer *is* the member's ``bytes`` object
    (``pa.py_buffer``, no copy): on fresh pages a 300-KB memcpy costs as much as a tenth of a FLAC decode."""
    if all(m is None for m in members):  # the column of a modality not asked for: one array, not n
        return pa.chunked_array([pa.nulls(len(members), MEDIA_STRUCT)], MEDIA_STRUCT)
    chunks = []
    for m in members:
        if m is None or len(m.data) >= 2**31:  # Arrow binary offsets are int32: a 2-GB member cannot be a row
            if m is not None:
                logger.warning("avsets: %s!/%s is larger than 2 GB; not served", archive, m.name)
            chunks.append(pa.array([None], MEDIA_STRUCT))
            continue
        offsets = pa.py_buffer(np.array([0, len(m.data)], dtype=np.int32))
        buf = m.data if isinstance(m.data, pa.Buffer) else pa.py_buffer(m.data)
        data = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, buf])
        path = pa.array([f"{archive}!/{m.name}"], pa.string())
        chunks.append(pa.StructArray.from_arrays([data, path], fields=list(MEDIA_STRUCT)))
    return pa.chunked_array(chunks, MEDIA_STRUCT)


def _table_of(rows: RowIndex, served: list[Serve], archive: str, schema: pa.Schema,
              conform: Callable[[pa.Table, pa.Schema], pa.Table]) -> pa.Table:
    table = rows.table.take(pa.array([s.row for s in served], pa.int64()))
    audio = _media_array([s.audio for s in served], archive)
    video = _media_array([s.video for s in served], archive)
    offsets = pa.array([s.offset for s in served], pa.float64())
    for name, arr in (("audio", audio), ("video", video), ("media_offset", offsets)):
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return conform(table, schema)


def stream_archive(spec: StreamSpec, archive: Source, read_rows: Callable[[], pa.Table], schema: pa.Schema,
                   conform: Callable[[pa.Table, pa.Schema], pa.Table], stats: ResolveStats) -> Iterator[pa.Table]:
    """Tables of the rows one archive serves, in archive order; after the pass's last archive, the count of
    rows no archive held (and, under ``keep``, those rows with ``None`` media)."""
    p = _get_pass(spec, read_rows)
    if archive.url in p.done:  # a new epoch (or a second iteration): start a new pass
        p.reset()
    shown = public_url(archive.url)
    want_audio, want_video = "audio" in spec.modalities, "video" in spec.modalities
    read = ReadStats()
    pending: list[Serve] = []
    pending_bytes = 0
    try:
        source = media_source(archive, key_column=spec.key_column)
        groups = iter_groups(source.iter_members(read, want=p.rows.wants))
        # A thread reading ahead pays off only on a remote source (it hides the network): on a local file
        # its hand-overs cost more CPU than the overlap saves (0.1-0.2 ms a member, measured).  Remote tars
        # read ahead inside their file object (sequential.ReadAhead), other remote kinds member by member.
        remote = not is_local(archive.url)
        for group in (prefetch(groups) if remote and not source.reads_ahead else groups):
            got, dup = serve_group(group, p.rows, p.served, want_audio=want_audio, want_video=want_video,
                                   assume_trimmed=spec.assume_trimmed)
            p.duplicates += dup
            if not got:
                continue
            pending.extend(got)
            pending_bytes += sum(len(m.data) for m in group)
            if len(pending) >= _BATCH_ROWS or pending_bytes >= _BATCH_BYTES:
                yield _table_of(p.rows, pending, shown, schema, conform)
                pending, pending_bytes = [], 0
    except MediaSourceError as exc:
        if spec.on_missing == "error":
            raise
        p.damaged.append(shown)
        logger.warning("avsets: %s; the rows it would have served count as missing", exc)
    if pending:
        yield _table_of(p.rows, pending, shown, schema, conform)
    p.unsafe += read.unsafe
    if read.unsafe:
        logger.warning("avsets: %s: ignored %d member(s) whose names leave the archive (.. or absolute), "
                       "e.g. %r", shown, read.unsafe, read.unsafe_names[0])
    p.done.add(archive.url)
    logger.info("%s/%s %s: %s: %d members, %d media, %d junk", spec.corpus, spec.config_name, spec.split, shown,
                read.members, read.media, read.junk)
    if set(p.archives) <= p.done:
        yield from _end_of_pass(spec, p, schema, conform, stats)


def _end_of_pass(spec: StreamSpec, p: Pass, schema: pa.Schema,
                 conform: Callable[[pa.Table, pa.Schema], pa.Table], stats: ResolveStats) -> Iterator[pa.Table]:
    n = len(p.rows)
    missing = [i for i in range(n) if i not in p.served]
    stats.rows, stats.found, stats.missing, stats.unsafe = n, len(p.served), len(missing), p.unsafe
    ids = p.rows.table.column("id")
    stats.missing_ids = [str(x) for x in ids.take(pa.array(missing[:1000], pa.int64())).to_pylist()]
    if p.duplicates:
        logger.warning("%s/%s %s: %d member(s) served a row already served; the first one won",
                       spec.corpus, spec.config_name, spec.split, p.duplicates)
    if missing and not spec.quiet:
        logger.warning("%s/%s %s: %d of %d rows have no member in the %d archive(s) (on_missing=%r)%s%s",
                       spec.corpus, spec.config_name, spec.split, len(missing), n, len(p.archives), spec.on_missing,
                       ", dropped" if spec.on_missing == "skip" else "",
                       f"; damaged: {', '.join(p.damaged)}" if p.damaged else "")
    if missing:
        if spec.on_missing == "error":
            raise MissingMediaError(f"{len(missing)} of {n} rows have no member in {len(p.archives)} archive(s) "
                                    f"(first: {', '.join(stats.missing_ids[:5])}); pass on_missing='skip' or "
                                    "'keep', or check the archives with `avsets verify`")
        if spec.on_missing == "keep":
            for lo in range(0, len(missing), 1000):
                chunk = missing[lo:lo + 1000]
                table = p.rows.table.take(pa.array(chunk, pa.int64()))
                yield conform(table, schema)


def probe_member(data: bytes, path: str) -> str | None:
    """:func:`avsets.media.decoding.probe_media` for bytes already in hand (a streamed member): None when
    readable, else the reason.  ``avsets verify`` on a ``.tar.gz`` probes this way, never by path."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if not data:
        return "empty member (0 bytes)"
    if ext in ("flac", "wav", "ogg"):
        try:
            return None if sf.info(io.BytesIO(data)).frames > 0 else "no audio samples"
        except sf.LibsndfileError:
            pass
    with tempfile.NamedTemporaryFile(suffix=f".{ext or 'bin'}") as f:  # probe_media opens paths
        f.write(data)
        f.flush()
        return probe_media(f.name)
