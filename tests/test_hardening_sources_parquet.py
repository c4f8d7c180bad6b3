"""A crafted Parquet page index costs the page path, never a hang, a memory bomb or a lost row (issue 19.1).

The Thrift compact reader of :mod:`avsets.media.sources.parquet_pages` takes every length and count from the file.
Here the class of input is attacked three ways: hand-built Thrift that declares containers, strings and runs
far larger than the bytes behind them (2**62 doubles, structs, booleans, map pairs; deep nesting); Hypothesis
fuzzing of every entry point with random bytes and with mutations of real offset indexes and pages written by
pyarrow (only :class:`PageUnsupported` may come out, in bounded time); and real files whose offset index is
rewritten to point outside the file, which must still serve every row, byte for byte, through the row group.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avsets.media.sources import Source, index_source, parquetsrc, read_media_bytes
from avsets.media.sources.locator import parse_locator
from avsets.media.sources.parquet_pages import (
    PageUnsupported,
    _hybrid,
    _Thrift,
    chunk_plans,
    dictionary_values,
    page_locations,
    row_value,
)

_I32, _I64, _DOUBLE, _BINARY, _LIST, _MAP, _STRUCT = 5, 6, 7, 8, 9, 11, 12
HUGE = 2**62


@pytest.fixture(autouse=True)
def _cold(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))
    for cache in (parquetsrc._GROUPS, parquetsrc._FOOTERS, parquetsrc._DICTS):
        cache.clear()


# ---------------------------------------------------------------------------------------- a Thrift writer


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zz(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _list_head(n: int, elem: int) -> bytes:
    return bytes([(n << 4) | elem]) if n < 15 else bytes([0xF0 | elem]) + _varint(n)


def offset_index(locs: list[tuple[int, int, int]]) -> bytes:
    """``OffsetIndex { 1: list<PageLocation { 1: i64 offset, 2: i32 size, 3: i64 first_row }> }``."""
    body = b"".join(bytes([0x16]) + _zz(o) + bytes([0x15]) + _zz(s) + bytes([0x16]) + _zz(f) + b"\x00"
                    for o, s, f in locs)
    return bytes([0x10 | _LIST]) + _list_head(len(locs), _STRUCT) + body + b"\x00"


# ------------------------------------------------------------------------- declared sizes against the bytes

CRAFTED = {
    "2**62 doubles": bytes([0x10 | _LIST, 0xF0 | _DOUBLE]) + _varint(HUGE) + b"\x00" * 64,
    "2**62 structs": bytes([0x10 | _LIST, 0xF0 | _STRUCT]) + _varint(HUGE) + b"\x00" * 64,
    "2**62 booleans": bytes([0x10 | _LIST, 0xF1]) + _varint(HUGE) + b"\x01" * 64,
    "2**62 i64": bytes([0x10 | _LIST, 0xF0 | _I64]) + _varint(HUGE) + b"\x02" * 64,
    "2**62 map pairs": bytes([0x10 | _MAP]) + _varint(HUGE) + bytes([0x55]) + b"\x02" * 64,
    "a 2**62-byte string": bytes([0x10 | _BINARY]) + _varint(HUGE) + b"x" * 64,
    "nine doubles in eight bytes": bytes([0x10 | _LIST, (9 << 4) | _DOUBLE]) + b"\x00" * 8,
    "a varint without end": bytes([0x10 | _I64]) + b"\xff" * 64,
    "lists nested 100,000 deep": bytes([0x10 | _LIST]) + bytes([(1 << 4) | _LIST]) * 100_000,
    "structs nested 100,000 deep": bytes([0x10 | _STRUCT]) + bytes([0x10 | _STRUCT]) * 100_000,
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", list(CRAFTED))
def test_declared_sizes_beyond_the_bytes_left_fail_at_once(name):
    buf = CRAFTED[name]
    with pytest.raises(PageUnsupported):
        _Thrift(buf).struct()
    with pytest.raises(PageUnsupported):
        page_locations(buf, 10**9)


@pytest.mark.timeout(20)
def test_runs_declared_far_beyond_the_page_cost_only_the_values_wanted():
    run = _varint(HUGE << 1) + b"\x07"  # a run of 2**62 sevens
    assert _hybrid(run, 0, len(run), 3, 5) == [7] * 5
    packed = _varint((HUGE << 1) | 1) + b"\xff" * 3  # 2**62 bit-packed groups with 3 bytes behind them
    assert _hybrid(packed, 0, len(packed), 3, 8) == [7] * 8
    with pytest.raises(PageUnsupported):
        _hybrid(packed, 0, len(packed), 3, 9)
    with pytest.raises(PageUnsupported):
        _hybrid(b"\x02\x01", 0, 2, 200, 1)  # no bit width is wider than 32


# ------------------------------------------------------------------------------------------------- fuzzing


def _write(path, values: list[bytes | None], **kw) -> None:
    rows = [{"video_id": f"id{i:04d}", "audio": None if v is None else {"bytes": v, "path": f"a/id{i:04d}.flac"}}
            for i, v in enumerate(values)]
    kw.setdefault("use_dictionary", False)  # one page per value or two: a long offset index to rewrite
    pq.write_table(pa.Table.from_pylist(rows), str(path), row_group_size=8, write_page_index=True,
                   data_page_size=4 << 10, write_batch_size=2, **kw)


def _values(n: int, seed: int = 0) -> list[bytes | None]:
    rng = np.random.default_rng(seed)
    out: list[bytes | None] = [b"fLaC" + rng.integers(0, 256, int(rng.integers(100, 9000)), dtype=np.uint8).tobytes()
                               for _ in range(n)]
    for i in range(2, n, 5):
        out[i] = None
    return out


def _plans(path) -> tuple[bytes, list]:
    data = path.read_bytes()
    footer_len = int.from_bytes(data[-8:-4], "little")
    plans = chunk_plans(data[-8 - footer_len:-8], [("audio", "bytes")])[("audio", "bytes")]
    return data, plans


@pytest.fixture(scope="module")
def real_parts(tmp_path_factory) -> list[bytes]:
    """Real offset indexes, footers, data and dictionary pages written by pyarrow: seeds for mutation."""
    root = tmp_path_factory.mktemp("seeds")
    out: list[bytes] = []
    for dictionary, version in ((False, "1.0"), (True, "2.0")):
        path = root / f"s{dictionary}{version}.parquet"
        _write(path, _values(24, seed=3), use_dictionary=dictionary, data_page_version=version,
               compression="none")
        data, plans = _plans(path)
        footer_len = int.from_bytes(data[-8:-4], "little")
        out.append(data[-8 - footer_len:-8])
        for p in plans[:2]:
            out.append(data[p.index_offset:p.index_offset + p.index_length])
            for off, size, _ in page_locations(data[p.index_offset:p.index_offset + p.index_length]):
                out.append(data[off:off + size][:600])
            if p.dict_offset >= 0:
                out.append(data[p.dict_offset:p.dict_offset + min(p.dict_length, 600)])
    return out


def _only_page_unsupported(buf: bytes) -> None:
    """Every entry point on ``buf``: a result or :class:`PageUnsupported`, nothing else."""
    for call in (lambda: page_locations(buf, 10**6), lambda: chunk_plans(buf, [("audio", "bytes")]),
                 lambda: dictionary_values(buf, 0), lambda: row_value(buf, 0, 1, 3),
                 lambda: row_value(buf, 0, 0, 0, (b"abc", [(0, 3)])), lambda: _hybrid(buf, 0, len(buf), 3, 50)):
        try:
            call()
        except PageUnsupported:
            pass


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_give_a_result_or_page_unsupported(buf):
    _only_page_unsupported(buf)


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_real_indexes_and_pages_give_a_result_or_page_unsupported(real_parts, data):
    buf = bytearray(data.draw(st.sampled_from(real_parts)))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, max(0, len(buf) - 1)))
        what = data.draw(st.sampled_from(["byte", "varint", "cut", "insert"]))
        if what == "byte" and buf:
            buf[at] = data.draw(st.integers(0, 255))
        elif what == "varint":  # a huge length or count where a small one was
            buf[at:at + 1] = _varint(data.draw(st.sampled_from([2**31 - 1, 2**32, 2**62, 2**63 - 1])))
        elif what == "cut":
            del buf[at:]
        else:
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    _only_page_unsupported(bytes(buf))


# ------------------------------------------------------------------- real files with a lying offset index


def _rewrite_index(path, rg: int, locs: list[tuple[int, int, int]] | bytes) -> None:
    """Replace row group ``rg``'s offset index in place (same length: zero padding after the STOP)."""
    data, plans = _plans(path)
    p = plans[rg]
    new = locs if isinstance(locs, bytes) else offset_index(locs)
    assert len(new) <= p.index_length, "the crafted index must fit where the real one was"
    buf = bytearray(data)
    buf[p.index_offset:p.index_offset + p.index_length] = new + b"\x00" * (p.index_length - len(new))
    path.write_bytes(bytes(buf))


LIES = {
    "a 2**62-byte page": lambda off, size: [(off, HUGE, 0)],
    "a page at 2**62": lambda off, size: [(HUGE, 100, 0)],
    "a page one byte past the end": lambda off, size: [(off, size - off + 1, 0)],
    "a negative offset": lambda off, size: [(-5, 100, 0)],
    "first rows out of order": lambda off, size: [(off, 50, 3), (off + 50, 50, 0)],
    "a list of 2**62 doubles": lambda off, size: CRAFTED["2**62 doubles"][:12],
    "a list of 2**62 page locations": lambda off, size: CRAFTED["2**62 structs"][:12],
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lie", list(LIES))
def test_an_offset_index_pointing_outside_the_file_serves_every_row_by_row_group(tmp_path, lie):
    values = _values(24, seed=5)
    path = tmp_path / "m.parquet"
    _write(path, values)
    data, plans = _plans(path)
    first_page = page_locations(data[plans[0].index_offset:plans[0].index_offset + plans[0].index_length])[0][0]
    _rewrite_index(path, 0, LIES[lie](first_page, len(data)))
    assert pq.read_table(str(path)).num_rows == len(values)  # pyarrow reads the file fine
    si = index_source(Source(str(path), "parquet"))
    got = {}
    for m in si.members:
        i = int(m.relpath.rsplit("id", 1)[1].split(".")[0])
        got[i] = read_media_bytes(m.locator)
        if i < 8:  # row group 0: its lying index is not trusted, so no page is named
            assert "pg" not in parse_locator(m.locator).fields
    assert got == {i: v for i, v in enumerate(values) if v is not None}


@pytest.mark.parametrize("length", [HUGE, 2**31 - 1, 10**9])
def test_a_page_range_outside_the_file_in_a_locator_falls_back_to_the_row_group(tmp_path, length):
    """An index cached before the file was replaced, or a crafted one: the read never asks for the range."""
    values = _values(16, seed=7)
    path = tmp_path / "m.parquet"
    _write(path, values)
    si = index_source(Source(str(path), "parquet"))
    m = si.members[3]
    fields = parse_locator(m.locator).fields
    off, _, first = fields["pg"].split("_")
    lying = m.locator.replace(f"pg={fields['pg']}", f"pg={off}_{length}_{first}")
    i = int(m.relpath.rsplit("id", 1)[1].split(".")[0])
    assert read_media_bytes(lying) == values[i]
