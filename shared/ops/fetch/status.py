"""Turning what a server or yt-dlp said into one ledger status and a short reason.

The mapping is DESIGN's "Fetch decisions": 404/410 -> ``unavailable``; 403 -> ``private``,
``geo_blocked`` or ``age_restricted`` when the page says so, else ``error``; 429 -> ``rate_limited``;
5xx, timeouts, refused connections and truncated bodies -> ``error``.  yt-dlp reports YouTube's refusals
as text (no HTTP status), so the same vocabulary is matched in messages; the phrases below are YouTube's
and yt-dlp's own wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from avsets.core.errors import AvsetsError
from avsets.metadata.ledger import (
    AGE_RESTRICTED,
    ERROR,
    GEO_BLOCKED,
    PRIVATE,
    RATE_LIMITED,
    REMOVED,
    UNAVAILABLE,
)


class FetchSetupError(AvsetsError):
    """A usage or set-up problem (bad option, shard, template, output folder, missing tool): exit code 2.

    Defined here, at the bottom of the fetch modules, so that every one of them can raise it without
    importing the option checks (``checks`` imports the resolver, which imports ``ffmpeg``).
    """


@dataclass
class FetchFailure(AvsetsError):
    """A clip could not be fetched: its ledger ``status``, a one-line ``reason`` and, for 429, the server's
    ``Retry-After`` seconds.  ``transient=False`` marks failures a retry in the same run cannot fix (a
    segment that lies past the end of its video), so no time is spent backing off for them."""

    status: str
    reason: str
    http_status: int | None = None
    retry_after: float | None = None
    transient: bool = True

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"

    @property
    def refused(self) -> bool:
        """A refusal counts towards the politeness pause: 429, or a 403 that no page explains."""
        return self.status == RATE_LIMITED or (self.http_status == 403 and self.status == ERROR)


class Interrupted(AvsetsError):
    """The run is stopping (Ctrl-C): the clip in hand is abandoned, unrecorded, so the next run fetches it."""


# Ordered: the first match wins ("Video unavailable. This video has been removed by the uploader" is
# `removed`, not `unavailable`).
_MESSAGE_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), s)
    for p, s in (
        (r"confirm you.?re not a bot|too many requests|HTTP Error 429|\b429\b", RATE_LIMITED),
        (r"private video|video is private|members.only|join this channel", PRIVATE),
        (r"has been removed|account .* (has been )?terminated|removed for violating|copyright claim", REMOVED),
        (r"confirm your age|age.restricted|inappropriate for some users", AGE_RESTRICTED),
        (r"not (made this video )?available in your country|blocked it in your country|geo.?restrict"
         r"|not available from your location", GEO_BLOCKED),
        (r"video unavailable|video is unavailable|no longer available|does not exist|HTTP Error 404"
         r"|HTTP Error 410|\b404\b|Not Found", UNAVAILABLE),
    )
)


def classify_message(message: str) -> str | None:
    """A status for a yt-dlp / page message, or None when the text names no known refusal."""
    for pattern, status in _MESSAGE_RULES:
        if pattern.search(message):
            return status
    return None


def classify_http(status: int, page: str = "", *, retry_after: float | None = None, what: str = "") -> FetchFailure:
    """The failure for an HTTP error status, reading the error page for 403s."""
    prefix = f"{what}: " if what else ""
    if status in (404, 410):
        return FetchFailure(UNAVAILABLE, f"{prefix}HTTP {status}", status)
    if status == 429:
        return FetchFailure(RATE_LIMITED, f"{prefix}HTTP 429", status, retry_after)
    if status == 403:
        found = classify_message(page) if page else None
        if found in (PRIVATE, GEO_BLOCKED, AGE_RESTRICTED, REMOVED):
            return FetchFailure(found, f"{prefix}HTTP 403: {_snippet(page)}", status)
        return FetchFailure(ERROR, f"{prefix}HTTP 403 Forbidden", status)
    return FetchFailure(ERROR, f"{prefix}HTTP {status}", status)


def _snippet(page: str, limit: int = 120) -> str:
    """The page's visible text, shortened: enough for a human to see why."""
    text = re.sub(r"<[^>]+>", " ", page)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:limit]


_SERVER_RETURNED = re.compile(r"Server returned (\d{3}|4XX|5XX)")
_HTTP_ERROR = re.compile(r"HTTP error (\d{3})")


def http_status_from_ffmpeg(stderr: str) -> int | None:
    """The HTTP status ffmpeg saw, from its stderr (it exits 8 for every HTTP error and keeps the status
    only in text: "Server returned 404 Not Found", "HTTP error 429 Too Many Requests")."""
    m = _HTTP_ERROR.search(stderr)
    if m:
        return int(m.group(1))
    m = _SERVER_RETURNED.search(stderr)
    if m:
        code = m.group(1)
        if code == "5XX":
            return 500
        if code == "4XX":
            return 400
        return int(code)
    return None


_TRANSIENT = re.compile(r"Connection refused|Connection reset|timed out|Timeout|End of file|Invalid data found"
                        r"|Stream ends prematurely|partial file|Broken pipe|I/O error", re.IGNORECASE)


def describe_ffmpeg_failure(returncode: int, stderr: str) -> str:
    """One line for the ledger: the most telling stderr line, not 4 KB of log."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if _TRANSIENT.search(ln) or "Error" in ln or "error" in ln:
            return f"ffmpeg exit {returncode}: {ln[:200]}"
    return f"ffmpeg exit {returncode}: {lines[-1][:200] if lines else 'no output'}"
