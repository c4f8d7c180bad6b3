"""Zip sources: the central directory read with at most three requests, one member with one ranged read.

Indexing reads the size (one metadata request), the last 64 KiB (the end record, the zip64 locator and,
for small archives, the whole central directory) and then the central directory in one request if the tail
did not hold it.  The directory is parsed here rather than through ``zipfile`` because ``zipfile`` builds a
``ZipInfo`` object per member; 100,000 members parse in about the time ``ZipFile.namelist()`` takes.

A member is read with one ranged request covering its local header, its data and ``SLACK`` bytes for the
local header's name and extra field (whose length the central directory does not give); a longer extra
field costs a second request.  Bytes moved: compressed size + 30 + name + ``SLACK``.
"""

from __future__ import annotations

import bz2
import io
import struct
import zlib
from typing import BinaryIO

from avsets.core.errors import MediaError, MediaSourceError, MemberTooLargeError
from avsets.core.segments import MEDIA_EXTENSIONS

from .ranged import PROBE_BLOCK, RangeReader, open_window
from .records import Member, SourceStats, safe_member_name

TAIL = 64 * 1024 + 22 + 20 + 56
SLACK = 1024

_EOCD = struct.Struct("<4s4H2LH")  # sig, disk, cd disk, entries here, entries total, cd size, cd offset, comment
_EOCD64_LOC = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CDH = struct.Struct("<4s4B4HL2L5H2L")  # central directory header, 46 bytes
_LFH = struct.Struct("<4s2B4HL2L2H")  # local file header, 30 bytes


def _end_records(reader: RangeReader, size: int, tail: bytes, url: str) -> tuple[int, int, int, int]:
    """``(entries, cd_size, cd_offset, concat)`` from the end of the archive."""
    base = size - len(tail)
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0 and pos + 22 > len(tail):
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    if pos < 0:
        raise MediaSourceError("no zip end-of-central-directory record: not a zip file, or truncated", source=url)
    _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    eocd_abs = base + pos
    loc = pos - _EOCD64_LOC.size
    if loc >= 0 and tail[loc:loc + 4] == b"PK\x06\x07":
        _, _, rec_off, _ = _EOCD64_LOC.unpack_from(tail, loc)
        rec = tail[rec_off - base:rec_off - base + _EOCD64.size] if rec_off >= base else b""
        if len(rec) < _EOCD64.size:
            rec = reader.read(rec_off, rec_off + _EOCD64.size)
        if len(rec) < _EOCD64.size or rec[:4] != b"PK\x06\x06":
            raise MediaSourceError("damaged zip64 end record", source=url)
        _, _, _, _, _, _, _, entries, cd_size, cd_offset = _EOCD64.unpack_from(rec, 0)
        eocd_abs = rec_off  # the zip64 record follows the central directory
    concat = eocd_abs - cd_size - cd_offset
    if concat < 0:
        raise MediaSourceError("zip central directory lies beyond the end record: truncated or damaged",
                               source=url)
    return entries, cd_size, cd_offset, concat


def index_zip(url: str, reader: RangeReader, size: int) -> tuple[list[Member], SourceStats]:
    """Every member of a zip as ``(relpath, locator, size)``; unsafe/encrypted members skipped and counted."""
    stats = SourceStats()
    tail = reader.read(max(0, size - TAIL), size)
    stats.requests += 1
    if size < 22 or len(tail) < 22:
        raise MediaSourceError("too short to be a zip file", source=url)
    entries, cd_size, cd_offset, concat = _end_records(reader, size, tail, url)
    start = cd_offset + concat
    if start + cd_size > size:
        raise MediaSourceError(f"central directory ({cd_size} bytes at {start}) runs past the end of the "
                               f"{size}-byte file: truncated", source=url)
    tail_start = size - len(tail)
    if start >= tail_start:
        cd = tail[start - tail_start:start - tail_start + cd_size]
    else:
        cd = reader.read(start, start + cd_size)
        stats.requests += 1
    if len(cd) < cd_size:
        raise MediaSourceError("central directory cut short: truncated", source=url)
    members: list[Member] = []
    n_url = len(url)
    unpack = _CDH.unpack_from
    mv = memoryview(cd)
    p = 0
    for i in range(entries):
        if p + 46 > cd_size or cd[p:p + 4] != b"PK\x01\x02":
            raise MediaSourceError(f"central directory entry {i} is damaged", source=url)
        (_, _, _, _, _, flags, method, _, _, crc, csize, usize, nlen, elen, clen, _, _, _, offset) = unpack(cd, p)
        raw = bytes(mv[p + 46:p + 46 + nlen])
        if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
            usize, csize, offset = _zip64_extra(bytes(mv[p + 46 + nlen:p + 46 + nlen + elen]), usize, csize, offset)
        p += 46 + nlen + elen + clen
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        dot = name.rfind(".")
        if dot <= name.rfind("/") + 1 or name[dot + 1:].lower() not in MEDIA_EXTENSIONS:
            continue  # folders, json, txt, cls...: not media
        rel = safe_member_name(name)
        if rel is None:
            stats.unsafe += 1
            continue
        if flags & 1:
            stats.encrypted += 1
            continue
        if offset + concat + 30 + csize > size:  # its data would run past the archive: never asked for
            stats.truncated += 1
            continue
        members.append(Member(rel, f"avsets:zip:o={offset + concat},c={csize},m={method},s={usize},crc={crc},"
                                   f"n={n_url}:{url}!/{rel}", usize))
    return members, stats


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    p = 0
    while p + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, p)
        if tag == 1:
            q = p + 4
            vals = []
            while q + 8 <= p + 4 + ln:
                vals.append(struct.unpack_from("<Q", extra, q)[0])
                q += 8
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
            break
        p += 4 + ln
    return usize, csize, offset


def read_zip_member(reader: RangeReader, fields: dict[str, str], member: str) -> bytes:
    """The member's bytes, decompressed and CRC-checked (one ranged request, two for a long extra field)."""
    o, c, m, s, crc = (int(fields[k]) for k in ("o", "c", "m", "s", "crc"))
    name_len = len(member.encode("utf-8"))
    buf = reader.read(o, o + _LFH.size + name_len + c + SLACK)
    if len(buf) < _LFH.size or buf[:4] != b"PK\x03\x04":
        raise MediaError("zip local header not found where the central directory says: the archive changed "
                         "or is damaged")
    nlen, elen = _LFH.unpack_from(buf, 0)[-2:]
    start = _LFH.size + nlen + elen
    data = buf[start:start + c]
    if len(data) < c:
        data += reader.read(o + start + len(data), o + start + c)
    if len(data) < c:
        raise MediaError(f"zip member cut short ({len(data)} of {c} bytes): the archive is truncated")
    out = inflate(data, m, s, member)
    if zlib.crc32(out) != crc:
        raise MediaError("zip member fails its CRC/size check: damaged archive")
    return out


def inflate(data: bytes, method: int, size: int, member: str) -> bytes:
    """A zip member's bytes from its compressed ``data``, never more than its declared ``size``.

    Why a limit: a member declared at 100 KB can inflate to gigabytes (a zip bomb); inflating it whole
    before checking its size would cost that memory on every read.  Inflation stops one byte past the
    declared size, and a member that reaches it is refused by name (:class:`MemberTooLargeError`).
    """
    try:
        if method == 0:
            out = data
        elif method == 8:
            out = zlib.decompressobj(-15).decompress(data, size + 1)
        elif method == 12:
            out = bz2.BZ2Decompressor().decompress(data, max_length=size + 1)
        else:
            raise MediaError(f"zip compression method {method} is not supported (stored, deflate and bzip2 are)")
    except (zlib.error, OSError, ValueError, EOFError) as exc:
        raise MediaError(f"zip member does not decompress: {exc}") from None
    if len(out) > size:
        raise MemberTooLargeError(f"zip member {member!r} inflates past its declared {size:,} bytes (a zip bomb "
                                  "or a damaged archive); not read further")
    if len(out) != size:
        raise MediaError(f"zip member holds {len(out):,} bytes, its directory says {size:,}: damaged archive")
    return out


def read_local_member(f: BinaryIO, offset: int, csize: int, method: int, size: int, crc: int, member: str) -> bytes:
    """A member read in archive order from an open zip file (``zipfile`` would inflate a bomb whole: its
    ``read`` asks zlib for up to 2 GiB per call and bzip2 for everything): its local header at ``offset``,
    then :func:`inflate` bounded by the declared ``size`` and the CRC check."""
    f.seek(offset)
    head = f.read(_LFH.size)
    if len(head) < _LFH.size or head[:4] != b"PK\x03\x04":
        raise MediaError(f"zip local header of {member!r} not found where the central directory says")
    nlen, elen = _LFH.unpack_from(head, 0)[-2:]
    f.seek(offset + _LFH.size + nlen + elen)
    data = f.read(csize)
    if len(data) < csize:
        raise MediaError(f"zip member {member!r} cut short ({len(data)} of {csize} bytes): the archive is truncated")
    out = inflate(data, method, size, member)
    if zlib.crc32(out) != crc:
        raise MediaError(f"zip member {member!r} fails its CRC check: damaged archive")
    return out


def open_zip_member(reader: RangeReader, fields: dict[str, str], member: str) -> BinaryIO:
    """The member as a file: read by ranges on demand when it is stored (method 0, the usual way to zip
    media that is compressed already), so a duration probe reads its header, not the member; a compressed
    member is inflated whole (:func:`read_zip_member`).  Unchecked by CRC when read by ranges: for probes."""
    o, c, m = (int(fields[k]) for k in ("o", "c", "m"))
    if m != 0 or c <= 2 * PROBE_BLOCK:  # a small member costs one request read whole, two read by ranges
        return io.BytesIO(read_zip_member(reader, fields, member))
    head = reader.read(o, o + _LFH.size + len(member.encode("utf-8")) + SLACK)
    if len(head) < _LFH.size or head[:4] != b"PK\x03\x04":
        raise MediaError("zip local header not found where the central directory says: the archive changed "
                         "or is damaged")
    nlen, elen = _LFH.unpack_from(head, 0)[-2:]
    return open_window(reader, o + _LFH.size + nlen + elen, c)
