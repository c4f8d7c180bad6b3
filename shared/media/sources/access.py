"""Random access to media wherever it lives: plain paths, fsspec URLs and archive members.

:func:`index_source` lists the media members of one zip, tar or Parquet source (cached on disk, keyed by
the source's URL, size and ETag/mtime); :func:`read_media_bytes` / :func:`open_media` read any media path
the resolver produces.  Everything that reads media bytes (decoders, ``verify``, export) goes through here,
so every source kind works everywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

import fsspec
import pyarrow as pa

from avsets.core.errors import MediaError, MediaSourceError, MetadataError, StreamingOnlySourceError
from avsets.core.secrets import redact_text, redact_url

from .kinds import Source
from .locator import is_member, parse_locator
from .ranged import RangeReader, RemoteInfo, is_local, local_path
from .records import Member, SourceStats, member_keys
from .registry import source_class

logger = logging.getLogger("avsets")

INDEX_VERSION = "3"  # 3: Parquet locators name the data page of their row

_READERS: dict[str, RangeReader] = {}
_READERS_LOCK = threading.Lock()


def _reader(url: str) -> RangeReader:
    with _READERS_LOCK:
        r = _READERS.get(url)
        if r is None:
            r = _READERS[url] = RangeReader(url)
        return r


# ------------------------------------------------------------------------------------------------ reading


def read_media_bytes(path: str) -> bytes:
    """The bytes of a media path: a local file, an fsspec URL, or an archive member locator.

    A member that cannot be read (damaged archive, changed file, network failure) raises
    :class:`~avsets.core.errors.MediaError` naming it, so decoders count it like any corrupt file.
    """
    if is_member(path):
        try:
            loc = parse_locator(path)
        except ValueError as exc:
            raise MediaError(str(exc), path=path[:300]) from None
        reader = _reader(loc.archive)
        try:
            return source_class(loc.kind).read_located(reader, loc.fields, loc.member)
        except MediaError as exc:  # the same class (a zip bomb stays a MemberTooLargeError), named by member
            raise type(exc)(exc.reason, path=f"{redact_url(loc.archive)} member {loc.member}") from None
        except Exception as exc:  # noqa: BLE001 - network/client errors of any fsspec backend: one named error
            raise MediaError(f"cannot read member: {type(exc).__name__}: {redact_text(str(exc))}",
                             path=f"{redact_url(loc.archive)} member {loc.member}") from None
    if is_local(path):
        with open(local_path(path), "rb") as f:
            return f.read()
    with fsspec.open(path, "rb") as f:
        return f.read()


def open_media(path: str) -> BinaryIO:
    """A binary file object for any media path (members come fully read: decoders seek freely)."""
    if is_member(path):
        return io.BytesIO(read_media_bytes(path))
    if is_local(path):
        return open(local_path(path), "rb")  # noqa: SIM115 - the caller closes it
    return fsspec.open(path, "rb").open()


def open_media_part(path: str) -> BinaryIO:
    """A binary file for reading *part* of any media path (a duration probe reads a header): a member of a
    kind that stores members as they are (tar, stored zip) is read by ranges on demand, so a remote probe
    moves a block or two instead of the member; other members come whole, files as :func:`open_media`."""
    if not is_member(path):
        return open_media(path)
    try:
        loc = parse_locator(path)
    except ValueError as exc:
        raise MediaError(str(exc), path=path[:300]) from None
    try:
        return source_class(loc.kind).open_located(_reader(loc.archive), loc.fields, loc.member)
    except MediaError as exc:
        raise type(exc)(exc.reason, path=f"{redact_url(loc.archive)} member {loc.member}") from None
    except Exception as exc:  # noqa: BLE001 - network/client errors of any fsspec backend: one named error
        raise MediaError(f"cannot read member: {type(exc).__name__}: {redact_text(str(exc))}",
                         path=f"{redact_url(loc.archive)} member {loc.member}") from None


# ----------------------------------------------------------------------------------------------- indexing


@dataclass
class SourceIndex:
    """The media members of one archive or Parquet source and what indexing it cost or skipped."""

    source: Source
    info: RemoteInfo
    members: list[Member]
    stats: SourceStats
    extra: dict = field(default_factory=dict)  # cached side facts (probed durations...)
    cache_path: str | None = None

    def ensure_keys(self) -> bool:
        """Give every member its index keys (once: they are cached with the index); True if computed now."""
        if self.extra.get("keyed"):
            return False
        self.members = [m._replace(keys=member_keys(m.relpath, m.alias)) for m in self.members]
        self.extra["keyed"] = True
        return True

    def save_extra(self) -> None:
        """Write ``extra`` back into the cache entry (probing results are paid once too)."""
        if self.cache_path:
            _write_cache(self.cache_path, self)


def cache_dir() -> str:
    """Where source indexes live: ``$AVSETS_SOURCE_CACHE``, else beside the ``datasets`` cache."""
    env = os.environ.get("AVSETS_SOURCE_CACHE")
    if env:
        return os.path.expanduser(env)
    import datasets

    return os.path.join(str(datasets.config.HF_DATASETS_CACHE), "avsets-source-index")


def index_source(source: Source, *, key_column: str | None = None, use_cache: bool = True) -> SourceIndex:
    """Members of a zip/tar/Parquet source: from the cache when the source is unchanged, else read.

    ``.tar.gz`` cannot be indexed without reading it whole: :class:`StreamingOnlySourceError`.  The
    low-level indexer is the kind's (:mod:`.registry`); callers go through :meth:`MediaSource.index`.
    """
    cls = source_class(source.kind)
    if not cls.random_access:
        raise StreamingOnlySourceError(
            "a .tar.gz cannot be read at random (map-style). Load it with streaming=True, or extract the "
            "clips your rows need once with `avsets unpack`", source=source.url)
    reader = _reader(source.url)
    try:
        info = reader.info()
    except FileNotFoundError:
        raise MediaSourceError("does not exist", source=source.url) from None
    except Exception as exc:  # noqa: BLE001 - any fsspec backend's client error: one named error
        raise MediaSourceError(f"cannot be reached: {type(exc).__name__}: {redact_text(str(exc))}",
                               source=source.url) from None
    key = hashlib.sha256("\0".join([INDEX_VERSION, source.kind, source.url, str(info.size), info.identity,
                                    key_column or ""]).encode()).hexdigest()[:32]
    path = os.path.join(cache_dir(), f"{key}.arrow")
    if use_cache and os.path.exists(path):
        try:
            return _read_cache(path, source, info)
        except (OSError, pa.ArrowInvalid, ValueError, KeyError) as exc:
            logger.warning("avsets: damaged source index %s (%s); indexing %s again", path, exc,
                           redact_url(source.url))
    try:
        members, stats = cls.build_index(source.url, reader, info.size, key_column=key_column)
    except (MediaSourceError, MetadataError):
        raise
    except Exception as exc:  # noqa: BLE001 - network/client errors of any fsspec backend: one named error
        raise MediaSourceError(f"cannot be read: {type(exc).__name__}: {exc}", source=source.url) from None
    stats.members = len(members)
    si = SourceIndex(source, info, members, stats, cache_path=path if use_cache else None)
    if use_cache:
        _write_cache(path, si)
    return si


def _write_cache(path: str, si: SourceIndex) -> None:
    cols = list(zip(*si.members, strict=True)) if si.members else [[], [], [], [], []]
    table = pa.table({"relpath": pa.array(cols[0], pa.string()), "locator": pa.array(cols[1], pa.string()),
                      "size": pa.array(cols[2], pa.int64()), "alias": pa.array(cols[3], pa.string()),
                      "keys": pa.array(["\n".join(k) for k in cols[4]], pa.string())})
    meta = {"source": si.source.url, "kind": si.source.kind, "size": si.info.size, "identity": si.info.identity,
            "stats": si.stats.as_dict(), "extra": si.extra}
    table = table.replace_schema_metadata({"avsets": json.dumps(meta)})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache costs a re-index next time, nothing else
        logger.warning("avsets: cannot cache the index of %s in %s (%s)", redact_url(si.source.url), path, exc)
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _read_cache(path: str, source: Source, info: RemoteInfo) -> SourceIndex:
    with pa.memory_map(path) as mm:
        table = pa.ipc.open_file(mm).read_all()
    meta = json.loads(table.schema.metadata[b"avsets"])
    members = [Member(r, loc, size, alias, tuple(keys.split("\n")) if keys else ())
               for r, loc, size, alias, keys in zip(*(table.column(c).to_pylist() for c in
                                                     ("relpath", "locator", "size", "alias", "keys")), strict=True)]
    stats = SourceStats(**meta["stats"])
    stats.requests = 0
    return SourceIndex(source, info, members, stats, extra=meta.get("extra") or {}, cache_path=path)
