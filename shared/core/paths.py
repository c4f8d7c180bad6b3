"""Safe relative paths: a name that comes from metadata or a user template never leaves its media root.

We never open ``root / name`` for a name we did not find in the scan of ``root``; these checks make the
refusal explicit (and early) so a hostile row is named in a warning instead of silently probing the disk.
"""

from __future__ import annotations

import posixpath

from .errors import UnsafePathError

MAX_NAME_BYTES = 4096


def safe_relpath(name: str, *, what: str = "path") -> str:
    """Normalise ``name`` to a POSIX relative path or raise :class:`UnsafePathError`.

    Refused: empty names, NUL bytes, absolute paths (``/x``, ``C:\\x``, ``\\\\server``), any ``..`` part,
    and names longer than 4096 bytes.  Backslashes are treated as separators so a Windows-style name
    cannot smuggle a ``..`` part past the check.
    """
    if not isinstance(name, str) or name == "":
        raise UnsafePathError(f"{what} is empty")
    if "\x00" in name:
        raise UnsafePathError(f"{what} {name!r} contains a NUL byte")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafePathError(f"{what} is longer than {MAX_NAME_BYTES} bytes")
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafePathError(f"{what} {name!r} is absolute; only paths inside the media root are allowed")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"{what} {name!r} has a '..' part and would leave the media root")
    if not parts:
        raise UnsafePathError(f"{what} {name!r} names no file")
    return posixpath.join(*parts)


def is_safe_relpath(name: str) -> bool:
    """True when :func:`safe_relpath` accepts ``name``."""
    try:
        safe_relpath(name)
    except UnsafePathError:
        return False
    return True
