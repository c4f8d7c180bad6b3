"""Tar and WebDataset shards: a member index from the headers alone, one ranged read per member.

Indexing walks the headers with ``tarfile`` over a :class:`RangeFile`.  How much each read fetches is
chosen by :class:`_Pace` from the member sizes seen and the source's latency and bandwidth, measured on the
reads themselves: where round trips are cheap (a local file, a fast mirror), after a large member only the
2 KiB where the next header starts, after small ones a 64-KiB block (one request serves many WebDataset
``.json``/``.cls`` headers), so indexing a tar of N large clips costs N requests of ~2 KiB; where round trips
dominate (a mirror 40 ms away: 2,000 members took 2,002 requests and 89 s), each read fetches a block as
large as one round trip's worth of bandwidth, so a read serves every header in it (2,000 members: a few
dozen requests).  The result is cached (see :mod:`.index_cache`), so it is paid once per archive version.

Reading a member fetches its 512-byte header together with its data in one request; the header must parse
and state the indexed size, which catches an archive that changed under a stale index.
"""

from __future__ import annotations

import io
import logging
import tarfile
from typing import BinaryIO

from avsets.core.errors import MediaError, MediaSourceError
from avsets.core.secrets import redact_url

from .keys import member_kind
from .ranged import PROBE_BLOCK, RangeFile, RangeReader, open_window
from .records import Member, SourceStats, safe_member_name

BLOCK = 64 * 1024
SMALL = 2048  # after a large member: the next header (2 KiB also holds a GNU long-name or pax header)
MAX_BLOCK = 32 << 20
THROUGH_MEMBERS = 128
MIN_SAVING = 2.0  # seconds: below this, moving fewer bytes matters more than the time saved


class _Pace:
    """The size of the next read while walking headers: just the next header, or a block that reads
    through the members after it, whichever costs less time for the rest of the archive.

    Reading header by header costs one round trip (``latency``) per member; reading through costs the
    bytes (``bandwidth``) plus one round trip per block.  Both are measured on the reads made so far
    (:attr:`RangeFile.fills`: the fastest read is the latency, the best bytes per second beyond it the
    bandwidth).  Reading through is chosen only when it saves at least ``MIN_SAVING`` seconds and half the
    time, so where latency is small the walk keeps moving ~2 KiB per large member.  Blocks grow at most 4x per read
    (a bandwidth guessed from small reads is corrected by the next, larger one) and span at most
    ``THROUGH_MEMBERS`` average members, which bounds what a block wastes on a huge member it runs into.
    """

    def __init__(self, f: RangeFile, size: int) -> None:
        self.f, self.size = f, size
        self.through = False
        self._seen = 0  # fills taken into account (kept incremental: 100k headers must not rescan them)
        self.latency = float("inf")
        self.bandwidth = 0.0
        self.biggest = 0

    def _measured(self) -> tuple[float, float] | None:
        fills = self.f.fills
        for n, t in fills[self._seen:]:
            self.latency = min(self.latency, t)
            self.biggest = max(self.biggest, n)
            if n >= 32 * 1024:
                self.bandwidth = max(self.bandwidth, n / max(t - self.latency, 1e-4))
        self._seen = len(fills)
        if not self.bandwidth:
            return None
        return self.latency, self.bandwidth

    def block_after(self, member_size: int, pos: int, members: int) -> int:
        """The read size for the header that follows a member of ``member_size`` ending at ``pos``, the
        ``members``-th header read."""
        plain = BLOCK if member_size < BLOCK // 2 else SMALL
        got = self._measured()
        if got is None or members < 4 or pos >= self.size:
            return plain
        latency, bandwidth = got
        left = self.size - pos
        stride = pos / members
        grown = 4 * self.biggest
        # one round trip's worth of bytes, but at most ~128 members' worth: a block that starts at a header
        # may run into a huge member, and what it reads of that is wasted
        block = int(max(BLOCK, min(MAX_BLOCK, grown, THROUGH_MEMBERS * stride, latency * bandwidth)))
        by_header = left / stride * latency
        through = left / bandwidth + left / block * latency
        self.through = by_header - through > max(MIN_SAVING, 0.5 * by_header)
        return block if self.through else plain


def index_tar(url: str, reader: RangeReader, size: int) -> tuple[list[Member], SourceStats]:
    """Every regular member of an uncompressed tar; a truncated tail is counted, not fatal."""
    stats = SourceStats()
    f = RangeFile(reader, size, block=BLOCK)
    pace = _Pace(f, size)
    headers = 0
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
            # the next header follows this member's data: how much to read there is the pace's choice
            headers += 1
            f.block = pace.block_after(ti.size, ti.offset_data + ti.size, headers)
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


def open_tar_member(reader: RangeReader, fields: dict[str, str], member: str) -> BinaryIO:
    """The member as a file read by ranges on demand (tar data is stored as it is): a duration probe reads
    its header, not the whole member.  Unchecked against its header: for probes, never for serving rows."""
    size = int(fields["s"])
    if size <= 2 * PROBE_BLOCK:  # a small member: one request either way, and this one checks its header
        return io.BytesIO(read_tar_member(reader, fields))
    return open_window(reader, int(fields["o"]), size)
