"""User-facing notices said once, and only where they help.

A notice such as "853 of 868 rows have no media; `avsets verify` lists them" helps after a load; printed
inside `avsets verify` (which prints those counts itself), by the demo (which made media for a few rows on
purpose), by every streaming epoch or once per config of a corpus, it is noise that hides the messages that
matter. ``warn_once`` drops repeats of the same notice in a process; ``quiet(kind)`` silences a kind of
notice inside a block whose caller reports the same facts itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Hashable, Iterator

#: kinds of notice: rows left without media by a load
MISSING_MEDIA = "missing_media"

_seen: set[Hashable] = set()
_lock = threading.Lock()
_quiet: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("avsets_quiet_notices", default=frozenset())


def is_quiet(kind: str) -> bool:
    return kind in _quiet.get()


@contextlib.contextmanager
def quiet(*kinds: str) -> Iterator[None]:
    """Silence these kinds of notice inside the block (the caller reports the same facts)."""
    token = _quiet.set(_quiet.get() | frozenset(kinds))
    try:
        yield
    finally:
        _quiet.reset(token)


def warn_once(logger: logging.Logger, key: Hashable, msg: str, *args: object, kind: str | None = None) -> bool:
    """``logger.warning(msg, *args)`` unless this ``key`` was already said in this process or ``kind`` is
    quiet here; returns whether it was said."""
    if kind is not None and is_quiet(kind):
        return False
    with _lock:
        if key in _seen:
            return False
        _seen.add(key)
    logger.warning(msg, *args)
    return True


def forget() -> None:
    """Say every notice again (tests)."""
    with _lock:
        _seen.clear()
