"""Issue 19 items 3, 6, 7, 10, 12 and the mixed-folder friction, through the one MediaSource interface:
damage costs only the damaged member, members nobody wants are not read, looking for a ledger costs no
media bytes, an unsafe Parquet path is still a key, clip-or-video is decided once per mirror, a folder
mixing a zip and a ``.tar.gz`` serves map-style what random access can; and the builder's plan (issue 18)."""

from __future__ import annotations

import gzip
import io
import logging
import multiprocessing
import os
import pickle
import shutil
import tarfile
import zipfile
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from source_fixtures import make_flac, vgg_row_id, vggsound_mirror

import avsets
import avsets.media.media_index as media_index
from avsets.core.errors import MediaError, MediaSourceError
from avsets.media.media_index import MediaIndex
from avsets.media.resolve import ResolveOptions, attach_media
from avsets.media.sources import SourceStats, clip_or_video, media_source
from avsets.media.sources.row_join import RowIndex, iter_groups, serve_group

NAMES = [f"damage{i:04d}A_{i}000_{i + 10}000.flac" for i in range(4)]


@pytest.fixture(autouse=True)
def _private_index_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))


def _targz(members: list[tuple[str, bytes]]) -> tuple[bytes, list[int]]:
    """The archive and, per member, where its data ends in the uncompressed tar."""
    buf = io.BytesIO()
    ends = []
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
            ends.append(tf.offset - (-len(data) % tarfile.BLOCKSIZE))
    return buf.getvalue(), ends


def _cut_inside(raw: bytes, lo: int, hi: int) -> int:
    """A compressed length whose inflated prefix ends after ``lo`` and before ``hi`` bytes (the inflated
    length grows with the compressed length: a bisection)."""
    a, b = 0, len(raw)
    while a < b:
        cut = (a + b) // 2
        n = len(zlib.decompressobj(31).decompress(raw[:cut]))
        if n <= lo:
            a = cut + 1
        elif n >= hi:
            b = cut
        else:
            return cut
    raise AssertionError("no cut found")


@pytest.mark.parametrize("where", ["local", "http"])
@pytest.mark.parametrize("inside", ["data", "header"])
def test_a_cut_targz_loses_only_the_member_it_cuts(tmp_path, where, inside):
    """Issue 19 item 6: the member read in full just before the cut is served (it used to be lost with
    the group it was waiting in), then the damage is raised and counted; a cut inside the next header is
    damage too (``tarfile`` took it for the end of the archive)."""
    from range_server import RangeServer

    members = [(n, os.urandom(40_000)) for n in NAMES]
    raw, ends = _targz(members)
    path = tmp_path / "cut.tar.gz"
    lo, hi = (ends[2] + 520, ends[3] - 1000) if inside == "data" else (ends[2] + 1, ends[2] + 500)
    path.write_bytes(raw[:_cut_inside(raw, lo, hi)])
    got = []
    stats = SourceStats()
    with RangeServer(tmp_path) as srv:
        url = str(path) if where == "local" else srv.url(path.name)
        with pytest.raises(MediaSourceError, match="cut short"):
            for group in iter_groups(media_source(url).iter_members(stats)):
                got.extend((m.relpath, bytes(m.data)) for m in group)
    assert got == members[:3]
    assert stats.error


def test_a_cut_targz_still_serves_its_rows_in_archive_order(tmp_path):
    members = [(n, os.urandom(40_000)) for n in NAMES]
    raw, ends = _targz(members)
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(raw[:_cut_inside(raw, ends[2] + 1, ends[3] - 1000)])
    rows = RowIndex.build(pa.table({"youtube_id": [n[:11] for n in NAMES], "start": [float(i) for i in range(4)],
                                    "end": [float(i + 10) for i in range(4)]}))
    served: set[int] = set()
    with pytest.raises(MediaSourceError):
        for group in iter_groups(media_source(str(path)).iter_members(want=rows.wants)):
            serve_group(group, rows, served, want_audio=True, want_video=False)
    assert served == {0, 1, 2}


def test_a_crc_damaged_zip_member_costs_that_member_only(tmp_path, caplog):
    """Issue 19 item 6: one damaged member is skipped, counted and named; the members after it are read
    (they used to be reported "not in the sources")."""
    members = [(n, os.urandom(20_000)) for n in NAMES]
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(NAMES[1])
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(NAMES[1]) + 500] ^= 0xFF
    path.write_bytes(bytes(raw))
    src = media_source(str(path))
    stats = SourceStats()
    with caplog.at_level(logging.WARNING, logger="avsets"):
        got = [(m.relpath, bytes(m.data)) for m in src.iter_members(stats)]
    assert got == [members[0], *members[2:]]
    assert stats.damaged == 1 and stats.damaged_names == [NAMES[1]]
    assert NAMES[1] in caplog.text
    by_name = {m.relpath: m for m in src.index().members}  # random access agrees: that member alone fails
    with pytest.raises(MediaError, match="CRC"):
        src.read(by_name[NAMES[1]])
    assert src.read(by_name[NAMES[3]]) == members[3][1]


@pytest.mark.parametrize("template", ["/home/someone/clips/{}.flac", "C:\\clips\\{}.flac", "../../{}.flac"])
def test_a_parquet_path_unsafe_as_a_file_name_is_still_a_key(tmp_path, template):
    """Issue 19 item 10: absolute (POSIX or Windows) or escaping struct paths served no rows although the
    ``video_id`` column names each one; both halves now match by the key."""
    ytids = ["parqAbsol01", "parqAbsol02", "parqAbsol03"]
    flac = [make_flac(tmp_path / f"{i}.flac", 0.3, seed=i).read_bytes() for i in range(3)]
    path = tmp_path / "mirror.parquet"
    pq.write_table(pa.table({
        "video_id": ytids,
        "audio": pa.array([{"bytes": b, "path": template.format(y)} for b, y in zip(flac, ytids, strict=True)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    }), path)
    table = pa.table({"youtube_id": ytids, "start": [30.0, 40.0, 50.0], "end": [40.0, 50.0, 60.0]})
    out, stats = attach_media(table, MediaIndex.scan(str(path)), ResolveOptions(modalities=("audio",)))
    assert stats.found == 3 and stats.unsafe == 0
    assert all(a["path"].endswith(f"!/{y}.flac") for a, y in zip(out.column("audio").to_pylist(), ytids, strict=True))
    rows = RowIndex.build(table)
    served: set[int] = set()
    for group in iter_groups(media_source(str(path)).iter_members(want=rows.wants)):
        serve_group(group, rows, served, want_audio=True, want_video=False)
    assert served == {0, 1, 2}


def test_clip_or_video_is_probed_once_per_member_and_cached(tmp_path, monkeypatch):
    """Issue 18: clip or whole video is decided per member in both halves; map-style probes each member
    named by id alone once (a header read), keeps the durations with each file's cached index, and a warm
    scan probes nothing."""
    mirror = tmp_path / "hub_copy"
    mirror.mkdir()
    for f in range(4):
        ytids = [f"prob{f}{i:05d}x" for i in range(5)]
        flac = [make_flac(tmp_path / f"{f}_{i}.flac", 0.2, seed=i).read_bytes() for i in range(5)]
        pq.write_table(pa.table({
            "video_id": ytids,
            "audio": pa.array([{"bytes": b, "path": f"audio/{y}.flac"} for b, y in zip(flac, ytids, strict=True)],
                              pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        }), mirror / f"train-{f:05d}-of-00004.parquet", row_group_size=1)
    calls: list[str] = []
    real = clip_or_video._probe
    monkeypatch.setattr(clip_or_video, "_probe", lambda path, ext: calls.append(path) or real(path, ext))
    index = MediaIndex.scan(str(mirror))
    assert len(calls) == 20 and len(set(calls)) == 20  # every member once
    assert len(index.seconds) == 20 and all(s == pytest.approx(0.2, abs=0.01) for s in index.seconds.values())
    calls.clear()
    again = MediaIndex.scan(str(mirror))  # warm: the durations are cached with each file's index
    assert calls == [] and again.seconds == index.seconds


def test_a_folder_mixing_a_zip_and_a_targz_serves_map_style_from_the_zip(tmp_path, caplog):
    """Issue 19 friction: the zip serves its rows map-style; the .tar.gz is named, its rows count as
    missing (it used to fail the whole load)."""
    vgg = vggsound_mirror(tmp_path / "vgg")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    in_zip = [0, 1, 2]
    with zipfile.ZipFile(mixed / "clips.zip", "w") as zf:
        for i in in_zip:
            rid = vgg_row_id(i)
            zf.write(vgg.sources[rid], f"{rid}.mp4")
    shutil.copy(vgg.archives[1], mixed / "vggsound_01.tar.gz")
    with caplog.at_level(logging.WARNING):
        dd = avsets.load_dataset("vggsound", data_dir=str(vgg.meta), media_dir=str(mixed), decode=False,
                                 cache_dir=str(tmp_path / "cache"))
    assert set(dd["train"]["id"]) | set(dd["test"]["id"]) == {vgg_row_id(i) for i in in_zip}
    assert "vggsound_01.tar.gz" in caplog.text and "archive order" in caplog.text


def test_the_builder_receives_its_plan_as_an_argument(tmp_path, monkeypatch):
    """Issue 18: no process-global index registry and no attributes set on the builder from outside; a
    pickled plan leaves a big index to forked children and a process without it plans again."""
    vgg = vggsound_mirror(tmp_path / "vgg")
    folder = tmp_path / "zipped"
    folder.mkdir()
    with zipfile.ZipFile(folder / "clips.zip", "w") as zf:
        for rid, path in vgg.sources.items():
            zf.write(path, f"{rid}.mp4")
    assert not hasattr(media_index, "_INDEXES") and not hasattr(media_index, "get_index")
    monkeypatch.setattr(media_index, "_SHARE_AT", 1)  # share even this small index
    monkeypatch.setattr(media_index, "_FORK_SHARED", {})
    builder = avsets.load_dataset_builder("vggsound", data_dir=str(vgg.meta), media_dir=str(folder),
                                         cache_dir=str(tmp_path / "cache"))
    plan = builder.plan
    assert plan.index is not None and len(plan.index) == len(vgg.sources)
    assert builder.media_index() is plan.index  # no second scan
    blob = pickle.dumps(builder)
    assert len(blob) < 20_000  # the index stayed behind
    assert pickle.loads(blob).plan.index is plan.index  # this process finds it
    with multiprocessing.get_context("fork").Pool(1) as pool:  # a child forked after planning: no copy, no scan
        assert pool.apply(_planned_size_in_child, (blob,)) == len(vgg.sources)
    media_index._FORK_SHARED.clear()  # a spawned process does not: it plans again, to the same index
    again = pickle.loads(blob)
    assert again.plan.index is None
    assert again.media_index().fingerprint == plan.index.fingerprint


def test_a_member_declared_larger_than_a_row_can_hold_is_never_read(tmp_path):
    """Issue 19 item 3: what the archive declares bounds what one member may occupy."""
    ok = os.urandom(5000)
    head = tarfile.TarInfo(NAMES[0])
    head.size = len(ok)
    huge = tarfile.TarInfo(NAMES[1])
    huge.size = 3 << 30  # 3 GiB declared, a few KB present
    raw = head.tobuf() + ok + b"\0" * (-len(ok) % 512) + huge.tobuf() + os.urandom(4096)
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(raw))
    stats = SourceStats()
    got = []
    with pytest.raises(MediaSourceError):
        for m in media_source(str(path)).iter_members(stats):
            got.append(m.relpath)
    assert got == [NAMES[0]]
    assert stats.damaged_names == [NAMES[1]]


def test_archive_order_over_a_local_parquet_reads_only_row_groups_it_wants(tmp_path):
    """Issue 19 item 3 for Parquet mirrors: row groups whose keys no row wants are judged from their key and
    path columns, and their media bytes are never read."""
    ytids = [f"rowgrp{i:04d}x" for i in range(8)]
    blobs = [os.urandom(100_000) for _ in ytids]
    pq.write_table(pa.table({
        "video_id": ytids,
        "audio": pa.array([{"bytes": b, "path": f"audio/{y}.flac"} for b, y in zip(blobs, ytids, strict=True)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    }), tmp_path / "m.parquet", row_group_size=1, compression="none")
    rows = RowIndex.build(pa.table({"youtube_id": [ytids[5]], "start": [0.0], "end": [10.0]}))
    stats = SourceStats()
    got = [bytes(m.data) for m in media_source(str(tmp_path / "m.parquet")).iter_members(stats, want=rows.wants)]
    assert got == [blobs[5]]
    assert stats.bytes_read == 100_000  # one row group's media of eight


def test_looking_for_a_ledger_in_a_remote_archive_costs_no_request(tmp_path):
    """Issue 19 item 7: ``report --media-dir https://.../clips.zip`` took the archive for a ledger and
    downloaded it (twice); only a folder can hold a ledger."""
    from range_server import RangeServer

    from avsets.ops.report import _default_ledgers

    _write = zipfile.ZipFile(tmp_path / "clips.zip", "w")
    _write.writestr(NAMES[0], os.urandom(50_000))
    _write.close()
    with RangeServer(tmp_path) as srv:
        assert _default_ledgers([srv.url("clips.zip")]) == []
        assert srv.total() == (0, 0)


def test_unpack_of_a_zip_with_one_damaged_member_writes_the_others_and_names_it(tmp_path):
    """Issue 19 item 6 end to end: the intact members after a CRC-damaged one are written (they used to be
    reported "not in the sources"), the damaged one is named in the summary."""
    from avsets.ops.unpack import unpack_rows

    flacs = [make_flac(tmp_path / f"{i}.flac", 0.5, seed=i).read_bytes() for i in range(4)]
    path = tmp_path / "clips.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in zip(NAMES, flacs, strict=True):
            zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(NAMES[1])
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(NAMES[1]) + 200] ^= 0xFF
    path.write_bytes(bytes(raw))
    table = pa.table({"youtube_id": [n[:11] for n in NAMES], "start": [float(i) for i in range(4)],
                      "end": [float(i + 10) for i in range(4)]})
    report = unpack_rows(table, [str(path)], tmp_path / "out", quiet=True)
    assert report.written == 3 and report.missing == 1
    assert report.damaged == [f"{path}!/{NAMES[1]}"]
    assert f"{NAMES[1]}" in report.summary()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.flac")) == sorted(
        f"{n[:11]}_{i * 1000}_{(i + 10) * 1000}.flac" for i, n in enumerate(NAMES) if i != 1)


def _planned_size_in_child(blob: bytes) -> int | None:
    """In a forked worker: the builder's index size, if it came without a copy or a scan."""
    media_index.MediaIndex.scan = None  # any scan here would fail loudly
    plan = pickle.loads(blob).plan
    return None if plan.index is None else len(plan.index)
