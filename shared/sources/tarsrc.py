"""Tar and WebDataset shards: a member index from the headers alone, one ranged read per member.

Indexing walks the headers with ``tarfile`` over a :class:`RangeFile`: after small members it fetches
64-KiB blocks (one request serves many WebDataset ``.json``/``.cls`` headers), after a large one just the
2 KiB where the next header starts, so indexing a tar of N large clips costs N requests of ~2 KiB.  The
result is cached (see :mod:`.index_cache`), so it is paid once per archive version.

Reading a member fetches its 512-byte header together with its data in one request; the header must parse
and state the indexed size, which catches an archive that changed under a stale index.
"""

from __future__ import annotations

import logging
import tarfile

from ..errors import MediaError, MediaSourceError
from ..secrets import redact_url
from .keys import member_kind
from .ranged import RangeFile, RangeReader
from .records import Member, SourceStats, safe_member_name

BLOCK = 64 * 1024


def index_tar(url: str, reader: RangeReader, size: int) -> tuple[list[Member], SourceStats]:
    """Every regular member of an uncompressed tar; a truncated tail is counted, not fatal."""
    stats = SourceStats()
    f = RangeFile(reader, size, block=BLOCK)
    members: list[Member] = []
    n_url = len(url)
    try:
        tf = tarfile.open(fileobj=f, mode="r:")
    except tarfile.ReadError as exc:
        head = reader.read(0, 2)
        if head == b"\x1f\x8b":
            raise MediaSourceError("is gzip-compressed (a .tar.gz under a .tar name): rename it to .tar.gz and "
                                   "load with streaming=True, or run `avsets unpack`", source=url) from None
        raise MediaSourceError(f"not a readable tar archive ({exc})", source=url) from None
    try:
        while True:
            try:
                ti = tf.next()
            except tarfile.ReadError as exc:
                if not stats.truncated:  # not already counted: the archive ends inside a header
                    stats.truncated += 1
                _warn_truncated(url, exc)
                break
            if ti is None:
                break
            # the next header follows this member's data: after a big member one small read is enough
            # (2 KiB also holds a GNU long-name or pax header); after small ones a block serves several
            f.block = BLOCK if ti.size < BLOCK // 2 else 2048
            if not ti.isreg():
                continue
            rel = safe_member_name(ti.name)
            if rel is None:
                stats.unsafe += 1
                continue
            if member_kind(rel) is None:  # json, txt, cls...: not media
                continue
            if ti.offset_data + ti.size > size:
                stats.truncated += 1
                continue
            members.append(Member(rel, f"avsets:tar:o={ti.offset_data},s={ti.size},n={n_url}:{url}!/{rel}",
                                  ti.size))
            tf.members = []  # keep memory flat: we hold our own list
    finally:
        stats.requests += f.requests
    return members, stats


def _warn_truncated(url: str, exc: Exception) -> None:
    logging.getLogger("avsets").warning("%s: the tar archive ends inside a header (%s); members after it are "
                                        "not indexed", redact_url(url), exc)


def read_tar_member(reader: RangeReader, fields: dict[str, str]) -> bytes:
    """The member's bytes (one request: its header block and its data)."""
    o, s = int(fields["o"]), int(fields["s"])
    buf = reader.read(o - tarfile.BLOCKSIZE, o + s)
    try:
        ti = tarfile.TarInfo.frombuf(buf[:tarfile.BLOCKSIZE], tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError as exc:
        raise MediaError(f"no valid tar header before the member data ({exc}): the archive changed or is "
                         "damaged") from None
    if ti.size != s:
        raise MediaError(f"tar header says {ti.size} bytes, the index {s}: the archive changed; its index is "
                         "rebuilt on the next load")
    data = buf[tarfile.BLOCKSIZE:]
    if len(data) < s:
        raise MediaError(f"tar member cut short ({len(data)} of {s} bytes): the archive is truncated")
    return data
