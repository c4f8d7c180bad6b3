"""The content key of a media cell: what identifies the bytes a derived-table row was computed from.

Derived tables (``avsets quality``, ``avsets fingerprint``) key each row by clip id plus this key and the
segment cut from the media; a rerun recomputes a row only when its key changed.  One function serves both
tables, so the same media gives the same key in both and a changed file gives a new key in both.

What is hashed, by where the bytes are (and why):

* **bytes in the cell** (``{bytes: b"...", path}``): a BLAKE2b digest of the bytes.  They are in memory,
  hashing them is the only exact answer and costs no I/O.
* **a local file**: its size, its mtime (ns) and a BLAKE2b digest of its first and last 64 KiB.  The stat
  notices any edit in place; the head and tail (an MP4's ``moov`` index sits at one end, a WebM's cues
  and header at the ends) notice a file replaced by another with the same size and a preserved mtime
  (``cp -p``, ``rsync -t``) at the cost of two small reads, never a read of the whole file.
* **an archive member** (a member locator, :mod:`.locator`): a zip member's CRC-32 and size from the
  central directory, which the locator carries (a changed member changes its CRC; the locator comes from
  an index rebuilt whenever the archive changed).  A tar or Parquet member has no checksum: the
  archive's size and change marker (mtime locally; ETag / Last-Modified / blob id remotely, one metadata
  request per archive and :class:`ContentKeys` object) plus the member's place in it.
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
from collections.abc import Mapping
from typing import Any

from ..errors import MediaError
from ..secrets import redact_text, redact_url
from .locator import is_member, parse_locator
from .ranged import RangeReader, is_local, local_path

logger = logging.getLogger("avsets")

#: bytes hashed at each end of a local file
EDGE = 64 * 1024
_DIGEST = 16

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
    """Content keys of media cells for one pass (see the module doc); thread-safe.

    One object remembers each archive's identity (size + change marker: one ``stat`` or one metadata
    request per archive per pass), so keying 10,000 members of one tar costs one request, not 10,000.
    """

    def __init__(self) -> None:
        self._archives: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, cell: Mapping[str, Any] | None) -> str | None:
        """The content key of a ``{bytes, path}`` cell (None for no cell, or one with neither).

        Raises :class:`~avsets.errors.MediaError` when the media cannot be reached (a missing local file,
        a remote server that refuses), so callers count it like any unreadable clip.
        """
        if not cell:
            return None
        data, path = cell.get("bytes"), cell.get("path")
        if data is not None:
            return "b2:" + _blake(bytes(data))
        if not path:
            return None
        try:
            if is_member(path):
                return self._member_key(path)
            if is_local(path):
                return _local_key(local_path(path))
            return self._remote_key(path)
        except MediaError:
            raise
        except (OSError, ValueError) as exc:
            raise MediaError(f"cannot identify the media: {type(exc).__name__}: {redact_text(str(exc))}",
                             path=redact_url(path)) from None
        except Exception as exc:  # noqa: BLE001 - any fsspec backend's client error: one named error
            raise MediaError(f"cannot identify the media: {type(exc).__name__}", path=redact_url(path)) from None

    def _member_key(self, path: str) -> str:
        loc = parse_locator(path)
        f = loc.fields
        if loc.kind == "zip" and "crc" in f:
            return f"z:{f['crc']}:{f.get('s', '')}"
        place = ",".join(f"{k}={v}" for k, v in sorted(f.items()) if k != "n")
        return f"m:{loc.kind}:{self._archive(loc.archive)}:{place}:{_blake(loc.member.encode('utf-8', 'surrogatepass'))}"

    def _archive(self, url: str) -> str:
        with self._lock:
            known = self._archives.get(url)
        if known is None:
            known = self._remote_key(url) if not is_local(url) else self._local_archive(local_path(url))
            with self._lock:
                self._archives[url] = known
        return known

    @staticmethod
    def _local_archive(path: str) -> str:
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"

    @staticmethod
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


def content_key(cell: Mapping[str, Any] | None) -> str | None:
    """The content key of one ``{bytes, path}`` cell (a fresh :class:`ContentKeys`; see the module doc)."""
    return ContentKeys()(cell)
