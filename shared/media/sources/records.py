"""The small records every media source returns: members found and what was skipped (and why).

There is one :class:`Member` type and one :class:`SourceStats` type for both halves of a source (random
access and archive order, see :mod:`.base`): an indexed member carries its locator and no bytes; a member
read in archive order carries its bytes in ``data`` as well.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from avsets.core.errors import UnsafePathError
from avsets.core.paths import safe_relpath
from avsets.core.segments import media_kind

from .keys import keys_for_member


class Member(NamedTuple):
    """One member of a media source (a NamedTuple: 100k of them are made per index).

    ``relpath``: its safe name inside the source; ``locator``: what :meth:`MediaSource.read` takes (a
    member locator, or the file's own path for folders; ``""`` for a member read in archive order only);
    ``size``: bytes when known, else -1.  ``alias``: a second name to match rows by (a Parquet row's key
    column, a WebDataset ``.json`` side member).  ``keys``: what :func:`member_keys` made of both, cached
    with the index so a warm load parses no name.  ``data``: the bytes, for members read in archive order
    (``bytes`` or a zero-copy ``pyarrow.Buffer``).  ``group``: the WebDataset group (``dir/stem`` up to the
    first dot; one Parquet row) that members of one clip share; ``""`` means "derive it from the name".
    """

    relpath: str
    locator: str
    size: int
    alias: str | None = None
    keys: tuple[str, ...] = ()
    data: Any = None
    group: str = ""

    @property
    def name(self) -> str:
        return self.relpath

    @property
    def ext(self) -> str:
        base = self.relpath.rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[-1].lower() if "." in base else ""

    @property
    def kind(self) -> str | None:
        """``"audio"``/``"video"`` by extension; None for side members (``.json``) and junk."""
        return media_kind(self.ext)

    @property
    def group_key(self) -> str:
        return self.group or group_of(self.relpath)


def group_of(name: str) -> str:
    """WebDataset's ``__key__``: the path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem = base.partition(".")[0]
    return f"{folder}/{stem}" if folder else stem


@dataclass
class SourceStats:
    """What indexing or reading one source saw and skipped; logged once, kept in the index cache.

    One type for both halves: indexing fills ``members``/``unsafe``/``encrypted``/``truncated``/
    ``duplicates``/``requests``; an archive-order pass fills ``members`` (entries seen), ``media``, ``junk``,
    ``bytes_read``, ``damaged`` (members lost to damage, each named in ``damaged_names``) and ``error`` (why
    the pass ended early).
    """

    members: int = 0
    unsafe: int = 0  # names with ``..`` or absolute: never used
    encrypted: int = 0
    truncated: int = 0  # members whose data runs past the end of the archive
    duplicates: int = 0  # a second member for a key one already serves (first wins)
    requests: int = 0  # requests the indexing took (0 when the cache answered)
    media: int = 0
    junk: int = 0
    bytes_read: int = 0
    damaged: int = 0  # members that failed their CRC / could not be inflated: lost alone, named below
    error: str | None = None
    unsafe_names: list[str] = field(default_factory=list)
    damaged_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def note_unsafe(self, raw: str) -> None:
        self.unsafe += 1
        if len(self.unsafe_names) < 20:
            self.unsafe_names.append(raw[:200])

    def note_damaged(self, name: str) -> None:
        self.damaged += 1
        if len(self.damaged_names) < 100:
            self.damaged_names.append(name[:300])


#: The archive-order pass' name for the same record (kept for callers of round 2).
ReadStats = SourceStats


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
    keys = keys_for_member(relpath)[1]
    if alias is not None:
        keys = keys + [k for k in keys_for_member(alias)[1] if k not in keys]
    return tuple(keys)
