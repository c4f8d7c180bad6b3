"""A real HTTP server on loopback that plays a video mirror (and a video page site) for the fetch tests.

Why a server of our own and not a mock: the fetch code's whole point is *how many bytes* it pulls and how
it reacts to real HTTP failures (404, 429 + Retry-After, a 403 page that says "private", a body cut short),
so the tests need a server that speaks HTTP/1.1 with ``Range`` support and counts the bytes it really wrote
to the socket.  Media are whole multi-minute H.264 + AAC files made with PyAV at test time; every frame
carries its index as a row of black/white blocks so a test can check which frames a clip holds.

Routes:
- ``/media/{id}.mp4``: the media file mapped to ``id`` (Range requests answered with 206).
- ``/watch/{id}``: an HTML page with a ``<video>`` element pointing at ``/media/{id}.mp4``, for yt-dlp's
  generic extractor (the "page that needs resolving" path).

Behaviour per id (``Behavior``) applies to both routes: a fixed status with a page body, a number of 429
answers (with ``Retry-After``) before success, or truncated bodies.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

MARKER_BITS = 12
MARKER_BLOCK = 12
FPS = 10
SAMPLE_RATE = 16000


def make_video(path: Path, seconds: float, *, fps: int = FPS, width: int = 160, height: int = 120,
               sample_rate: int = SAMPLE_RATE, seed: int = 0, vcodec: str = "libx264") -> Path:
    """Write an H.264 + AAC mp4 (moov first, 2-s GOP) whose frames carry their index as a block code.

    Low-amplitude noise keeps the bitrate realistic (a few KB per frame), so byte fractions mean something.
    """
    import av

    rng = np.random.default_rng(seed)
    noise = [rng.integers(0, 48, size=(height, width, 3), dtype=np.uint8) for _ in range(7)]
    n_frames = int(round(seconds * fps))
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        x264 = {"preset": "ultrafast", "crf": "30"} if vcodec == "libx264" else {}
        vs = out.add_stream(vcodec, rate=fps, options=x264)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.gop_size = 2 * fps
        as_ = out.add_stream("aac", rate=sample_rate, layout="mono")
        for i in range(n_frames):
            img = noise[i % len(noise)].copy() + 64
            for b in range(MARKER_BITS):
                val = 255 if (i >> b) & 1 else 0
                img[0:MARKER_BLOCK, b * MARKER_BLOCK:(b + 1) * MARKER_BLOCK] = val
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        chunk = 1024
        total = int(round(seconds * sample_rate))
        t0 = 0
        while t0 < total:
            n = min(chunk, total - t0)
            t = (np.arange(t0, t0 + n) / sample_rate).astype(np.float64)
            sig = (0.3 * np.sin(2 * np.pi * (300.0 + 40.0 * np.sin(t / 3.0)) * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(sig[None, :], format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = t0
            frame.time_base = Fraction(1, sample_rate)
            for packet in as_.encode(frame):
                out.mux(packet)
            t0 += n
        for packet in as_.encode():
            out.mux(packet)
    return path


def read_marker(frame_rgb: np.ndarray) -> int:
    """The frame index that ``make_video`` drew into a decoded frame."""
    idx = 0
    for b in range(MARKER_BITS):
        block = frame_rgb[2:MARKER_BLOCK - 2, b * MARKER_BLOCK + 2:(b + 1) * MARKER_BLOCK - 2]
        if block.mean() > 160:
            idx |= 1 << b
    return idx


_MEDIA_CACHE: dict[str, Path] = {}
_MEDIA_LOCK = threading.Lock()
# name -> (seconds, seed, vcodec) of each file synthetic_media() makes
_MEDIA_SPECS = {"long": (300.0, 1, "libx264"), "short": (40.0, 2, "libx264"), "mpeg4": (20.0, 3, "mpeg4")}
# A folder the whole test run shares (tests/conftest.py sets it to the run's base temp folder, which every
# pytest-xdist worker sees): the files are made once per run, not once per worker process.
SHARED_MEDIA_ENV = "AVSETS_TEST_FETCH_MEDIA"


def synthetic_media() -> dict[str, Path]:
    """``{"long": 5-minute mp4, "short": 40-s mp4, "mpeg4": 20-s MPEG-4 Part 2 + AAC mp4}`` (H.264 + AAC
    unless named), made once per test run where ``$AVSETS_TEST_FETCH_MEDIA`` names a shared folder, else
    once per process (PyAV encoding costs about 8 s of CPU)."""
    with _MEDIA_LOCK:
        if not _MEDIA_CACHE:
            shared = os.environ.get(SHARED_MEDIA_ENV)
            if shared:
                _MEDIA_CACHE.update(_shared_media(Path(shared)))
            else:
                root = Path(tempfile.mkdtemp(prefix="avsets-fetch-media-"))
                for name, (seconds, seed, vcodec) in _MEDIA_SPECS.items():
                    _MEDIA_CACHE[name] = make_video(root / f"{name}.mp4", seconds, seed=seed, vcodec=vcodec)
        return dict(_MEDIA_CACHE)


def _shared_media(root: Path) -> dict[str, Path]:
    """The media in ``root``, made by whichever process gets there first; the others wait on a file lock
    and never see a half-written file (each is written under a temporary name, then renamed)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            out = {}
            for name, (seconds, seed, vcodec) in _MEDIA_SPECS.items():
                final = root / f"{name}.mp4"
                if not final.exists():
                    part = root / f".{name}.{os.getpid()}.part.mp4"
                    make_video(part, seconds, seed=seed, vcodec=vcodec)
                    os.replace(part, final)
                out[name] = final
            return out
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Behavior:
    """How the server answers one id.

    ``status``: answer every request with this status and ``body`` (404, 403, 410, 503...).
    ``rate_limit_first``: answer this many requests with 429 (and ``Retry-After: retry_after``) first.
    ``delay``: seconds to wait before each media body (a slow server, so a test can kill a run mid-way).
    ``truncate_at``: the file is cut at this fraction of its size: bodies promise their full
    ``Content-Length`` but the server hangs up at that offset (a CDN that drops the transfer), so no retry
    or re-request can get the bytes past it.
    """

    media: str = "short"
    status: int | None = None
    body: str = ""
    rate_limit_first: int = 0
    retry_after: int = 1
    truncate_at: float | None = None
    delay: float = 0.0


PRIVATE_PAGE = "<html><body><h1>Private video</h1><p>This video is private. Sign in if you've been granted access.</p></body></html>"
GEO_PAGE = "<html><body><p>The uploader has not made this video available in your country.</p></body></html>"
AGE_PAGE = "<html><body><p>Sign in to confirm your age. This video may be inappropriate for some users.</p></body></html>"

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_PATH_RE = re.compile(r"^/(media|watch)/([A-Za-z0-9_-]{11})(?:\.mp4)?$")


class MirrorServer(ThreadingHTTPServer):
    """The server object: behaviours, media map and byte/request counters (guarded by ``lock``)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, media: dict[str, Path]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.media = media
        self.behaviors: dict[str, Behavior] = {}
        self.default_media = "short"
        #: False plays ``python -m http.server``: Range is ignored (200 with the whole file, no Accept-Ranges)
        self.honour_range = True
        self.range_requests = 0  # requests that carried a Range header
        self.lock = threading.Lock()
        self.bytes_sent: dict[str, int] = defaultdict(int)
        self.requests: dict[str, int] = defaultdict(int)
        self.answered_429: dict[str, int] = defaultdict(int)
        self.cookies: dict[str, set[str]] = defaultdict(set)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def media_template(self) -> str:
        return self.base_url + "/media/{youtube_id}.mp4"

    def page_template(self) -> str:
        return self.base_url + "/watch/{youtube_id}"

    def behavior(self, ytid: str) -> Behavior:
        return self.behaviors.get(ytid) or Behavior(media=self.default_media)

    def file_size(self, ytid: str) -> int:
        return self.media[self.behavior(ytid).media].stat().st_size

    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_sent.clear()
            self.requests.clear()
            self.answered_429.clear()
            self.cookies.clear()

    def start(self) -> MirrorServer:
        self._thread = threading.Thread(target=self.serve_forever, name="mirror-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MirrorServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet: pytest output stays readable."""

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        m = _PATH_RE.match(self.path.split("?", 1)[0])
        if m is None:
            self._send_simple(404, "<html><body>no such route</body></html>", head=head)
            return
        route, ytid = m.group(1), m.group(2)
        srv = self.server
        b = srv.behavior(ytid)
        with srv.lock:
            srv.requests[ytid] += 1
            srv.cookies[f"{route}/{ytid}"].add(self.headers.get("Cookie") or "")
            limited = srv.answered_429[ytid] < b.rate_limit_first
            if limited:
                srv.answered_429[ytid] += 1
        if limited:
            self._send_simple(429, "<html><body>Too Many Requests</body></html>", head=head,
                              extra={"Retry-After": str(b.retry_after)})
            return
        if b.status is not None:
            self._send_simple(b.status, b.body or f"<html><body>status {b.status}</body></html>", head=head)
            return
        if route == "watch":
            page = (f"<html><head><title>video {ytid}</title></head><body><video controls>"
                    f'<source src="/media/{ytid}.mp4" type="video/mp4"></video></body></html>')
            self._send_simple(200, page, head=head)
            return
        if b.delay:
            time.sleep(b.delay)
        self._send_file(ytid, srv.media[b.media], head=head, truncate_at=b.truncate_at)

    def _send_simple(self, status: int, body: str, *, head: bool, extra: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self._write(self.path_id(), data)

    def path_id(self) -> str:
        m = _PATH_RE.match(self.path.split("?", 1)[0])
        return m.group(2) if m else "?"

    def _send_file(self, ytid: str, path: Path, *, head: bool, truncate_at: float | None) -> None:
        size = path.stat().st_size
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        status = 200
        if rng:
            with self.server.lock:
                self.server.range_requests += 1
        if rng and not self.server.honour_range:
            rng = None
        if rng:
            m = _RANGE_RE.fullmatch(rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start, end = max(0, size - int(m.group(2))), size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        if self.server.honour_range:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        limit = length if truncate_at is None else max(0, min(length, int(size * truncate_at) - start))
        if limit < length:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        with path.open("rb") as f:
            f.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = f.read(min(65536, remaining))
                if not chunk:
                    break
                if not self._write(ytid, chunk):
                    return
                remaining -= len(chunk)
        if limit < length:
            self.close_connection = True

    def _write(self, ytid: str, data: bytes) -> bool:
        """Write and count; a client that hung up (ffmpeg has what it needs) is normal, not an error."""
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False
        with self.server.lock:
            self.server.bytes_sent[ytid] += len(data)
        return True


def start_server(media: dict[str, Path] | None = None) -> MirrorServer:
    """Start a mirror on an ephemeral loopback port (127.0.0.1 only, never another address)."""
    return MirrorServer(media or synthetic_media()).start()
