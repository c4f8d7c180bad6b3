"""One interface for every media source: :class:`MediaSource`, and one class per kind.

A media source is where a corpus' media already lives: a folder, a zip, a tar (WebDataset shards are
tars), a ``.tar.gz`` (a tar without random access), a Parquet file with a media struct column; local or an
fsspec URL.  Every caller (:class:`avsets.media.media_index.MediaIndex`, archive-order streaming, ``verify``,
``report``, ``unpack``, ``fetch --source``) loops over sources through this interface and never tests a kind:

- ``kind`` and ``random_access`` (whether a member can be read alone, by its locator);
- :meth:`MediaSource.index` -> a :class:`~.access.SourceIndex` of :class:`~.records.Member` s, each with its
  row-matching keys (:func:`~.keys.keys_for_member` of its name and its alias), cached on disk for archives;
- :meth:`MediaSource.read` -> one member's bytes (random-access kinds, or a member that carries its bytes);
- :meth:`MediaSource.iter_members` -> members with their bytes in stored order (every kind), reading only
  the media members a ``want(member)`` predicate accepts, so unwanted members are never held.

Adding a mirror format is one subclass here (``@register``-ed under its kind, the kind named by
:func:`~.kinds.source_kind`) and one entry in ``tests/test_source_contract.py``.  The low-level readers stay
where they are (:mod:`.zipsrc`, :mod:`.tarsrc`, :mod:`.parquetsrc` for random access; :mod:`.members_tar`,
:mod:`.members_zip`, :mod:`.members_parquet`, :func:`.folder.iter_folder` for archive order): each class
names its own, so nothing dispatches on a kind string.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from typing import BinaryIO, ClassVar

import fsspec

from avsets.core.errors import MediaError, MediaSourceError, StreamingOnlySourceError

from .access import SourceIndex, index_source, read_media_bytes
from .folder import has_loose_media, iter_folder, walk
from .keys import keys_for_member, side_keys
from .kinds import Source, expand_sources, source_kind
from .members import Want, public_url
from .members_parquet import iter_parquet
from .members_tar import iter_tar
from .members_zip import iter_zip
from .parquetsrc import index_parquet, read_parquet_member
from .ranged import RangeReader, RemoteInfo, is_local, local_path
from .records import Member, SourceStats, member_keys
from .registry import register, source_class
from .tarsrc import index_tar, open_tar_member, read_tar_member
from .zipsrc import index_zip, open_zip_member, read_zip_member

logger = logging.getLogger("avsets")


class MediaSource:
    """One media source of one kind (see the module doc).  Subclasses set ``kind``, ``random_access``, their
    archive-order pass ``iter_stored(source, stats, want, key_column)`` and, for archives, the two
    low-level functions ``build_index(url, reader, size)`` and ``read_located(reader, fields, member)``."""

    kind: ClassVar[str] = ""
    random_access: ClassVar[bool] = True
    #: a folder of files (which may also hold side files such as a fetch ledger), not one archive file
    is_folder: ClassVar[bool] = False
    #: its archive-order pass reads a remote file ahead itself (a tar's stream): no second read-ahead thread
    reads_ahead: ClassVar[bool] = False
    #: it may hold WebDataset ``.json`` side members that name the clip of their group
    side_members: ClassVar[bool] = True

    def __init__(self, url: str, *, key_column: str | None = None) -> None:
        self.url = url
        self.key_column = key_column

    def __repr__(self) -> str:
        return f"{type(self).__name__}({public_url(self.url)!r})"

    @property
    def source(self) -> Source:
        """The plain, picklable ``(url, kind)`` record of this source."""
        return Source(self.url, self.kind)  # type: ignore[arg-type]

    @property
    def shown(self) -> str:
        """The URL as it may be printed (userinfo and signatures masked)."""
        return public_url(self.url)

    # -- random access --------------------------------------------------------------------------
    def index(self, *, use_cache: bool = True) -> SourceIndex:
        """Every media member with its keys (cached with the index, keyed by the source's size and ETag/mtime).

        A kind without random access raises :class:`StreamingOnlySourceError`."""
        if not self.random_access:
            raise StreamingOnlySourceError(
                "a .tar.gz cannot be read at random (map-style). Load it with streaming=True, or extract the "
                "clips your rows need once with `avsets unpack`", source=self.shown)
        si = index_source(self.source, key_column=self.key_column, use_cache=use_cache)
        changed = si.ensure_keys()
        if "side_keys" not in si.extra:
            changed = self._add_side_keys(si) or changed
        if changed:
            si.save_extra()
        return si

    def read(self, member: Member) -> bytes:
        """The member's bytes: those it carries (archive order), else one read through its locator."""
        if member.data is not None:
            return bytes(member.data)
        if not self.random_access:
            raise StreamingOnlySourceError("a .tar.gz member cannot be read alone; read the archive in order",
                                           source=self.shown)
        return read_media_bytes(member.locator)

    @staticmethod
    def build_index(url: str, reader: RangeReader, size: int, *, key_column: str | None = None
                    ) -> tuple[list[Member], SourceStats]:
        """The low-level indexer of this kind (see :mod:`.zipsrc`, :mod:`.tarsrc`, :mod:`.parquetsrc`)."""
        raise MediaSourceError("is not an archive source", source=public_url(url))

    @staticmethod
    def read_located(reader: RangeReader, fields: dict[str, str], member: str) -> bytes:
        """One member's bytes from its locator fields (the low-level reader of this kind)."""
        raise MediaError("this source kind has no member locators")

    @classmethod
    def open_located(cls, reader: RangeReader, fields: dict[str, str], member: str) -> BinaryIO:
        """One member as a file, for reads of a part of it (a duration probe): by ranges on demand where the
        kind stores members as they are, else its bytes read whole (:meth:`read_located`)."""
        return io.BytesIO(cls.read_located(reader, fields, member))

    @staticmethod
    def iter_stored(source: Source, stats: SourceStats, want: Want | None, key_column: str | None = None
                    ) -> Iterator[Member]:
        """The low-level archive-order pass of this kind (see :meth:`iter_members`)."""
        raise MediaSourceError(f"no archive-order reader for kind {source.kind!r}", source=public_url(source.url))

    def nested(self) -> list[MediaSource]:
        """Sources found inside this one by its :meth:`index` (a folder's archives); none for an archive."""
        return []

    # -- archive order --------------------------------------------------------------------------
    def iter_members(self, stats: SourceStats | None = None, *, want: Want | None = None) -> Iterator[Member]:
        """Every usable member with its bytes (``data``), in stored order; media members that ``want``
        refuses are skipped without being read (a tar's data is skipped over, a zip's never fetched).

        A member that is damaged on its own (a zip member failing its CRC) is counted and named in ``stats``
        and the pass goes on; damage that ends the archive (a cut ``.tar.gz``) raises
        :class:`MediaSourceError` after every member read in full before it was yielded."""
        return self.iter_stored(self.source, stats if stats is not None else SourceStats(), want, self.key_column)

    # -- helpers --------------------------------------------------------------------------------
    def _add_side_keys(self, si: SourceIndex) -> bool:
        """Give members whose names say nothing (WebDataset ``{key}.flac``) the keys of their group's
        ``.json`` side member, the way archive-order streaming matches them: every path through a source
        matches the same members.  The side members are read once, in one archive-order pass that reads
        nothing else; the result is cached with the index."""
        si.extra["side_keys"] = True
        keyless = {m.group_key for m in si.members if not m.keys}
        if not keyless or not self.random_access or not self.side_members:
            return True
        logger.info("avsets: %s: %d member(s) have no clip name; reading their .json side members",
                    self.shown, len(keyless))
        found: dict[str, str] = {}
        try:
            for m in self.iter_members(want=lambda m: False):  # side members only
                if m.ext == "json" and m.group_key in keyless and m.group_key not in found:
                    stems = side_keys(m.data)
                    if stems:
                        found[m.group_key] = stems[0]
        except MediaSourceError as exc:
            logger.warning("%s; side members past the damage are not read", exc)
        if found:
            si.members = [m if m.keys or m.group_key not in found else
                          m._replace(alias=f"{found[m.group_key]}.{m.ext}",
                                     keys=member_keys(m.relpath, f"{found[m.group_key]}.{m.ext}"))
                          for m in si.members]
        return True


@register
class FolderSource(MediaSource):
    """Loose media files under a folder (any depth; local or fsspec).  One walk lists them and finds the
    archives below the folder (``archives``, sorted), which are sources of their own."""

    kind = "folder"
    is_folder = True
    side_members = False
    iter_stored = staticmethod(iter_folder)

    def __init__(self, url: str, *, key_column: str | None = None) -> None:
        super().__init__(url, key_column=key_column)
        self.archives: list[str] = []

    def index(self, *, use_cache: bool = True) -> SourceIndex:
        """The folder's media files (never cached: the walk is what tells whether it changed)."""
        found: list[str] = []
        digest = hashlib.sha256()
        members = []
        mtimes: dict[str, float] = {}  # of files named by the id alone: their probed durations are keyed by it
        for rel, path, size, mtime in walk(self.url, found):
            digest.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogatepass"))
            kind, keys = keys_for_member(rel)
            if kind is not None:
                members.append(Member(rel, path, size, None, tuple(keys)))
                if keys and keys[0][0] == "w":
                    mtimes[rel] = mtime
        self.archives = sorted(found)
        stats = SourceStats(members=len(members))
        return SourceIndex(self.source, RemoteInfo(0, digest.hexdigest()[:16]), members, stats,
                           extra={"keyed": True, "side_keys": True, "mtimes": mtimes})

    def nested(self) -> list[MediaSource]:
        """The archives below the folder, sorted by path, found by the last :meth:`index` walk (local)."""
        return [media_source(path, key_column=self.key_column) for path in self.archives]

    def read(self, member: Member) -> bytes:
        if member.data is not None:
            return bytes(member.data)
        if is_local(member.locator):
            with open(local_path(member.locator), "rb") as f:
                return f.read()
        with fsspec.open(member.locator, "rb") as f:
            return f.read()


@register
class ZipSource(MediaSource):
    """A zip: central directory index, one ranged read per member; damage costs the damaged member."""

    kind = "zip"
    iter_stored = staticmethod(iter_zip)
    open_located = staticmethod(open_zip_member)  # type: ignore[assignment]
    build_index = staticmethod(lambda url, reader, size, *, key_column=None: index_zip(url, reader, size))
    read_located = staticmethod(read_zip_member)


@register
class TarSource(MediaSource):
    """An uncompressed tar or WebDataset shard: header index, one ranged read per member."""

    kind = "tar"
    reads_ahead = True
    iter_stored = staticmethod(iter_tar)
    open_located = staticmethod(open_tar_member)  # type: ignore[assignment]
    build_index = staticmethod(lambda url, reader, size, *, key_column=None: index_tar(url, reader, size))
    read_located = staticmethod(lambda reader, fields, member: read_tar_member(reader, fields))


@register
class TarGzSource(TarSource):
    """A gzip-compressed tar: a tar without random access (archive order only)."""

    kind = "tgz"
    random_access = False


@register
class ParquetSource(MediaSource):
    """A Parquet file with ``{bytes, path}`` media struct columns: one member per row and media column,
    matched by its struct ``path`` and by its key column (``video_id``...)."""

    kind = "parquet"
    side_members = False  # a row's key column names it
    iter_stored = staticmethod(iter_parquet)
    build_index = staticmethod(index_parquet)
    read_located = staticmethod(lambda reader, fields, member: read_parquet_member(reader, fields))


def media_source(source: Source | str, *, key_column: str | None = None) -> MediaSource:
    """The :class:`MediaSource` for a :class:`Source` record or a URL/path (kind from its name: a name that
    announces no archive is a folder)."""
    if isinstance(source, str):
        source = Source(source, source_kind(source) or "folder")
    return source_class(source.kind)(source.url, key_column=key_column)


def media_sources(roots: str | os.PathLike | Sequence[str | os.PathLike] | None, *,
                  key_column: str | None = None) -> list[MediaSource]:
    """Every source the roots name, in order (see :func:`.kinds.expand_sources`)."""
    return [media_source(s, key_column=key_column) for s in expand_sources(roots)]


def archive_order_sources(roots: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Source]:
    """The sources archive-order streaming reads, in order, when the roots hold any archive or Parquet file
    (each is one streaming shard); ``[]`` when they name folders of files only (the random-access index
    serves those).  A folder is a shard of its own only when it holds loose media files, so
    ``media_dir="hub_copy/"`` with twenty ``.tar.gz`` files has exactly twenty shards."""
    sources = media_sources(roots)
    if all(isinstance(s, FolderSource) for s in sources):
        return []
    return [s.source for s in sources if not isinstance(s, FolderSource) or has_loose_media(s.url)]
