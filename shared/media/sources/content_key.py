"""The content key of a media cell: what identifies the bytes a derived-table row was computed from.

Derived tables (``avsets quality``, ``avsets fingerprint``) key each row by clip id plus this key and the
segment cut from the media; a rerun recomputes a row only when its key changed.  One function serves both
tables, so the same media gives the same key in both and a changed file gives a new key in both.

What is hashed, by where the bytes are (and why):

* **bytes in the cell** (``{bytes: b"...", path}``: a streamed member, a Parquet cell, a user's bytes):
  a BLAKE2b digest of the bytes (a streamed zip member: its CRC-32, below).  They are in memory; hashing
  them is the exact answer and costs no I/O.
* **a local file**: its size, its mtime (ns) and a BLAKE2b digest of its first and last 64 KiB.  The stat
  notices any edit in place; the head and tail (an MP4's ``moov`` index sits at one end, a WebM's cues
  and header at the ends) notice a file replaced by another with the same size and a preserved mtime
  (``cp -p``, ``rsync -t``) at the cost of two small reads, never a read of the whole file.
* **an archive member**, read at random (a member locator, :mod:`.locator`) or streamed in archive order
  (bytes, path ``ARCHIVE!/MEMBER``), alike: the quality pass streams archives while the fingerprint pass
  reads them at random, and both must give a member one key.  A zip member: its CRC-32 and size (the
  central directory's, which the locator carries, so keying reads nothing; or computed from the streamed
  bytes: the same number).  A tar or Parquet member has no stored checksum: the BLAKE2b digest of its
  bytes, which :meth:`ContentKeys.identify` hands back so the caller decodes them instead of reading the
  member twice.  The key holds no archive name: the same member served from a local copy or a remote
  mirror keeps its key.
* **a remote file** (an fsspec URL): its size and the change markers of one metadata request (ETag,
  Last-Modified, blob id...: :meth:`.ranged.RangeReader.info`), never its body, so a pass that keys and
  then decodes a remote file reads it once.  A server that sends no marker at all leaves only the size
  (a warning says so once per server).

The key names no path: moving a media folder or serving the same archive from a mirror keeps the keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zlib
from collections.abc import Mapping
from typing import Any

from avsets.core.errors import MediaError
from avsets.core.secrets import redact_text, redact_url

from .access import read_media_bytes
from .kinds import source_kind
from .locator import is_member, parse_locator
from .ranged import RangeReader, is_local, local_path

logger = logging.getLogger("avsets")

#: bytes hashed at each end of a local file
EDGE = 64 * 1024
_DIGEST = 16

#: between archive and member in the path of a streamed member's cell (``sources.stream``) and in a locator
_SEP = "!/"

_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _blake(*chunks: bytes) -> str:
    h = hashlib.blake2b(digest_size=_DIGEST)
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _local_key(path: str) -> str:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        head = f.read(EDGE)
        tail = b""
        if st.st_size > 2 * EDGE:
            f.seek(st.st_size - EDGE)
            tail = f.read(EDGE)
        elif st.st_size > EDGE:
            tail = f.read()
    return f"f:{st.st_size}:{st.st_mtime_ns}:{_blake(head, tail)}"


class ContentKeys:
    """Content keys of media cells for one pass (see the module doc); thread-safe, holds no state between
    cells (a class so a pass can keep one and callers can pass it around)."""

    def __call__(self, cell: Mapping[str, Any] | None) -> str | None:
        """The content key of a ``{bytes, path}`` cell (None for no cell, or one with neither).

        Raises :class:`~avsets.core.errors.MediaError` when the media cannot be reached (a missing local file,
        a remote server that refuses), so callers count it like any unreadable clip.
        """
        return self.identify(cell)[0]

    def identify(self, cell: Mapping[str, Any] | None) -> tuple[str | None, bytes | None]:
        """``(content key, the bytes read to make it)``: a tar or Parquet member is read to be keyed, and its
        caller decodes those bytes instead of reading the member again (None when nothing was read)."""
        if not cell:
            return None, None
        data, path = cell.get("bytes"), cell.get("path")
        if data is None and not path:
            return None, None
        try:
            if data is not None:
                return _bytes_key(bytes(data), path), None
            if is_member(path):
                return _member_key(path)
            if is_local(path):
                return _local_key(local_path(path)), None
            return _remote_key(path), None
        except MediaError:
            raise
        except (OSError, ValueError) as exc:
            raise MediaError(f"cannot identify the media: {type(exc).__name__}: {redact_text(str(exc))}",
                             path=redact_url(path)) from None
        except Exception as exc:  # noqa: BLE001 - any fsspec backend's client error: one named error
            raise MediaError(f"cannot identify the media: {type(exc).__name__}", path=redact_url(path)) from None


def _bytes_key(data: bytes, path: str | None) -> str:
    """Bytes: a streamed zip member (``path`` is ``ARCHIVE.zip!/MEMBER``) gets the key the same member gets
    read at random, its CRC-32 (computed here, stored in the central directory there); any other bytes,
    their BLAKE2b digest."""
    split = _archive_member(path)
    if split is not None and split[1] == "zip":
        return f"c:{zlib.crc32(data)}:{len(data)}"
    return "b2:" + _blake(data)


def _member_key(path: str) -> tuple[str, bytes | None]:
    loc = parse_locator(path)
    f = loc.fields
    if loc.kind == "zip" and "crc" in f and "s" in f:
        return f"c:{int(f['crc'])}:{int(f['s'])}", None
    data = read_media_bytes(path)  # no checksum stored: the bytes are the identity (and the caller's to decode)
    return "b2:" + _blake(data), data


def _remote_key(url: str) -> str:
    info = RangeReader(url).info()
    if not info.identity:
        server = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
        with _WARNED_LOCK:
            new = server not in _WARNED
            _WARNED.add(server)
        if new:
            logger.warning("avsets: %s sends no ETag or Last-Modified: a changed file of the same size on it "
                           "is not noticed by derived tables (quality, fingerprints)", server)
    return f"r:{info.size}:{_blake(info.identity.encode())}"


def _archive_member(path: str | None) -> tuple[str, str, str] | None:
    """``(archive, kind, member)`` of a streamed member's path ``ARCHIVE!/MEMBER`` (what archive-order
    reading names a cell), None for any other path."""
    if not path:
        return None
    at = path.find(_SEP)
    while at > 0:
        kind = source_kind(path[:at])
        if kind is not None:
            return path[:at], kind, path[at + len(_SEP):]
        at = path.find(_SEP, at + 1)
    return None


def content_key(cell: Mapping[str, Any] | None) -> str | None:
    """The content key of one ``{bytes, path}`` cell (a fresh :class:`ContentKeys`; see the module doc)."""
    return ContentKeys()(cell)
