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

from avsets.core.errors import AvsetsError

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
    """A reader of Thrift's compact protocol: structs come back as ``{field id: value}``.

    Every length and count comes from the file, so each is checked against the bytes that remain before it
    is used (a container element takes at least one byte, a double eight): a crafted offset index declaring
    2**62 elements fails at once with :class:`PageUnsupported` instead of looping or filling memory.  Nesting
    is bounded too (parquet.thrift nests a few levels; a crafted file could nest until the stack runs out).
    """

    MAX_DEPTH = 32

    def __init__(self, buf: bytes | memoryview, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos
        self.depth = 0

    def remaining(self) -> int:
        return len(self.buf) - self.pos

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
            if shift > 63:
                raise PageUnsupported("bad Thrift varint")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def _take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise PageUnsupported(f"Thrift value of {n} bytes with {self.remaining()} left")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def _count(self, n: int, each: int) -> int:
        """A declared element count, checked against what the remaining bytes can hold."""
        if n * each > self.remaining():
            raise PageUnsupported(f"Thrift container of {n} elements with {self.remaining()} bytes left")
        return n

    def value(self, t: int) -> Any:
        if t in (_TRUE, _FALSE):  # in a struct field the type carries the value
            return t == _TRUE
        if t == _BYTE:
            return self.byte()
        if t in (_I16, _I32, _I64):
            return self.zigzag()
        if t == _DOUBLE:
            self._take(8)
            return None
        if t == _BINARY:
            return self._take(self.varint())
        if t in (_LIST, _SET):
            head = self.byte()
            size, et = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if et in (_TRUE, _FALSE):  # booleans in a list are one byte each
                return [b == 1 for b in self._take(self._count(size, 1))]
            if et == _DOUBLE:
                self._take(8 * self._count(size, 8))
                return [None] * size
            self._count(size, 1)
            return self._nested(lambda: [self.value(et) for _ in range(size)])
        if t == _MAP:
            size = self._count(self.varint(), 2)
            if size:
                kv = self.byte()
                self._nested(lambda: [(self.value(kv >> 4), self.value(kv & 0x0F)) for _ in range(size)])
            return None
        if t == _STRUCT:
            return self._nested(self.struct)
        raise PageUnsupported(f"unknown Thrift type {t}")

    def _nested(self, read: Any) -> Any:
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise PageUnsupported("Thrift data nested too deep")
        try:
            return read()
        finally:
            self.depth -= 1

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


def _int(value: Any, default: int = 0) -> int:
    """An integer field (a crafted file may put a string or a list where the format says integer)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise PageUnsupported(f"an integer field holds {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[int, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PageUnsupported(f"a struct field holds {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PageUnsupported(f"a list field holds {type(value).__name__}")
    return value


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
    for rg in _list(meta.get(4)):
        found: dict[tuple[str, ...], ChunkPlan] = {}
        for chunk in _list(_dict(rg).get(1)):
            chunk = _dict(chunk)
            md = _dict(chunk.get(3))
            names = tuple(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in _list(md.get(3)))
            if names not in want or names in found:
                continue
            data_off = _int(md.get(9), -1)
            dict_off = md.get(11)
            if dict_off is not None and 0 < _int(dict_off) < data_off:
                dict_len = data_off - dict_off
            else:
                dict_off, dict_len = -1, 0
            found[names] = ChunkPlan(codec=_int(md.get(4)), dict_offset=dict_off, dict_length=dict_len,
                                     index_offset=_int(chunk.get(4), -1), index_length=_int(chunk.get(5)))
        for path, plans in out.items():
            plans.append(found.get(path))
    return out


def page_locations(buf: bytes, file_size: int | None = None) -> list[tuple[int, int, int]]:
    """An ``OffsetIndex`` as ``[(page offset, page size with its header, first row), ...]``.

    Each page must lie inside the file (``file_size``) and first rows must rise: an index that says
    otherwise is not trusted at all (:class:`PageUnsupported`, the row group is read instead)."""
    index = _Thrift(buf).struct()
    out = []
    for loc in _list(index.get(1)):
        loc = _dict(loc)
        off, size, first = _int(loc.get(1)), _int(loc.get(2)), _int(loc.get(3))
        if off < 0 or size <= 0 or first < 0 or (file_size is not None and off + size > file_size):
            raise PageUnsupported(f"page at {off} of {size} bytes (first row {first}) is outside the file")
        if out and first <= out[-1][2]:
            raise PageUnsupported("offset index pages are not in row order")
        out.append((off, size, first))
    return out


def page_of_row(pages: list[tuple[int, int, int]], row: int) -> tuple[int, int, int]:
    """The page holding ``row`` of its row group (pages are in row order: a binary search on first rows)."""
    i = bisect.bisect_right(pages, row, key=lambda page: page[2]) - 1
    if i < 0:
        raise PageUnsupported(f"no page holds row {row}")
    return pages[i]


# ------------------------------------------------------------------------------------------------ pages


def _hybrid(buf: bytes | memoryview, pos: int, end: int, width: int, count: int) -> list[int]:
    """``count`` values of the RLE/bit-packed hybrid encoding in ``buf[pos:end]``.

    Run lengths and group counts come from the file: each is cut to the values still wanted and checked
    against the bytes left, so a crafted run of 2**60 values costs nothing."""
    if not 0 <= width <= 32:
        raise PageUnsupported(f"bit width {width}")
    end = min(end, len(buf))
    out: list[int] = []
    nbytes = (width + 7) // 8
    mask = (1 << width) - 1
    while len(out) < count:
        header = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise PageUnsupported("RLE data ends early")
            b = buf[pos]
            pos += 1
            header |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        want = count - len(out)
        if header & 1:  # bit-packed: groups of 8 values, least significant bit first
            groups = header >> 1  # a group of 8 values takes ``width`` bytes
            n = min(groups * 8, want)
            size = (n * width + 7) // 8
            if size > end - pos:
                raise PageUnsupported("bit-packed run longer than its page")
            bits = int.from_bytes(bytes(buf[pos:pos + size]), "little")
            pos += groups * width
            out.extend((bits >> (i * width)) & mask for i in range(n))
        else:  # a run: one value repeated
            if pos + nbytes > end:
                raise PageUnsupported("RLE data ends early")
            value = int.from_bytes(bytes(buf[pos:pos + nbytes]), "little")
            pos += nbytes
            out.extend([value] * min(header >> 1, want))
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


_MAX_PAGE = (1 << 31) - 1  # page sizes are Thrift i32 in parquet.thrift


def _decompress(data: bytes, codec: int, size: int) -> bytes:
    if codec not in _CODECS:
        raise PageUnsupported(f"codec {codec}")
    name = _CODECS[codec]
    if name is None:
        return data
    if not 0 <= size <= _MAX_PAGE:
        raise PageUnsupported(f"uncompressed page size {size}")
    try:
        return pa.decompress(data, decompressed_size=size, codec=name, asbytes=True)
    except (pa.ArrowException, ValueError, MemoryError) as exc:
        raise PageUnsupported(f"cannot decompress a {name} page ({exc})") from None


def _page(raw: bytes) -> tuple[dict[int, Any], memoryview]:
    reader = _Thrift(raw)
    header = reader.struct()
    size = _int(header.get(3))
    body = memoryview(raw)[reader.pos:reader.pos + size]
    if size < 0 or len(body) != size:
        raise PageUnsupported("page shorter than its header says")
    return header, body


def dictionary_values(raw: bytes, codec: int) -> tuple[bytes, list[tuple[int, int]]]:
    """A dictionary page's values: the uncompressed page and each value's ``(start, length)`` in it."""
    header, body = _page(raw)
    if header.get(1) != _DICTIONARY_PAGE:
        raise PageUnsupported("not a dictionary page")
    info = _dict(header.get(7))
    if _int(info.get(2), _PLAIN) not in (_PLAIN, _PLAIN_DICTIONARY):
        raise PageUnsupported("dictionary page encoding")
    data = _decompress(bytes(body), codec, _int(header.get(2)))
    return data, _plain_values(data, 0, _int(info.get(1)))


def row_value(raw: bytes, codec: int, max_def: int, row_in_page: int,
              dictionary: tuple[bytes, list[tuple[int, int]]] | None = None) -> bytes | None | str:
    """The value of one row of a data page (``None`` when null).  Returns the string ``"dictionary"`` when the
    page needs its chunk's dictionary page and none was given.

    Only the levels and indices up to the row are decoded (the page's value count comes from the file and
    bounds nothing by itself)."""
    header, body = _page(raw)
    kind = header.get(1)
    if kind == _DATA_PAGE:
        info = _dict(header.get(5))
        count, encoding = _int(info.get(1)), _int(info.get(2), _PLAIN)
        if not 0 <= row_in_page < count:
            raise PageUnsupported(f"row {row_in_page} is not in this page of {count} values")
        data = _decompress(bytes(body), codec, _int(header.get(2)))
        pos = 0
        defs = [max_def] * (row_in_page + 1)
        if max_def:
            if len(data) < 4:
                raise PageUnsupported("definition levels end early")
            (n,) = struct.unpack_from("<I", data, 0)
            defs = _hybrid(data, 4, 4 + n, max_def.bit_length(), row_in_page + 1)
            pos = 4 + n
    elif kind == _DATA_PAGE_V2:
        info = _dict(header.get(8))
        count, encoding = _int(info.get(1)), _int(info.get(4), _PLAIN)
        def_len, rep_len = _int(info.get(5)), _int(info.get(6))
        if rep_len:
            raise PageUnsupported("repeated column")
        if not 0 <= row_in_page < count:
            raise PageUnsupported(f"row {row_in_page} is not in this page of {count} values")
        if not 0 <= def_len <= len(body):
            raise PageUnsupported("definition levels longer than the page")
        levels = bytes(body[:def_len])
        values = bytes(body[def_len:])
        if info.get(7, True):
            values = _decompress(values, codec, _int(header.get(2)) - def_len - rep_len)
        defs = (_hybrid(levels, 0, def_len, max_def.bit_length(), row_in_page + 1) if max_def
                else [max_def] * (row_in_page + 1))
        data, pos = values, 0
    else:
        raise PageUnsupported(f"page type {kind}")
    if defs[row_in_page] != max_def:
        return None
    nth = sum(1 for d in defs[:row_in_page] if d == max_def)  # the value's place among non-null values
    if encoding == _PLAIN:
        start, n = _plain_values(data, pos, nth + 1)[nth]
        return bytes(data[start:start + n])
    if encoding in (_PLAIN_DICTIONARY, _RLE_DICTIONARY):
        if dictionary is None:
            return "dictionary"
        if pos >= len(data):
            raise PageUnsupported("dictionary indices end early")
        width = data[pos]
        ids = _hybrid(data, pos + 1, len(data), width, nth + 1) if width else [0] * (nth + 1)
        words, spans = dictionary
        if ids[nth] >= len(spans):
            raise PageUnsupported("dictionary index out of range")
        start, n = spans[ids[nth]]
        return bytes(words[start:start + n])
    raise PageUnsupported(f"encoding {encoding}")
