"""Reading a media source front to back, one member at a time: the rules every kind's archive-order pass
shares (the archive-order half of :mod:`avsets.media.sources`).

Each kind reads its own way, in its own module, reached through its :class:`~.base.MediaSource` class:
:mod:`.members_tar` (tars, WebDataset shards and ``.tar.gz`` as one stream), :mod:`.members_zip` (stored
order), :mod:`.members_parquet` (by row group, key and media columns only), :func:`.folder.iter_folder`
(a walk); :mod:`.sequential` opens remote files for one read ahead of the reader.  Nothing holds more than
one member (or one Parquet batch) in memory.

What they share is here.  Member names come from strangers: a name with a ``..`` part or an absolute path
is never used (counted as ``unsafe``), non-media members are ``junk`` and skipped, a member that declares
more than a row can hold is never read, and a damaged or cut-off archive ends in our
:class:`~avsets.core.errors.MediaSourceError` naming the archive and how far the read got.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from avsets.core.errors import MediaSourceError
from avsets.core.secrets import redact_url
from avsets.core.segments import MEDIA_EXTENSIONS

from .kinds import Source
from .records import Member, SourceStats, group_of, safe_member_name

logger = logging.getLogger("avsets")

SIDE_EXTENSIONS = frozenset({"json"})  # WebDataset metadata members: read, never served as media


def public_url(url: str) -> str:
    """``url`` as it may reach a ledger, log or error: userinfo and secret query values masked
    (:func:`avsets.core.secrets.redact_url`, the one rule every writer uses)."""
    return redact_url(url) or ""


#: The archive-order pass' stats are the one :class:`~.records.SourceStats` type.
ReadStats = SourceStats
#: ``want(member)``: whether to read a member's bytes (the member has its name, size and group, no data).
Want = Callable[[Member], bool]
#: A ``.json`` side member larger than this is not read (WebDataset metadata is a few hundred bytes).
MAX_SIDE_BYTES = 1 << 20
#: A media member declared larger than this is never read into memory (an Arrow binary cell holds < 2 GiB,
#: so such a member could not be served anyway): counted as damaged, named, skipped.
MAX_MEMBER_BYTES = (1 << 31) - 1


def group_and_ext(name: str) -> tuple[str, str]:
    """``(group, ext)``: WebDataset's ``__key__`` (the path up to the first dot of the file name) and the
    extension after the last dot."""
    base = name.rpartition("/")[2]
    ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return group_of(name), ext


def safe_name(raw: str, stats: SourceStats) -> str | None:
    """The member's safe name, or None (counted and named as ``unsafe``) when it leaves the archive."""
    name = safe_member_name(raw)
    if name is None:
        stats.note_unsafe(raw)
    return name


def media_or_side(name: str, stats: SourceStats) -> tuple[str, str] | None:
    """``(group, ext)`` of a media or side member; None (counted as ``junk``) for anything else."""
    group, ext = group_and_ext(name)
    if ext in MEDIA_EXTENSIONS or ext in SIDE_EXTENSIONS:
        return group, ext
    stats.junk += 1
    return None


def asked(want: Want | None, member: Member, ext: str, stats: SourceStats | None = None) -> bool:
    """Side members are always read (they may name the clip of their group); media only when wanted and
    no larger than ``MAX_MEMBER_BYTES`` (what the archive declares bounds what a member may occupy)."""
    if ext in SIDE_EXTENSIONS:
        return 0 <= member.size <= MAX_SIDE_BYTES
    if member.size > MAX_MEMBER_BYTES:
        if stats is not None:
            stats.note_damaged(member.relpath)
        logger.warning("avsets: member %s declares %d bytes, more than a row can hold; skipped", member.relpath,
                       member.size)
        return False
    return want is None or want(member)


def admit(raw: str, size: int, want: Want | None, stats: SourceStats) -> tuple[Member, str] | None:
    """``(bare member, ext)`` (no locator yet) an archive-order reader should read, or None: the three checks
    every kind makes on a stored name, in this order (safe name, media or side file, asked for), each counted."""
    name = safe_name(raw, stats)
    if name is None:
        return None
    got = media_or_side(name, stats)
    if got is None:
        return None
    bare = Member(name, "", size, group=got[0])
    return (bare, got[1]) if asked(want, bare, got[1], stats) else None


def damaged(source: Source, stats: SourceStats, exc: BaseException) -> MediaSourceError:
    """The error that ends a pass over a damaged or cut archive, saying how far the read got (also kept in
    ``stats.error``)."""
    what = "gzip-compressed tar" if source.kind == "tgz" else source.kind
    msg = (f"archive is damaged or cut short after {stats.members} members ({stats.bytes_read:,} bytes read; "
           f"{type(exc).__name__}: {str(exc)[:200]}); members past this point are unreadable "
           f"(is it a complete {what}? download it again)")
    stats.error = msg
    return MediaSourceError(msg, source=public_url(source.url))


def read_json(data: bytes) -> dict:
    """A WebDataset ``.json`` member as a dict (``{}`` when it is not a JSON object)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
