"""A loopback HTTP server for files of a folder, with ``Range`` support, counting bytes and requests per path.

The media-source tests serve mirror archives and Parquet files from it, so they can assert how many bytes
a streaming pass moved (once through each archive, never more) the way a real CDN would count them.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


class FileServer(ThreadingHTTPServer):
    """Serves ``root`` at ``http://127.0.0.1:PORT/files/<relpath>``; ``cut[relpath] = n`` hangs up after n bytes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.lock = threading.Lock()
        self.bytes_sent: dict[str, int] = defaultdict(int)
        self.requests: dict[str, int] = defaultdict(int)
        self.cut: dict[str, int] = {}
        self.chunk = 1 << 16
        self.delay = 0.0  # seconds slept before each chunk (a slow mirror, so a test can kill a run mid-way)

    def url(self, relpath: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/files/{relpath}"

    def start(self) -> FileServer:
        threading.Thread(target=self.serve_forever, name="file-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def total_bytes(self) -> int:
        with self.lock:
            return sum(self.bytes_sent.values())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        raw = unquote(self.path.split("?", 1)[0])
        rel = raw[len("/files/"):] if raw.startswith("/files/") else None
        path = (self.server.root / rel).resolve() if rel else None
        if path is None or self.server.root not in path.parents or not path.is_file():
            body = b"not found"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        with self.server.lock:
            self.server.requests[rel] += 1
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = _RANGE_RE.fullmatch(rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                status = 206
        if start >= size and size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        limit = min(length, max(0, self.server.cut[rel] - start)) if rel in self.server.cut else length
        if limit < length:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        with path.open("rb") as f:
            f.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = f.read(min(self.server.chunk, remaining))
                if not chunk:
                    break
                if self.server.delay:
                    time.sleep(self.server.delay)
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                with self.server.lock:
                    self.server.bytes_sent[rel] += len(chunk)
                remaining -= len(chunk)
        if limit < length:
            self.close_connection = True


def serve_folder(root: Path) -> FileServer:
    """Start serving ``root`` on an ephemeral loopback port."""
    return FileServer(root).start()
