"""Vectorized coercion of metadata columns whose upstream types wander (numbers, numeric strings, ``H:MM:SS``).

Each ``to_*`` function returns ``(values, bad)``: the converted ``pyarrow`` array and a boolean mask of the
rows it could not convert, so a corpus can name the first bad file line (``errors="raise"``) or drop and
count the rows (``errors="skip"``) through :func:`avsets.metadata.readers.validate_rows`.  No Python loop per row:
AVSET-10M has 10.9 million of them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER_RE = r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_CLOCK_RE = r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+(?:\.\d*)?)$"
MAX_SECONDS = 1e9  # ~31 years: any larger time is garbage, and would overflow millisecond clip ids
_TRUE = ("1", "true", "yes", "y", "t", "1.0")
_FALSE = ("0", "false", "no", "n", "f", "0.0", "")


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _as_text(values: pa.Array) -> pa.Array:
    """Strings, trimmed; large_string and dictionary inputs included."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return pc.utf8_trim_whitespace(values)


def _no_bad(n: int) -> pa.Array:
    return pa.array(np.zeros(n, dtype=bool))


def to_seconds(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Float64 seconds from numbers, numeric strings (``"30.000"``) or clock strings (``"0:01:02.500"``).

    Null, negative, NaN, infinite, absurdly large (> ``MAX_SECONDS``) and unparsable values are bad.
    """
    values = _array(values)
    n = len(values)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
        out = values.cast(pa.float64(), safe=False)  # ints past 2**53 round instead of raising; the range check judges
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type):
        text = _as_text(values) if not pa.types.is_null(values.type) else pa.nulls(n, pa.string())
        out = _fast_seconds(text)
        if out is None:
            out = _careful_seconds(text)
    else:
        return pa.nulls(n, pa.float64()), pa.array(np.ones(n, dtype=bool))
    # NaN fails both comparisons; the bound keeps ``start * 1000`` inside int64 for the clip id
    in_range = pc.and_(pc.greater_equal(out, 0.0), pc.less_equal(out, MAX_SECONDS))
    bad = pc.invert(pc.fill_null(in_range, False))
    return out, bad


def _fast_seconds(text: pa.Array) -> pa.Array | None:
    """All plain numbers, or all ``H:MM:SS.mmm``: straight casts (the common, clean file).  None otherwise."""
    # A failing cast costs as much as a whole one (pyarrow parses every value first): skip it when a value
    # has a ':' and so is no plain number (AVSET-10M's 10M part: every time is a clock string).
    if not pc.any(pc.match_substring(text, ":")).as_py():
        try:
            return text.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    try:
        parts = pc.split_pattern(text, ":")
        lengths = pc.list_value_length(parts)
        if pc.min(lengths).as_py() != 3 or pc.max(lengths).as_py() != 3:
            return None
        h, m, s = (pc.list_element(parts, i).cast(pa.float64()) for i in range(3))
        if not pc.all(pc.match_substring_regex(pc.list_element(parts, 1), r"^\d+$")).as_py():
            return None
        return pc.add(pc.add(pc.multiply(h, 3600.0), pc.multiply(m, 60.0)), s)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _careful_seconds(text: pa.Array) -> pa.Array:
    """Row by row semantics, still vectorized: numbers and clock strings mixed; anything else null (bad)."""
    is_num = pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE), False)
    plain = pc.if_else(is_num, text, pa.scalar(None, pa.string())).cast(pa.float64())
    if not pc.any(pc.fill_null(pc.match_substring(text, ":"), False)).as_py():
        return plain
    parts = pc.extract_regex(text, _CLOCK_RE)
    h_text = pc.struct_field(parts, "h")
    h = pc.fill_null(pc.if_else(pc.equal(h_text, ""), pa.scalar(None, pa.string()), h_text).cast(pa.float64()), 0.0)
    m = pc.struct_field(parts, "m").cast(pa.float64())
    s = pc.struct_field(parts, "s").cast(pa.float64())
    return pc.coalesce(plain, pc.add(pc.add(pc.multiply(h, 3600.0), pc.multiply(m, 60.0)), s))


def to_float32(values: pa.Array | pa.ChunkedArray, *, allow_null: bool = True) -> tuple[pa.Array, pa.Array]:
    """Float32 from numbers or numeric strings (AVSET's ``AVC`` is a JSON string such as ``"0.2703"``)."""
    values = _array(values)
    n = len(values)
    if pa.types.is_null(values.type):
        return pa.nulls(n, pa.float32()), pa.array(np.full(n, not allow_null))
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        out = values.cast(pa.float32(), safe=False)
        bad = pc.is_null(out) if not allow_null else _no_bad(n)
        return out, bad
    text = _as_text(values)
    try:  # clean column: one cast
        out = text.cast(pa.float64())
        if pc.all(pc.is_finite(pc.fill_null(out, 0.0))).as_py():
            return out.cast(pa.float32()), (pc.is_null(out) if not allow_null else _no_bad(n))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok = pc.match_substring_regex(text, r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
    out = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64()).cast(pa.float32())
    bad = pc.invert(pc.fill_null(ok, allow_null))
    return out, bad


def to_bool(values: pa.Array | pa.ChunkedArray, *, allow_null: bool = True) -> tuple[pa.Array, pa.Array]:
    """Bool from JSON booleans, 0/1 integers or strings (``"1"``, ``"true"``, ``"0"``...)."""
    values = _array(values)
    n = len(values)
    if pa.types.is_null(values.type):
        return pa.nulls(n, pa.bool_()), pa.array(np.full(n, not allow_null))
    if pa.types.is_boolean(values.type):
        return values, (pc.is_null(values) if not allow_null else _no_bad(n))
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        is_one, is_zero = pc.equal(values, 1), pc.equal(values, 0)
    else:
        text = pc.utf8_lower(_as_text(values))
        is_one = pc.is_in(text, value_set=pa.array(_TRUE))
        is_zero = pc.is_in(text, value_set=pa.array(_FALSE))
    out = pc.if_else(is_one, True, pc.if_else(is_zero, False, pa.scalar(None, pa.bool_())))
    bad = pc.and_(pc.is_null(out), pc.is_valid(values)) if allow_null else pc.is_null(out)
    return out, bad


def clip_ids(youtube_id: pa.Array | pa.ChunkedArray, start: pa.Array | pa.ChunkedArray,
             end: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``{youtube_id}_{start_ms}_{end_ms}`` for whole columns (same rounding as :func:`avsets.core.segments.to_ms`).

    The one column-wise clip-key builder: the shared ``ensure_ids`` and the media index lookups use it too.
    """
    def ms(col: pa.Array) -> pa.Array:
        return pc.round(pc.multiply(_array(col).cast(pa.float64()), 1000.0)).cast(pa.int64()).cast(pa.string())

    return pc.binary_join_element_wise(_array(youtube_id), ms(start), ms(end), "_")
