"""Indexing a remote tar is bound by round trips only where round trips are cheap (issue 18, tar indexing).

A mirror 40 ms away (the loopback range server with ``latency``) took one request per member: 2,000 members,
2,002 requests, 89 s.  The index walk now measures latency and bandwidth on its own reads and reads through
blocks of members when that saves time; where latency is small it still moves ~2 KiB per large member.
Counts are of real HTTP requests and body bytes on the server; no wall time is asserted.
"""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from range_server import RangeServer

from avsets.media.sources import Source, index_source, read_media_bytes


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))


def webdataset_tar(path, samples: int, *, seed: int = 0, sizes: tuple[int, int] = (4_000, 40_000),
                   huge: dict[int, int] | None = None) -> dict[str, bytes]:
    """``samples`` x (``{key}.flac`` of ``sizes`` bytes + ``{key}.json``): 2 members per sample.  ``huge``
    puts a member of that many bytes after the given sample."""
    rng = np.random.default_rng(seed)
    media: dict[str, bytes] = {}
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        for i in range(samples):
            key = f"shard/s{i:06d}_000000"
            data = b"fLaC" + rng.integers(0, 256, int(rng.integers(*sizes)), dtype=np.uint8).tobytes()
            for name, payload in ((f"{key}.flac", data), (f"{key}.json", json.dumps({"i": i}).encode())):
                ti = tarfile.TarInfo(name)
                ti.size = len(payload)
                t.addfile(ti, io.BytesIO(payload))
            media[f"{key}.flac"] = data
            if huge and i in huge:
                ti = tarfile.TarInfo(f"shard/big{i:06d}_000000.mp4")
                ti.size = huge[i]
                t.addfile(ti, io.BytesIO(bytes(huge[i])))
    return media


@pytest.mark.parametrize("sizes", [(4_000, 40_000), (40_000, 60_000)], ids=["small", "clips"])
def test_a_2000_member_tar_40ms_away_is_indexed_in_few_requests(tmp_path, sizes):
    """Clips of 40-60 KB were the worst case: one request per header (2,000), 80 s at 40 ms."""
    media = webdataset_tar(tmp_path / "shard.tar", 1000, sizes=sizes)
    with RangeServer(tmp_path) as srv:
        srv.latency = 0.04
        si = index_source(Source(srv.url("shard.tar"), "tar"), use_cache=False)
        requests, _ = srv.total()
        assert len(si.members) == 1000
        assert requests <= 50, f"{requests} requests to index 2,000 members"
        srv.latency = 0.0
        for m in si.members[::97]:
            assert read_media_bytes(m.locator) == media[m.relpath]


def test_large_members_far_away_are_skipped_not_downloaded(tmp_path):
    """Reading through blocks still starts each read at a header: a 30-MB member's data is never moved."""
    webdataset_tar(tmp_path / "mixed.tar", 1000, huge={300: 30 << 20, 700: 30 << 20})
    size = (tmp_path / "mixed.tar").stat().st_size
    with RangeServer(tmp_path) as srv:
        srv.latency = 0.04
        si = index_source(Source(srv.url("mixed.tar"), "tar"), use_cache=False)
        requests, moved = srv.total()
    assert len(si.members) == 1002
    assert requests <= 60, requests
    assert moved < size - (30 << 20), f"{moved:,} of {size:,} bytes"


@pytest.mark.slow
def test_where_round_trips_are_cheap_large_members_cost_2_kib_each(tmp_path):
    n = 100  # few enough that header by header stays the cheaper walk even on a loaded machine
    with tarfile.open(tmp_path / "big.tar", "w") as t:
        for i in range(n):
            ti = tarfile.TarInfo(f"clips/c{i:05d}_0_10000.flac")
            ti.size = 100 * 1024
            t.addfile(ti, io.BytesIO(bytes(ti.size)))
    with RangeServer(tmp_path) as srv:
        si = index_source(Source(srv.url("big.tar"), "tar"), use_cache=False)
        requests, moved = srv.total()
    assert len(si.members) == n
    assert moved <= n * 2048 + 64 * 1024, f"{moved:,} bytes for {n} headers"


@pytest.mark.slow
def test_a_far_but_slow_mirror_of_large_clips_stays_header_by_header(tmp_path):
    """40 ms away but ~3 MB/s: moving a 512-KB clip costs more than a round trip, so reading through would
    lose (120 headers: ~6 s one by one, ~20 s through); the walk measures the bandwidth (a guess from small
    reads is corrected by the next, larger one) and keeps to the headers."""
    n = 120
    with tarfile.open(tmp_path / "slow.tar", "w") as t:
        for i in range(n):
            ti = tarfile.TarInfo(f"clips/c{i:05d}_0_10000.mp4")
            ti.size = 512 * 1024
            t.addfile(ti, io.BytesIO(bytes(ti.size)))
    with RangeServer(tmp_path) as srv:
        srv.latency, srv.chunk, srv.delay = 0.04, 32 * 1024, 0.01
        si = index_source(Source(srv.url("slow.tar"), "tar"), use_cache=False)
        requests, moved = srv.total()
    assert len(si.members) == n
    assert moved <= n * 2048 + (1 << 20), f"{moved:,} bytes for {n} headers in {requests} requests"
