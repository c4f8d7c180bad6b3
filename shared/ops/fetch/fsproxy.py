"""A loopback HTTP server that answers ranged reads from fsspec URLs, so ffmpeg can seek in them.

Why: ffmpeg speaks HTTP but not ``s3://``/``gs://``/``hf://``; copying the whole file to local disk first
defeats segment-only fetching.  fsspec files support ``seek``/``read`` with their own block cache, so
serving them over HTTP with ``Range`` support on 127.0.0.1 lets the same ffmpeg recipe read only the
segment's bytes.  It binds the loopback address only and serves only URLs registered by this process.
"""

from __future__ import annotations

import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class FsspecRangeProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, url: str) -> str:
        """An http URL on this proxy that serves fsspec ``url`` (the token keeps other URLs unreachable)."""
        token = secrets.token_hex(8)
        with self._lock:
            self._urls[token] = url
        return f"http://127.0.0.1:{self.server_address[1]}/{token}"

    def lookup(self, token: str) -> str | None:
        with self._lock:
            return self._urls.get(token)

    def start(self) -> FsspecRangeProxy:
        self._thread = threading.Thread(target=self.serve_forever, name="fsspec-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FsspecRangeProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Silent: failures reach the ledger through ffmpeg's status."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        import fsspec

        url = self.server.lookup(self.path.lstrip("/"))
        if url is None:
            self._status(404)
            return
        try:
            fs, path = fsspec.core.url_to_fs(url)
            size = fs.size(path)
        except FileNotFoundError:
            self._status(404)
            return
        except PermissionError:
            self._status(403)
            return
        except Exception:  # noqa: BLE001 - any backend error is a server error for ffmpeg
            self._status(502)
            return
        start, end, status = 0, size - 1, 200
        m = _RANGE.fullmatch((self.headers.get("Range") or "").strip())
        if m and m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            status = 206
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        remaining = end - start + 1
        try:
            with fs.open(path, "rb") as f:
                f.seek(start)
                while remaining > 0:
                    chunk = f.read(min(65536, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
