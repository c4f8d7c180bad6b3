"""One Parquet row's media bytes from its own data page, through the file's page index.

Why: a Parquet mirror's row group holds many members (``datasets`` writes 100 audio rows per row group), so
reading one row by row group moves ~100 members.  Files written with a page index (``datasets`` 4+ writes
one by default; ``pyarrow`` with ``write_page_index=True``) say where each data page of a column starts and
which row it begins with, so one row costs one data page (a few members at most, one ranged read), plus the
dictionary page when that page is dictionary-encoded.

``pyarrow`` neither exposes the page index nor reads single pages, so this module reads what it needs of the
format itself (https://github.com/apache/parquet-format): the Thrift compact protocol of the footer, the
offset index and page headers; the RLE/bit-packed hybrid of definition levels and dictionary indices;
``PLAIN`` and dictionary-encoded ``BYTE_ARRAY`` values in data pages v1 and v2, any codec ``pyarrow`` can
decompress.  Anything else (repeated columns, other encodings, a page that does not parse) raises
:class:`PageUnsupported` and the caller reads the row group as before: never a wrong byte.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import AvsetsError

# Thrift compact protocol type ids
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
# parquet.thrift enums
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_PLAIN, _PLAIN_DICTIONARY, _RLE_DICTIONARY = 0, 2, 8
_CODECS = {0: None, 1: "snappy", 2: "gzip", 4: "brotli", 6: "zstd", 7: "lz4_raw"}


class PageUnsupported(AvsetsError):
    """This file or page is outside what the page reader handles: read the row group instead."""


# ------------------------------------------------------------------------------------------------ thrift


class _Thrift:
    """A reader of Thrift's compact protocol: structs come back as ``{field id: value}``."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise PageUnsupported("Thrift data ends early")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 70:
                raise PageUnsupported("bad Thrift varint")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t: int) -> Any:
        if t in (_TRUE, _FALSE):  # in a struct field the type carries the value
            return t == _TRUE
        if t == _BYTE:
            return self.byte()
        if t in (_I16, _I32, _I64):
            return self.zigzag()
        if t == _DOUBLE:
            self.pos += 8
            return None
        if t == _BINARY:
            n = self.varint()
            out = self.buf[self.pos:self.pos + n]
            self.pos += n
            return out
        if t in (_LIST, _SET):
            head = self.byte()
            size, et = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if et in (_TRUE, _FALSE):  # booleans in a list are one byte each
                return [self.byte() == 1 for _ in range(size)]
            return [self.value(et) for _ in range(size)]
        if t == _MAP:
            size = self.varint()
            if size:
                kv = self.byte()
                for _ in range(size):
                    self.value(kv >> 4)
                    self.value(kv & 0x0F)
            return None
        if t == _STRUCT:
            return self.struct()
        raise PageUnsupported(f"unknown Thrift type {t}")

    def struct(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == _STOP:
                return out
            delta, t = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            out[fid] = self.value(t)
            last = fid


# ------------------------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class ChunkPlan:
    """Where one row group's ``bytes`` column chunk keeps its pages."""

    codec: int
    dict_offset: int  # -1: no dictionary page
    dict_length: int
    index_offset: int  # the chunk's offset index (-1: the file has no page index)
    index_length: int


def chunk_plans(footer: bytes, paths: list[tuple[str, ...]]) -> dict[tuple[str, ...], list[ChunkPlan | None]]:
    """Per column path (``("audio", "bytes")``), the plan of its chunk in each row group, from the raw Thrift
    ``FileMetaData`` (the footer without its length and magic), parsed once for every path."""
    meta = _Thrift(footer).struct()
    want = {tuple(p) for p in paths}
    out: dict[tuple[str, ...], list[ChunkPlan | None]] = {tuple(p): [] for p in paths}
    for rg in meta.get(4) or []:
        found: dict[tuple[str, ...], ChunkPlan] = {}
        for chunk in rg.get(1) or []:
            md = chunk.get(3) or {}
            names = tuple(p.decode("utf-8", "replace") if isinstance(p, bytes) else p for p in md.get(3) or [])
            if names not in want or names in found:
                continue
            data_off = md.get(9, -1)
            dict_off = md.get(11)
            if dict_off is not None and 0 < dict_off < data_off:
                dict_len = data_off - dict_off
            else:
                dict_off, dict_len = -1, 0
            found[names] = ChunkPlan(codec=md.get(4, 0), dict_offset=dict_off, dict_length=dict_len,
                                     index_offset=chunk.get(4, -1), index_length=chunk.get(5, 0))
        for path, plans in out.items():
            plans.append(found.get(path))
    return out


def page_locations(buf: bytes) -> list[tuple[int, int, int]]:
    """An ``OffsetIndex`` as ``[(page offset, page size with its header, first row), ...]``."""
    index = _Thrift(buf).struct()
    return [(loc.get(1, 0), loc.get(2, 0), loc.get(3, 0)) for loc in index.get(1) or []]


def page_of_row(pages: list[tuple[int, int, int]], row: int) -> tuple[int, int, int]:
    """The page holding ``row`` of its row group (pages are in row order: a binary search on first rows)."""
    i = bisect.bisect_right(pages, row, key=lambda page: page[2]) - 1
    if i < 0:
        raise PageUnsupported(f"no page holds row {row}")
    return pages[i]


# ------------------------------------------------------------------------------------------------ pages


def _hybrid(buf: bytes | memoryview, pos: int, end: int, width: int, count: int) -> list[int]:
    """``count`` values of the RLE/bit-packed hybrid encoding in ``buf[pos:end]``."""
    out: list[int] = []
    nbytes = (width + 7) // 8
    mask = (1 << width) - 1
    while len(out) < count:
        if pos >= end:
            raise PageUnsupported("RLE data ends early")
        header = shift = 0
        while True:
            b = buf[pos]
            pos += 1
            header |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        if header & 1:  # bit-packed: groups of 8 values, least significant bit first
            n = (header >> 1) * 8
            size = n * width // 8
            bits = int.from_bytes(bytes(buf[pos:pos + size]), "little")
            pos += size
            out.extend((bits >> (i * width)) & mask for i in range(n))
        else:  # a run: one value repeated
            value = int.from_bytes(bytes(buf[pos:pos + nbytes]), "little")
            pos += nbytes
            out.extend([value] * (header >> 1))
    return out[:count]


def _plain_values(buf: bytes | memoryview, pos: int, count: int) -> list[tuple[int, int]]:
    """``(start, length)`` of ``count`` PLAIN byte arrays from ``pos``."""
    out = []
    for _ in range(count):
        if pos + 4 > len(buf):
            raise PageUnsupported("PLAIN data ends early")
        (n,) = struct.unpack_from("<I", buf, pos)
        out.append((pos + 4, n))
        pos += 4 + n
    if pos > len(buf):
        raise PageUnsupported("PLAIN data ends early")
    return out


def _decompress(data: bytes, codec: int, size: int) -> bytes:
    if codec not in _CODECS:
        raise PageUnsupported(f"codec {codec}")
    name = _CODECS[codec]
    if name is None:
        return data
    try:
        return pa.decompress(data, decompressed_size=size, codec=name, asbytes=True)
    except (pa.ArrowException, ValueError) as exc:
        raise PageUnsupported(f"cannot decompress a {name} page ({exc})") from None


def _page(raw: bytes) -> tuple[dict[int, Any], memoryview]:
    reader = _Thrift(raw)
    header = reader.struct()
    body = memoryview(raw)[reader.pos:reader.pos + header.get(3, 0)]
    if len(body) != header.get(3, 0):
        raise PageUnsupported("page shorter than its header says")
    return header, body


def dictionary_values(raw: bytes, codec: int) -> tuple[bytes, list[tuple[int, int]]]:
    """A dictionary page's values: the uncompressed page and each value's ``(start, length)`` in it."""
    header, body = _page(raw)
    if header.get(1) != _DICTIONARY_PAGE:
        raise PageUnsupported("not a dictionary page")
    info = header.get(7) or {}
    if info.get(2, _PLAIN) not in (_PLAIN, _PLAIN_DICTIONARY):
        raise PageUnsupported("dictionary page encoding")
    data = _decompress(bytes(body), codec, header.get(2, 0))
    return data, _plain_values(data, 0, info.get(1, 0))


def row_value(raw: bytes, codec: int, max_def: int, row_in_page: int,
              dictionary: tuple[bytes, list[tuple[int, int]]] | None = None) -> bytes | None | str:
    """The value of one row of a data page (``None`` when null).  Returns the string ``"dictionary"`` when the
    page needs its chunk's dictionary page and none was given."""
    header, body = _page(raw)
    kind = header.get(1)
    if kind == _DATA_PAGE:
        info = header.get(5) or {}
        count, encoding = info.get(1, 0), info.get(2, _PLAIN)
        data = _decompress(bytes(body), codec, header.get(2, 0))
        pos = 0
        defs = [max_def] * count
        if max_def:
            (n,) = struct.unpack_from("<I", data, 0)
            defs = _hybrid(data, 4, 4 + n, max_def.bit_length(), count)
            pos = 4 + n
    elif kind == _DATA_PAGE_V2:
        info = header.get(8) or {}
        count, encoding = info.get(1, 0), info.get(4, _PLAIN)
        def_len, rep_len = info.get(5, 0), info.get(6, 0)
        if rep_len:
            raise PageUnsupported("repeated column")
        levels = bytes(body[:def_len])
        values = bytes(body[def_len:])
        if info.get(7, True):
            values = _decompress(values, codec, header.get(2, 0) - def_len - rep_len)
        defs = _hybrid(levels, 0, def_len, max_def.bit_length(), count) if max_def else [max_def] * count
        data, pos = values, 0
    else:
        raise PageUnsupported(f"page type {kind}")
    if not 0 <= row_in_page < count:
        raise PageUnsupported(f"row {row_in_page} is not in this page of {count} values")
    if defs[row_in_page] != max_def:
        return None
    nth = sum(1 for d in defs[:row_in_page] if d == max_def)  # the value's place among non-null values
    present = sum(1 for d in defs if d == max_def)
    if encoding == _PLAIN:
        start, n = _plain_values(data, pos, nth + 1)[nth]
        return bytes(data[start:start + n])
    if encoding in (_PLAIN_DICTIONARY, _RLE_DICTIONARY):
        if dictionary is None:
            return "dictionary"
        width = data[pos]
        ids = _hybrid(data, pos + 1, len(data), width, present) if width else [0] * present
        words, spans = dictionary
        if ids[nth] >= len(spans):
            raise PageUnsupported("dictionary index out of range")
        start, n = spans[ids[nth]]
        return bytes(words[start:start + n])
    raise PageUnsupported(f"encoding {encoding}")
