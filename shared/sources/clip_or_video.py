"""Clip or whole video: what a file named by the YouTube id alone holds.

In AudioSet mirrors ``{ytid}.flac`` is the 10-s segment itself; in a folder of downloads ``{ytid}.mp4`` is
the whole video.  The rule, per source (a folder or one archive):

* ``id_named="segment"``: such files are the segment (``media_offset`` 0);
* ``id_named="video"``: such files are whole videos, cut at the row's ``start`` (``media_offset`` = start);
* ``id_named="auto"`` (default): probe the duration of up to three of them (first, middle, last); when
  **every** probed file is no longer than the segment (10 s) plus ``TOLERANCE`` (0.5 s) they are segments,
  otherwise whole videos.  A video no longer than 10.5 s can only hold a segment starting near 0, so
  reading it as the segment is right either way.  Without a readable probe the answer is "video" (the
  behaviour before sources existed).

A wrong guess cannot silently shift audio by 30 s: read as a whole video, a 10-s segment file asked for
``start=30`` fails with "the segment starts after the end of the file" (a counted MediaError); a stated
``id_named`` that the probes contradict is logged as a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import BinaryIO

from .access import open_media

logger = logging.getLogger("avsets")

SEGMENT_SECONDS = 10.0
TOLERANCE = 0.5
PROBES = 3
ID_NAMED = ("auto", "segment", "video")


def probe_duration(f: BinaryIO) -> float | None:
    """Seconds of media in a binary file from its header (soundfile, else PyAV); None when unreadable."""
    import soundfile as sf

    try:
        info = sf.info(f)
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - libsndfile says "unknown format" for mp4: PyAV below
        pass
    import av

    try:
        f.seek(0)
        with av.open(f, metadata_errors="ignore") as c:
            if c.duration:
                return c.duration / 1_000_000
            for s in c.streams:
                if s.duration and s.time_base:
                    return float(s.duration * s.time_base)
    except Exception:  # noqa: BLE001 - a damaged probe file just does not vote
        return None
    return None


def holds_segment(duration: float | None, segment_seconds: float = SEGMENT_SECONDS) -> bool:
    """The one clip-or-video rule: a file named by id alone holds the segment itself when it lasts at most
    the segment plus ``TOLERANCE``; unknown durations do not (read as whole videos).  Used per mirror by the
    index (:func:`decide`) and per member, from bytes already in hand, by archive-order streaming."""
    return duration is not None and duration <= segment_seconds + TOLERANCE


def pick_probes(items: Sequence) -> list:
    """First, middle and last of a listing: three files that are unlikely to share one odd origin."""
    if len(items) <= PROBES:
        return list(items)
    return [items[0], items[len(items) // 2], items[-1]]


def decide(durations: Sequence[float | None], option: str, where: str, *,
           segment_seconds: float = SEGMENT_SECONDS) -> str:
    """``"segment"`` or ``"video"`` for one source's id-named files (see the module doc for the rule)."""
    if option not in ID_NAMED:
        raise ValueError(f"id_named must be one of {ID_NAMED}, not {option!r}")
    known = [d for d in durations if d is not None]
    limit = segment_seconds + TOLERANCE
    looks = None if not known else ("segment" if holds_segment(max(known), segment_seconds) else "video")
    if option != "auto":
        if looks is not None and looks != option:
            logger.warning("%s: id_named=%r, but files named by id alone probe at %s s (segment is %.1f s); "
                           "if they are %ss, pass id_named=%r", where, option,
                           ", ".join(f"{d:.1f}" for d in known), segment_seconds,
                           "segment" if looks == "segment" else "whole video", looks)
        return option
    verdict = looks or "video"
    if known and min(known) <= limit < max(known):
        logger.warning("%s: files named by id alone probe at %s s, some within the %.1f-s segment and some "
                       "longer; all are read as whole videos (cut at start). If some hold the segment itself, "
                       "state id_named='segment' (or keep such files in a source of their own)", where,
                       ", ".join(f"{d:.1f}" for d in known), segment_seconds)
    elif known:
        logger.info("%s: files named by id alone probe at %s s: read as %s", where,
                    ", ".join(f"{d:.1f}" for d in known), "the segment itself" if verdict == "segment"
                    else "whole videos cut at the segment start")
    return verdict


def probe_many(paths: Sequence[str]) -> list[float | None]:
    """Durations of the given media paths, reading headers only where the source allows (members are read
    whole: one ranged request each); a read failure is a None vote."""
    out = []
    for p in paths:
        try:
            with open_media(p) as f:
                out.append(probe_duration(f))
        except Exception:  # noqa: BLE001 - a probe never stops indexing
            out.append(None)
    return out
