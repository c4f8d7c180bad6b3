"""Reading a media source front to back, one member at a time: the archive-order half of :mod:`avsets.sources`.

``.tar.gz`` cannot be read at random, so it is decompressed as a stream (``tarfile`` mode ``r|gz``) over a
file opened for sequential reads (read ahead by a thread when remote); plain tars and WebDataset shards go
the same way (one pass is the cheapest way through them when every member is wanted), Parquet mirrors by
row group with only the key and media columns, folders by a walk.  Nothing here holds more than one member (or one Parquet batch) in memory.

Member names come from strangers: a name with a ``..`` part or an absolute path is never used (counted as
``unsafe``), non-media members are ``junk`` and skipped, and a damaged or cut-off archive ends in our
:class:`~avsets.errors.MediaSourceError` naming the archive and how far the read got.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MediaError, MediaSourceError, MetadataError
from ..secrets import redact_url
from ..segments import MEDIA_EXTENSIONS
from .folder import walk
from .kinds import Source
from .ranged import is_local, local_path, open_seekable
from .records import Member, SourceStats, group_of, safe_member_name
from .zipsrc import read_local_member

logger = logging.getLogger("avsets")

#: Parquet columns that name a row's clip, tried in this order (``media_key_column`` in the config overrides).
KEY_COLUMNS = ("video_id", "youtube_id", "ytid", "id")
SIDE_EXTENSIONS = frozenset({"json"})  # WebDataset metadata members: read, never served as media


def public_url(url: str) -> str:
    """``url`` as it may reach a ledger, log or error: userinfo and secret query values masked
    (:func:`avsets.secrets.redact_url`, the one rule every writer uses)."""
    return redact_url(url) or ""


#: The archive-order pass' stats are the one :class:`~.records.SourceStats` type.
ReadStats = SourceStats
#: ``want(member)``: whether to read a member's bytes (the member has its name, size and group, no data).
Want = Callable[[Member], bool]
#: A ``.json`` side member larger than this is not read (WebDataset metadata is a few hundred bytes).
MAX_SIDE_BYTES = 1 << 20
#: A media member declared larger than this is never read into memory (an Arrow binary cell holds < 2 GiB,
#: so such a member could not be served anyway): counted as damaged, named, skipped.
MAX_MEMBER_BYTES = (1 << 31) - 1
#: Seconds between two progress lines while a remote archive is read in order (a constant, so tests patch it).
PROGRESS_SECONDS = 10.0


class ArchiveProgress:
    """What a remote archive-order pass is doing, said through the ``avsets`` logger at INFO: one line when
    the archive opens (which archive, redacted, and its size when known), then at most one line every
    :data:`PROGRESS_SECONDS` while its bytes arrive (MB read, media members matched so far).

    Why: a ``.tar.gz`` on a slow mirror yields its first row only after the members before it have arrived
    (42 s of silence, measured on a slow mirror); a local archive reads fast and says nothing."""

    def __init__(self, source: Source, stats: SourceStats) -> None:
        self.shown = public_url(source.url)
        self.stats = stats
        self.last = time.monotonic()

    def opened(self, size: int | None) -> None:
        """The first line, before any member is read (so before the first row)."""
        self.last = time.monotonic()
        logger.info("avsets: reading %s in archive order (%s)", self.shown, _amount(size) if size else "size unknown")

    def tick(self, nbytes: int) -> None:
        """Called as bytes arrive (cheap: one clock read); logs when the interval has passed."""
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            # the URL last, with nothing glued to it: a redaction pass over the finished line (the CLI's log
            # filter) must find the same URL, not take a ":" after a masked signature for part of it
            logger.info("avsets: %s read, %d media member(s) matched so far, from %s", _amount(nbytes),
                        self.stats.media, self.shown)


def _amount(n: int) -> str:
    """Bytes as a person reads them in a log line: MB, or KB below one MB (a start is not "0.0 MB")."""
    return f"{n / 1e6:,.1f} MB" if n >= 1_000_000 else f"{n / 1e3:,.0f} KB"


def _remote_size(f) -> int | None:
    """A remote file's size when its object knows it: fsspec files carry ``size``; a streamed HTTP GET
    (``block_size=0``) keeps only the response, whose ``Content-Length`` is the size."""
    size = getattr(f, "size", None)
    if not size:
        size = getattr(getattr(f, "r", None), "content_length", None)
    return int(size) if isinstance(size, int) and size > 0 else None


def _blocks(raw, size: int = 1 << 20) -> Iterator[bytes]:
    """``raw`` in blocks of ``size``; a client error that is not an ``OSError`` (aiohttp's
    ``ClientPayloadError`` for a cut-off response) becomes one, as a file's read error would be."""
    while True:
        try:
            chunk = raw.read(size)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - any fsspec backend's client error
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        if not chunk:
            return
        yield chunk


class _ReadAhead(io.RawIOBase):
    """A read-only stream over a remote ``raw`` file whose 1-MiB blocks a background thread reads ahead
    (:func:`prefetch`), so network waits overlap with inflating and decoding.

    Only for remote archives: on a local file the thread bought no time and cost CPU (0.1-0.2 ms per 300-KB
    member, measured), and gunzipping in the thread too cost more than it saved (0.24-0.33 vs 0.11 ms per
    member), so inflating stays with ``tarfile`` in the caller's thread.  ``count`` is the bytes handed over
    so far (for "how far it got").  A read error is raised at the read that reaches it; ``close()`` stops the
    thread.
    """

    def __init__(self, raw, progress: ArchiveProgress | None = None) -> None:
        super().__init__()
        self.count = 0
        self._progress = progress
        self._blocks = prefetch(_blocks(raw))
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._buf = memoryview(block)
            self.count += len(block)
            if self._progress is not None:
                self._progress.tick(self.count)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._blocks.close()  # stops the reader thread (see prefetch) before the caller closes ``raw``
        super().close()


class _CountingReader(io.RawIOBase):
    """A read-only stream that counts the compressed bytes handed to ``tarfile`` (for "how far it got")."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        self.count += n or 0
        return n or 0


def _open_sequential(url: str):
    """A file for one front-to-back read: a single streamed GET over HTTP, big read-ahead blocks elsewhere."""
    if is_local(url):
        return open(local_path(url), "rb")  # noqa: SIM115
    if url.startswith(("http://", "https://")):
        return fsspec.open(url, "rb", block_size=0).open()
    return fsspec.open(url, "rb", block_size=8 << 20, cache_type="readahead").open()


def _group_of(name: str) -> tuple[str, str]:
    """``(group, ext)``: WebDataset's ``__key__`` (the path up to the first dot of the file name) and the
    extension after the last dot."""
    base = name.rpartition("/")[2]
    ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return group_of(name), ext


def _safe_name(raw: str, stats: SourceStats) -> str | None:
    name = safe_member_name(raw)
    if name is None:
        stats.note_unsafe(raw)
    return name


def _wanted(name: str, stats: SourceStats) -> tuple[str, str] | None:
    group, ext = _group_of(name)
    if ext in MEDIA_EXTENSIONS or ext in SIDE_EXTENSIONS:
        return group, ext
    stats.junk += 1
    return None


def _asked(want: Want | None, member: Member, ext: str, stats: SourceStats | None = None) -> bool:
    """Side members are always read (they may name the clip of their group); media only when wanted and
    no larger than ``MAX_MEMBER_BYTES`` (what the archive declares bounds what a member may occupy)."""
    if ext in SIDE_EXTENSIONS:
        return 0 <= member.size <= MAX_SIDE_BYTES
    if member.size > MAX_MEMBER_BYTES:
        if stats is not None:
            stats.note_damaged(member.relpath)
        logger.warning("avsets: member %s declares %d bytes, more than a row can hold; skipped", member.relpath,
                       member.size)
        return False
    return want is None or want(member)


def iter_members(source: Source, stats: SourceStats, *, key_column: str | None = None,
                 want: Want | None = None) -> Iterator[Member]:
    """Every usable member of ``source`` in stored order, its bytes in ``data``; media members that
    ``want`` refuses are skipped without being read (a tar's data is skipped over, a zip's never fetched).

    A member that is damaged on its own (a zip member failing its CRC) is counted and named in ``stats``
    and the pass goes on; damage that ends the archive (a cut ``.tar.gz``) raises
    :class:`MediaSourceError` after every member read in full before it was yielded."""
    if source.kind in ("tgz", "tar"):
        yield from _iter_tar(source, stats, want)
    elif source.kind == "zip":
        yield from _iter_zip(source, stats, want)
    elif source.kind == "parquet":
        yield from _iter_parquet(source, stats, key_column, want)
    elif source.kind == "folder":
        yield from _iter_folder(source, stats, want)
    else:  # pragma: no cover - kinds.py lists every kind
        raise MediaSourceError(f"unknown media source kind {source.kind!r}", source=public_url(source.url))


def _damaged(source: Source, stats: SourceStats, exc: BaseException) -> MediaSourceError:
    what = "gzip-compressed tar" if source.kind == "tgz" else source.kind
    msg = (f"archive is damaged or cut short after {stats.members} members ({stats.bytes_read:,} bytes read; "
           f"{type(exc).__name__}: {str(exc)[:200]}); members past this point are unreadable "
           f"(is it a complete {what}? download it again)")
    stats.error = msg
    return MediaSourceError(msg, source=public_url(source.url))


#: ``tarfile``'s stream buffer.  Not bigger: its ``_Stream`` slices the buffer's tail off on every read (a
#: 512-byte header included), so each read copies the whole buffer: at 1 MiB that tripled the CPU time of a
#: pass (0.43 vs 0.11 ms per 300-KB member, measured); 64 KiB is as fast as any size (remote files are
#: read ahead in 1-MiB blocks).
_TAR_BUFSIZE = 64 << 10


def _iter_tar(source: Source, stats: SourceStats, want: Want | None) -> Iterator[Member]:
    try:
        raw = _open_sequential(source.url)
    except (OSError, ValueError) as exc:
        raise MediaSourceError(f"cannot open archive: {type(exc).__name__}: {exc}", source=public_url(source.url)) from None
    if is_local(source.url):
        counter: _CountingReader | _ReadAhead = _CountingReader(raw)
    else:
        progress = ArchiveProgress(source, stats)
        progress.opened(_remote_size(raw))
        counter = _ReadAhead(raw, progress)
    reader = io.BufferedReader(counter, buffer_size=_TAR_BUFSIZE)
    try:
        try:
            tf = tarfile.open(fileobj=reader, mode="r|gz" if source.kind == "tgz" else "r|", bufsize=_TAR_BUFSIZE)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            stats.bytes_read = counter.count
            raise _damaged(source, stats, exc) from None
        with tf:
            while True:
                try:
                    info = tf.next()
                    if info is None:
                        _check_gzip_end(tf)
                        break
                    tf.members = []  # stream mode keeps every header otherwise: memory grows with the archive
                    stats.members += 1
                    stats.bytes_read = counter.count
                    if not info.isfile():
                        continue
                    name = _safe_name(info.name, stats)
                    if name is None:
                        continue
                    got = _wanted(name, stats)
                    if got is None:
                        continue
                    bare = Member(name, "", info.size, group=got[0])
                    if not _asked(want, bare, got[1], stats):
                        continue  # tarfile skips its data at the next header: never held
                    f = tf.extractfile(info)
                    data = f.read() if f is not None else b""
                    if len(data) != info.size:
                        raise EOFError(f"member {name} ends after {len(data)} of {info.size} bytes")
                except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                    stats.bytes_read = counter.count
                    raise _damaged(source, stats, exc) from None
                stats.media += got[1] in MEDIA_EXTENSIONS
                stats.bytes_read = counter.count
                yield bare._replace(data=data)
    finally:
        reader.close()
        raw.close()


def _check_gzip_end(tf: tarfile.TarFile) -> None:
    """``tarfile`` ends a stream quietly when it is cut inside a header: for a gzip-compressed tar, the
    deflate stream must have reached its end, else the archive was cut (an ``EOFError``, counted as damage)."""
    stream = tf.fileobj
    cmp = getattr(stream, "cmp", None)
    if cmp is None or not hasattr(cmp, "eof"):
        return
    while stream.read(_TAR_BUFSIZE):  # the end-of-archive blocks and padding
        pass
    if not cmp.eof:
        raise EOFError("the gzip stream ends before its end: the archive is cut short")


def _iter_zip(source: Source, stats: SourceStats, want: Want | None) -> Iterator[Member]:
    try:
        f = open_seekable(source.url) if "://" in source.url else open(source.url, "rb")  # noqa: SIM115
    except (OSError, ValueError) as exc:
        raise MediaSourceError(f"cannot open archive: {type(exc).__name__}: {exc}", source=public_url(source.url)) from None
    progress = None if "://" not in source.url or is_local(source.url) else ArchiveProgress(source, stats)
    if progress is not None:
        progress.opened(_remote_size(f))
    try:
        try:
            zf = zipfile.ZipFile(f)
            infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _damaged(source, stats, exc) from None
        for info in infos:
            stats.members += 1
            if info.is_dir():
                continue
            name = _safe_name(info.filename, stats)
            if name is None:
                continue
            got = _wanted(name, stats)
            if got is None:
                continue
            bare = Member(name, "", info.file_size, group=got[0])
            if not _asked(want, bare, got[1], stats):
                continue
            try:
                if info.flag_bits & 1 or info.compress_type not in (0, 8, 12):
                    data = zf.read(info)
                else:  # bounded by the declared size: a zip bomb stops there, named (zipsrc.inflate)
                    data = read_local_member(zf.fp, info.header_offset, info.compress_size, info.compress_type,
                                             info.file_size, info.CRC, name)
            except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, NotImplementedError, MediaError) as exc:
                # this member's bytes are bad (CRC, inflate, method, past its declared size): it alone is lost,
                # counted and named; the central directory still says where every later member is
                stats.note_damaged(name)
                logger.warning("avsets: %s!/%s is damaged (%s: %s); skipped, the archive's other members are "
                               "read", public_url(source.url), name, type(exc).__name__, str(exc)[:200])
                continue
            except OSError as exc:  # the file itself failed (network, I/O): the pass cannot go on
                raise _damaged(source, stats, exc) from None
            stats.bytes_read += info.compress_size
            stats.media += got[1] in MEDIA_EXTENSIONS
            if progress is not None:
                progress.tick(stats.bytes_read)
            yield bare._replace(data=data)
    finally:
        f.close()


def media_struct_columns(schema) -> list[str]:
    """Columns of a Parquet/Arrow schema that hold ``{bytes, path}`` media structs."""
    out = []
    for fld in schema:
        t = fld.type
        if pa.types.is_struct(t):
            names = {t.field(i).name for i in range(t.num_fields)}
            if "bytes" in names:
                out.append(fld.name)
    return out


def _iter_parquet(source: Source, stats: SourceStats, key_column: str | None, want: Want | None
                  ) -> Iterator[Member]:
    url = public_url(source.url)
    try:
        # a local file through Arrow's own reader: a Python file object made Arrow call back into Python
        # (and take the GIL) for every read, 1.9x the CPU of a pass without decoding (measured)
        f = (fsspec.open(source.url, "rb", block_size=8 << 20).open() if "://" in source.url
             else pa.OSFile(source.url, "rb"))
    except (OSError, ValueError) as exc:
        raise MediaSourceError(f"cannot open Parquet file: {type(exc).__name__}: {exc}", source=url) from None
    progress = None if "://" not in source.url or is_local(source.url) else ArchiveProgress(source, stats)
    if progress is not None:
        progress.opened(_remote_size(f))
    try:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(source, stats, exc) from None
        schema = pf.schema_arrow
        media_cols = media_struct_columns(schema)
        if not media_cols:
            raise MediaSourceError("no media column (a struct with 'bytes' and 'path') in this Parquet file; "
                                   f"columns: {', '.join(schema.names)}", source=url)
        names = schema.names
        if key_column is not None and key_column not in names:
            raise MetadataError(f"media_key_column {key_column!r} is not in this Parquet file; columns: "
                                f"{', '.join(names)}", file=url)
        key = key_column or next((c for c in KEY_COLUMNS if c in names), None)
        columns = ([key] if key else []) + media_cols
        row_no = 0
        try:
            # locally, row groups no row wants are skipped (their key columns are read by pread, a few KB);
            # remotely a file is read in 8-MiB blocks, so a first pass over the key columns would move the
            # file twice: every row group is read once instead
            groups = None if want is None or "://" in source.url else _wanted_row_groups(pf, key, media_cols, want)
            for batch in pf.iter_batches(columns=columns, batch_size=64, row_groups=groups):
                if progress is not None:
                    progress.tick(stats.bytes_read)
                keys = batch.column(key).to_pylist() if key else [None] * batch.num_rows
                cols = []
                for col in media_cols:
                    arr = batch.column(col)
                    has_path = "path" in {arr.type.field(i).name for i in range(arr.type.num_fields)}
                    data = arr.field("bytes")
                    # zero-copy views of the batch's buffer (a Python bytes per row would copy every member)
                    byts = _buffers_of(data)
                    cols.append((col, byts, arr.field("path").to_pylist() if has_path else [None] * len(byts)))
                for i, k in enumerate(keys):
                    row_no += 1
                    for col, byts, paths in cols:  # one Parquet row is one group: its audio and its video
                        member = _parquet_member(stats, k, byts[i], paths[i], col, row_no)
                        if member is not None and (want is None or want(member._replace(data=None))):
                            yield member
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(source, stats, exc) from None
    finally:
        f.close()


def _wanted_row_groups(pf, key: str | None, media_cols: list[str], want: Want) -> list[int]:
    """Row groups holding at least one member ``want`` accepts, judged from the key column and the struct
    ``path`` leaves alone: the media bytes of the other row groups are never read."""
    paths_of = [c for c in media_cols if "path" in {f.name for f in pf.schema_arrow.field(c).type}]
    cols = ([key] if key else []) + [f"{c}.path" for c in paths_of]
    out = []
    for rg in range(pf.num_row_groups):
        if not cols:  # nothing names the rows without their bytes: read them all
            return list(range(pf.num_row_groups))
        t = pf.read_row_group(rg, columns=cols)
        keys = t.column(key).to_pylist() if key else [None] * t.num_rows
        named = [[s.get("path") if s else None for s in t.column(c).to_pylist()] for c in paths_of]
        for i, k in enumerate(keys):
            names = [p[i] for p in named] or [None]
            if any(want(_bare_parquet_member(k, p, c)) for p, c in zip(names, paths_of or media_cols, strict=False)):
                out.append(rg)
                break
    return out


def _bare_parquet_member(key: object, path: str | None, column: str) -> Member:
    """The member a cell will be, named as :func:`_parquet_member` names it, before its bytes are read."""
    ext = "mp4" if "video" in column.lower() else "flac"
    name = safe_member_name(path) if path else None
    if name is None:
        name = safe_member_name(f"{key}.{ext}") if key is not None else None
    name = name or f"row.{ext}"
    if _group_of(name)[1] not in MEDIA_EXTENSIONS:
        name = f"{name}.{ext}"
    return Member(name, "", -1, f"{key}.{_group_of(name)[1]}" if key is not None else None)


def _buffers_of(data) -> list:
    """Each value of a binary Arrow array as a zero-copy ``pyarrow.Buffer`` (None when null), sliced from the
    array's one data buffer: a scalar per value cost as much as reading the row group."""
    if pa.types.is_large_binary(data.type):
        width = np.int64
    elif pa.types.is_binary(data.type):
        width = np.int32
    else:  # binary views and the like: the slow, general way
        return [None if not v.is_valid else v.as_buffer() for v in data]
    bufs = data.buffers()
    offsets = np.frombuffer(bufs[1], dtype=width, count=len(data) + 1, offset=data.offset * np.dtype(width).itemsize)
    values = bufs[2]
    valid = data.is_valid().to_numpy(zero_copy_only=False) if data.null_count else None
    out = []
    for i in range(len(data)):
        if valid is not None and not valid[i]:
            out.append(None)
            continue
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        out.append(values.slice(lo, hi - lo) if values is not None else pa.py_buffer(b""))
    return out


def _parquet_member(stats: SourceStats, key: object, data, path: str | None, column: str,
                    row_no: int) -> Member | None:
    """One Parquet cell as a member named by its struct ``path``; a path that is unsafe as a file name
    (``/home/...``, ``C:\\...``) or absent gives way to the key column's value: the key still names the clip
    (the same rule as :func:`avsets.sources.parquetsrc.index_parquet`)."""
    stats.members += 1
    if data is None:
        stats.junk += 1
        return None
    stats.bytes_read += len(data)
    name = safe_member_name(path) if path else None
    if path and name is None and key is None:
        stats.note_unsafe(path)
        return None
    if name is None:
        name = f"{key if key is not None else 'row'}.{_guess_ext(data, column)}"
        name = safe_member_name(name) or f"row{row_no}.{_guess_ext(data, column)}"
    ext = _group_of(name)[1]
    if ext not in MEDIA_EXTENSIONS:
        ext = _guess_ext(data, column)
        name = f"{name}.{ext}"
    stats.media += 1
    alias = f"{key}.{ext}" if key is not None else None
    return Member(name, "", len(data), alias, (), data, f"\0row{row_no}")


def _guess_ext(data, column: str) -> str:
    """The container a byte string holds, from its magic number (Parquet rows may carry no path)."""
    head = bytes(memoryview(data)[:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"RIFF"):
        return "wav"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "mp3"
    if head[4:8] == b"ftyp":
        return "mp4" if column != "audio" else "m4a"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return "flac" if column == "audio" else "mp4"


def _iter_folder(source: Source, stats: SourceStats, want: Want | None) -> Iterator[Member]:
    try:
        files = list(walk(source.url))
    except FileNotFoundError:
        return
    for relpath, path, size, _mtime in files:
        stats.members += 1
        bare = Member(relpath, path, size)
        if want is not None and not want(bare):
            continue
        try:
            if "://" in path:
                with fsspec.open(path, "rb") as f:
                    data = f.read()
            else:
                with open(path, "rb") as f:
                    data = f.read()
        except OSError as exc:
            logger.warning("cannot read %s: %s", public_url(path), exc)
            continue
        stats.bytes_read += len(data)
        stats.media += 1
        yield bare._replace(data=data)


def has_loose_media(url: str) -> bool:
    """Whether a folder holds media files of its own (not only archives): one early-exit walk."""
    if "://" in url:
        try:
            fs, path = fsspec.core.url_to_fs(url)
            return any(p.rsplit(".", 1)[-1].lower() in MEDIA_EXTENSIONS for p in fs.find(path))
        except (OSError, ValueError):
            return False
    for _folder, dirs, files in os.walk(url):
        dirs.sort()
        if any(not f.startswith(".") and f.rsplit(".", 1)[-1].lower() in MEDIA_EXTENSIONS for f in files):
            return True
    return False


def read_json(data: bytes) -> dict:
    """A WebDataset ``.json`` member as a dict (``{}`` when it is not a JSON object)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def prefetch(items: Iterator, depth: int = 8) -> Iterator:
    """``items`` read ahead by a background thread (at most ``depth`` waiting), so decompressing and parsing the
    archive overlaps with decoding the members already yielded (zlib and libsndfile release the GIL).

    An exception in the reader is raised here, at the item where it happened; closing this generator stops
    the reader at its next item.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def reader() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            q.put((done, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()

    thread = threading.Thread(target=reader, name="avsets-archive-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
