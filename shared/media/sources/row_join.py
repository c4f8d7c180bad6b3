"""Joining members to a split's rows: the row index archive order matches members against, and the rows a
group of members serves.

One rule set with random access: a row's keys are :func:`.keys.row_keys` (the keys the resolver looks up
in the index), a member's are :func:`.keys.keys_for_member` of its name, its alias (a Parquet key column)
or its group's WebDataset ``.json``; ``media_pattern`` and a corpus' own relative paths are tried against
the member path (or any of its tails).  Members sharing a WebDataset key (``dir/stem`` up to the first dot)
form one group: a ``.flac`` and an ``.mp4`` of one clip serve its audio and its video.  Where a row's
segment starts inside a member (clip or whole video) is the one rule of :mod:`.clip_or_video`, decided per
member.  Used by archive-order streaming (:mod:`.stream`), ``unpack`` and ``fetch --source``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from avsets.core.errors import MediaSourceError, UnsafePathError
from avsets.core.paths import safe_relpath
from avsets.core.templates import pattern_is_trimmed, render_template, template_values

from ..resolve import CANDIDATES_COLUMN, TRIMMED_COLUMN, ensure_ids
from .clip_or_video import media_seconds, segment_offset
from .keys import NAMING_RULES, keys_for_member, row_keys, side_keys
from .members import SIDE_EXTENSIONS
from .records import Member

TRIMMED, WHOLE, AUTO = "trimmed", "whole", "auto"


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
        member's duration).  Names follow :func:`avsets.media.sources.keys_for_member`, the resolver's rule."""
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


def offset_for(rule: str, member: Member, start: float | None, end: float | None, *,
               assume_trimmed: bool | None = None, durations: dict | None = None) -> float:
    """Where the row's segment starts inside the member: 0 for a trimmed clip, ``start`` for a whole video,
    and for a name holding the id alone the one per-member rule (:func:`.clip_or_video.segment_offset`),
    its duration read from the bytes already in hand (once per member: ``durations`` remembers it)."""
    if rule == TRIMMED or start is None:
        return 0.0
    if rule == WHOLE:
        return float(start)
    seconds = None
    if assume_trimmed is None and end is not None:
        cache = durations if durations is not None else {}
        if member.name not in cache:
            cache[member.name] = media_seconds(member.data, member.ext)
        seconds = cache[member.name]
    return segment_offset(seconds, start, end, assume_trimmed)


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
        if audio is None and video is None:
            continue
        if i in served:
            duplicates += 1
            continue
        served.add(i)
        start, end = rows.starts[i], rows.ends[i]
        first = video or audio
        off = offset_for(first[1], first[0], start, end, assume_trimmed=assume_trimmed, durations=durations)
        if (audio is not None and video is not None and audio[0] is not video[0]
                and offset_for(audio[1], audio[0], start, end, assume_trimmed=assume_trimmed,
                               durations=durations) != off):
            audio = video  # one media_offset per row: take audio from the video file (as the resolver does)
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
