"""JSON metadata files of records in whatever container they come, read into Arrow without a Python loop.

Accepted containers (the AVSET-10M release does not document its own, so we take all the common ones):

* ``array``: ``[{...}, {...}]`` (also pretty-printed) - parsed by ``pyarrow.json`` after wrapping it as
  ``{"r": [...]}``;
* ``lines``: JSON Lines (or concatenated pretty-printed objects) - ``pyarrow.json`` directly;
* ``keyed``: ``{"<id>": {...}, ...}`` (a dict keyed by id; pandas ``orient="index"``) - the keys are cut
  out of the bytes and the rest read as an array, the keys kept as a column;
* ``columns``: ``{"col": [v, ...], ...}`` (pandas ``orient="list"``-style) - one row of lists, flattened;
* ``columns_dict``: ``{"col": {"<row>": v, ...}, ...}`` (pandas' default ``orient="columns"``) - the inner
  dicts are rewritten to lists in the bytes, then read as ``columns``.

The rewrites need to know which bytes are structure and which are inside strings.  :func:`structure`
finds that with numpy over the whole buffer (quotes, escape runs, nesting depth), so memory and time stay
linear in one file.  Values whose types change between rows (``"30.000"`` in one row, ``30`` in the next)
make ``pyarrow.json`` refuse; such files fall back to the standard ``json`` module, still one file at a
time.  A truncated or malformed file is a :class:`MetadataError` naming the file and line.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from .errors import MetadataError

LAYOUTS = ("array", "lines", "keyed", "columns", "columns_dict")
KEY_COLUMN = "__key__"  # the dict key of a ``keyed`` file's rows

_LUT = np.zeros(256, dtype=bool)
_LUT[[ord(c) for c in "{}[],:"]] = True
_OPEN = (ord("{"), ord("["))
_CLOSE = (ord("}"), ord("]"))


def normalize_key(key: str) -> str:
    """``"Flag (Sound Separation)"``, ``"flag_sound-separation"`` -> ``"flagsoundseparation"``."""
    return re.sub(r"[^0-9a-z]", "", key.lower())


def match_keys(columns: list[str], aliases: dict[str, tuple[str, ...]], *, file: object) -> dict[str, str]:
    """``{canonical name: the file's key}`` for keys whose normalized form is one of a field's aliases.

    Two keys that mean the same field (``"Start Time"`` and ``"start_time"``) are ambiguous: an error.
    """
    out: dict[str, str] = {}
    lookup = {alias: canon for canon, names in aliases.items() for alias in names}
    for col in columns:
        canon = lookup.get(normalize_key(col))
        if canon is None:
            continue
        if canon in out:
            raise MetadataError(f"keys {out[canon]!r} and {col!r} both name the field {canon!r}", file=file,
                                field=col)
        out[canon] = col
    return out


# -- structure of a JSON buffer ---------------------------------------------------------------------------
@dataclass
class Structure:
    """Structural characters outside strings: position, byte, nesting depth before it; real quotes."""

    pos: np.ndarray
    char: np.ndarray
    before: np.ndarray
    quotes: np.ndarray

    @property
    def after(self) -> np.ndarray:
        delta = np.isin(self.char, _OPEN).astype(np.int32) - np.isin(self.char, _CLOSE).astype(np.int32)
        return self.before + delta


def structure(buf: np.ndarray) -> Structure:
    """Vectorized lexer: which ``{}[],:`` bytes are structure (not inside a string), and at what depth."""
    quotes = np.flatnonzero(buf == 34)
    backslashes = np.flatnonzero(buf == 92)
    if quotes.size and backslashes.size:
        brk = np.flatnonzero(np.diff(backslashes) != 1)
        run_start = backslashes[np.r_[0, brk + 1]]
        run_end = backslashes[np.r_[brk, backslashes.size - 1]]
        k = np.minimum(np.searchsorted(run_end, quotes - 1), run_end.size - 1)
        escaped = (run_end[k] == quotes - 1) & ((run_end[k] - run_start[k] + 1) % 2 == 1)
        quotes = quotes[~escaped]
    cand = np.flatnonzero(_LUT[buf])
    outside = (np.searchsorted(quotes, cand) % 2) == 0
    pos = cand[outside]
    char = buf[pos]
    delta = np.isin(char, _OPEN).astype(np.int32) - np.isin(char, _CLOSE).astype(np.int32)
    after = np.cumsum(delta, dtype=np.int32)
    return Structure(pos=pos, char=char, before=after - delta, quotes=quotes)


def _range_mask(n: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Boolean mask of the union of ``[start, stop)`` ranges (non-overlapping), without a loop."""
    marks = np.zeros(n + 1, dtype=np.int32)
    np.add.at(marks, starts, 1)
    np.add.at(marks, stops, -1)
    return np.cumsum(marks[:-1]) > 0


def _blank_keys(buf: np.ndarray, st: Structure, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blank every ``"key":`` of objects at ``depth`` (in place); return key open/close quote positions and
    the index (into ``st``) of each colon."""
    colon_idx = np.flatnonzero((st.char == 58) & (st.before == depth))
    colons = st.pos[colon_idx]
    qi = np.searchsorted(st.quotes, colons)
    if colons.size and qi.min() < 2:
        raise ValueError("a ':' without a key before it")
    close, open_ = st.quotes[qi - 1], st.quotes[qi - 2]
    buf[_range_mask(buf.size, open_, colons + 1)] = 32
    return open_, close, colon_idx


def _key_strings(raw: bytes, open_: np.ndarray, close: np.ndarray) -> pa.Array:
    """The key strings between quote pairs, as one Arrow array built from the bytes (no per-key decode)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    lengths = (close - open_ - 1).astype(np.int64)
    mask = _range_mask(buf.size, open_ + 1, close)
    data = buf[mask]
    if (data == 92).any():  # escapes: let json decode them (rare; ids have none)
        return pa.array([json.loads(raw[o:c + 1]) for o, c in zip(open_.tolist(), close.tolist(), strict=True)],
                        pa.string())
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeStringArray.from_buffers(lengths.size, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())
                                            ).cast(pa.string())


# -- layout sniffing -------------------------------------------------------------------------------------
def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


def sniff_layout(raw: bytes, field_names: set[str]) -> str:
    """Which container a file uses, from its first key and the first character of that key's value.

    ``field_names`` are normalized record keys (``youtubeid``...): a top-level key that is a record field
    means a record stream or a column-oriented file; any other key means a dict keyed by id.  Only the
    first 64 kB are looked at.
    """
    text = raw[:1 << 16].decode("utf-8", "replace")
    i = _skip_ws(text, 0)
    if i >= len(text):
        return "empty"
    if text[i] == "[":
        return "array"
    if text[i] != "{":
        raise ValueError(f"a JSON metadata file starts with '[' or '{{', not {text[i]!r}")
    j = _skip_ws(text, i + 1)
    if text[j:j + 1] == "}":
        return "lines"
    if text[j:j + 1] != '"':
        raise ValueError("expected a quoted key after '{'")
    key, j = json.decoder.scanstring(text, j + 1)
    j = _skip_ws(text, j)
    if text[j:j + 1] != ":":
        raise ValueError("expected ':' after the first key")
    j = _skip_ws(text, j + 1)
    first = text[j:j + 1]
    known = normalize_key(key) in field_names
    if first == "{":
        return "columns_dict" if known else "keyed"
    if first == "[":
        # A record whose first key holds a list, or a column?  A record fits on its first line and is
        # followed by another; a column-oriented file is one object.
        nl = text.find("\n", j)
        if nl != -1:
            try:
                json.loads(text[i:nl])
                return "lines"
            except ValueError:
                pass
        return "columns"
    return "lines"


# -- reading ---------------------------------------------------------------------------------------------
@dataclass
class Records:
    """A file's rows with their original keys, and how to find the line each row starts on."""

    table: pa.Table
    layout: str
    raw: bytes = field(repr=False)
    fallback: bool = False
    _lines: np.ndarray | None = field(default=None, repr=False)

    def lines(self) -> np.ndarray | None:
        """1-based line of each row's opening ``{`` (None for column-oriented files: rows span the file)."""
        if self._lines is None and self.layout in ("array", "lines", "keyed") and self.table.num_rows:
            buf = np.frombuffer(self.raw, dtype=np.uint8)
            st = structure(buf)
            depth = 0 if self.layout == "lines" else 1
            starts = st.pos[(st.char == 123) & (st.before == depth)]
            newlines = np.flatnonzero(buf == 10)
            lines = np.searchsorted(newlines, starts) + 1
            if lines.size == self.table.num_rows:
                self._lines = lines.astype(np.int64)
        return self._lines


def _read_json_bytes(data: bytes, *, multiline: bool, whole: bool) -> pa.Table:
    block = max(1 << 20, len(data) + 64) if whole else 1 << 24
    return pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=block),
                            parse_options=pajson.ParseOptions(newlines_in_values=multiline,
                                                              unexpected_field_behavior="infer"))


def _from_wrapped_array(data: bytes) -> pa.Table:
    wrapped = _read_json_bytes(b'{"r":' + data + b"}", multiline=True, whole=True)
    col = wrapped.column("r")
    items = pa.concat_arrays([c.flatten() for c in col.chunks]) if col.num_chunks else pa.array([])
    if pa.types.is_null(items.type) or len(items) == 0:
        return pa.table({})
    if not pa.types.is_struct(items.type):
        raise TypeError(f"the array holds {items.type} values, not objects")
    return pa.Table.from_struct_array(items)


def _from_columns(table: pa.Table, *, file: object) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    length = None
    for name in table.column_names:
        col = table.column(name)
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
            raise MetadataError(f"column-oriented file: {name!r} holds {col.type}, not a list", file=file,
                                field=name)
        values = pa.concat_arrays([c.flatten() for c in col.chunks])
        if length is not None and len(values) != length:
            raise MetadataError(f"column-oriented file: {name!r} has {len(values)} values, others {length}",
                                file=file, field=name)
        length = len(values)
        cols[name] = values
    return pa.table(cols)


def _columns_dict_to_lists(raw: bytes, *, file: object) -> bytes:
    buf = np.frombuffer(raw, dtype=np.uint8).copy()
    st = structure(buf)
    # every top-level value must be an object
    top = np.flatnonzero((st.char == 58) & (st.before == 1))
    nxt = np.minimum(top + 1, st.char.size - 1)
    if top.size == 0 or (st.char[nxt] != 123).any() or (st.pos[nxt] <= st.pos[top]).any():
        raise MetadataError("column-oriented file: every column must be an object {row: value}", file=file)
    open_, close, colon_idx = _blank_keys(buf, st, 2)
    # each column must list the same row keys in the same order
    column_of = np.searchsorted(st.pos[top], st.pos[colon_idx]) - 1
    lengths = close - open_ - 1
    ref = None
    for c in range(top.size):
        sel = column_of == c
        keys = np.frombuffer(raw, np.uint8)[_range_mask(len(raw), open_[sel] + 1, close[sel])].tobytes()
        sig = (lengths[sel].tobytes(), keys)
        if ref is None:
            ref = sig
        elif sig != ref:
            raise MetadataError("column-oriented file: the columns do not list the same rows in the same order",
                                file=file)
    after = st.after
    buf[st.pos[(st.char == 123) & (st.before == 1)]] = ord("[")
    buf[st.pos[(st.char == 125) & (after == 1)]] = ord("]")
    return buf.tobytes()


def _keyed_to_array(raw: bytes, *, file: object) -> tuple[bytes, pa.Array]:
    buf = np.frombuffer(raw, dtype=np.uint8).copy()
    st = structure(buf)
    colon_idx = np.flatnonzero((st.char == 58) & (st.before == 1))
    nxt = np.minimum(colon_idx + 1, st.char.size - 1)
    if colon_idx.size and ((st.char[nxt] != 123) | (st.before[nxt] != 1)).any():
        raise MetadataError("dict keyed by id: every value must be an object", file=file)
    open_, close, _ = _blank_keys(buf, st, 1)
    keys = _key_strings(raw, open_, close)
    outer_open = st.pos[(st.char == 123) & (st.before == 0)]
    outer_close = st.pos[(st.char == 125) & (st.after == 0)]
    if outer_open.size != 1 or outer_close.size != 1:
        raise MetadataError("dict keyed by id: expected exactly one top-level object", file=file)
    buf[outer_open[0]] = ord("[")
    buf[outer_close[0]] = ord("]")
    return buf.tobytes(), keys


def read_records(raw: bytes, *, file: object, field_names: set[str]) -> Records:
    """Parse one JSON metadata file into a table of its records (original key names; see module doc)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        layout = sniff_layout(raw, field_names)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise _malformed(raw, file, exc) from None
    if layout == "empty":
        return Records(pa.table({}), "lines", raw)
    try:
        if layout == "array":
            table = _from_wrapped_array(raw)
        elif layout == "lines":
            multiline = _is_multiline(raw)
            table = _read_json_bytes(raw if raw.endswith(b"\n") else raw + b"\n", multiline=multiline, whole=False)
        elif layout == "keyed":
            data, keys = _keyed_to_array(raw, file=file)
            table = _from_wrapped_array(data)
            if table.num_rows != len(keys):
                raise MetadataError(f"{len(keys)} keys but {table.num_rows} records", file=file)
            table = table.append_column(KEY_COLUMN, keys)
        else:
            data = _columns_dict_to_lists(raw, file=file) if layout == "columns_dict" else raw
            table = _from_columns(_read_json_bytes(data, multiline=True, whole=True), file=file)
        table.validate()  # pyarrow's JSON reader can build invalid list<null> columns; microseconds to catch
        return Records(table, layout, raw)
    except MetadataError:
        raise
    except (pa.ArrowException, TypeError, ValueError, IndexError) as exc:  # ArrowIndexError: list<null> children
        return _python_fallback(raw, layout, file, exc)


def _is_multiline(raw: bytes) -> bool:
    """A record stream whose first record spans several lines (pretty-printed concatenated objects)."""
    nl = raw.find(b"\n")
    if nl == -1:
        return False
    try:
        json.loads(raw[:nl])
        return False
    except ValueError:
        return True


def _malformed(raw: bytes, file: object, exc: Exception) -> MetadataError:
    """A MetadataError naming the line where the standard parser gives up (truncated files, bad bytes)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return MetadataError(f"not UTF-8 text ({err.reason})", file=file, line=line)
    try:
        _python_values(text, "json")
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):  # ran out of text: name the last line that has any
            line = text.rstrip().count("\n") + 1
            return MetadataError(f"truncated JSON: {err.msg} at the end of the file", file=file, line=line)
        return MetadataError(f"malformed JSON: {err.msg} (column {err.colno})", file=file, line=err.lineno)
    except MetadataError as err:
        return err
    return MetadataError(f"unreadable JSON metadata: {exc}", file=file)


def _python_values(text: str, mode: str) -> object:
    """``json.loads`` of a whole file, or of a record stream (one value after another)."""
    if mode == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            # A stream of objects is not one JSON value: parse it as such before blaming the file.
            if "Extra data" not in err.msg:
                raise
    decoder = json.JSONDecoder()
    out, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out
        value, i = decoder.raw_decode(text, i)
        out.append(value)


def _python_fallback(raw: bytes, layout: str, file: object, exc: Exception) -> Records:
    """Mixed value types (or pyarrow refusing a shape): the standard ``json`` module, one file at a time."""
    try:
        text = raw.decode("utf-8")
        data = _python_values(text, "json")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _malformed(raw, file, exc) from None
    keys = None
    if layout == "keyed" and isinstance(data, dict):
        keys, records = list(data), list(data.values())
    elif layout in ("columns", "columns_dict") and isinstance(data, dict):
        columns = {k: (list(v.values()) if isinstance(v, dict) else v) for k, v in data.items()}
        lengths = {len(v) for v in columns.values() if isinstance(v, list)}
        if len(lengths) > 1 or any(not isinstance(v, list) for v in columns.values()):
            raise MetadataError("column-oriented file: columns of different lengths or non-list columns",
                                file=file)
        n = lengths.pop() if lengths else 0
        records = [{k: v[i] for k, v in columns.items()} for i in range(n)]
    elif isinstance(data, list):
        records = data
    else:
        records = [data]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise MetadataError(f"record {i} is {type(rec).__name__}, not an object", file=file)
    names: dict[str, None] = {}
    for rec in records:
        names.update(dict.fromkeys(rec))
    table = pa.table({name: python_column([rec.get(name) for rec in records]) for name in names})
    if keys is not None:
        table = table.append_column(KEY_COLUMN, pa.array([str(k) for k in keys], pa.string()))
    return Records(table, layout, raw, fallback=True)


def python_column(values: list) -> pa.Array:
    """Arrow array of Python values; scalar columns of mixed types become text (``30`` -> ``"30"``)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    return pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values],
                    pa.string())


def check_rows(checks: list[tuple[str, pa.Array | np.ndarray, str, pa.Array | None]], n: int, *, file: object,
               locate, errors: str, row_errors) -> np.ndarray | None:
    """Vectorized row checks whose line numbers are looked up only when a row is bad.

    ``checks`` holds ``(field, bad mask, message, values shown in the error)``; ``locate(row)`` gives the
    1-based line of a row or None (column-oriented files).  ``errors="raise"``: a :class:`MetadataError`
    naming file, line (or row) and field; ``"skip"``: return the keep-mask and count the bad rows.
    """
    bad_any = np.zeros(n, dtype=bool)
    for field_name, mask, message, values in checks:
        bad = np.asarray(mask.to_numpy(zero_copy_only=False) if isinstance(mask, (pa.Array, pa.ChunkedArray))
                         else mask, dtype=bool)
        new = bad & ~bad_any
        if not new.any():
            continue
        rows = np.flatnonzero(new)
        shown = rows if errors == "skip" else rows[:1]
        for row in shown[:5]:
            value = values[int(row)].as_py() if values is not None else None
            line = locate(int(row))
            err = MetadataError(f"{message}: {value!r}" + ("" if line is not None else f" (row {int(row)})"),
                                file=file, line=line, field=field_name)
            if errors != "skip":
                raise err
            if row_errors is not None and len(row_errors.examples) < 5:
                row_errors.examples.append(str(err))
        if row_errors is not None:
            row_errors.count += int(new.sum())
        bad_any |= bad
    return ~bad_any if bad_any.any() else None
