"""AVSET-10M's clip keys alone (``id, youtube_id, start, end``): what ``avsets overlap`` joins on, at 10.9M rows.

The full parser (:func:`avsets.avset10m.metadata.read_file`) builds every column with ``pyarrow.json`` and
checks every field: about 70 ms of CPU per 25,000-row file, 31 s for the 436 files of 10.9M rows, most of it
spent on fields the id overlap never looks at (captions, pseudo labels, labels, AVC).  Here ``msgspec``
decodes each record into a three-field struct: the other fields are still tokenized (a malformed record
anywhere is still an error) but no value of theirs is built.  Measured on the generated release layout
(``bench/bench_leakage.py``): 0.38-0.44 of the full parser's CPU over 10.9M rows (13.7 vs 31.3 s).

The fast path only ever *accepts*: whatever it cannot take as it is (a layout other than a JSON array or
one-record-per-line JSON Lines, a missing or ambiguous key, a value of another type, a malformed row,
invalid UTF-8, a bad YouTube id or time) is handed to the full parser, so errors (file, line, field, message)
are exactly the full parser's and so are the rows of every file the full parser accepts.  What the key
reader does not check are the fields it does not read: a file whose only fault is an unknown label or a
non-numeric AVC gives its keys here, while ``load_dataset`` would stop on it (``avsets verify`` reports it).
"""

from __future__ import annotations

import functools
import json
from operator import attrgetter

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.avset10m.metadata import ALIASES, FIELD_NAMES, ReadOptions, read_bytes, read_file
from avsets.core.coerce import MAX_SECONDS, clip_ids, to_seconds
from avsets.core.segments import YOUTUBE_ID_RE
from avsets.metadata.jsonmeta import match_keys, sniff_layout
from avsets.metadata.readers import RowErrors

KEY_FIELDS = ("youtube_id", "start", "end")
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError, TypeError,
                  pa.ArrowException)


def read_keys(path: str) -> pa.Table:
    """One AVSET JSON file -> ``id, youtube_id, start, end``: the same rows as ``read_file`` gives for them.

    ``errors="raise"`` and no row filter (``min_avc``, ``sound_separation``) are assumed: the builder uses
    the full parser otherwise, since those need the other fields.
    """
    raw = read_bytes(path)
    table = fast_keys(raw)
    if table is None:  # anything unusual: the full parser decides (and names file and line when it fails)
        full = read_file(path, ReadOptions(with_text=False), RowErrors())
        table = full.select(["id", "youtube_id", "start", "end"])
    return table


def read_shard_keys(spec: tuple[str, str]) -> pa.Table:
    """One builder shard ``(path, part)``: its key columns (module level, so a worker process can run it)."""
    return read_keys(spec[0])


def fast_keys(raw: bytes) -> pa.Table | None:
    """The key columns of a clean file, or None when the full parser must judge it."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        layout = sniff_layout(raw, FIELD_NAMES)
        if layout not in ("lines", "array"):
            return None
        names = _first_record_keys(raw, layout)
        if names is None:
            return None
        keys = match_keys(names, ALIASES, file="")
        if not all(k in keys for k in KEY_FIELDS):
            return None
        decoder = _decoder(tuple(keys[k] for k in KEY_FIELDS), layout)
        rows = decoder.decode_lines(raw) if layout == "lines" else decoder.decode(raw)
        if not raw.isascii():  # msgspec skips the unread strings without checking their UTF-8
            raw.decode("utf-8")
        if not rows:
            return None
        ytid = pa.array(list(map(attrgetter("y"), rows)), pa.string())
        start, bad_start = _seconds(_times(list(map(attrgetter("s"), rows))))
        end, bad_end = _seconds(_times(list(map(attrgetter("e"), rows))))
    except _DECODE_ERRORS:
        return None
    bad = pc.or_(pc.or_(bad_start, bad_end), pc.fill_null(pc.less_equal(end, start), True))
    bad = pc.or_(bad, pc.invert(pc.match_substring_regex(ytid, YOUTUBE_ID_RE.pattern)))
    if pc.any(bad).as_py():
        return None
    return pa.table({"id": clip_ids(ytid, start, end), "youtube_id": ytid, "start": start, "end": end})


def _first_record_keys(raw: bytes, layout: str) -> list[str] | None:
    """The keys of the file's first record (the full parser's key matching sees the same names)."""
    text = raw[:1 << 16].decode("utf-8", "replace")
    i = text.find("{", text.find("[") + 1 if layout == "array" else 0)
    if i == -1:
        return None
    try:
        first, _ = json.JSONDecoder().raw_decode(text, i)
    except ValueError:
        return None
    return list(first) if isinstance(first, dict) else None


@functools.lru_cache(maxsize=16)
def _decoder(names: tuple[str, str, str], layout: str) -> msgspec.json.Decoder:
    """A decoder of records into (youtube id, start, end) under the file's own key names."""
    struct = msgspec.defstruct("AvsetKeys", [("y", str), ("s", str | float), ("e", str | float)],
                               rename=dict(zip(("y", "s", "e"), names, strict=True)))
    return msgspec.json.Decoder(struct if layout == "lines" else list[struct])


def _times(values: list) -> pa.Array:
    """Times as Arrow: all text, all numbers, or (a mixed column, as the full parser's fallback makes it) text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if isinstance(v, str) else repr(v) for v in values], pa.string())


def _seconds(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """:func:`avsets.core.coerce.to_seconds`, with a NumPy shortcut for a column of clock strings that all share
    one fixed shape (``0:03:04.635``: Panda-70M's times, the 10M part's every row), 6x less CPU than its
    pyarrow string path and bit-identical: ``int / 10**k`` is the correctly rounded double that parsing the
    decimal gives, and ``h * 3600 + m * 60 + s`` is summed in the same order."""
    fast = _fixed_clock_seconds(values)
    if fast is None:
        return to_seconds(values)
    return pa.array(fast), pa.array(np.zeros(len(fast), dtype=bool))


def _fixed_clock_seconds(values: pa.Array) -> np.ndarray | None:
    """Seconds of ``H:MM:SS[.fff]`` strings of one length with ':' and '.' at the same places, else None."""
    if not pa.types.is_string(values.type) or values.null_count or len(values) == 0:
        return None
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + len(values) + 1]
    width = int(offsets[1] - offsets[0])
    if width == 0 or width > 24 or not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, width)
    first = bytes(data[0])
    colons = [i for i, c in enumerate(first) if c == ord(":")]
    dot = first.rfind(b".")
    if len(colons) != 2 or not 0 < colons[0] < colons[1] - 1 or colons[0] > 9 or colons[1] + 1 >= width:
        return None
    if dot != -1 and not colons[1] + 2 < dot < width - 1:
        return None
    marks = set(colons) | ({dot} if dot != -1 else set())
    digit_cols = [i for i in range(width) if i not in marks]
    digits = data[:, digit_cols].astype(np.int64) - ord("0")
    if (digits < 0).any() or (digits > 9).any():
        return None
    if not all((data[:, i] == first[i]).all() for i in marks):
        return None

    def number(cols: range) -> np.ndarray:
        out = np.zeros(len(data), dtype=np.int64)
        for i in cols:
            out = out * 10 + digits[:, digit_cols.index(i)]
        return out

    h = number(range(0, colons[0]))
    m = number(range(colons[0] + 1, colons[1]))
    sec_cols = [i for i in range(colons[1] + 1, width) if i != dot]
    s = number(sec_cols) / float(10 ** (width - dot - 1 if dot != -1 else 0))
    out = (h * 3600.0 + m * 60.0) + s
    if (out > MAX_SECONDS).any():
        return None
    return out

