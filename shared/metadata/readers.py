"""Reading metadata files into Arrow tables, vectorized, with errors that name file and line.

The fast path is ``pyarrow.csv`` plus ``pyarrow.compute``.  Only when something is wrong do we walk the file
with Python's ``csv`` module, to find the exact line to name (``errors="raise"``) or to skip the bad rows
and count them (``errors="skip"``).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from avsets.core.coerce import MAX_SECONDS
from avsets.core.errors import MetadataError
from avsets.core.segments import YOUTUBE_ID_RE

logger = logging.getLogger(__name__)


@dataclass
class RowErrors:
    """Malformed rows met under ``errors="skip"``: how many, and the first few with their reasons."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, exc: MetadataError) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(exc.short)


def utf16_without_bom(raw: bytes) -> str | None:
    """``"utf-16-le"`` / ``"utf-16-be"`` for text saved as UTF-16 without a BOM (every other byte of ASCII text
    is NUL), else None."""
    head = raw[:4096]
    if len(head) < 4 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > len(odd) // 2 and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > len(even) // 2 and odd.count(0) == 0:
        return "utf-16-be"
    return None


def read_text(path: str | os.PathLike) -> str:
    """A metadata file as text: UTF-8 (BOM stripped), UTF-16 (with or without BOM), falling back to Latin-1 so
    no byte is an exception."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    utf16 = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else utf16_without_bom(raw)
    if utf16:
        try:
            return raw.decode(utf16)
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_headerless_csv(
    path: str | os.PathLike,
    column_names: Sequence[str],
    *,
    errors: str = "raise",
    row_errors: RowErrors | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """Read a header-less CSV of string columns; return the table and each row's 1-based line number.

    Quoted fields with commas, CRLF, a missing final newline and a UTF-8 BOM all parse.  A row with the
    wrong number of fields is a :class:`MetadataError` naming file and line (or skipped and counted).
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16_without_bom(raw) or _has_blank_or_multiline(raw):
        # pyarrow skips blank lines (shifting row -> line arithmetic) and reads no UTF-16: careful path
        return _read_csv_slow(read_text(path), path, column_names, errors=errors, row_errors=row_errors)
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=list(column_names), block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in column_names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid:  # wrong field count, invalid UTF-8...: find the line with the csv module
        return _read_csv_slow(read_text(path), path, column_names, errors=errors, row_errors=row_errors)
    return table, np.arange(1, table.num_rows + 1, dtype=np.int64)


def _has_blank_or_multiline(raw: bytes) -> bool:
    return b"\n\n" in raw or b"\n\r\n" in raw or raw.startswith((b"\n", b"\r"))


def _read_csv_slow(text: str, path, column_names, *, errors: str, row_errors: RowErrors | None):
    ncol = len(column_names)
    cols: list[list[str]] = [[] for _ in range(ncol)]
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    prev_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            err = MetadataError(f"unreadable CSV row: {exc}", file=path, line=reader.line_num)
            _fail_or_count(err, errors, row_errors)
            prev_line = reader.line_num
            continue
        line = prev_line + 1
        prev_line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != ncol:
            err = MetadataError(f"expected {ncol} fields ({', '.join(column_names)}), found {len(row)}: {row!r}",
                                file=path, line=line)
            _fail_or_count(err, errors, row_errors)
            continue
        for c, v in zip(cols, row, strict=True):
            c.append(v)
        lines.append(line)
    table = pa.table({name: pa.array(c, pa.string()) for name, c in zip(column_names, cols, strict=True)})
    return table, np.asarray(lines, dtype=np.int64)


def _fail_or_count(err: MetadataError, errors: str, row_errors: RowErrors | None) -> None:
    if errors != "skip":
        raise err
    if row_errors is not None:
        row_errors.add(err)


def validate_rows(
    table: pa.Table,
    lines: np.ndarray,
    path,
    checks: Sequence[tuple[str, Callable[[pa.Table], pa.Array], str]],
    *,
    errors: str = "raise",
    row_errors: RowErrors | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """Apply vectorized checks; each returns a boolean "row is bad" mask.

    ``checks`` holds ``(field, mask_fn, message)``.  The first bad row raises a :class:`MetadataError` with
    file, line and the offending value, or, under ``errors="skip"``, every bad row is dropped and counted.
    """
    for field_name, mask_fn, message in checks:
        bad = pc.fill_null(mask_fn(table), True)
        if not pc.any(bad).as_py():
            continue
        if errors != "skip":
            first = int(pc.index(bad, True).as_py())
            value = table.column(field_name)[first].as_py() if field_name in table.column_names else None
            raise MetadataError(f"{message}: {value!r}", file=path, line=int(lines[first]), field=field_name)
        if row_errors is not None:
            bad_np = bad.to_numpy(zero_copy_only=False)
            for idx in np.flatnonzero(bad_np)[:5]:
                value = table.column(field_name)[int(idx)].as_py() if field_name in table.column_names else None
                row_errors.examples.append(MetadataError(f"{message}: {value!r}", file=path,
                                                         line=int(lines[idx]), field=field_name).short)
        # drop now so later checks see only good rows and count each bad row once
        keep = pc.invert(bad)
        if row_errors is not None:
            row_errors.count += int(pc.sum(bad.cast(pa.int64())).as_py() or 0)
        table = table.filter(keep)
        lines = lines[keep.to_numpy(zero_copy_only=False)]
    return table, lines


def bad_youtube_id(column: str = "youtube_id") -> Callable[[pa.Table], pa.Array]:
    """Mask of rows whose id is not 11 characters of ``[A-Za-z0-9_-]``."""
    pattern = YOUTUBE_ID_RE.pattern

    def fn(table: pa.Table) -> pa.Array:
        return pc.invert(pc.match_substring_regex(table.column(column), pattern))

    return fn


def bad_number(column: str, max_value: float = MAX_SECONDS) -> Callable[[pa.Table], pa.Array]:
    """Mask of rows whose text is not a non-negative decimal number up to ``max_value`` (a bound that keeps
    later casts to int32 / int64 milliseconds from overflowing)."""

    def fn(table: pa.Table) -> pa.Array:
        text = pc.utf8_trim_whitespace(table.column(column))
        ok = pc.match_substring_regex(text, r"^\d+(\.\d+)?$")
        value = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
        return pc.invert(pc.fill_null(pc.and_(ok, pc.less_equal(value, max_value)), False))

    return fn


def bad_whole_number(column: str, max_value: int = 2**31 - 1) -> Callable[[pa.Table], pa.Array]:
    """Mask of rows whose text is not a non-negative whole number (``3`` or pandas' ``3.0``) that fits
    :func:`whole_numbers`' int32 (a bigger one would make the cast raise instead of naming the line)."""

    def fn(table: pa.Table) -> pa.Array:
        text = pc.utf8_trim_whitespace(table.column(column))
        ok = pc.match_substring_regex(text, r"^\d+(\.0+)?$")
        value = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
        return pc.invert(pc.fill_null(pc.and_(ok, pc.less_equal(value, max_value)), False))

    return fn


def whole_numbers(column: pa.ChunkedArray | pa.Array, type_: pa.DataType = pa.int64()) -> pa.ChunkedArray | pa.Array:
    """Text already checked by :func:`bad_whole_number` as integers (through float64, so ``3.0`` works)."""
    return pc.cast(pc.cast(pc.utf8_trim_whitespace(column), pa.float64()), type_)


def not_in(column: str, names: Sequence[str]) -> Callable[[pa.Table], pa.Array]:
    """Mask of rows whose value is outside a fixed list."""
    value_set = pa.array(list(names), pa.string())

    def fn(table: pa.Table) -> pa.Array:
        return pc.invert(pc.is_in(table.column(column), value_set=value_set))

    return fn


def encode_labels(column: pa.ChunkedArray | pa.Array, names: Sequence[str]) -> pa.Array:
    """Label names to ClassLabel ids (int64) in the order of ``names``; unknown names become null."""
    return pc.index_in(column, value_set=pa.array(list(names), pa.string())).cast(pa.int64())


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty, stripped lines of a text file (any line ending, BOM tolerated)."""
    return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]


#: set by :func:`collect_row_errors`: skipped rows go to this list instead of the log
_ROW_ERROR_SINK: contextvars.ContextVar[list[tuple[str, RowErrors]] | None] = contextvars.ContextVar(
    "avsets_row_error_sink", default=None)


@contextlib.contextmanager
def collect_row_errors() -> Iterator[list[tuple[str, RowErrors]]]:
    """Gather ``(where, RowErrors)`` of every metadata file read inside the block, for a report that prints
    them itself (``avsets verify``); they are not logged then, so the user reads each once."""
    sink: list[tuple[str, RowErrors]] = []
    token = _ROW_ERROR_SINK.set(sink)
    try:
        yield sink
    finally:
        _ROW_ERROR_SINK.reset(token)


def log_row_errors(where: str, row_errors: RowErrors) -> None:
    """Tell the user what ``errors="skip"`` skipped."""
    sink = _ROW_ERROR_SINK.get()
    if sink is not None:
        sink.append((where, row_errors))
        return
    if row_errors.count:
        logger.warning("%s: skipped %d malformed metadata rows (errors='skip'); first: %s", where,
                       row_errors.count, "; ".join(row_errors.examples[:3]))
