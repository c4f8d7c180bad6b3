"""CSV files with a header row, read by column *name* (pandas ``to_csv`` output and friends).

Why by name: several releases document their columns but not their order (AVMIT's ``video_ratings.csv``),
write an unnamed pandas index first (``,filename,MIT label,...``), or pad a row with hundreds of label
columns (ASCC's ``label_df.csv``).  The reader finds each wanted column in the header - ignoring case,
spaces, underscores and hyphens - and reads only those, vectorized; row errors still name file and line
(via :func:`avsets.metadata.readers.read_headerless_csv`'s careful path).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from avsets.core.errors import MetadataError
from avsets.metadata.readers import RowErrors, read_headerless_csv, read_text

from .jsonmeta import normalize_key


def normalize_header(name: str) -> str:
    """``"MIT label"``, ``"MIT_label"``, ``"mit-Label"`` -> ``"mitlabel"``: the JSON key rule, one for both."""
    return normalize_key(name)


def header_of(text: str, path: str | os.PathLike | None = None) -> list[str]:
    """The header row's fields (first line); an unreadable header is a :class:`MetadataError` on line 1."""
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error as exc:  # a field past csv's size limit, a NUL in old Pythons...
        raise MetadataError(f"unreadable header row ({exc}); is this the right file?", file=path, line=1) from None
    return [c.strip() for c in first]


def find_columns(header: Sequence[str], wanted: Mapping[str, Sequence[str]], *, path: str | os.PathLike,
                 optional: Sequence[str] = ()) -> dict[str, int]:
    """``{canonical name: column position}`` for each wanted column (aliases allowed).

    A required column missing from the header is a :class:`MetadataError` naming the file, the column and
    the header that was found.
    """
    positions: dict[str, int] = {}
    normalized = [normalize_header(h) for h in header]
    for canonical, aliases in wanted.items():
        for alias in (canonical, *aliases):
            key = normalize_header(alias)
            if key in normalized:
                positions[canonical] = normalized.index(key)
                break
        else:
            if canonical not in optional:
                raise MetadataError(f"no column {canonical!r} in the header {header!r}", file=path, line=1)
    return positions


def _needs_careful_path(text: str) -> bool:
    # pyarrow skips blank lines, which would shift the row -> line arithmetic of the fast path
    return "\n\n" in text or "\r\n\r\n" in text or text.startswith(("\n", "\r"))


def read_csv_columns(path: str | os.PathLike, wanted: Mapping[str, Sequence[str]], *, optional: Sequence[str] = (),
                     errors: str = "raise", row_errors: RowErrors | None = None) -> tuple[pa.Table, np.ndarray]:
    """The wanted columns of a CSV with a header, as strings, and each row's 1-based line number.

    ``wanted`` maps the canonical name (the output column) to accepted header aliases.  Columns in
    ``optional`` may be absent (they are then missing from the table).  Every row must have as many fields
    as the header; a row that does not is a :class:`MetadataError` naming file and line (or, under
    ``errors="skip"``, skipped and counted).
    """
    text = read_text(path)
    header = header_of(text, path)
    if not header:
        raise MetadataError("empty file: expected a header row", file=path)
    positions = find_columns(header, wanted, path=path, optional=optional)
    names = [f"c{i}" for i in range(len(header))]
    include = {f"c{pos}": canonical for canonical, pos in positions.items()}
    if not _needs_careful_path(text):
        try:
            table = pacsv.read_csv(
                io.BytesIO(text.encode("utf-8")),
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
                parse_options=pacsv.ParseOptions(newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(include), column_types={c: pa.string() for c in include},
                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
            lines = np.arange(2, table.num_rows + 2, dtype=np.int64)
            return table.rename_columns([include[c] for c in table.column_names]), lines
        except pa.ArrowInvalid:
            pass
    # the careful path: exact line numbers, skip-and-count under errors="skip"
    table, lines = read_headerless_csv(path, names, errors=errors, row_errors=row_errors)
    table, lines = table.slice(1), lines[1:]
    table = table.select(list(include)).rename_columns(list(include.values()))
    return table, lines
