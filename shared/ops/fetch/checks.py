"""Everything a fetch can reject before its first clip: options, the template, cookies, the output folder.

Why up front: an impossible option (``--timeout -1``, ``--tolerance nan``, a template naming a field no row
has) used to be tried on every clip, writing thousands of ``error`` rows into the ledger.  DESIGN "Exit
codes": a usage or set-up error is exit 2, with one line saying what to do, and nothing written.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from avsets.core.secrets import redact_text, redact_url
from avsets.core.templates import TemplateError

from .origins import load_cookies, parse_source_template
from .status import FetchSetupError
from .target import is_remote

if TYPE_CHECKING:
    from .clip import FetchOptions


def _finite(name: str, value: float | None, *, minimum: float = 0.0, strict: bool = False,
            allow_none: bool = False) -> None:
    if value is None:
        if allow_none:
            return
        raise FetchSetupError(f"{name} needs a value")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FetchSetupError(f"{name} must be a number, got {value!r}") from None
    bad = not math.isfinite(v) or (v <= minimum if strict else v < minimum)
    if bad:
        need = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise FetchSetupError(f"{name} must be a finite number {need}, got {value!r}")


def _positive_int(name: str, value: int | None, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FetchSetupError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_options(o: FetchOptions) -> None:
    """Refuse option values no clip could succeed with."""
    if not (o.audio or o.video):
        raise FetchSetupError("nothing to fetch: ask for --audio and/or --video")
    _finite("--timeout", o.timeout, strict=True)
    _finite("--tolerance", o.tolerance)
    _finite("--rate", o.rate, strict=True, allow_none=True)
    _finite("--backoff", o.backoff_base)
    _finite("backoff_cap", o.backoff_cap)
    _finite("max_retry_after", o.max_retry_after)
    _finite("--refusal-pause", o.refusal_pause)
    _finite("lease", o.lease, strict=True)
    _positive_int("--refusal-threshold", o.refusal_threshold, minimum=0)
    _positive_int("--workers", o.workers)
    _positive_int("--max-attempts", o.max_attempts)
    _positive_int("--sampling-rate", o.sampling_rate, allow_none=True)
    _positive_int("--max-height", o.max_height, allow_none=True)
    _positive_int("--limit", o.limit, allow_none=True)
    _positive_int("ray_batch_size", o.ray_batch_size)
    if o.resolve not in ("auto", "ytdlp", "direct"):
        raise FetchSetupError(f"--resolve must be auto, ytdlp or direct, got {o.resolve!r}")
    if o.engine not in ("threads", "ray"):
        raise FetchSetupError(f"unknown engine {o.engine!r} (threads or ray)")
    if o.source_url_template is not None:
        check_template(o.source_url_template)
    if o.cookies:
        check_cookies(o.cookies)
    if o.proxy is not None and "://" not in o.proxy:
        raise FetchSetupError(f"--proxy must be a URL such as http://host:3128, got {redact_url(o.proxy)!r}")


def check_template(template: str, names: Collection[str] | None = None) -> None:
    """Parse ``--source-url-template`` (and, given the row's column names, check its field names)."""
    try:
        tpl = parse_source_template(template)
        if names is not None:
            tpl.check_names(names, what="--source-url-template")
    except TemplateError as e:
        raise FetchSetupError(redact_text(str(e)) or "bad --source-url-template") from None


def check_cookies(path: str) -> None:
    """The cookies file must exist and be a Netscape cookies file (what yt-dlp and browser exporters write)."""
    if not os.path.exists(path):
        raise FetchSetupError(f"--cookies: no file {path}")
    if not os.path.isfile(path):
        raise FetchSetupError(f"--cookies {path} is not a file; give a Netscape-format cookies.txt")
    try:
        load_cookies(path)
    except ImportError:
        return  # no yt-dlp: the resolver says so when (and if) it is needed
    except (OSError, ValueError) as e:
        raise FetchSetupError(f"--cookies {path} is not a Netscape-format cookies file ({type(e).__name__}); "
                              "export cookies.txt with a browser extension or yt-dlp --cookies-from-browser") from None


def check_output_folder(out: str | os.PathLike[str]) -> None:
    """``--out`` must be a folder we can create and write in (a local one; a URL is checked by its upload)."""
    text = str(out)
    if is_remote(text):
        return
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    if path.exists() and not path.is_dir():
        raise FetchSetupError(f"--out {path} is a file; give a folder (it is created if missing)")
    existing = path
    while not existing.exists():
        parent = existing.parent
        if parent == existing:
            break
        existing = parent
    if existing.exists() and not existing.is_dir():
        raise FetchSetupError(f"--out {path}: {existing} is a file, so the folder cannot be created")
    try:
        # Where the folder exists the honest test is to write (root ignores permission bits); otherwise ask
        # whether its nearest existing parent lets us create it (nothing is created before every check passed).
        if existing == path:
            fd, probe = tempfile.mkstemp(prefix=".avsets-write-test-", dir=path)
            os.close(fd)
            os.unlink(probe)
        elif not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise FetchSetupError(f"--out {path} is not writable ({e.strerror or e}); choose a folder you can "
                              "write in") from None
