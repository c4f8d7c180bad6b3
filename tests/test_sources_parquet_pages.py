"""One Parquet row read from its own data page through the file's page index (avsets.media.sources.parquet_pages).

Files are written at test time by the real writers: ``datasets``' own ``Dataset.to_parquet`` (what Hub
mirrors are: 100 audio rows per row group, content-defined pages, a page index) and ``pyarrow`` with every
codec, both data page versions, with and without dictionary encoding, with null rows.  Every member read
back must equal the bytes written; the page path must be the one that served it (the row-group path is
made to fail), and over loopback HTTP one clip costs one request and about one page of bytes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from range_server import RangeServer

from avsets.media.sources import Source, index_source, parquetsrc, read_media_bytes
from avsets.media.sources.locator import parse_locator
from avsets.media.sources.parquet_pages import PageUnsupported, _hybrid


@pytest.fixture(autouse=True)
def _cold(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))
    for cache in (parquetsrc._GROUPS, parquetsrc._FOOTERS, parquetsrc._DICTS):
        cache.clear()
    yield


def _values(n: int, seed: int = 0) -> list[bytes | None]:
    rng = np.random.default_rng(seed)
    out: list[bytes | None] = [b"fLaC" + bytes(rng.integers(0, 256, int(rng.integers(500, 200_000)), dtype=np.uint8))
                               for _ in range(n)]
    for i in range(3, n, 7):
        out[i] = None  # rows without media
    out[5] = out[6]  # a repeated value (one dictionary entry for two rows)
    return out


def _rows(values: list[bytes | None]) -> list[dict]:
    return [{"video_id": f"id{i:04d}", "audio": None if v is None else {"bytes": v, "path": f"audio/id{i:04d}.flac"}}
            for i, v in enumerate(values)]


def _no_row_group_path(monkeypatch) -> None:
    def fail(*_a, **_k):
        raise AssertionError("the row-group path was used")
    monkeypatch.setattr(parquetsrc, "_footer", fail)


def _members(path: str, values: list[bytes | None]) -> list[tuple[str, bytes]]:
    si = index_source(Source(path, "parquet"))
    out = []
    for m in si.members:
        i = int(m.relpath.rsplit("id", 1)[1].split(".")[0])
        out.append((m.locator, values[i]))
    assert len(out) == sum(v is not None for v in values)
    return out


CASES = list(itertools.product(["snappy", "zstd", "gzip", "none", "lz4", "brotli"], ["1.0", "2.0"], [True, False]))


@pytest.mark.parametrize(("codec", "version", "dictionary"), CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_every_pyarrow_layout_reads_each_row_from_its_page(tmp_path, monkeypatch, codec, version, dictionary):
    values = _values(30)
    path = str(tmp_path / "m.parquet")
    pq.write_table(pa.Table.from_pylist(_rows(values)), path, row_group_size=12, compression=codec,
                   data_page_version=version, use_dictionary=dictionary, write_page_index=True,
                   data_page_size=64 << 10, write_batch_size=4)
    members = _members(path, values)
    pages = [parse_locator(loc).fields.get("pg") for loc, _ in members]
    assert None not in pages
    if not dictionary:  # (pyarrow puts every value of a group in one dictionary page when it may)
        assert len(set(pages)) > 3  # several pages per row group: the right one is picked
    _no_row_group_path(monkeypatch)
    for loc, want in members:
        assert read_media_bytes(loc) == want


def test_a_mirror_written_by_datasets_costs_one_request_and_one_page(tmp_path):
    datasets = pytest.importorskip("datasets")
    values = [v for v in _values(100, seed=1) if v is not None]
    rows = _rows(values)
    ds = datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio(decode=False))
    ds.to_parquet(str(tmp_path / "train-00000.parquet"))
    with RangeServer(tmp_path) as srv:
        si = index_source(Source(srv.url("train-00000.parquet"), "parquet"), use_cache=False)
        assert len(si.members) == len(values)
        group = sum(len(v) for v in values)
        for m in si.members[::9]:
            i = int(m.relpath.rsplit("id", 1)[1].split(".")[0])
            fields = parse_locator(m.locator).fields
            page = int(fields["pg"].split("_")[1])
            parquetsrc._GROUPS.clear()
            parquetsrc._DICTS.clear()
            srv.reset()
            assert read_media_bytes(m.locator) == values[i]
            requests, moved = srv.total()
            assert requests == 1 and moved == page
            assert moved < group / 4  # a page, not the row group's media column


def test_a_file_without_page_index_reads_by_row_group(tmp_path):
    values = _values(20)
    path = str(tmp_path / "plain.parquet")
    pq.write_table(pa.Table.from_pylist(_rows(values)), path, row_group_size=8)  # pyarrow: no page index
    members = _members(path, values)
    assert not any("pg" in parse_locator(loc).fields for loc, _ in members)
    for loc, want in members:
        assert read_media_bytes(loc) == want


def test_a_page_that_does_not_parse_falls_back_to_the_row_group(tmp_path):
    values = _values(20)
    path = str(tmp_path / "m.parquet")
    pq.write_table(pa.Table.from_pylist(_rows(values)), path, row_group_size=8, write_page_index=True,
                   data_page_size=64 << 10, write_batch_size=4)
    loc, want = _members(path, values)[4]
    fields = parse_locator(loc).fields
    off, length, first = fields["pg"].split("_")
    wrong = loc.replace(f"pg={fields['pg']}", f"pg={int(off) + 3}_{length}_{first}")  # points into the middle
    assert wrong != loc
    assert read_media_bytes(wrong) == want


def test_rle_bit_packed_hybrid_runs_and_groups():
    # a run of 5 threes (header 5<<1), then one bit-packed group of 8 values of width 2 (header 1<<1|1)
    packed = 0
    group = [0, 1, 2, 3, 3, 2, 1, 0]
    for i, v in enumerate(group):
        packed |= v << (2 * i)
    data = bytes([10, 3, 3]) + packed.to_bytes(2, "little")
    assert _hybrid(data, 0, len(data), 2, 13) == [3] * 5 + group
    with pytest.raises(PageUnsupported):
        _hybrid(data, 0, 1, 2, 20)
