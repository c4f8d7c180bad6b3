"""Member name -> index keys: the one rule every source (folder, archive, Parquet, stream) matches rows by.

Keys (the prefixes :class:`avsets.media_index.MediaIndex` stores):

- ``ms:{ytid}_{start_ms}_{end_ms}``: a trimmed clip named by its segment (milliseconds or 3-decimal seconds);
- ``s:{ytid}_{start_s}``: VGGSound's ``{ytid}_{start:06d}`` (a trimmed 10-s clip);
- ``w:{ytid}``: a file named by the YouTube id alone, read as the *whole video* (cut at ``start``);
- ``i:{ytid}``: a file named by the YouTube id alone, read as *the segment itself* (``media_offset`` 0), the
  AudioSet-mirror case; which of ``w``/``i`` applies is decided per source (see :mod:`.clip_or_video`).

Names are matched at any depth (only the last path component counts).  A WebDataset member whose key holds
dots (``{key}.seg.flac``) is also tried by its ``__key__`` (the text before the first dot).
"""

from __future__ import annotations

from ..segments import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, parse_stem_fast

_KINDS = {ext: "audio" for ext in AUDIO_EXTENSIONS} | {ext: "video" for ext in VIDEO_EXTENSIONS}


def member_kind(name: str) -> str | None:
    """``"audio"``/``"video"`` from a member's extension, or None for anything else (json, txt, cls...)."""
    base = name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return _KINDS.get(ext.lower()) if dot and stem else None


def keys_for_member(name: str, *, id_named: str = "video") -> tuple[str | None, list[str]]:
    """``(kind, keys)`` for a file or member name; ``(None, [])`` when it is not media.

    ``id_named``: ``"video"`` gives id-only names the ``w:`` key, ``"segment"`` the ``i:`` key.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    kind = _KINDS.get(ext.lower()) if dot else None
    if kind is None or not stem:
        return None, []
    parsed = parse_stem_fast(stem)
    if parsed is None and "." in stem:
        stem = stem.split(".", 1)[0]
        parsed = parse_stem_fast(stem)
    if parsed is None:
        return kind, []
    ytid, start, end = parsed
    if start is None:
        return kind, [("i:" if id_named == "segment" else "w:") + ytid]
    if end is None and "." in stem:  # AudioSet's one-time {ytid}_{start:.3f}: the start alone
        return kind, [f"t:{ytid}_{int(round(start * 1000))}"]
    if end is None:
        return kind, [f"s:{ytid}_{int(start)}"]
    return kind, [f"ms:{ytid}_{int(round(start * 1000))}_{int(round(end * 1000))}"]
