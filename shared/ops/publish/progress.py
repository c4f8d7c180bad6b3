"""Progress of an export: a tqdm bar with counts on a terminal, a count line every 30 s elsewhere (a log
file, CI), nothing with ``--quiet``, so a long export never sits silent (970 clips used to take 20 s
without a word) and a log is not flooded either: :class:`avsets.core.progress.ClipProgress`, as ``avsets fetch``."""

from __future__ import annotations

from typing import Any

from avsets.core.progress import ClipProgress

from .convert import Converted


def row_kind(c: Converted) -> str:
    """How a row ended: its media copied byte for byte, re-encoded, or absent (left out of the export)."""
    if c.row is None:
        return "without media"
    return "re-encoded" if c.encoded else "copied"


class ExportProgress(ClipProgress):
    """Call with each converted row (``export(..., progress=ExportProgress())``); ``close()`` at the end."""

    ORDER = ("copied", "re-encoded", "without media")

    def __init__(self, *, quiet: bool = False, every: float = 30.0, file: Any = None) -> None:
        super().__init__(quiet=quiet, every=every, file=file, desc="export")

    def set_total(self, total: int, desc: str = "export") -> None:
        """Rows this run will write (resumed rows excluded); opens the bar on a terminal."""
        self.total, self.desc = total, desc
        self.open_bar(total)

    def __call__(self, c: Converted) -> None:
        self.count(row_kind(c))

    def line(self, done: int, rate: float) -> str:
        of = f" of {self.total}" if self.total is not None else ""
        return f"... {self.desc}: {done}{of} clips ({self.summary()}), {rate:.1f} clips/s"
