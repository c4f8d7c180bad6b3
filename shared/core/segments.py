"""Segments of YouTube videos, their stable clip keys, and the file names media mirrors use for them.

A YouTube id is 11 characters of ``[A-Za-z0-9_-]``: it may start with ``-`` and contain ``_``, so every
name is parsed from the right.  Times are kept as integer milliseconds inside keys so that float noise
(``30.000`` vs ``30``) never splits one clip into two keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MetadataError

YOUTUBE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")

AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "opus", "mp3", "m4a"})
VIDEO_EXTENSIONS = frozenset({"mp4", "mkv", "webm", "mov", "avi"})
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def is_valid_youtube_id(value: object) -> bool:
    """True for exactly 11 characters of ``[A-Za-z0-9_-]`` (a leading ``-`` is legal)."""
    return isinstance(value, str) and YOUTUBE_ID_RE.match(value) is not None


def validate_youtube_id(value: object) -> str:
    """Return ``value`` if it is a YouTube id, else raise ``ValueError`` naming it."""
    if not is_valid_youtube_id(value):
        raise ValueError(f"invalid YouTube id {value!r}: expected 11 characters of [A-Za-z0-9_-]")
    return value  # type: ignore[return-value]


def to_ms(seconds: float) -> int:
    """Seconds to integer milliseconds, rounded (``29.9999999`` -> ``30000``)."""
    return int(round(float(seconds) * 1000.0))


def clip_key(youtube_id: str, start: float, end: float) -> str:
    """The stable clip key ``{youtube_id}_{start_ms}_{end_ms}`` used as ``id`` and as the fetch file stem."""
    return f"{youtube_id}_{to_ms(start)}_{to_ms(end)}"


@dataclass(frozen=True, order=True)
class Segment:
    """``[start, end)`` seconds of one YouTube video."""

    youtube_id: str
    start: float
    end: float

    def __post_init__(self) -> None:
        validate_youtube_id(self.youtube_id)
        if not (0 <= self.start < self.end <= 1e9):  # NaN and inf fail too (they would crash clip_key)
            raise ValueError(f"invalid segment times start={self.start!r} end={self.end!r} for {self.youtube_id}")

    @property
    def key(self) -> str:
        return clip_key(self.youtube_id, self.start, self.end)

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_ms(self.end)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ParsedName:
    """What a media file name says about its content.

    ``start``/``end`` are None for a whole video (``{ytid}.{ext}``); ``end`` is None when the convention
    gives only a start (VGGSound's ``{ytid}_{start:06d}``).
    """

    youtube_id: str
    start: float | None
    end: float | None
    ext: str

    @property
    def trimmed(self) -> bool:
        return self.start is not None


def split_ext(name: str) -> tuple[str, str]:
    """``("stem", "ext")`` with the extension lower-cased; ``ext`` is ``""`` when there is none."""
    base = name.rsplit("/", 1)[-1]
    if "." not in base:
        return base, ""
    stem, ext = base.rsplit(".", 1)
    return stem, ext.lower()


def parse_media_name(name: str) -> ParsedName | None:
    """Parse a media file name (any folder prefix) into id and times, or None when it follows no convention.

    Known conventions (DESIGN.md): ``{ytid}_{start_ms}_{end_ms}``, ``{ytid}_{start:.3f}_{end:.3f}``,
    ``Y{ytid}_{start:.3f}_{end:.3f}``, ``{ytid}_{start:06d}``, ``{ytid}_{start:.3f}`` (AudioSet's one-time
    name) and ``{ytid}`` (whole video).
    """
    stem, ext = split_ext(name)
    if ext not in MEDIA_EXTENSIONS:
        return None
    parsed = parse_stem_fast(stem)
    return None if parsed is None else ParsedName(parsed[0], parsed[1], parsed[2], ext)


_FAST_NAME = re.compile(
    r"^(?P<id>[A-Za-z0-9_-]{11})(?:_(?P<a>\d+(?:\.\d+)?)(?:_(?P<b>\d+(?:\.\d+)?))?)?$"
)


def parse_stem_fast(stem: str) -> tuple[str, float | None, float | None] | None:
    """``(id, start, end)`` from a bare file stem with one regex match (the index calls it per file).

    An 11-character id is anchored at the start, so ids containing ``_`` never confuse the separators;
    times are all integer milliseconds or all 3-decimal seconds (``Y`` prefix allowed for the latter); a
    single time is whole seconds (VGGSound) or 3-decimal seconds (AudioSet's ``{ytid}_{start:.3f}``).
    """
    m = _FAST_NAME.match(stem)
    if m is None:
        if stem.startswith("Y"):
            m = _FAST_NAME.match(stem[1:])
            if m is None or m.group("b") is None or "." not in m.group("a") or "." not in m.group("b"):
                return None
        else:
            return None
    a, b = m.group("a"), m.group("b")
    if a is None:
        return m.group("id"), None, None
    if b is None:
        if "." in a and len(a.rsplit(".", 1)[1]) != 3:
            return None
        return m.group("id"), float(a), None  # VGGSound's {start:06d} or AudioSet's one-time {start:.3f}
    dotted_a, dotted_b = "." in a, "." in b
    if dotted_a != dotted_b:
        return None
    s, e = (float(a), float(b)) if dotted_a else (int(a) / 1000.0, int(b) / 1000.0)
    return (m.group("id"), s, e) if e > s else None


def media_kind(ext: str) -> str | None:
    """``"audio"``, ``"video"`` or None for an extension (without the dot)."""
    ext = ext.lower()
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def parse_seconds(value: object, *, file: object = None, line: int | None = None, field: str | None = None) -> float:
    """A time as float seconds from a number, a numeric string or ``H:MM:SS(.mmm)``; else a MetadataError."""
    if isinstance(value, bool):
        raise MetadataError(f"time {value!r} is not a number", file=file, line=line, field=field)
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if ":" in text:
                parts = text.split(":")
                if len(parts) > 3 or any(p.strip() == "" for p in parts):
                    raise ValueError(text)
                out = 0.0
                for part in parts:
                    out = out * 60.0 + float(part)
            else:
                out = float(text)
        except ValueError:
            raise MetadataError(f"time {value!r} is not a number or H:MM:SS.mmm", file=file, line=line,
                                field=field) from None
    else:
        raise MetadataError(f"time {value!r} is not a number", file=file, line=line, field=field)
    if not (out >= 0.0) or out == float("inf"):
        raise MetadataError(f"time {value!r} is negative or not finite", file=file, line=line, field=field)
    return out


def segment_of_key(key: str) -> Segment | None:
    """``{youtube_id}_{start_ms}_{end_ms}`` back to a segment (parsed from the right: ids may hold ``_``);
    ``None`` for anything else (a bare id, an AVMIT path)."""
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    try:
        return Segment(parts[0], int(parts[1]) / 1000.0, int(parts[2]) / 1000.0)
    except ValueError:
        return None
