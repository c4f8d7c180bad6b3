"""Progress of a long clip-by-clip run (``avsets fetch``, ``avsets export``): a tqdm bar with counts on a
terminal, a count line every ``every`` seconds elsewhere (a log file, CI), nothing with ``quiet``, so a
200k-clip run shows it is alive without one line per clip, and a log is not flooded either."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any


class ClipProgress:
    """Counts of finished clips by kind, shown as a bar (terminal) or a periodic line (anything else).

    Subclasses say what a finished item's kind is and how the periodic line reads (``line``).
    """

    #: kinds in the order the summary names them; empty: every kind seen, sorted
    ORDER: Sequence[str] = ()

    def __init__(self, *, quiet: bool = False, every: float = 30.0, file: Any = None, desc: str = "") -> None:
        self.quiet = quiet
        self.every = every
        self.file = file or sys.stderr
        self.desc = desc
        self.counts: dict[str, int] = {}
        self.total: int | None = None
        self.t0 = self.last = time.monotonic()
        self.bar: Any = None
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())

    def open_bar(self, total: int | None = None) -> None:
        """Show the bar now (on a terminal, unless quiet); ``total`` when the number of clips is known."""
        if not self.quiet and self.tty and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="clip", desc=self.desc, file=self.file, dynamic_ncols=True, leave=True)

    def count(self, kind: str) -> None:
        """One more clip of ``kind``: the bar moves, or a line is printed when ``every`` seconds have passed."""
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
            print(self.line(done, done / (now - self.t0)), file=self.file, flush=True)

    def line(self, done: int, rate: float) -> str:
        return f"... {done} clips ({self.summary()}), {rate:.2f} clips/s"

    def summary(self) -> str:
        if self.ORDER:
            return ", ".join(f"{k} {self.counts[k]}" for k in self.ORDER if self.counts.get(k))
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
