"""Clip or whole video: what a file named by the YouTube id alone holds, decided once per member.

In AudioSet mirrors ``{ytid}.flac`` is the 10-s segment itself; in a folder of downloads ``{ytid}.mp4`` is
the whole video; a mirror patched with fresh downloads holds both.  So the question belongs to each
member, and both halves of a source answer it the same way, with the same inputs:

* ``id_named="segment"``: such files are the segment (``media_offset`` 0);
* ``id_named="video"``: such files are whole videos, cut at the row's ``start`` (``media_offset`` = start);
* ``id_named="auto"`` (default): :func:`segment_offset` - the member holds the row's segment itself when it
  lasts at most the segment (``end - start``) plus ``TOLERANCE`` (0.5 s, :func:`holds_segment`), else it is
  a whole video.  A video no longer than the segment plus 0.5 s can only hold a segment starting near 0,
  so reading it as the segment is right either way; an unreadable duration reads as a whole video.

The duration is :func:`media_seconds` of the member's header.  Archive order (streaming, ``unpack``) has
the bytes in hand; random access (:class:`avsets.media.media_index.MediaIndex`) probes every id-named member once
when it indexes the source (:func:`known_seconds`) and keeps the durations with the index: an archive's in
its cached index, a folder's in a small cache file keyed by each file's name, size and mtime, so a warm
load reads no media.  The resolver then applies :func:`segment_offset` per row, as streaming does.

A wrong reading cannot silently shift audio by 30 s: read as a whole video, a 10-s segment file asked for
``start=30`` fails with "the segment starts after the end of the file" (a counted MediaError).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import av
import soundfile as sf

from .access import SourceIndex, cache_dir, open_media_part
from .ranged import is_local
from .records import Member

logger = logging.getLogger("avsets")

SEGMENT_SECONDS = 10.0
TOLERANCE = 0.5
ID_NAMED = ("auto", "segment", "video")
#: Probes in flight when a remote source's id-named members are measured (each is one ranged read).
REMOTE_PROBES = 16


def holds_segment(duration: float | None, segment_seconds: float = SEGMENT_SECONDS) -> bool:
    """The one clip-or-video rule: a file named by id alone holds the segment itself when it lasts at most
    the segment plus ``TOLERANCE``; unknown durations do not (read as whole videos)."""
    return duration is not None and duration <= segment_seconds + TOLERANCE


def segment_offset(seconds: float | None, start: float | None, end: float | None,
                   assume_trimmed: bool | None = None) -> float:
    """Where a row's segment ``[start, end)`` starts inside a member named by id alone that lasts
    ``seconds``: 0 when the member is the segment, ``start`` when it is a whole video.  ``assume_trimmed``
    (``id_named`` stated: True for ``"segment"``, False for ``"video"``) overrides the durations."""
    if start is None:
        return 0.0
    if assume_trimmed is not None:
        return 0.0 if assume_trimmed else float(start)
    if end is None:
        return float(start)
    return 0.0 if holds_segment(seconds, end - start) else float(start)


def stated(id_named: str | None) -> bool | None:
    """``id_named`` as :func:`segment_offset` takes it (None: decide from durations)."""
    if id_named is not None and id_named not in ID_NAMED:
        raise ValueError(f"id_named must be one of {ID_NAMED}, not {id_named!r}")
    return {"segment": True, "video": False}.get(id_named or "auto")


def _flac_seconds(head: bytes) -> float | None:
    """A FLAC's length from its STREAMINFO block (bytes 8-42): no decoder, microseconds per member."""
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    bits = int.from_bytes(head[18:26], "big")  # 20 bits rate, 3 channels, 5 bits per sample, 36 samples
    rate, total = bits >> 44, bits & ((1 << 36) - 1)
    return total / rate if rate and total else None


def media_seconds(f: BinaryIO | bytes, ext: str) -> float | None:
    """Seconds of media in a file or a member's bytes, from its header: FLAC's STREAMINFO, else soundfile
    (WAV, FLAC, OGG), else PyAV (the container's duration, else its longest stream); None when unreadable.
    The one duration both halves of a source decide by."""
    if not hasattr(f, "read"):  # bytes in hand (``bytes`` or a zero-copy ``pyarrow.Buffer``)
        view = memoryview(f)  # type: ignore[arg-type]
        if ext == "flac":  # the common case: 42 bytes of header, no copy of the member
            seconds = _flac_seconds(bytes(view[:42]))
            if seconds is not None:
                return seconds
        f = io.BytesIO(view)
    try:
        if ext == "flac":
            seconds = _flac_seconds(f.read(42))
            if seconds is not None:
                return seconds
            f.seek(0)
        if ext in ("flac", "wav", "ogg"):
            try:
                info = sf.info(f)
                if info.samplerate > 0 and info.frames > 0:
                    return float(info.frames) / float(info.samplerate)
            except Exception:  # noqa: BLE001 - libsndfile refuses some files PyAV reads: PyAV below
                pass
            f.seek(0)
        with av.open(f, metadata_errors="ignore") as c:
            if c.duration:
                return c.duration / 1_000_000
            best = 0.0
            for s in c.streams:
                if s.duration is not None and s.time_base is not None:
                    best = max(best, float(s.duration * s.time_base))
            return best or None
    except Exception:  # noqa: BLE001 - any decoder failure means "unknown"; decoding reports it by name
        return None


def _probe(path: str, ext: str) -> float | None:
    try:
        with open_media_part(path) as f:
            return media_seconds(f, ext)
    except Exception:  # noqa: BLE001 - a probe never stops indexing: an unreadable member is "unknown"
        return None


def probe_paths(paths: Sequence[str], exts: Sequence[str]) -> list[float | None]:
    """Durations of media paths (files, URLs, member locators), in order: one after the other when local,
    ``REMOTE_PROBES`` at a time otherwise (each remote probe waits on the network).  A member stored as it
    is (tar, stored zip) is read by ranges, only as far as its header (:func:`.access.open_media_part`)."""
    if not paths:
        return []
    if all(is_local(p) for p in paths):
        return [_probe(p, e) for p, e in zip(paths, exts, strict=True)]
    with ThreadPoolExecutor(min(REMOTE_PROBES, len(paths)), thread_name_prefix="avsets-probe") as pool:
        return list(pool.map(_probe, paths, exts))


# ------------------------------------------------------------------------------------------ random access

_FOLDER_LOCK = threading.Lock()


def _folder_cache_path(url: str) -> str:
    return os.path.join(cache_dir(), f"seconds-{hashlib.sha256(url.encode()).hexdigest()[:32]}.json")


def known_seconds(si: SourceIndex, members: Sequence[Member], mtimes: dict[str, float] | None = None
                  ) -> dict[str, float | None]:
    """``{locator: seconds}`` for a source's members named by id alone, each probed once and remembered:
    an archive's durations are saved with its cached index (``extra["seconds"]``, keyed by member name); a
    folder's in ``seconds-<url hash>.json`` in the source cache, keyed by name with the file's size and
    ``mtimes`` (a file replaced since is probed again)."""
    folder = mtimes is not None
    if folder:
        path = _folder_cache_path(si.source.url)
        try:
            with open(path, encoding="utf-8") as fh:
                cached = json.load(fh)
        except (OSError, ValueError):
            cached = {}
        stamp = {m.relpath: [m.size, (mtimes or {}).get(m.relpath, 0.0)] for m in members}
        known = {r: v[2] for r, v in cached.items() if isinstance(v, list) and len(v) == 3 and v[:2] == stamp.get(r)}
    else:
        known = dict(si.extra.get("seconds") or {})
    todo = [m for m in members if m.relpath not in known]
    if todo:
        for m, s in zip(todo, probe_paths([m.locator for m in todo], [m.ext for m in todo]), strict=True):
            known[m.relpath] = s
        if folder:
            _write_folder_cache(path, {r: [*stamp[r], known[r]] for r in stamp})
        elif si.cache_path:
            si.extra["seconds"] = known
            si.save_extra()
    return {m.locator: known.get(m.relpath) for m in members}


def _write_folder_cache(path: str, entries: dict) -> None:
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _FOLDER_LOCK, open(tmp, "w", encoding="utf-8") as fh:
            json.dump(entries, fh)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache costs a probe next time, nothing else
        logger.warning("avsets: cannot cache probed durations in %s (%s)", path, exc)
