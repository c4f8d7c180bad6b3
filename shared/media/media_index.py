"""One scan of the media roots, and resolution of rows to ``(path, offset within the file, kind)``.

Why an index: a per-row ``os.path.exists`` over four or five candidate names costs 1M stats for 200k rows;
one ``scandir`` walk costs one ``getdents`` per folder.  The same scan yields the names, sizes and mtimes
that make up the cache fingerprint, so freshness costs nothing extra.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import pyarrow as pa

from avsets.core.errors import MediaSourceError, MetadataError
from avsets.core.segments import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS

from .sources.access import SourceIndex
from .sources.base import MediaSource, archive_order_sources, media_source, media_sources
from .sources.clip_or_video import ID_NAMED, known_seconds
from .sources.keys import keys_for_member

logger = logging.getLogger(__name__)


class MediaFile(NamedTuple):
    """One file found under a media root (a NamedTuple: 200k of them are made per scan)."""

    path: str  # absolute local path or full fsspec URL
    relpath: str  # POSIX path relative to its root
    kind: str  # "audio" | "video"
    size: int
    mtime: float


_KINDS = {ext: "audio" for ext in AUDIO_EXTENSIONS} | {ext: "video" for ext in VIDEO_EXTENSIONS}


@dataclass(frozen=True)
class Resolution:
    """Where a row's media lives: the file, where ``start`` lies inside it, and whether it is trimmed."""

    path: str
    offset: float
    kind: str
    trimmed: bool


@dataclass
class MediaIndex:
    """Names under one or more media roots, keyed every way a row can ask for them.

    Keys: ``ms:{ytid}_{start_ms}_{end_ms}`` (millisecond and 3-decimal names), ``s:{ytid}_{start_s}``
    (VGGSound's ``{ytid}_{start:06d}``), ``t:{ytid}_{start_ms}`` (AudioSet's one-time ``{ytid}_{start:.3f}``),
    ``w:{ytid}`` (files named by the id alone: clip or whole video per file, from its duration in
    ``seconds``) and ``i:{ytid}`` (such files stated to hold the segment itself, ``id_named="segment"``; see
    :mod:`avsets.media.sources.clip_or_video`); ``by_relpath`` maps exact
    relative paths, for user templates and corpora with their own layouts.  Each key holds at most one audio and
    one video file; the first root listed wins, so a user can shadow a mirror with local fixes.
    """

    roots: tuple[str, ...] = ()
    files: dict[str, dict[str, MediaFile]] = field(default_factory=dict)
    by_relpath: dict[str, MediaFile] = field(default_factory=dict)
    namings: set[str] = field(default_factory=set)  # which key prefixes occur ("ms", "s", "t", "w")
    _tables: dict[str, tuple] = field(default_factory=dict, repr=False)
    fingerprint: str = "empty"
    num_files: int = 0
    stream_sources: list = field(default_factory=list)  # .tar.gz sources: streaming only
    skipped_sources: list[str] = field(default_factory=list)  # archives that could not be read
    source_stats: dict = field(default_factory=dict)  # archive url -> SourceStats
    #: path -> seconds of each file named by the id alone (``id_named="auto"``): the resolver decides clip or
    #: whole video per file and row from it (:func:`avsets.media.sources.clip_or_video.segment_offset`)
    seconds: dict[str, float | None] = field(default_factory=dict)
    options: tuple = ("auto", None)  # (id_named, key_column) the index was made with
    _dups_in_last: int = field(default=0, repr=False)

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def scan(cls, roots: str | os.PathLike | Sequence[str | os.PathLike] | None, *, id_named: str = "auto",
             key_column: str | None = None, on_missing: str = "skip") -> MediaIndex:
        """Index every media source the roots name, through the one :class:`~avsets.media.sources.MediaSource`
        interface: a folder is its loose media files (one walk, which also finds the archives below it),
        then each zip/tar/Parquet below it; archive members are stored with a member locator as their
        ``path``.  Sources without random access (``.tar.gz``) are listed in ``stream_sources``.

        Clip or whole video (:mod:`avsets.media.sources.clip_or_video`) is decided **per file**, as archive-order
        streaming decides it per member: under ``id_named="auto"`` every file named by the id alone is
        probed once (its duration kept in ``seconds``, cached with the source's index) and the resolver
        applies the rule per row.  An unreadable archive raises
        :class:`~avsets.core.errors.MediaSourceError` with ``on_missing="error"``; otherwise it is logged and
        counted in ``skipped_sources``.
        """
        if id_named not in ID_NAMED:
            raise ValueError(f"id_named must be one of {ID_NAMED}, not {id_named!r}")
        root_list = normalize_roots(roots)
        index = cls(roots=tuple(root_list), options=(id_named, key_column))
        lines: list[str] = [f"id_named\0{id_named}\0{key_column or ''}"]
        done: set[str] = set()
        for root in root_list:
            pending = deque(_root_sources(root, key_column))
            while pending:
                src = pending.popleft()
                if src.url in done:
                    continue
                done.add(src.url)
                index._dups_in_last = 0
                if not src.random_access:
                    index.stream_sources.append(src.source)
                    lines.append(f"stream\0{src.url}")
                    continue
                si = _index_source(src, on_missing)
                if si is None:
                    index.skipped_sources.append(src.url)
                    lines.append(f"skipped\0{src.url}")
                    continue
                pending.extendleft(reversed(src.nested()))  # a folder's archives follow its loose files
                lines.append(f"{src.kind}\0{src.url}\0{si.info.size}\0{si.info.identity}")
                if id_named == "auto":
                    id_only = [m for m in si.members if any(k[0] == "w" for k in m.keys)]
                    if id_only:
                        index.seconds.update(known_seconds(si, id_only, si.extra.get("mtimes") if src.is_folder
                                                           else None))
                seen: set[str] = set()
                add_keyed = index._add_keyed
                for m in si.members:
                    keys = m.keys if id_named != "segment" else tuple("i" + k[1:] if k[0] == "w" else k for k in m.keys)
                    add_keyed(m.locator, m.relpath, m.size, 0.0, keys, seen)
                si.stats.duplicates = index._dups_in_last
                index.source_stats[src.url] = si.stats
                _log_source(src.url, si)
        digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogatepass")).hexdigest()
        index.fingerprint = digest[:16] if root_list else "empty"
        return index

    def _add(self, path: str, relpath: str, size: int, mtime: float, *, id_named: str = "video",
             seen: set[str] | None = None) -> None:
        kind, keys = keys_for_member(relpath, id_named=id_named)
        if kind is not None:
            self._add_keyed(path, relpath, size, mtime, keys, seen, kind)

    def _add_keyed(self, path: str, relpath: str, size: int, mtime: float, keys: Sequence[str],
                   seen: set[str] | None, kind: str | None = None) -> None:
        if kind is None:
            kind = _KINDS.get(relpath.rpartition(".")[2].lower())
            if kind is None:
                return
        mf = MediaFile(path, relpath, kind, size, mtime)
        self.num_files += 1
        self.by_relpath.setdefault(relpath, mf)
        if seen is not None and not keys:
            return
        for key in keys:
            self.namings.add(key.partition(":")[0])
            if seen is not None:
                tag = f"{kind}\0{key}"
                if tag in seen:
                    self._dups_in_last += 1
                    if self._dups_in_last <= 3:
                        logger.warning("duplicate media for %s: %s ignored (the first one wins)", key[key.index(":") + 1:],
                                       path if "://" not in path and not path.startswith("avsets:") else relpath)
                    continue
                seen.add(tag)
            self._put(key, mf)

    def _put(self, key: str, mf: MediaFile) -> None:
        slot = self.files.get(key)
        if slot is None:
            self.files[key] = {mf.kind: mf}
        elif mf.kind not in slot:
            slot[mf.kind] = mf

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, key: str, kind: str) -> MediaFile | None:
        slot = self.files.get(key)
        return None if slot is None else slot.get(kind)

    def lookup_relpath(self, relpath: str) -> MediaFile | None:
        """The file at exactly ``relpath`` under the first root that has it."""
        return self.by_relpath.get(relpath)

    def relpath_slot(self, relpath: str) -> dict[str, MediaFile] | None:
        """``{kind: file}`` for an exact relative path, shaped like the name-keyed slots."""
        mf = self.by_relpath.get(relpath)
        return None if mf is None else {mf.kind: mf}

    def naming_table(self, naming: str) -> tuple[pa.Array, list[dict[str, MediaFile]]]:
        """Keys of one naming (without prefix) as an Arrow array, and the slots in the same order.

        Built once per index; ``pyarrow.compute.index_in`` then resolves a whole column in C++.
        """
        cached = self._tables.get(naming)
        if cached is None:
            prefix = naming + ":"
            keys, slots = [], []
            for key, slot in self.files.items():
                if key.startswith(prefix):
                    keys.append(key[len(prefix):])
                    slots.append(slot)
            cached = (pa.array(keys, pa.string()), slots)
            self._tables[naming] = cached
        return cached

    def __len__(self) -> int:
        return self.num_files


def _root_sources(root: str, key_column: str | None) -> list[MediaSource]:
    """The sources of one root: a local folder alone (its walk finds its archives), else what
    :func:`avsets.media.sources.media_sources` expands the root to (globs, remote folders, archive files)."""
    if "://" not in root and os.path.isdir(root) and not any(ch in root for ch in "*?["):
        return [media_source(root, key_column=key_column)]  # a folder: its walk finds its archives
    return media_sources([root], key_column=key_column)


def _index_source(src: MediaSource, on_missing: str) -> SourceIndex | None:
    try:
        return src.index()
    except MetadataError:
        raise
    except MediaSourceError as exc:
        if on_missing == "error":
            raise
        logger.warning("%s; its media count as missing (on_missing=%r)", exc, on_missing)
        return None


def _log_source(url: str, si) -> None:
    st = si.stats
    skipped = {k: v for k, v in (("unsafe names", st.unsafe), ("encrypted", st.encrypted),
                                 ("truncated", st.truncated), ("duplicates", st.duplicates)) if v}
    if skipped:
        logger.warning("%s: %d media members indexed; skipped %s", url, len(si.members),
                       ", ".join(f"{v} {k}" for k, v in skipped.items()))


def normalize_roots(roots: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    """A root or a list of roots as absolute local paths / URLs, in the order given, without duplicates."""
    if roots is None:
        return []
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    out: list[str] = []
    for root in roots:
        text = os.fspath(root)
        if "://" not in text:
            text = os.path.abspath(os.path.expanduser(text))
        else:
            text = text.rstrip("/")
        if text not in out:
            out.append(text)
    return out


# ---------------------------------------------------------------------------------------------------
# user templates: the one template language lives in ``templates``; these names stay importable from here.

from avsets.core.templates import (  # noqa: E402, F401 - re-exported for modules that import them from media_index
    TemplateFormatter,
    check_pattern,
    pattern_is_trimmed,
    render_template,
    template_fields,
    template_values,
)

# ---------------------------------------------------------------------------------------------------
# the plan: what one load reads its media from, decided once (by avsets.load_dataset) and handed to the
# builder as an argument.  It is part of the builder, so forked and pickled workers carry it with them.


#: big indexes of the latest plans, for children forked after planning to take instead of unpickling a
#: copy (a cache of what a plan holds, never a way to hand state to a builder: the plan is its argument)
_FORK_SHARED: dict[str, MediaIndex] = {}
_SHARE_AT = 10_000  # media files; smaller indexes pickle in milliseconds
_SHARE_MAX = 4  # plans kept shared (the oldest is dropped: pickling it then copies it, as for small ones)


def _share_key(index: MediaIndex) -> str | None:
    if len(index) < _SHARE_AT:
        return None
    return f"{index.fingerprint}\0{index.options}\0{chr(0).join(index.roots)}"


def _share(index: MediaIndex) -> None:
    key = _share_key(index)
    if key is None:
        return
    _FORK_SHARED.pop(key, None)
    _FORK_SHARED[key] = index
    while len(_FORK_SHARED) > _SHARE_MAX:
        _FORK_SHARED.pop(next(iter(_FORK_SHARED)))


@dataclass
class SourcePlan:
    """Where one load's media come from: the roots, the random-access index of them, and (streaming) the
    sources read in archive order, one streaming shard each.

    ``archives`` is ``None`` when the load did not decide it (a map-style builder asked to stream by
    ``verify``): the builder then lists them itself.  ``quiet``: the caller (``avsets verify``/``report``)
    prints the missing-media counts itself.
    """

    roots: tuple[str, ...] = ()
    index: MediaIndex | None = None
    archives: tuple | None = None
    quiet: bool = False
    #: a streaming load: rows left out for missing media count in ``DECODE_STATS.dropped``
    streaming: bool = False

    def __getstate__(self) -> dict:
        """Pickled for ``num_proc`` jobs and DataLoader workers with the builder: a big index (200k rows:
        26 MB, ~2 s to pickle and load) that :func:`plan_sources` shared is left out; a child forked after
        planning (``num_proc`` pools, DataLoader workers) takes it from the fork-shared table, and a process
        that does not have it (spawned) plans again on first use (:meth:`avsets.build.builder.AVBuilder.media_index`)."""
        state = dict(self.__dict__)
        key = _share_key(self.index) if self.index is not None else None
        if key is not None and _FORK_SHARED.get(key) is self.index:
            state["index"], state["_shared_key"] = None, key
        return state

    def __setstate__(self, state: dict) -> None:
        key = state.pop("_shared_key", None)
        self.__dict__.update(state)
        if key is not None:
            self.index = _FORK_SHARED.get(key)

    @property
    def fingerprint(self) -> str:
        """What the cache key takes from the media: the index's fingerprint (names, sizes, versions)."""
        return self.index.fingerprint if self.index is not None else "no-media"

    @property
    def streaming_only(self) -> list:
        """Sources that only archive order can read (``.tar.gz``), found by the index."""
        return list(self.index.stream_sources) if self.index is not None else []


def plan_sources(media_dir: str | os.PathLike | Sequence[str | os.PathLike] | None, *, streaming: bool = False,
                 id_named: str = "auto", key_column: str | None = None, on_missing: str = "skip",
                 quiet: bool = False) -> SourcePlan:
    """The :class:`SourcePlan` of a load: with ``streaming`` and any archive among the roots, archive-order
    streaming reads the archives itself (no index is scanned: a scan would list remote roots for nothing);
    otherwise one :meth:`MediaIndex.scan`."""
    roots = tuple(normalize_roots(media_dir))
    if not roots:
        return SourcePlan(quiet=quiet, streaming=streaming)
    archives = tuple(archive_order_sources(list(roots))) if streaming else ()
    if archives:
        return SourcePlan(roots, MediaIndex(roots=roots), archives, quiet, streaming)
    index = MediaIndex.scan(list(roots), id_named=id_named, key_column=key_column, on_missing=on_missing)
    _share(index)  # before any worker is forked: pickling the plan then leaves the index out
    return SourcePlan(roots, index, archives if streaming else None, quiet, streaming)
