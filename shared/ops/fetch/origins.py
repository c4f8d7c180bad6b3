"""Where a clip's media comes from: a YouTube page (resolved by yt-dlp), a mirror URL, a local file or an
fsspec URL; each becomes a list of ffmpeg ``Input``s.

DESIGN "Fetch decisions": a ``--source-url-template`` that names media directly goes straight to ffmpeg
(ranged reads); yt-dlp resolves only pages.  Measured: yt-dlp's resolve of a direct media URL is an
unranged GET that sometimes pulls the whole file, so "auto" sends an http(s) URL whose path ends in a
media extension to ffmpeg and anything else to yt-dlp.

Template placeholders are the row's columns as text plus ``youtube_id``, ``id`` (the clip key),
``start``/``end`` (seconds as given), ``start_ms``/``end_ms`` and ``start_s``/``end_s`` (integers) — the
same names ``media_pattern`` takes.

Named ``origins`` (until round 3: ``avsets.ops.fetch.sources``) so that it is never confused with
:mod:`avsets.media.sources`, the archive and folder media sources a load reads from.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsets.core.secrets import redact_text, redact_url
from avsets.core.segments import MEDIA_EXTENSIONS, Segment
from avsets.core.templates import Template, Value, parse, plain_values, segment_values
from avsets.metadata.ledger import ERROR, UNAVAILABLE

from .ffmpeg import Input
from .status import FetchFailure, Interrupted, classify_http, classify_message

logger = logging.getLogger(__name__)

YOUTUBE_PAGE = "https://www.youtube.com/watch?v={youtube_id}"
RESOLVE_MODES = ("auto", "ytdlp", "direct")
RANGE_PROBE_TIMEOUT = 5.0  # seconds for the one-byte Range probe (no answer: assume Range works)


@dataclass(frozen=True)
class SourceConfig:
    """What ``--source-url-template``, ``--resolve``, ``--cookies``, ``--proxy`` and ``--max-height`` say."""

    template: str | None = None
    resolve: str = "auto"
    cookies: str | None = None
    proxy: str | None = None
    timeout: float = 30.0
    max_height: int | None = None


def template_fields(segment: Segment | Any, extra: Mapping[str, object] | None = None) -> dict[str, Value]:
    """The field values for one clip: the row's columns (``templates.plain_values``), then the segment's own
    names, which win (``start``/``end`` float seconds, ``*_ms``/``*_s`` ints, so ``{start_s:06d}`` and
    ``{start:.3f}`` work and plain ``{start}`` prints ``30`` or ``30.5``)."""
    fields: dict[str, Value] = {k: "" if v is None else v for k, v in plain_values(extra or {}).items()}
    for k, v in (extra or {}).items():
        if v is None:
            fields[k] = ""
    if segment.end is None:  # a whole video: only its id
        fields.update(segment_values(segment.youtube_id, None, None, segment.key))
        return fields
    fields.update(segment_values(segment.youtube_id, segment.start, segment.end, segment.key))
    return fields


def _scheme(url: str) -> str:
    head = url.split("://", 1)[0] if "://" in url else ""
    return head.lower() if head.isidentifier() or head.replace("+", "").isalnum() else ""


def parse_source_template(template: str) -> Template:
    """``--source-url-template`` parsed and checked (``TemplateError``, a ``ValueError``, when it cannot be
    used): the one template language of ``avsets.core.templates``."""
    return parse(template, what="--source-url-template")


def render(template: str, fields: Mapping[str, object]) -> str:
    """Fill ``template``.  Values are URL-quoted for URLs; for paths a value that could climb out of the
    template's folder (``/``, ``..``, NUL) is refused, since row values come from metadata files; and the
    result is checked after every decoding step to stay under the template's fixed prefix."""
    tpl = parse_source_template(template)
    scheme = _scheme(template)
    if scheme in ("http", "https"):
        safe = {k: urllib.parse.quote(v, safe="") if isinstance(v, str) else v for k, v in fields.items()}
    else:
        used = tpl.fields
        for k, v in fields.items():
            if not isinstance(v, str) or k not in used:
                continue
            if "/" in v or "\\" in v or "\0" in v or v in (".", ".."):
                raise FetchFailure(ERROR, f"template value {k}={v!r} is not a safe path part", transient=False)
        safe = dict(fields)
    try:
        rendered = tpl.render(safe)
    except KeyError as e:
        raise ValueError(f"--source-url-template names {e.args[0]!r}, which is not a column or segment field") from None
    check_contained(tpl, rendered)
    return rendered


def _decodings(text: str, limit: int = 4) -> list[str]:
    """``text`` and each percent-decoding of it until it stops changing (what any reader may end up seeing)."""
    out = [text]
    for _ in range(limit):
        nxt = urllib.parse.unquote(out[-1])
        if nxt == out[-1]:
            break
        out.append(nxt)
    return out


def _fixed_folder(prefix: str) -> str:
    """The folder part of a template's literal prefix (``/data/v{id}`` -> ``/data/``)."""
    cut = max(prefix.rfind("/"), prefix.rfind("\\"))
    return prefix[:cut + 1] if cut >= 0 else ""


def check_contained(tpl: Template, rendered: str) -> None:
    """Refuse a rendered source that leaves the template's fixed folder at any decoding step.

    A row value ``%2e%2e`` passes a check for ``..`` and becomes ``..`` when a ``file://`` URL is decoded
    (or a server decodes a path); double encoding, backslashes and NUL bytes are the same trick.  So the
    text is checked raw and after every percent-decoding: it must start with the (equally decoded) fixed
    folder, hold no ``..`` part and no NUL after it, and a local path must normalise to a path under it.
    """
    folder = _fixed_folder(tpl.prefix)
    scheme = _scheme(rendered)
    local = scheme in ("", "file")
    folders = _decodings(folder)
    steps = _decodings(rendered)
    for i, step in enumerate(steps):
        base = folders[min(i, len(folders) - 1)]
        if not step.startswith(base):
            raise FetchFailure(ERROR, f"source {redact_url(rendered)!r} leaves the template's folder "
                               f"{redact_url(folder)!r}", transient=False)
        rest = step[len(base):]
        path_part = rest if local else rest.split("?", 1)[0].split("#", 1)[0]
        if "\0" in rest or any(part == ".." for part in re.split(r"[/\\]", path_part)):
            raise FetchFailure(ERROR, f"source {redact_url(rendered)!r} climbs out of the template's folder "
                               f"{redact_url(folder)!r} (a '..' part or a NUL byte, once decoded)", transient=False)
    if local and folder:
        final = local_path(rendered)
        root = local_path(folder) if scheme == "file" else Path(folder).expanduser().absolute()
        norm_root = os.path.normpath(str(root))
        norm = os.path.normpath(str(final))
        if os.path.commonpath([norm_root, norm]) != norm_root:
            raise FetchFailure(ERROR, f"source {rendered!r} resolves outside the template's folder {folder!r}",
                               transient=False)


def source_kind(url: str, resolve: str = "auto") -> str:
    """``"ytdlp"``, ``"direct"`` (http(s) media for ffmpeg), ``"local"`` or ``"fsspec"`` for a rendered URL."""
    scheme = _scheme(url)
    if scheme in ("", "file"):
        return "local"
    if scheme not in ("http", "https"):
        return "fsspec"
    if resolve == "ytdlp":
        return "ytdlp"
    if resolve == "direct":
        return "direct"
    path = urllib.parse.urlparse(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return "direct" if ext in MEDIA_EXTENSIONS else "ytdlp"


def local_path(url: str) -> Path:
    """The absolute path a ``file://`` URL or a plain path names (a ``file://`` URL is decoded once)."""
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path) if url.startswith("file://") else url
    return Path(path).expanduser().absolute()


def local_input(url: str) -> Input:
    """A local file as an ffmpeg ``file:`` input with an absolute path; missing -> ``unavailable``."""
    p = local_path(url)
    if not p.is_file():
        raise FetchFailure(UNAVAILABLE, f"no file at {p}")
    return Input("file:" + str(p))


def load_cookies(cookies: str) -> Any:
    """A Netscape cookies file as yt-dlp's cookie jar (it reads the files browsers' exporters write, e.g.
    expiry 0 for session cookies, which ``http.cookiejar`` treats as long expired)."""
    import contextlib
    import io

    from yt_dlp.cookies import YoutubeDLCookieJar

    jar = YoutubeDLCookieJar(cookies)
    # yt-dlp prints each line it cannot parse to stderr, cookie values included: keep them off the screen.
    with contextlib.redirect_stderr(io.StringIO()):
        jar.load(ignore_discard=True, ignore_expires=True)
    return jar


def read_error_page(url: str, headers: Mapping[str, str], *, proxy: str | None, timeout: float) -> tuple[int, str]:
    """One small GET to read the page behind a 403 (ffmpeg keeps only the status, not the body), so that
    "private" and "not available in your country" can be told from a plain refusal."""
    req = urllib.request.Request(url, headers={**headers, "Range": "bytes=0-65535"})
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        try:
            body = e.read(65536).decode("utf-8", "replace")
        except OSError:
            body = ""
        return e.code, body
    except (OSError, ValueError):
        return 0, ""


class _QuietLogger:
    """yt-dlp prints "ERROR: ..." to stderr even with ``quiet``; the ledger is where failures go."""

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        pass


def _format_selector(want_video: bool, max_height: int | None) -> str:
    """Prefer H.264 + AAC (what the mp4 output promises), fall back to anything; audio-only reads audio."""
    if not want_video:
        return "bestaudio/best"
    h = f"[height<={int(max_height)}]" if max_height else ""
    return (f"bestvideo{h}[vcodec^=avc1]+bestaudio[ext=m4a]/bestvideo{h}+bestaudio/best{h}/best")


def js_runtimes() -> dict[str, dict[str, str]] | None:
    """yt-dlp's ``js_runtimes`` for the Deno binary of the PyPI ``deno`` package, when installed.

    YouTube pages need a JavaScript runtime to solve their challenges, and yt-dlp looks for ``deno`` only
    on PATH, which a virtualenv that is not activated does not put there (the same trap as ffmpeg in
    the fetch README's measured facts).  None leaves yt-dlp's own default (``deno`` from PATH).
    """
    try:
        from deno import find_deno_bin
    except ImportError:
        return None
    try:
        return {"deno": {"path": find_deno_bin()}}
    except FileNotFoundError:
        return None


def _clean(message: str) -> str:
    msg = message.replace("ERROR: ", "", 1).strip()
    if msg.startswith("[") and "]" in msg:
        msg = msg.split("]", 1)[1].strip()
        if ": " in msg[:20]:
            msg = msg.split(": ", 1)[1]
    return msg.splitlines()[0][:200] if msg else message[:200]


class YtDlpResolver:
    """yt-dlp as a library: page URL -> media URL(s) and headers.  One ``YoutubeDL`` per thread (it keeps
    per-instance state and is not documented as thread-safe)."""

    def __init__(self, cfg: SourceConfig):
        self.cfg = cfg
        self._local = threading.local()

    def _ydl(self, want_video: bool):  # noqa: ANN202 - yt_dlp.YoutubeDL, imported lazily
        key = "v" if want_video else "a"
        cache = getattr(self._local, "ydl", None)
        if cache is None:
            cache = self._local.ydl = {}
        if key not in cache:
            import yt_dlp

            opts: dict[str, object] = {
                "quiet": True, "no_warnings": True, "noplaylist": True, "logger": _QuietLogger(),
                "format": _format_selector(want_video, self.cfg.max_height), "socket_timeout": self.cfg.timeout,
                "retries": 0, "extractor_retries": 0, "skip_download": True,
            }
            if self.cfg.cookies:
                opts["cookiefile"] = self.cfg.cookies
            if self.cfg.proxy:
                opts["proxy"] = self.cfg.proxy
            runtimes = js_runtimes()
            if runtimes:
                opts["js_runtimes"] = runtimes
            cache[key] = yt_dlp.YoutubeDL(opts)
        return cache[key]

    def resolve(self, page_url: str, *, want_video: bool) -> list[Input]:
        from yt_dlp.networking.exceptions import HTTPError, TransportError
        from yt_dlp.utils import DownloadError

        ydl = self._ydl(want_video)
        try:
            info = ydl.extract_info(page_url, download=False)
        except DownloadError as e:
            exc = e.exc_info[1] if e.exc_info else None
            if isinstance(exc, HTTPError):
                raise self._http_failure(exc, page_url) from None
            if isinstance(exc, TransportError):
                raise FetchFailure(ERROR, f"resolve: {_clean(str(e))}") from None
            text = str(e)
            raise FetchFailure(classify_message(text) or ERROR, f"resolve: {_clean(text)}") from None
        formats = info.get("requested_formats") or [info]
        inputs = []
        for f in formats:
            url = f.get("url")
            if not url:
                raise FetchFailure(ERROR, "resolve: yt-dlp gave no media URL")
            headers = dict(f.get("http_headers") or info.get("http_headers") or {})
            cookie = ydl.cookiejar.get_cookie_header(url)
            if cookie:
                headers["Cookie"] = cookie
            streams = "av"
            if len(formats) > 1:
                streams = "a" if f.get("vcodec") == "none" else "v" if f.get("acodec") == "none" else "av"
            inputs.append(Input(url, tuple(headers.items()), streams))
        return inputs

    def _http_failure(self, exc: object, page_url: str) -> FetchFailure:
        status = int(getattr(exc, "status", 0) or 0)
        response = getattr(exc, "response", None)
        retry_after = None
        body = ""
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            try:
                body = response.read().decode("utf-8", "replace")
            except (OSError, ValueError, AttributeError):
                body = ""
        if status == 403 and not body:
            body = read_error_page(page_url, {}, proxy=self.cfg.proxy, timeout=self.cfg.timeout)[1]
        return classify_http(status, body, retry_after=retry_after, what="resolve")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def probe_range(url: str, headers: Mapping[str, str], *, proxy: str | None, timeout: float) -> bool | None:
    """Whether the server behind ``url`` honours ``Range``: True (206), False (200 with the whole body: a
    ``python -m http.server``-like mirror), None when it could not tell (an error status, no answer)."""
    req = urllib.request.Request(url, headers={**headers, "Range": "bytes=0-0"})
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return {206: True, 200: False}.get(resp.status)  # close without reading the body
    except (urllib.error.URLError, OSError, ValueError):
        return None


#: The most one clip downloads whole from a mirror that ignores Range (then its copy is cut locally).
WHOLE_FILE_LIMIT = 8 << 30


def download_whole(inp: Input, dest: Path, *, proxy: str | None, timeout: float, limit: int = WHOLE_FILE_LIMIT,
                   stop: threading.Event | None = None) -> Input:
    """``inp`` downloaded whole to ``dest``, returned as a local input: for a server that ignores ``Range``.

    Why: without Range, ffmpeg can only read a file once from its start, and an mp4 whose index (``moov``)
    comes last (ffmpeg's and PyAV's default output) cannot be cut that way ("Invalid data found"); a
    local copy can be read like any file.  Bounded: a file over ``limit`` bytes (by its ``Content-Length``
    or as it arrives) is refused, and ``dest`` is removed on any failure (the caller removes it after the
    cut).  ``stop`` (Ctrl-C) abandons the download."""
    req = urllib.request.Request(inp.url, headers=dict(inp.headers))
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    opener = urllib.request.build_opener(*handlers)
    too_big = (f"media: the server ignores Range, so the file is downloaded whole to be cut, and it is over the "
               f"{limit:,}-byte limit")
    try:
        with opener.open(req, timeout=timeout) as resp, open(dest, "wb") as f:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise FetchFailure(ERROR, f"{too_big} ({int(length):,} bytes)", transient=False)
            got = 0
            while chunk := resp.read(1 << 20):
                if stop is not None and stop.is_set():
                    raise Interrupted()
                got += len(chunk)
                if got > limit:
                    raise FetchFailure(ERROR, too_big, transient=False)
                f.write(chunk)
    except urllib.error.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise classify_http(exc.code, what="media") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        dest.unlink(missing_ok=True)
        raise FetchFailure(ERROR, f"media: download failed: {redact_text(str(exc))}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Input("file:" + str(dest.absolute()), streams=inp.streams)


class SourceResolver:
    """Clip -> ffmpeg inputs, by the kind of source its rendered URL is."""

    def __init__(self, cfg: SourceConfig):
        if cfg.resolve not in RESOLVE_MODES:
            raise ValueError(f"resolve must be one of {RESOLVE_MODES}, got {cfg.resolve!r}")
        self.cfg = cfg
        self.template = parse_source_template(cfg.template) if cfg.template else None
        self.ytdlp = YtDlpResolver(cfg)
        self._proxy_lock = threading.Lock()
        self._fs_proxy = None
        self._jar = load_cookies(cfg.cookies) if cfg.cookies else None
        self._range_lock = threading.Lock()
        self._range_support: dict[str, bool] = {}
        self._inconclusive = 0

    def ranged(self, inp: Input) -> Input:
        """``inp``, marked ``ranged=False`` when its server ignores ``Range`` (the caller then downloads it
        whole and cuts it locally: :func:`download_whole`); asked once per origin with one 1-byte request,
        said once in the log."""
        if not inp.network or not inp.ranged:
            return inp
        parts = urllib.parse.urlsplit(inp.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._range_lock:
            known = self._range_support.get(origin)
        if known is None:
            if self._inconclusive >= 3:  # a server that will not say: assume it honours Range, stop asking
                return inp
            known = probe_range(inp.url, dict(inp.headers), proxy=self.cfg.proxy,
                                timeout=min(self.cfg.timeout, RANGE_PROBE_TIMEOUT))
            if known is None:
                with self._range_lock:
                    self._inconclusive += 1
                return inp
            with self._range_lock:
                first = origin not in self._range_support
                self._range_support[origin] = known
            if first and not known:
                logger.warning("%s ignores Range requests (answers 200, not 206): downloading each file whole "
                               "to a temporary copy to cut it, which moves more bytes", redact_url(origin))
        return inp if known else dataclasses.replace(inp, ranged=False)

    def url_for(self, segment: Segment | Any, extra: Mapping[str, object] | None = None) -> str:
        return render(self.cfg.template or YOUTUBE_PAGE, template_fields(segment, extra))

    def resolve(self, url: str, *, want_video: bool) -> list[Input]:
        kind = source_kind(url, self.cfg.resolve)
        if kind == "local":
            return [local_input(url)]
        if kind == "direct":
            headers = {}
            cookie = self._jar.get_cookie_header(url) if self._jar is not None else None
            if cookie:
                headers["Cookie"] = cookie
            return [Input(url, tuple(headers.items()))]
        if kind == "fsspec":
            return [Input(self._fsspec_proxy().register(url))]
        return self.ytdlp.resolve(url, want_video=want_video)

    def _fsspec_proxy(self):  # noqa: ANN202 - FsspecRangeProxy, started lazily
        with self._proxy_lock:
            if self._fs_proxy is None:
                from .fsproxy import FsspecRangeProxy

                self._fs_proxy = FsspecRangeProxy().start()
            return self._fs_proxy

    def close(self) -> None:
        if self._fs_proxy is not None:
            self._fs_proxy.stop()
            self._fs_proxy = None

    def explain_403(self, inp: Input) -> str:
        """The page text behind a 403 on a direct URL (one extra small request, only on 403)."""
        if not inp.network:
            return ""
        return read_error_page(inp.url, dict(inp.headers), proxy=self.cfg.proxy, timeout=self.cfg.timeout)[1]

