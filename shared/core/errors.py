"""One error vocabulary for every corpus.

Users see these instead of a traceback from deep inside ``datasets``, pyarrow or a decoder.  Each error
says *where* (file and line, or clip id and path) and, where there is one, *what to do*.
"""

from __future__ import annotations

import os
from typing import Any

from .secrets import redact_text, redact_url

MAX_REASON = 600  # a 100 kB field quoted in full makes an error (and every log line) unreadable


def _shorten(text: str) -> str:
    """``text`` cut in the middle when it is longer than ``MAX_REASON`` characters (the end usually says why)."""
    if len(text) <= MAX_REASON:
        return text
    return f"{text[:400]} ...[{len(text) - 550} characters]... {text[-150:]}"


class AvsetsError(Exception):
    """Base class of every error avsets raises on purpose."""


class MetadataError(AvsetsError, ValueError):
    """A metadata file (CSV, JSON, TXT) holds something avsets cannot turn into a row.

    It names the file and the 1-based line (or row/field) so the user can open the file and look.  A
    ``ValueError`` subclass so that callers catching ``ValueError`` for bad input keep working.
    """

    def __init__(self, message: str, *, file: Any = None, line: int | None = None, field: str | None = None):
        message = _shorten(message)
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.reason = message

    @property
    def short(self) -> str:
        """Where and what, without the advice (for lists of skipped rows)."""
        return super().__str__()

    @property
    def hint(self) -> str:
        """What the user can do about it (appended to the message)."""
        if "errors=" in self.reason:
            return ""
        if self.line is not None:
            return "Fix or delete that line, or pass errors='skip' to skip malformed rows (they are counted and reported)."
        return "Check that this is the complete, unmodified upstream file (download it again if unsure)."

    def __str__(self) -> str:  # the advice lives here, not in args, so copies and pickles never repeat it
        hint = self.hint
        return f"{self.short}. {hint}" if hint else self.short


class MediaError(AvsetsError):
    """A media file is missing, empty, corrupt or cannot be cut to its segment."""

    def __init__(self, message: str, *, clip_id: str | None = None, path: str | None = None):
        self.clip_id = clip_id
        self.path = path
        where = []
        if clip_id is not None:
            where.append(f"clip {clip_id}")
        if path is not None:
            where.append(f"({redact_text(path)})")  # a presigned or password URL never reaches a message
        prefix = f"{' '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.reason = message


class MissingStreamError(MediaError):
    """A readable file that has no stream of the asked kind (a video without audio, an audio-only mp4).

    The row keeps its other modality: DESIGN's "a row has media when at least one requested modality
    resolves".
    """


class MemberTooLargeError(MediaError):
    """An archive member inflates past the size its archive declares (a zip bomb, or damage).

    Reading stops at the declared size: memory per member is bounded by what the archive says, and the
    member is named so one bad member costs that member only.
    """


class MissingMediaError(MediaError):
    """``on_missing="error"`` and a row's media is absent."""


class UnsafePathError(AvsetsError, ValueError):
    """A path built from metadata or a user template would leave its root (``..``, absolute, NUL...)."""


class ManualDownloadRequired(AvsetsError, FileNotFoundError):
    """The upstream files cannot be downloaded automatically (Google Drive, access forms).

    The message says exactly which files to get and where to put them.
    """


def scrub_secrets(text: str, *secrets: str | None) -> str:
    """``text`` with the Hub token (``secrets``, ``HF_TOKEN``, the ``hf auth login`` store) replaced by ``***``.

    For messages built from a third-party exception, whose text may echo request headers.
    """
    found = [s for s in secrets if s]
    found += [os.environ.get(k) for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if os.environ.get(k)]
    try:
        from huggingface_hub import get_token

        found.append(get_token())
    except Exception:  # noqa: BLE001 - no hub client or no readable token store: nothing more to hide
        pass
    for secret in sorted({s for s in found if s and len(s) >= 8}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class MediaSourceError(AvsetsError):
    """A media source (zip, tar, Parquet mirror) cannot be read as a whole: truncated, corrupt, wrong kind.

    Names the source; a single bad member is a :class:`MediaError` of that member instead.
    """

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        self.reason = message
        super().__init__(f"{redact_url(source)}: {message}" if source else message)


class StreamingOnlySourceError(MediaSourceError):
    """A ``.tar.gz``/``.tgz`` source used map-style: gzip cannot be read at random."""


class MissingDependencyError(AvsetsError, ImportError):
    """A package a feature needs is not installed (an fsspec backend for ``https://``, ``s3://``...).

    Raised where the need is first known, naming the package and the install command, so a missing client
    library is never mistaken for missing media ("N rows have no media").
    """


class NoSpaceError(AvsetsError, OSError):
    """The disk filled up while writing clips or the ledger: the run stops (a rerun resumes), the ledger stays
    valid (SQLite rolled the unfinished transaction back), and the message says "no space left"."""
