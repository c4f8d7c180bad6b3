"""A loopback HTTP file server with ``Range`` support that counts requests and body bytes per path.

The media-source tests and ``bench/bench_sources.py`` serve archives from it: "at most N requests, at most
member + 64 KiB moved" are claims about real HTTP traffic, so they are checked on a real socket.
Serves the files of one folder; ``HEAD`` answers ``Content-Length``, ``ETag`` and ``Last-Modified``.
``chunk`` and ``delay`` make a slow mirror (so a test can kill a run mid-way); ``latency`` is slept before
answering each request (a mirror far away: round trips, not bandwidth, bound it); ``cut[relpath] = n``
hangs up after byte ``n`` (a truncated transfer).
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeServer(ThreadingHTTPServer):
    """Files under ``root`` at ``http://127.0.0.1:PORT/<relpath>``; counters guarded by ``lock``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: str | Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.bytes_sent: dict[str, int] = defaultdict(int)
        self.log: list[tuple[str, str, str]] = []  # (method, path, range)
        self.honour_range = True  # False: answer every GET with the whole file (servers that ignore Range)
        self.cut: dict[str, int] = {}
        self.chunk = 1 << 20
        self.delay = 0.0  # seconds slept before each chunk
        self.latency = 0.0  # seconds slept before answering each request (a distant mirror's round trip)
        self.refuse_head = False  # True: 403 to every HEAD (a URL presigned for GET only, as S3 and GCS sign)

        self.listing = False  # True: a GET of a folder answers with a page of links (what fsspec's HTTP ls reads)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, relpath: str) -> str:
        return f"{self.base_url}/{relpath}"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_sent.clear()
            self.log.clear()

    def total(self) -> tuple[int, int]:
        """``(requests, body bytes)`` over every path since the last reset."""
        with self.lock:
            return sum(self.requests.values()), sum(self.bytes_sent.values())

    def start(self) -> RangeServer:
        threading.Thread(target=self.serve_forever, name="range-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RangeServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        if self.server.refuse_head:
            with self.server.lock:
                self.server.log.append(("HEAD", unquote(self.path.split("?", 1)[0]).lstrip("/"), ""))
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(head=False)

    def _list(self, path: Path, rel: str, *, head: bool) -> None:
        base = "/" + rel.strip("/") + "/" if rel.strip("/") else "/"
        links = "".join(f'<a href="{base}{quote(p.name)}{"/" if p.is_dir() else ""}">{p.name}</a>\n'
                        for p in sorted(path.iterdir()))
        body = f"<html><body>\n{links}</body></html>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, *, head: bool) -> None:
        rel = unquote(self.path.split("?", 1)[0]).lstrip("/")
        srv = self.server
        if srv.latency:
            time.sleep(srv.latency)
        path = (srv.root / rel).resolve()
        with srv.lock:
            srv.requests[rel] += 1
            srv.log.append((self.command, rel, self.headers.get("Range") or ""))
        if srv.listing and (path == srv.root or srv.root in path.parents) and path.is_dir():
            self._list(path, rel, head=head)  # a folder as http.server lists it: a page of links
            return
        if srv.root not in path.parents or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        st = path.stat()
        size = st.st_size
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range") if srv.honour_range else None
        if rng:
            m = _RANGE_RE.fullmatch(rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        length = end - start + 1
        limit = min(length, max(0, srv.cut[rel] - start)) if rel in srv.cut else length
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if limit < length:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head:
            return
        with path.open("rb") as f:
            f.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = f.read(min(srv.chunk, remaining))
                if not chunk:
                    break
                if srv.delay:
                    time.sleep(srv.delay)
                with srv.lock:  # counted before the write: a client may read it and ask before we return
                    srv.bytes_sent[rel] += len(chunk)
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                remaining -= len(chunk)


def serve_folder(root: str | Path) -> RangeServer:
    """Start serving ``root`` on an ephemeral loopback port (stop it with ``.stop()``)."""
    return RangeServer(root).start()
