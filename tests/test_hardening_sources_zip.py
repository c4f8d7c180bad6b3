"""A zip member that inflates past its declared size is refused by name after at most that size (issue 19.2).

The bombs are real zips written by ``zipfile`` (deflate and bzip2) whose directory and local header are then
edited to declare 100 KB for 32 MB of zeros, with the CRC of the declared prefix (so a reader that merely
truncates would pass them off as good).  Every path that reads zip members is attacked: random access
(local and over a loopback HTTP server) and archive order.  Peak Python memory is measured with
``tracemalloc``: inflating the bomb whole would cost its 32 MB.
"""

from __future__ import annotations

import io
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from range_server import RangeServer

from avsets.core.errors import AvsetsError, MediaError, MediaSourceError, MemberTooLargeError
from avsets.media.sources import Source, index_source, media_source, read_media_bytes
from avsets.media.sources.locator import parse_locator
from avsets.media.sources.members import ReadStats
from avsets.media.sources.ranged import RangeReader
from avsets.media.sources.tarsrc import index_tar, read_tar_member
from avsets.media.sources.zipsrc import index_zip, read_zip_member

DECLARED = 100_000
ACTUAL = 32 << 20
METHODS = {"deflate": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2}


@pytest.fixture(autouse=True)
def _cold(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))


def _declare(path: Path, name: str, size: int, crc: int) -> None:
    """Rewrite ``name``'s uncompressed size and CRC in its local header and its central directory entry."""
    buf = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    struct.pack_into("<L", buf, info.header_offset + 14, crc)
    struct.pack_into("<L", buf, info.header_offset + 22, size)
    pos = buf.find(b"PK\x01\x02")
    while pos >= 0:
        nlen = struct.unpack_from("<H", buf, pos + 28)[0]
        if bytes(buf[pos + 46:pos + 46 + nlen]).decode() == name:
            struct.pack_into("<L", buf, pos + 16, crc)
            struct.pack_into("<L", buf, pos + 24, size)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(buf))


def make_bomb(path: Path, method: int, *, declared: int = DECLARED, actual: int = ACTUAL) -> Path:
    """A zip with an honest clip, the bomb ``bomb.flac`` and another honest clip after it."""
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        zf.writestr("clips/a.flac", b"fLaC" + bytes(range(256)) * 40)
        zf.writestr("clips/bomb.flac", bytes(actual))
        zf.writestr("clips/c.flac", b"fLaC" + bytes(range(255, -1, -1)) * 40)
    _declare(path, "clips/bomb.flac", declared, zlib.crc32(bytes(declared)))
    return path


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        try:
            out: object = fn()
        except AvsetsError as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _locators(url: str) -> dict[str, str]:
    return {m.relpath: m.locator for m in index_source(Source(url, "zip"), use_cache=False).members}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("remote", [False, True], ids=["local", "http"])
def test_random_access_stops_at_the_declared_size_and_names_the_member(tmp_path, method, remote):
    path = make_bomb(tmp_path / "bomb.zip", METHODS[method])
    if remote:
        srv = RangeServer(tmp_path).start()
        url = srv.url("bomb.zip")
    else:
        srv, url = None, str(path)
    try:
        locs = _locators(url)
        got, peak = _peak(lambda: read_media_bytes(locs["clips/bomb.flac"]))
        assert isinstance(got, MemberTooLargeError), got
        assert "clips/bomb.flac" in str(got) and f"{DECLARED:,}" in str(got)
        assert peak < 8 << 20, f"peak {peak:,} bytes: the member was inflated past its declared size"
        # the honest neighbours are untouched
        assert read_media_bytes(locs["clips/a.flac"]).startswith(b"fLaC")
        assert read_media_bytes(locs["clips/c.flac"]).startswith(b"fLaC")
    finally:
        if srv is not None:
            srv.stop()


@pytest.mark.parametrize("method", list(METHODS))
def test_archive_order_stops_at_the_declared_size_and_names_the_member(tmp_path, method):
    path = make_bomb(tmp_path / "bomb.zip", METHODS[method])
    stats = ReadStats()
    seen: list[str] = []

    def walk() -> None:
        for m in media_source(Source(str(path), "zip")).iter_members(stats):
            seen.append(m.name)

    got, peak = _peak(walk)
    # damage costs the damaged member only (DESIGN, round 3): the bomb is skipped, counted and named, and the
    # honest member after it is still read
    assert got is None, got
    assert stats.damaged == 1 and stats.damaged_names == ["clips/bomb.flac"]
    assert peak < 8 << 20, f"peak {peak:,} bytes: the member was inflated past its declared size"
    assert seen == ["clips/a.flac", "clips/c.flac"]


@pytest.mark.parametrize("declared", [(1 << 20) - 1, 1, 0])
def test_any_understatement_is_refused_not_only_large_ones(tmp_path, declared):
    path = make_bomb(tmp_path / "bomb.zip", zipfile.ZIP_DEFLATED, declared=declared, actual=1 << 20)
    with pytest.raises(MemberTooLargeError):
        read_media_bytes(_locators(str(path))["clips/bomb.flac"])


def test_a_member_shorter_than_declared_is_damage_not_a_short_read(tmp_path):
    path = make_bomb(tmp_path / "short.zip", zipfile.ZIP_DEFLATED, declared=2 << 20, actual=1 << 20)
    with pytest.raises(MediaError, match="directory says"):
        read_media_bytes(_locators(str(path))["clips/bomb.flac"])


def test_a_directory_entry_whose_data_runs_past_the_end_is_not_indexed(tmp_path):
    """A crafted compressed size of 4 GB is never asked for (it would be one huge ranged read)."""
    path = tmp_path / "lying.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.flac", b"fLaC" * 100)
        zf.writestr("b.flac", b"fLaC" * 100)
    buf = bytearray(path.read_bytes())
    pos = buf.find(b"PK\x01\x02")
    struct.pack_into("<L", buf, pos + 20, 0xFFFFFFF0)  # a.flac's compressed size
    path.write_bytes(bytes(buf))
    si = index_source(Source(str(path), "zip"), use_cache=False)
    assert [m.relpath for m in si.members] == ["b.flac"]
    assert si.stats.truncated == 1
    assert read_media_bytes(si.members[0].locator) == b"fLaC" * 100


# ---------------------------------------------------------------------- fuzzing the directory and headers


def _seed_archives() -> dict[str, bytes]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, method in enumerate((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2)):
            zf.writestr(zipfile.ZipInfo(f"d/c{i}_0_10000.flac"), b"fLaC" + bytes(range(256)) * (i + 1),
                        compress_type=method)
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for i in range(3):
            data = b"fLaC" + bytes(range(256)) * (i + 1)
            ti = tarfile.TarInfo(f"d/{'x' * 120}{i}_0_10000.flac")  # a GNU long name
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return {"zip": buf.getvalue(), "tar": tbuf.getvalue()}


SEEDS = _seed_archives()


@pytest.mark.slow
@pytest.mark.timeout(180)
@settings(max_examples=300, deadline=3000, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(["zip", "tar"]))
def test_mutated_archives_give_members_or_named_errors(tmp_path, data, kind):
    """Every length and offset the zip directory and tar headers hold, mutated: indexing gives members or a
    :class:`MediaSourceError`, reading each member its bytes or a :class:`MediaError`; nothing else, no
    read larger than the archive (a huge pread would be a ``MemoryError``)."""
    buf = bytearray(SEEDS[kind])
    for _ in range(data.draw(st.integers(1, 4))):
        if len(buf) < 8:
            break
        at = data.draw(st.integers(0, len(buf) - 4))
        what = data.draw(st.sampled_from(["byte", "u32", "cut"]))
        if what == "byte":
            buf[at] = data.draw(st.integers(0, 255))
        elif what == "u32":
            buf[at:at + 4] = data.draw(st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, 1 << 30, 0])).to_bytes(4, "little")
        else:
            del buf[at:]
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(bytes(buf))
    reader = RangeReader(str(path))
    try:
        members, _ = (index_zip if kind == "zip" else index_tar)(str(path), reader, len(buf))
    except MediaSourceError:
        return
    for m in members:
        loc = parse_locator(m.locator)
        try:
            out = (read_zip_member(reader, loc.fields, loc.member) if kind == "zip"
                   else read_tar_member(reader, loc.fields))
        except MediaError:
            continue
        assert len(out) <= max(m.size, 0) or m.size < 0
