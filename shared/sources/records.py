"""The small records every source reader returns: members found and what was skipped (and why)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from ..errors import UnsafePathError
from ..paths import safe_relpath


class Member(NamedTuple):
    """One media member: its name inside the source, its locator, its size (-1 when unknown).

    ``alias``: a second name to match rows by (a Parquet row's key column, when the struct's ``path`` is
    named otherwise).  ``keys``: what :func:`member_keys` made of both, stored in the index cache so a warm
    load parses no name.
    """

    relpath: str
    locator: str
    size: int
    alias: str | None = None
    keys: tuple[str, ...] = ()  # index keys (``keys_for_member``, id-only names as ``w:``), cached with the index


@dataclass
class SourceStats:
    """Counts of one source's indexing, logged once and kept in the index cache."""

    members: int = 0
    unsafe: int = 0  # names with ``..`` or absolute: never used
    encrypted: int = 0
    truncated: int = 0  # members whose data runs past the end of the archive
    duplicates: int = 0  # a second member for a key one already serves (first wins)
    requests: int = 0  # requests the indexing took (0 when the cache answered)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def safe_member_name(name: str) -> str | None:
    """A member name as a normalized relative POSIX path, or None when it is absolute or has ``..``.

    Such names are never joined to a local path anyway (members are read through their locator); skipping
    them keeps a hostile archive from shadowing honest names.
    """
    if (name and name[0] not in "./" and ".." not in name and "./" not in name and "//" not in name
            and "\\" not in name and "\x00" not in name and name[1:2] != ":" and len(name) < 1024):
        return name  # the common case, already normal (100k members: ~40x faster than the full check)
    try:
        return safe_relpath(name, what="archive member")
    except UnsafePathError:
        return None


def member_keys(relpath: str, alias: str | None) -> tuple[str, ...]:
    """Index keys of a member's name and its alias (id-only names as ``w:``; the per-source clip-or-video
    verdict turns them into ``i:`` when the index is built)."""
    from .keys import keys_for_member

    keys = keys_for_member(relpath)[1]
    if alias is not None:
        keys = keys + [k for k in keys_for_member(alias)[1] if k not in keys]
    return tuple(keys)
