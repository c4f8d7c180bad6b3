"""Byte ranges of a local file or an fsspec URL, with the request count kept small and known.

Every random-access reader (zip, tar, Parquet) goes through :class:`RangeReader`, so "how many requests and
how many bytes" has one answer: ``read(start, end)`` is one ranged request (one ``pread`` locally), and
:class:`RangeFile` is the seekable file object the zip, tar and Parquet readers read through (it opens no
archive itself).
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.asyn import sync

from avsets.core.secrets import redact_url


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


_IDENTITY_KEYS = ("ETag", "etag", "blob_id", "sha256", "Last-Modified", "LastModified", "last_modified", "mtime",
                  "md5", "Content-MD5", "generation")


@dataclass(frozen=True)
class RemoteInfo:
    """Size and a change marker (ETag, blob id, mtime...) of a source: the key of its cached index."""

    size: int
    identity: str


class RangeReader:
    """Reads byte ranges of one source; thread-safe and picklable (it holds only the URL)."""

    def __init__(self, url: str):
        self.url = url
        self.local = is_local(url)
        self._fs: Any = None
        self._path: str | None = None
        self._pid = os.getpid()
        self._hf_url: str | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"url": self.url}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"])

    def _fs_path(self) -> tuple[Any, str]:
        if self._pid != os.getpid():  # a forked DataLoader worker: the parent's HTTP session is not ours
            self._fs, self._pid, self._hf_url = None, os.getpid(), None
        if self._fs is None:
            self._fs, self._path = fsspec.core.url_to_fs(self.url)
        return self._fs, self._path  # type: ignore[return-value]

    def info(self) -> RemoteInfo:
        """One ``stat`` locally, one metadata request (HEAD, paths-info...) remotely."""
        if self.local:
            st = os.stat(local_path(self.url))
            return RemoteInfo(st.st_size, f"mtime_ns={st.st_mtime_ns}")
        fs, path = self._fs_path()
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        info = sync(fs.loop, _http_info, fs, path) if protocol in ("http", "https") else fs.info(path)
        marks = []
        for key in _IDENTITY_KEYS:
            value = info.get(key)
            if value:
                marks.append(f"{key}={value}")
        lfs = info.get("lfs")
        if isinstance(lfs, dict) and lfs.get("sha256"):
            marks.append(f"lfs={lfs['sha256']}")
        return RemoteInfo(int(info.get("size") or 0), ";".join(marks))

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (shorter at the end of the source): one request."""
        if end <= start:
            return b""
        if self.local:
            fd = os.open(local_path(self.url), os.O_RDONLY)
            try:
                return os.pread(fd, end - start, start)
            finally:
                os.close(fd)
        fs, path = self._fs_path()
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if protocol in ("http", "https"):
            data = fs.cat_file(path, start=start, end=end)
            if len(data) > end - start:  # the server ignored Range and sent the whole file
                _warn_no_range(self.url)
                data = data[start:end]
            return data
        if protocol == "hf":
            data = self._hf_range(fs, path, start, end)
        else:
            with fs.open(path, "rb", cache_type="none") as f:
                f.seek(start)
                return f.read(end - start)
        if len(data) > end - start:  # the server ignored Range and sent the whole file
            _warn_no_range(self.url)
            data = data[start:end]
        return data

    def _hf_range(self, fs: Any, path: str, start: int, end: int) -> bytes:
        """One ranged GET of the file's resolve URL (what ``HfFileSystemFile`` does, without its per-open
        metadata request): the URL is resolved once per process."""
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

        if self._hf_url is None:
            self._hf_url = fs.url(path)
        headers = {"range": f"bytes={start}-{end - 1}", **build_hf_headers(token=getattr(fs, "token", None))}
        r = http_backoff("GET", self._hf_url, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT)
        hf_raise_for_status(r)
        return r.content


_HTTP_KEYS = ("ETag", "Last-Modified", "Content-MD5")  # what fsspec's HTTP ``info`` kept (headers ignore case)


async def _http_info(fs: Any, path: str) -> dict[str, Any]:
    """Size and change markers of an HTTP source with at most two requests and no body.

    Why not ``fs.info``: when HEAD fails, fsspec falls back to a GET of the whole file, and a URL signed for
    GET only (an S3 or GCS presigned URL) always refuses HEAD, so every index of a presigned archive began
    by downloading it.  Here the fallback is a GET of its first byte, whose ``Content-Range`` says the size;
    no body is read either way."""
    session = await fs.set_session()
    url = fs.encode_url(path)
    kw = dict(fs.kwargs)
    headers = {**kw.pop("headers", {}), "Accept-Encoding": "identity"}
    kw.pop("allow_redirects", None)
    out: dict[str, Any] = {}
    async with session.head(url, allow_redirects=True, headers=headers, **kw) as r:
        if r.status < 400 and r.headers.get("Content-Length") and r.headers.get("Content-Encoding", "identity") in (
                "identity", ""):
            out = {k: r.headers[k] for k in _HTTP_KEYS if k in r.headers}
            return {**out, "size": int(r.headers["Content-Length"])}
    async with session.get(url, allow_redirects=True, headers={**headers, "Range": "bytes=0-0"}, **kw) as r:
        if r.status in (404, 410):
            raise FileNotFoundError(redact_url(url))
        r.raise_for_status()
        out = {k: r.headers[k] for k in _HTTP_KEYS if k in r.headers}
        total = r.headers.get("Content-Range", "").rsplit("/", 1)[-1]
        if r.status == 206 and total.isdigit():
            return {**out, "size": int(total)}
        return {**out, "size": int(r.headers.get("Content-Length") or 0)}  # Range ignored: its length, unread


_WARNED: set[str] = set()


def _warn_no_range(url: str) -> None:
    if url not in _WARNED:
        _WARNED.add(url)
        logging.getLogger("avsets").warning("%s: the server ignores Range requests, so every read downloads the "
                                            "whole file; use a server or mirror that supports them",
                                            redact_url(url))


class RangeFile(io.RawIOBase):
    """A read-only seekable file over a :class:`RangeReader`, for the zip, tar and Parquet readers.

    ``block``: reads smaller than this fetch a whole block (tar headers: one request serves the headers of
    many small members).  ``tail``: bytes from the end fetched once up front (zip: the end record, the
    zip64 locator and often the whole central directory in one request).
    """

    def __init__(self, reader: RangeReader, size: int, *, block: int = 0, tail: int = 0):
        super().__init__()
        self.reader, self.size, self.block = reader, size, block
        self.pos = 0
        self._buf_start, self._buf = 0, b""
        self.requests = 0
        self.bytes_read = 0
        self.fills: list[tuple[int, float]] = []  # (bytes, seconds) of each request: latency and bandwidth
        if tail:
            start = max(0, size - tail)
            self._fill(start, size)

    def _fill(self, start: int, end: int) -> None:
        t0 = time.perf_counter()
        self._buf_start, self._buf = start, self.reader.read(start, end)
        self.fills.append((len(self._buf), time.perf_counter() - t0))
        self.requests += 1
        self.bytes_read += len(self._buf)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = max(0, min(n, self.size - self.pos))
        if n == 0:
            return b""
        start, end = self.pos, self.pos + n
        b0 = self._buf_start
        if not (b0 <= start and end <= b0 + len(self._buf)):
            self._fill(start, min(self.size, max(end, start + self.block)))
            b0 = self._buf_start
        out = self._buf[start - b0:end - b0]
        self.pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class Window:
    """The bytes of one stored (uncompressed) member as a reader of their own: ``read(start, end)`` of the
    member is ``read(base + start, base + end)`` of the archive, so a :class:`RangeFile` over it reads only
    what its caller asks for (a header probe: one small request, not the whole member)."""

    def __init__(self, reader: RangeReader, base: int) -> None:
        self.reader, self.base = reader, base

    def read(self, start: int, end: int) -> bytes:
        return self.reader.read(self.base + start, self.base + end)


#: what a lazily read member fetches per request (a FLAC header, an mp4's first boxes, its ``moov``)
PROBE_BLOCK = 64 << 10


def open_window(reader: RangeReader, base: int, size: int) -> RangeFile:
    """A seekable file over ``size`` bytes of the archive from ``base``, read in ``PROBE_BLOCK`` requests."""
    return RangeFile(Window(reader, base), size, block=PROBE_BLOCK)  # type: ignore[arg-type]


def open_seekable(url: str) -> Any:
    """A seekable fsspec file for reads in any order (``zipfile`` over a remote zip).  Over HTTP its size
    comes from :meth:`RangeReader.info` (HEAD, else a 1-byte GET): fsspec's own lookup GETs the whole file
    when HEAD is refused, as it is for URLs presigned for GET only."""
    if url.startswith(("http://", "https://")):
        fs, path = fsspec.core.url_to_fs(url)
        return fs.open(path, "rb", size=RangeReader(url).info().size)
    return fsspec.open(url, "rb").open()
