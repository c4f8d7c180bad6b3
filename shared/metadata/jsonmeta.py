"""JSON metadata files of records in whatever container they come, read into Arrow without a Python loop.

Accepted containers (the AVSET-10M release does not document its own, so we take all the common ones):

* ``array``: ``[{...}, {...}]`` (also pretty-printed) - parsed by ``pyarrow.json`` after wrapping it as
  ``{"r": [...]}``;
* ``lines``: JSON Lines (or concatenated pretty-printed objects) - ``pyarrow.json`` directly;
* ``keyed``: ``{"<id>": {...}, ...}`` (a dict keyed by id; pandas ``orient="index"``) - the standard
  ``json`` module, the keys kept as a column;
* ``columns``: ``{"col": [v, ...], ...}`` (pandas ``orient="list"``-style) - one row of lists, flattened;
* ``columns_dict``: ``{"col": {"<row>": v, ...}, ...}`` (pandas' default ``orient="columns"``) - the
  standard ``json`` module.

Why the standard ``json`` module for the two dict layouts: a hand-written NumPy lexer that rewrote them
into arrays for ``pyarrow.json`` was measured 2-6x slower in CPU (25,000 rows keyed: 115 vs 61 ms;
columns-dict: 246 vs 44 ms, ``bench/bench_foundation.py`` keeps that row).  Values whose types change
between rows (``"30.000"`` in one row, ``30`` in the next) make ``pyarrow.json`` refuse; such files take
the same ``json`` path, still one file at a time.  A truncated or malformed file is a
:class:`MetadataError` naming the file and line.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from avsets.core.errors import MetadataError

LAYOUTS = ("array", "lines", "keyed", "columns", "columns_dict")
KEY_COLUMN = "__key__"  # the dict key of a ``keyed`` file's rows



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
        """1-based line of each row's opening ``{`` (None for column-oriented files: rows span the file).

        Computed on first use only: rows are located when one is bad, never on the fast path.
        """
        if self._lines is None and self.layout in ("array", "lines", "keyed") and self.table.num_rows:
            text = self.raw.decode("utf-8", "replace")
            starts = _row_starts(text, self.layout)
            if starts is not None and len(starts) == self.table.num_rows:
                newlines = np.fromiter((m.start() for m in re.finditer("\n", text)), dtype=np.int64)
                self._lines = (np.searchsorted(newlines, np.asarray(starts, np.int64)) + 1).astype(np.int64)
        return self._lines


_WS = re.compile(r"[ \t\r\n]*")


def _row_starts(text: str, layout: str) -> list[int] | None:
    """Character offset of each record of a ``lines``, ``array`` or ``keyed`` file (None if it is not one).

    The standard ``json`` decoder walks the values one after another; between them only the container's own
    punctuation (``[ , ]`` or ``{ "key": , }``) is skipped.
    """
    decoder = json.JSONDecoder()
    starts: list[int] = []
    i = _WS.match(text, 0).end()
    n = len(text)
    try:
        if layout == "lines":
            while i < n:
                starts.append(i)
                i = _WS.match(text, decoder.raw_decode(text, i)[1]).end()
            return starts
        close = "]" if layout == "array" else "}"
        if text[i:i + 1] != ("[" if layout == "array" else "{"):
            return None
        i = _WS.match(text, i + 1).end()
        while i < n and text[i] != close:
            if layout == "keyed":
                i = _WS.match(text, json.decoder.scanstring(text, i + 1)[1]).end()
                if text[i:i + 1] != ":":
                    return None
                i = _WS.match(text, i + 1).end()
            starts.append(i)
            i = _WS.match(text, decoder.raw_decode(text, i)[1]).end()
            if text[i:i + 1] == ",":
                i = _WS.match(text, i + 1).end()
        return starts
    except ValueError:  # json.JSONDecodeError: the table was read, so this is a file pyarrow mended
        return None


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
        elif layout in ("keyed", "columns_dict"):
            return _python_records(raw, layout, file, None)
        else:
            table = _from_columns(_read_json_bytes(raw, multiline=True, whole=True), file=file)
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
    records = _python_records(raw, layout, file, exc)
    records.fallback = True
    return records


def _python_records(raw: bytes, layout: str, file: object, exc: Exception | None) -> Records:
    """A file read by the standard ``json`` module (the dict layouts, and files pyarrow refuses)."""
    try:
        text = raw.decode("utf-8")
        data = _python_values(text, "json")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _malformed(raw, file, exc or ValueError("not JSON")) from None
    keys = None
    if layout == "keyed" and isinstance(data, dict):
        keys, records = list(data), list(data.values())
    elif layout in ("columns", "columns_dict") and isinstance(data, dict):
        columns = {k: (list(v.values()) if isinstance(v, dict) else v) for k, v in data.items()}
        lengths = {len(v) for v in columns.values() if isinstance(v, list)}
        if len(lengths) > 1 or any(not isinstance(v, list) for v in columns.values()):
            raise MetadataError("column-oriented file: columns of different lengths or non-list columns",
                                file=file)
        if layout == "columns_dict":
            row_keys = [list(v) for v in data.values() if isinstance(v, dict)]
            if any(k != row_keys[0] for k in row_keys[1:]):
                raise MetadataError("column-oriented file: the columns do not list the same rows in the same order",
                                    file=file)
        return Records(pa.table({k: python_column(v) for k, v in columns.items()}), layout, raw)
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
    return Records(table, layout, raw)


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
