"""Progress of an export: a tqdm bar with counts on a terminal, a count line every 30 s elsewhere (a log
file, CI), nothing with ``--quiet``, so a long export never sits silent (970 clips used to take 20 s
without a word) and a log is not flooded either. Mirrors ``avsets fetch``'s progress."""

from __future__ import annotations

import sys
import time
from typing import Any

from .convert import Converted


def row_kind(c: Converted) -> str:
    """How a row ended: its media copied byte for byte, re-encoded, or absent (left out of the export)."""
    if c.row is None:
        return "without media"
    return "re-encoded" if c.encoded else "copied"


class ExportProgress:
    """Call with each converted row (``export(..., progress=ExportProgress())``); ``close()`` at the end."""

    ORDER = ("copied", "re-encoded", "without media")

    def __init__(self, *, quiet: bool = False, every: float = 30.0, file: Any = None) -> None:
        self.quiet = quiet
        self.every = every
        self.file = file or sys.stderr
        self.counts: dict[str, int] = {}
        self.total: int | None = None
        self.desc = "export"
        self.t0 = self.last = time.monotonic()
        self.bar: Any = None
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())

    def set_total(self, total: int, desc: str = "export") -> None:
        """Rows this run will write (resumed rows excluded); opens the bar on a terminal."""
        self.total, self.desc = total, desc
        if not self.quiet and self.tty and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="clip", desc=desc, file=self.file, dynamic_ncols=True, leave=True)

    def __call__(self, c: Converted) -> None:
        kind = row_kind(c)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(self.summary(), refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            done = sum(self.counts.values())
            of = f" of {self.total}" if self.total is not None else ""
            print(f"... {self.desc}: {done}{of} clips ({self.summary()}), {done / (now - self.t0):.1f} clips/s",
                  file=self.file, flush=True)

    def summary(self) -> str:
        return ", ".join(f"{k} {self.counts[k]}" for k in self.ORDER if self.counts.get(k))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
