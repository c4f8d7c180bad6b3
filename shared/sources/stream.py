"""Archive-order streaming: each archive is one streaming shard, read once front to back, its members joined
to the split's rows by key, rows yielded with the member's bytes embedded (``{bytes, path}``) so the usual
decode step runs unchanged.

Joining uses the resolver's naming rules: ``{ytid}_{start_ms}_{end_ms}`` and 3-decimal names, VGGSound's
``{ytid}_{start:06d}``, ``{ytid}`` alone, at any depth; ``media_pattern`` and a corpus' own relative paths
matched against the member path (or any of its tails); WebDataset ``.json`` members and Parquet key columns
naming the clip.  Members sharing a WebDataset key (``dir/stem`` up to the first dot) form one group: a
``.flac`` and an ``.mp4`` of one clip serve its audio and its video.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np
import pyarrow as pa
import soundfile as sf

from ..decoding import probe_media
from ..errors import MediaSourceError, MissingMediaError, UnsafePathError
from ..paths import safe_relpath
from ..resolve import CANDIDATES_COLUMN, MEDIA_STRUCT, TRIMMED_COLUMN, ResolveStats, ensure_ids
from ..templates import pattern_is_trimmed, render_template, template_values
from .base import archive_order_sources, media_source
from .clip_or_video import TOLERANCE, holds_segment
from .keys import NAMING_RULES, keys_for_member, row_keys, side_keys
from .kinds import Source
from .members import SIDE_EXTENSIONS, ReadStats, prefetch, public_url
from .ranged import is_local
from .records import Member

logger = logging.getLogger("avsets")

#: A file named by YouTube id alone is the segment itself when it lasts at most the segment plus this
#: (the same tolerance as the random-access sources, :mod:`avsets.sources.clip_or_video`).
SEGMENT_TOLERANCE = TOLERANCE
TRIMMED, WHOLE, AUTO = "trimmed", "whole", "auto"
_BATCH_ROWS = 16
_BATCH_BYTES = 32 << 20


# ------------------------------------------------------------------------------------------- sources


#: Kept under its round-2 name: the sources archive-order streaming reads (:func:`.base.archive_order_sources`).
stream_sources = archive_order_sources


# ------------------------------------------------------------------------------------------- joining rows


@dataclass
class RowIndex:
    """A split's rows, keyed the way the random-access resolver keys them (:func:`.keys.row_keys`): one dict
    per naming, built the first time a member of that naming is met (a mirror uses one or two namings, so
    200k rows cost one or two dicts, not five), plus each row's segment for the offset."""

    table: pa.Table
    starts: list[float | None]
    ends: list[float | None]
    by_rel: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # relpath -> (row, rule)
    _by_naming: dict[str, dict[str, int | list[int]]] = field(default_factory=dict, repr=False)
    _namings: dict[str, object] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, table: pa.Table, *, media_pattern: str | None = None,
              label_names: dict | None = None) -> RowIndex:
        table = ensure_ids(table)
        cols = table.column_names
        n = table.num_rows
        starts = table.column("start").to_pylist() if "start" in cols else [None] * n
        ends = table.column("end").to_pylist() if "end" in cols else [None] * n
        index = cls(table=table, starts=starts, ends=ends)
        index._namings = dict(row_keys(table))
        rel = index.by_rel.setdefault
        if media_pattern:
            rule = TRIMMED if pattern_is_trimmed(media_pattern) else WHOLE
            rows = table.select([c for c in cols if not c.startswith("_")]).to_pylist()
            for i, row in enumerate(rows):
                try:
                    path = safe_relpath(render_template(media_pattern, template_values(row, label_names or {})),
                                        what="media_pattern result")
                except (KeyError, ValueError, UnsafePathError):
                    continue
                rel(path, []).append((i, rule))
        if CANDIDATES_COLUMN in cols:
            flags = table.column(TRIMMED_COLUMN).to_pylist() if TRIMMED_COLUMN in cols else None
            for i, paths in enumerate(table.column(CANDIDATES_COLUMN).to_pylist()):
                rule = TRIMMED if flags is None or flags[i] else WHOLE
                for path in paths or ():
                    rel(path, []).append((i, rule))
        return index

    def __len__(self) -> int:
        return self.table.num_rows

    def _table_of(self, naming: str) -> dict[str, int | list[int]]:
        by = self._by_naming.get(naming)
        if by is None:
            by = self._by_naming[naming] = {}
            keys = self._namings.get(naming)
            for i, key in enumerate(keys.to_pylist() if keys is not None else ()):  # type: ignore[attr-defined]
                if key is None:
                    continue
                hit = by.get(key)
                if hit is None:
                    by[key] = i
                elif isinstance(hit, int):
                    by[key] = [hit, i]
                else:
                    hit.append(i)
        return by

    def _rows_of(self, key: str) -> list[tuple[int, str]]:
        """Rows an index key (``keys_for_member``'s ``naming:text``) names, with its rule: a ``w`` name (id
        alone) is ``auto``, decided by the member's duration (:func:`offset_for`)."""
        naming, _, text = key.partition(":")
        if naming not in NAMING_RULES:
            return []
        hit = self._table_of(naming).get(text)
        if hit is None:
            return []
        rule = AUTO if naming == "w" else TRIMMED
        return [(hit, rule)] if isinstance(hit, int) else [(i, rule) for i in hit]

    def match(self, name: str, extra_keys: Iterable[str] = ()) -> list[tuple[int, str]]:
        """``(row, rule)`` pairs a member serves; ``rule`` is ``trimmed``, ``whole`` or ``auto`` (decided by the
        member's duration).  Names follow :func:`avsets.sources.keys_for_member`, the resolver's rule."""
        out: list[tuple[int, str]] = []
        if self.by_rel:
            parts = name.split("/")
            for k in range(len(parts)):
                hit = self.by_rel.get("/".join(parts[k:]))
                if hit:
                    out.extend(hit)
        keys = keys_for_member(name)[1]
        if not keys:  # a Parquet key column or a WebDataset .json names the clip when the file name does not
            for stem in extra_keys:  # (a name's segment is more specific than a bare video id: it wins)
                keys += keys_for_member(stem if "." in stem.rsplit("/", 1)[-1] else f"{stem}.flac")[1]
        for key in dict.fromkeys(keys):
            out.extend(self._rows_of(key))
        return out

    def wants(self, member: Member) -> bool:
        """Whether a member (no bytes yet) can serve a row: its name or alias matches one, or its name says
        nothing (a WebDataset ``.json`` of its group may name it).  Unwanted members are never read."""
        if self.match(member.relpath, [member.alias] if member.alias else ()):
            return True
        return not keys_for_member(member.relpath)[1] and member.alias is None


def _flac_seconds(data: bytes) -> float | None:
    """A FLAC's length from its STREAMINFO block (bytes 8-42): no decoder, microseconds per member."""
    head = bytes(memoryview(data)[:42])
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    bits = int.from_bytes(head[18:26], "big")  # 20 bits rate, 3 channels, 5 bits per sample, 36 samples
    rate, total = bits >> 44, bits & ((1 << 36) - 1)
    return total / rate if rate and total else None


def member_duration(data: bytes, ext: str) -> float | None:
    """Seconds of media in a member's bytes (FLAC header, soundfile, else PyAV); None if unreadable."""
    if ext == "flac":
        seconds = _flac_seconds(data)
        if seconds is not None:
            return seconds
    try:
        if ext in ("flac", "wav", "ogg"):
            info = sf.info(io.BytesIO(data))
            return float(info.frames) / float(info.samplerate) if info.samplerate else None
        with av.open(io.BytesIO(data)) as c:
            if c.duration:
                return c.duration / 1_000_000
            best = 0.0
            for s in c.streams:
                if s.duration is not None and s.time_base is not None:
                    best = max(best, float(s.duration * s.time_base))
            return best or None
    except Exception:  # noqa: BLE001 - any decoder failure means "unknown"; decoding reports it by name
        return None


def offset_for(rule: str, member: Member, start: float | None, end: float | None, *,
               assume_trimmed: bool | None = None, durations: dict | None = None) -> float:
    """Where the row's segment starts inside the member: 0 for a trimmed clip, ``start`` for a whole video.

    An id-only name is ambiguous; the one rule (:func:`avsets.sources.clip_or_video.holds_segment`) reads
    the member as the segment when it lasts at most the segment plus the tolerance, unless
    ``assume_trimmed`` (``id_named``) states it.  Its duration comes from the bytes already in hand.
    """
    if rule == TRIMMED or start is None:
        return 0.0
    if rule == WHOLE:
        return float(start)
    if assume_trimmed is not None:
        return 0.0 if assume_trimmed else float(start)
    if end is None:
        return float(start)
    cache = durations if durations is not None else {}
    if member.name not in cache:
        cache[member.name] = member_duration(member.data, member.ext)
    return 0.0 if holds_segment(cache[member.name], end - start) else float(start)


@dataclass
class Serve:
    """One row served by a group of members."""

    row: int
    audio: Member | None
    video: Member | None
    offset: float


def serve_group(group: list[Member], rows: RowIndex, served: set[int], *, want_audio: bool, want_video: bool,
                assume_trimmed: bool | None = None) -> tuple[list[Serve], int]:
    """The rows a group of members serves (first wins: rows in ``served`` are skipped and counted)."""
    media = [m for m in group if m.kind is not None]
    if not media:
        return [], 0
    extra: list[str] = []
    for m in group:
        if m.ext in SIDE_EXTENSIONS:
            extra.extend(side_keys(m.data))
        if m.alias:
            extra.append(m.alias)
    hits: dict[int, dict[str, tuple[Member, str]]] = {}
    order: list[int] = []
    for m in media:
        for i, rule in rows.match(m.name, extra):
            slot = hits.get(i)
            if slot is None:
                slot = hits[i] = {}
                order.append(i)
            slot.setdefault(m.kind, (m, rule))  # type: ignore[arg-type]
    out: list[Serve] = []
    duplicates = 0
    durations: dict = {}
    for i in order:
        slot = hits[i]
        video = slot.get("video") if want_video else None
        audio = slot.get("audio") if want_audio else None
        if want_audio and audio is None:
            audio = slot.get("video")
        if audio is not None and video is not None and audio[0] is not video[0] and audio[1] != video[1]:
            audio = video  # one media_offset per row: take audio from the video file
        if audio is None and video is None:
            continue
        if i in served:
            duplicates += 1
            continue
        served.add(i)
        first = video or audio
        off = offset_for(first[1], first[0], rows.starts[i], rows.ends[i], assume_trimmed=assume_trimmed,
                         durations=durations)
        out.append(Serve(i, audio[0] if audio else None, video[0] if video else None, off))
    return out, duplicates


def iter_groups(members: Iterable[Member]) -> Iterator[list[Member]]:
    """Consecutive members sharing a WebDataset key, as lists.  When the archive ends in damage, the group
    read in full before it is still yielded, then the error raised: a cut archive loses only what it cut."""
    group: list[Member] = []
    try:
        for m in members:
            if group and m.group_key != group[0].group_key:
                yield group
                group = []
            group.append(m)
    except MediaSourceError:
        if group:
            yield group
        raise
    if group:
        yield group


# ------------------------------------------------------------------------------------------- passes


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
        # read ahead inside their file object (members._ReadAhead), other remote kinds member by member.
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
    """:func:`avsets.decoding.probe_media` for bytes already in hand (a streamed member): None when
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
