"""What must leave a published copy: a takedown list, the final failures of fetch ledgers, and ``takedowns.csv``.

A takedown list is a CSV of clip ids (``{youtube_id}_{start_ms}_{end_ms}``) or YouTube ids (or YouTube
URLs), one per line, with optional ``date`` and ``reason`` columns; a header row is optional. A YouTube id
takes every clip of that video. A newer fetch ledger contributes the clips (and videos) whose latest
status is ``removed``, ``private`` or ``unavailable``: the video itself is gone or closed, so every clip of
it goes, not only the ones that ledger tried.

``takedowns.csv`` is published beside the data: one row per clip removed from the copy, with the config
and split it was in, the date and the reason, so users can see why their row counts changed.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone

from avsets.core.csvsafe import csv_writer
from avsets.core.errors import MetadataError
from avsets.metadata.ledger import read_ledger

TAKEDOWNS_FILE = "takedowns.csv"
#: ``listed`` is the key the takedown named: the clip id, or the YouTube id when the whole video goes (a later
#: export leaves out every clip of that video, also ones whose media arrives after the prune)
TAKEDOWNS_COLUMNS = ("id", "youtube_id", "config", "split", "date", "reason", "listed")
#: ledger statuses that mean the video is gone or closed for good (the ledger's ``FINAL_FAILURES``)
GONE_STATUSES = ("removed", "private", "unavailable")
_ID_HEADERS = ("id", "clip_id", "youtube_id", "ytid", "video_id", "key")
_HEADERS = {*_ID_HEADERS, "date", "reason"}
_YT_URL = re.compile(r"(?:[?&]v=|youtu\.be/|/shorts/|/embed/)([A-Za-z0-9_-]{11})")


class TakedownListError(MetadataError):
    """A takedown list (or a published ``takedowns.csv``) that cannot be read; names the file and line.

    Its advice is about takedown lists, not the metadata loader's (no ``errors='skip'``, no "upstream file").
    """

    @property
    def hint(self) -> str:
        if self.line is not None:
            return ("Fix that line: a clip id or YouTube id (or URL), then optionally a date (YYYY-MM-DD) and a "
                    "reason")
        return "Give a CSV of clip ids or YouTube ids, saved as UTF-8 text"


@dataclass(frozen=True)
class Takedown:
    """One listed clip id or YouTube id, when it was taken down and why."""

    key: str
    date: str  # YYYY-MM-DD
    reason: str


@dataclass(frozen=True)
class Removed:
    """One row removed from a published copy (a row of ``takedowns.csv``)."""

    id: str
    youtube_id: str
    config: str
    split: str
    date: str
    reason: str
    listed: str = ""  # the listed key: ``id`` or ``youtube_id`` (empty in files written before the column)

    @property
    def whole_video(self) -> bool:
        """The takedown named the YouTube id: every clip of the video is gone, present and future."""
        return bool(self.youtube_id) and self.listed == self.youtube_id


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def _clean(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters (ledger reasons can be whole error pages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _date(value: str, path: str, line: int) -> str:
    value = value.strip()
    if not value:
        return today()
    try:
        return (date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value).date()).isoformat()
    except ValueError:
        raise TakedownListError(f"date {value!r} is not an ISO date (YYYY-MM-DD)", file=path, line=line,
                                field="date") from None


def _key(value: str) -> str:
    value = value.strip()
    m = _YT_URL.search(value) if "/" in value else None
    return m.group(1) if m else value


def read_takedown_list(path: str | os.PathLike[str], *, reason: str = "takedown request") -> dict[str, Takedown]:
    """Parse a takedown list (see the module doc) into ``{key: Takedown}``; bad lines raise ``MetadataError``."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TakedownListError(f"cannot read the takedown list: {e.strerror or e}", file=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TakedownListError(f"not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); save the list as "
                                "UTF-8 CSV", file=path, line=line) from None
    try:
        rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text)), start=1)
                if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    except csv.Error as e:  # a NUL byte, an unclosed quote at the end
        raise TakedownListError(f"not a readable CSV ({e})", file=path) from None
    if not rows:
        return {}
    head = [c.strip().lower() for c in rows[0][1]]
    if any(c in _HEADERS for c in head):
        id_col = next((head.index(h) for h in _ID_HEADERS if h in head), None)
        if id_col is None:
            raise TakedownListError(f"the header names no id column (one of {', '.join(_ID_HEADERS)})",
                                    file=path, line=rows[0][0])
        date_col = head.index("date") if "date" in head else None
        reason_col = head.index("reason") if "reason" in head else None
        rows = rows[1:]
    else:
        id_col, date_col, reason_col = 0, 1, 2
    out: dict[str, Takedown] = {}
    for line, row in rows:
        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i] if i is not None and i < len(row) else ""

        key = _key(cell(id_col))
        if not key:
            raise TakedownListError("empty id", file=path, line=line, field="id")
        out[key] = Takedown(key, _date(cell(date_col), path, line), _clean(cell(reason_col)) or reason)
    return out


def ledger_takedowns(ledgers: Iterable[str | os.PathLike[str]]) -> dict[str, Takedown]:
    """Clip ids and YouTube ids whose latest status in ``ledgers`` (files, fetched folders or URLs) is gone.

    The latest row per clip, and per video, wins across ledgers (by ``fetched_at``), so a clip fetched again
    successfully in a newer run is not taken down by an older failure.
    """
    latest_clip: dict[str, tuple[str, str, str | None]] = {}
    latest_video: dict[str, tuple[str, str, str | None]] = {}
    for led in ledgers:
        for r in read_ledger(led):
            entry = (r.fetched_at or "", r.status, r.reason)
            if r.id not in latest_clip or entry[0] >= latest_clip[r.id][0]:
                latest_clip[r.id] = entry
            if r.youtube_id and (r.youtube_id not in latest_video or entry[0] >= latest_video[r.youtube_id][0]):
                latest_video[r.youtube_id] = entry
    out: dict[str, Takedown] = {}
    for table in (latest_clip, latest_video):
        for key, (when, status, why) in sorted(table.items()):
            if status in GONE_STATUSES:
                day = when[:10] if len(when) >= 10 else today()
                out[key] = Takedown(key, day, _clean(f"{status}: {why}" if why else status))
    return out


def read_takedowns_csv(data: bytes | None) -> list[Removed]:
    """The rows of a published ``takedowns.csv`` (``None``: no file yet)."""
    if not data:
        return []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TakedownListError(f"not UTF-8 text (offset {e.start}): was it saved by another program? Save it as "
                                "UTF-8 CSV", file=TAKEDOWNS_FILE) from None
    reader = csv.DictReader(io.StringIO(text))
    return [Removed(*(r.get(c) or "" for c in TAKEDOWNS_COLUMNS)) for r in reader]


def write_takedowns_csv(rows: Iterable[Removed]) -> bytes:
    """``takedowns.csv`` text: header, then one row per removed clip, in the order given."""
    buf = io.StringIO()
    w = csv_writer(buf, lineterminator="\n")
    w.writerow(TAKEDOWNS_COLUMNS)
    for r in rows:
        w.writerow([r.id, r.youtube_id, r.config, r.split, r.date, r.reason, r.listed])
    return buf.getvalue().encode("utf-8")


def excluded_keys(data: bytes | None) -> frozenset[str]:
    """What a (re-)export into a folder must leave out, from its ``takedowns.csv``: every clip id listed, and
    the YouTube id of each whole-video takedown (so a clip of that video whose media arrives later stays out)."""
    rows = read_takedowns_csv(data)
    return frozenset({r.id for r in rows if r.id} | {r.youtube_id for r in rows if r.whole_video})
