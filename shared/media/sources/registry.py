"""The one registry of media source kinds: ``kind`` -> the :class:`~.base.MediaSource` class that reads it.

fsspec's model: one interface, one class per backend, one table.  A kind is detected from the URL or path
name in one function (:func:`avsets.media.sources.kinds.source_kind`); everything else asks this table.  The
classes register themselves when :mod:`.base` is imported (``avsets.media.sources`` imports it), so the table is
full before any caller can reach it.  This module imports no implementation, so the low-level readers
(:mod:`.access`) can look a kind up without an import cycle.
"""

from __future__ import annotations

from typing import Any, TypeVar

from avsets.core.errors import MediaSourceError

# The values are :class:`~.base.MediaSource` subclasses; typed loosely so that this module imports nothing of
# the package above it, not even for annotations (the import graph has no edge back to ``.base``).
SOURCE_CLASSES: dict[str, type[Any]] = {}
_T = TypeVar("_T", bound=type)


def register(cls: _T) -> _T:
    """Class decorator: make ``cls`` the reader of ``cls.kind``."""
    SOURCE_CLASSES[cls.kind] = cls
    return cls


def source_class(kind: str) -> type[Any]:
    """The class that reads ``kind``; a :class:`MediaSourceError` for a kind nobody registered."""
    try:
        return SOURCE_CLASSES[kind]
    except KeyError:
        raise MediaSourceError(f"no media source reads kind {kind!r} (known: {', '.join(sorted(SOURCE_CLASSES))})"
                               ) from None
