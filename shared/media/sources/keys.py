"""Member name -> index keys: the one rule every source (folder, archive, Parquet, stream) matches rows by.

Keys (the prefixes :class:`avsets.media.media_index.MediaIndex` stores):

- ``ms:{ytid}_{start_ms}_{end_ms}``: a trimmed clip named by its segment (milliseconds or 3-decimal seconds);
- ``s:{ytid}_{start_s}``: VGGSound's ``{ytid}_{start:06d}`` (a trimmed 10-s clip);
- ``w:{ytid}``: a file named by the YouTube id alone: the segment itself or the *whole video* (cut at
  ``start``), decided per member from its duration unless ``id_named="video"`` states it;
- ``i:{ytid}``: a file named by the YouTube id alone, read as *the segment itself* (``media_offset`` 0), the
  AudioSet-mirror case, when ``id_named="segment"`` states it; otherwise a ``w`` file is decided per member
  from its duration (see :mod:`.clip_or_video`).

The row side of the same rule is :func:`row_keys`: the key each row of a table answers to under each
naming.  Random access (:mod:`avsets.media.resolve`, a vectorized ``index_in`` against the index) and archive order
(:class:`avsets.media.sources.row_join.RowIndex`, a dict per naming met) both match through it, so a member serves
the same rows whichever way it is read.

Names are matched at any depth (only the last path component counts).  A WebDataset member whose key holds
dots (``{key}.seg.flac``) is also tried by its ``__key__`` (the text before the first dot).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.coerce import clip_ids
from avsets.core.segments import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, parse_stem_fast, to_ms

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


#: How each naming places the row's segment in the file: ``trimmed`` (the file is the segment, offset 0),
#: ``whole`` (a whole video, cut at ``start``); ``w`` names are decided per member (:mod:`.clip_or_video`).
NAMING_RULES: dict[str, str] = {"ms": "trimmed", "s": "trimmed", "t": "trimmed", "i": "trimmed", "w": "whole"}


def clip_keys(table: pa.Table) -> pa.ChunkedArray:
    """``{youtube_id}_{start_ms}_{end_ms}`` per row, vectorized; the bare id where a row has no segment."""
    ytid = table.column("youtube_id")
    return pc.coalesce(clip_ids(ytid, table.column("start"), table.column("end")), ytid)


def row_keys(table: pa.Table, namings: set[str] | frozenset[str] | None = None) -> list[tuple[str, object]]:
    """``[(naming, key per row)]``: the text (without prefix) each row answers to under each naming, null
    where a row cannot have such a name.  ``namings`` limits the work to namings that occur.

    ``ms``: ``{ytid}_{start_ms}_{end_ms}``; ``s``: ``{ytid}_{start}`` for whole-second starts (VGGSound);
    ``t``: ``{ytid}_{start_ms}`` (AudioSet's ``{start:.3f}``); ``i``/``w``: the YouTube id alone.
    """
    cols = table.column_names
    if "youtube_id" not in cols:
        return []
    want = (lambda n: True) if namings is None else namings.__contains__
    ytid = table.column("youtube_id")
    have_seg = "start" in cols and "end" in cols
    out: list[tuple[str, object]] = []
    if have_seg and want("ms"):
        out.append(("ms", clip_keys(table)))
    if have_seg and want("s"):
        start_col = table.column("start").cast(pa.float64())
        whole = pc.equal(pc.floor(start_col), start_col)
        text = pc.binary_join_element_wise(ytid, start_col.cast(pa.int64(), safe=False).cast(pa.string()), "_")
        out.append(("s", pc.if_else(whole, text, None)))
    if "start" in cols and want("t"):
        start_ms = pc.round(pc.multiply(table.column("start").cast(pa.float64()), 1000.0))
        out.append(("t", pc.binary_join_element_wise(ytid, start_ms.cast(pa.int64(), safe=False).cast(pa.string()),
                                                     "_")))
    if want("i"):
        out.append(("i", ytid))
    if want("w"):
        out.append(("w", ytid))
    return out


def side_keys(data: object) -> list[str]:
    """Name stems a WebDataset ``.json`` side member gives its group (most specific first):
    ``{ytid}_{start_ms}_{end_ms}`` when it states a segment, then the YouTube id, or its ``id``; ``[]`` when it
    is not a JSON object naming a clip."""
    try:
        meta = json.loads(bytes(memoryview(data)).decode("utf-8"))  # type: ignore[arg-type]
    except (UnicodeDecodeError, ValueError, TypeError):
        return []
    if not isinstance(meta, dict):
        return []
    ytid = next((meta[k] for k in ("youtube_id", "video_id", "ytid", "YTID") if isinstance(meta.get(k), str)), None)
    if ytid is None:
        clip = meta.get("id")
        return [clip] if isinstance(clip, str) else []
    start = next((meta[k] for k in ("start", "start_seconds", "start_time") if meta.get(k) is not None), None)
    end = next((meta[k] for k in ("end", "end_seconds", "end_time") if meta.get(k) is not None), None)
    out = [ytid]
    try:
        if start is not None and end is not None:
            out.insert(0, f"{ytid}_{to_ms(float(start))}_{to_ms(float(end))}")
    except (TypeError, ValueError):
        pass
    return out
