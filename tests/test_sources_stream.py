"""Archive-order streaming from mirror copies (issue 11): .tar.gz, WebDataset shards and Parquet mirrors as
``media_dir`` with ``streaming=True``; decoded samples equal the source files, exact missing counts, archives
as shards, damaged archives and hostile member names."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from range_server import serve_folder
from source_fixtures import audioset_mirrors, vggsound_mirror

from avsets import load_dataset
from avsets.core.errors import MediaSourceError
from avsets.media.decoding import decode_audio, decode_video
from avsets.media.sources.stream import _PASSES


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return vggsound_mirror(tmp_path_factory.mktemp("vgg"))


@pytest.fixture(scope="module")
def aset(tmp_path_factory):
    return audioset_mirrors(tmp_path_factory.mktemp("aset"))


@pytest.fixture(autouse=True)
def _fresh_passes():
    _PASSES.clear()
    yield
    _PASSES.clear()


def _rows(ds) -> dict[str, dict]:
    return {r["id"]: r for r in ds}


def _assert_same_media(row: dict, source, offset: float = 0.0) -> None:
    want, sr = decode_audio(str(source), offset=offset, duration=row["end"] - row["start"])
    assert row["audio"]["sampling_rate"] == sr
    np.testing.assert_array_equal(row["audio"]["array"], want)


def test_targz_copy_streams_every_member_once_and_counts_missing(vgg, caplog):
    caplog.set_level(logging.WARNING, logger="avsets")
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=str(vgg.archives[0].parent),
                      streaming=True)
    assert ds.num_shards == 2  # one per archive, the copy's folder given as it is
    rows = _rows(ds)
    expected = set(vgg.splits["train"]) - vgg.missing["train"] - vgg.corrupt
    assert set(rows) == expected
    for rid, row in rows.items():
        _assert_same_media(row, vgg.sources[rid])
        want = decode_video(str(vgg.sources[rid]), offset=0.0, duration=10.0)
        np.testing.assert_array_equal(row["video"]["frames"], want.frames)
        assert row["media_offset"] == 0.0
    assert "2 of 7 rows have no member in the 2 archive(s)" in caplog.text
    # the row held twice (archive 00 and, later, archive 01) came from the first archive
    assert "1 member(s) served a row already served" in caplog.text
    # hostile names were never used: row 3 exists only as ../escape/..., /abs/... and a symlink
    assert "whose names leave the archive" in caplog.text


def test_keep_yields_rows_without_member_after_the_last_archive_and_corrupt_member_is_named(vgg):
    ds = load_dataset("vggsound", split="test", data_dir=str(vgg.meta), media_dir=[str(a) for a in vgg.archives],
                      streaming=True, on_missing="keep")
    with pytest.warns(UserWarning, match="vggFFFFFFF5"):
        rows = [r for r in ds]
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(vgg.splits["test"])
    assert ids[-1] in vgg.missing["test"]  # yielded at the end of the pass
    by_id = {r["id"]: r for r in rows}
    for rid in vgg.missing["test"] | vgg.corrupt:
        assert by_id[rid]["audio"] is None and by_id[rid]["video"] is None


def test_metadata_only_decode_false_embeds_member_bytes(vgg):
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(a) for a in vgg.archives],
                      streaming=True, decode=False)
    for row in ds:
        src = vgg.sources.get(row["id"])
        if src is not None:
            assert row["video"]["bytes"] == src.read_bytes()
            assert row["video"]["path"].endswith(".mp4") and "!/" in row["video"]["path"]


def test_archives_divide_between_nodes_each_row_once(vgg):
    from datasets.distributed import split_dataset_by_node

    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(a) for a in vgg.archives],
                      streaming=True, decode=False)
    parts = [[r["id"] for r in split_dataset_by_node(ds, rank=k, world_size=2)] for k in range(2)]
    assert all(parts) and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(set(vgg.splits["train"]) - vgg.missing["train"])


def test_http_mirror_moves_each_archive_once(vgg, tmp_path):
    server = serve_folder(vgg.archives[0].parent)
    try:
        urls = [server.url(a.name) for a in vgg.archives]
        ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=urls, streaming=True)
        rows = _rows(ds)
        assert set(rows) == set(vgg.splits["train"]) - vgg.missing["train"] - vgg.corrupt
        for rid, row in rows.items():
            _assert_same_media(row, vgg.sources[rid])
            assert row["audio"]["path"].startswith("http://127.0.0.1")
        for a in vgg.archives:
            assert server.bytes_sent[a.name] == a.stat().st_size
    finally:
        server.stop()


def test_truncated_targz_is_our_error_and_later_rows_count_missing(vgg, tmp_path, caplog):
    cut = tmp_path / "vggsound_01.tar.gz"
    data = vgg.archives[1].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.WARNING, logger="avsets")
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(vgg.archives[0]), str(cut)],
                      streaming=True, decode=False)
    rows = _rows(ds)
    assert set(rows) <= set(vgg.splits["train"]) and len(rows) >= 2
    assert str(cut) in caplog.text and "damaged or cut short after" in caplog.text
    n_missing = len(vgg.splits["train"]) - len(rows)
    assert f"{n_missing} of 7 rows have no member" in caplog.text
    strict = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(cut)],
                          streaming=True, decode=False, on_missing="error")
    with pytest.raises(MediaSourceError, match="cut short"):
        list(strict)


def test_not_an_archive_at_all_is_our_error(vgg, tmp_path, caplog):
    bogus = tmp_path / "vggsound_99.tar.gz"
    bogus.write_bytes(b"this is not gzip" * 100)
    caplog.set_level(logging.WARNING, logger="avsets")
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(bogus)], streaming=True,
                      on_missing="keep", decode=False)
    rows = list(ds)
    assert len(rows) == 7 and all(r["video"] is None for r in rows)
    assert "vggsound_99.tar.gz" in caplog.text and "after 0 members" in caplog.text


def test_webdataset_shard_serves_ascc_rows(aset, caplog):
    caplog.set_level(logging.WARNING, logger="avsets")
    ds = load_dataset("ascc", split="train", data_dir=str(aset.meta), media_dir=str(aset.webdataset), streaming=True)
    rows = {r["youtube_id"]: r for r in ds}
    assert set(rows) == set(aset.sources)
    for ytid, row in rows.items():
        _assert_same_media(row, aset.sources[ytid], aset.offsets[ytid])
        assert row["media_offset"] == aset.offsets[ytid]
        assert row["video"] is None
    assert "1 of 6 rows have no member" in caplog.text


def test_webdataset_shard_serves_the_same_rows_map_style(aset, tmp_path, monkeypatch):
    """Issue 19 item 11: the sample named only by its ``.json`` is found by the random-access index too
    (map-style, ``verify``, ``report`` counted it missing while streaming and ``unpack`` served it)."""
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "idx"))
    ds = load_dataset("ascc", split="train", data_dir=str(aset.meta), media_dir=str(aset.webdataset), decode=False,
                      cache_dir=str(tmp_path / "cache"))
    assert set(ds["youtube_id"]) == set(aset.sources)
    row = next(r for r in ds if r["youtube_id"] == aset.ids[3])
    assert row["audio"]["path"].endswith("!/sample000003.flac") and row["media_offset"] == 0.0


def test_parquet_mirror_over_http_serves_ascc_rows(aset):
    server = serve_folder(aset.parquet.parent)
    try:
        ds = load_dataset("ascc", split="train", data_dir=str(aset.meta), media_dir=server.url(aset.parquet.name),
                          streaming=True)
        rows = {r["youtube_id"]: r for r in ds}
        assert set(rows) == set(aset.sources)
        for ytid, row in rows.items():
            _assert_same_media(row, aset.sources[ytid], aset.offsets[ytid])
        # the whole 60-s recording was cut at the segment (30 s in), the 10-s ones read from 0
        assert rows[aset.ids[4]]["media_offset"] == 30.0 and rows[aset.ids[0]]["media_offset"] == 0.0
        assert server.bytes_sent[aset.parquet.name] <= 2 * os.path.getsize(aset.parquet)
    finally:
        server.stop()


def test_parquet_without_media_column_is_our_error(aset, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"video_id": aset.ids, "labels": [["x"]] * len(aset.ids)}), bad)
    ds = load_dataset("ascc", split="train", data_dir=str(aset.meta), media_dir=str(bad), streaming=True,
                      on_missing="error")
    with pytest.raises(MediaSourceError, match="no media column"):
        list(ds)


def test_only_ids_limits_the_pass_and_its_missing_count(vgg, caplog):
    caplog.set_level(logging.WARNING, logger="avsets")
    wanted = [sorted(vgg.sources)[0], sorted(vgg.missing["train"])[0]]
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(a) for a in vgg.archives],
                      streaming=True, decode=False, only_ids=wanted)
    assert [r["id"] for r in ds] == wanted[:1]
    assert "1 of 2 rows have no member" in caplog.text
    # another selection in the same process is another pass over other rows, not the cached one
    other = [sorted(vgg.sources)[2]]
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(a) for a in vgg.archives],
                      streaming=True, decode=False, only_ids=other)
    assert [r["id"] for r in ds] == other


def test_truncated_targz_over_http_is_our_error(vgg):
    """A remote archive is read ahead by a thread: the cut-off must still be our error, at the right place."""
    server = serve_folder(vgg.archives[1].parent)
    name = vgg.archives[1].name
    server.cut[name] = vgg.archives[1].stat().st_size // 2
    try:
        strict = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[server.url(name)],
                              streaming=True, decode=False, on_missing="error")
        with pytest.raises(MediaSourceError, match="cut short"):
            list(strict)
    finally:
        server.stop()


def _reader_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "avsets-archive-reader"]


def _wait_no_reader() -> None:
    import gc
    import time

    gc.collect()
    deadline = time.time() + 10
    while time.time() < deadline and _reader_threads():
        time.sleep(0.05)
    assert not _reader_threads()


def test_stopping_early_stops_the_archive_reader(vgg):
    import itertools

    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[str(a) for a in vgg.archives],
                      streaming=True, decode=False)
    it = iter(ds)
    assert len(list(itertools.islice(it, 1))) == 1
    del it
    _wait_no_reader()


def test_stopping_early_on_a_remote_archive_stops_its_read_ahead_thread(vgg, tmp_path, monkeypatch):
    """A remote archive is read ahead by a thread: leaving the loop must stop it and the download with it."""
    import io

    import avsets.media.sources.stream as stream

    monkeypatch.setattr(stream, "_BATCH_ROWS", 1)  # hand over each row at once, not per 16 (7 rows here)
    import itertools
    import tarfile

    big = tmp_path / "vggsound_big.tar.gz"
    with tarfile.open(vgg.archives[0], "r:gz") as src, tarfile.open(big, "w:gz", compresslevel=1) as dst:
        for info in src:
            dst.addfile(info, src.extractfile(info) if info.isfile() else None)
        pad = tarfile.TarInfo("zz/padding.bin")
        pad.size = 6 << 20
        dst.addfile(pad, io.BytesIO(os.urandom(pad.size)))  # incompressible: the download takes a while
    server = serve_folder(tmp_path)
    server.chunk, server.delay = 64 << 10, 0.02
    try:
        ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=[server.url(big.name)],
                          streaming=True, decode=False)
        it = iter(ds)
        assert len(list(itertools.islice(it, 1))) == 1
        assert _reader_threads()
        del it
        _wait_no_reader()
        assert server.bytes_sent[big.name] < big.stat().st_size / 2
    finally:
        server.stop()


_HUB_SCRIPT = r"""
import json, sys
from huggingface_hub import HfApi
import avsets

args = json.loads(sys.argv[1])
api = HfApi()
api.create_repo("me/vggsound-tars", repo_type="dataset")
api.upload_folder(repo_id="me/vggsound-tars", repo_type="dataset", folder_path=args["folder"])
ds = avsets.load_dataset("vggsound", split="train", data_dir=args["meta"], media_dir="hf://datasets/me/vggsound-tars",
                         streaming=True, decode=False)
out = {"num_shards": ds.num_shards, "rows": {r["id"]: [r["video"]["path"], r["video"]["bytes"].hex()] for r in ds}}
print(json.dumps(out))
"""


def test_hub_repo_of_targz_files_streams_through_huggingface_hub(vgg, tmp_path):
    import json
    import subprocess
    import sys

    from hub_server import HubServer

    with HubServer() as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_test_token_1234",
                   HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0")
        arg = json.dumps({"folder": str(vgg.archives[0].parent), "meta": str(vgg.meta)})
        proc = subprocess.run([sys.executable, "-c", _HUB_SCRIPT, arg], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["num_shards"] == 2
    want = set(vgg.splits["train"]) - vgg.missing["train"]
    assert set(out["rows"]) == want
    for rid, (path, data) in out["rows"].items():
        assert path.startswith("hf://datasets/me/vggsound-tars/") and "!/" in path
        if rid not in vgg.corrupt:
            assert bytes.fromhex(data) == vgg.sources[rid].read_bytes()


def test_verify_counts_a_targz_copy_in_one_pass(vgg, capsys):
    from avsets.cli.app import main

    rc = main(["verify", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[0].parent)])
    assert rc == 1
    lines = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines() if ln.split()}
    assert lines["train"][1:5] == ["7", "5", "2", "0"]  # rows found missing corrupt
    assert lines["test"][1:5] == ["3", "2", "1", "1"]  # the corrupt member, probed from its bytes


def test_parquet_row_with_audio_and_video_and_two_segments_of_one_video(vgg, tmp_path):
    """An export-like Parquet (``youtube_id`` + ``audio``/``video`` named by clip key): each row's two members
    serve one row, and a segment's member never serves another segment of the same video."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = tmp_path / "meta"
    shutil.copytree(vgg.meta, meta)
    ytid = "vggAAAAAAA0"
    (meta / "vggsound.csv").write_text(f'{ytid},1,"people marching",train\n{ytid},21,"people marching",train\n')
    src = vgg.sources[sorted(vgg.sources)[0]].read_bytes()
    flac = (tmp_path / "a.flac")
    from source_fixtures import make_flac

    make_flac(flac, 10.0)
    recs = [{"youtube_id": ytid, "audio": {"bytes": flac.read_bytes(), "path": f"{ytid}_1000_11000.flac"},
             "video": {"bytes": src, "path": f"{ytid}_1000_11000.mp4"}}]
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "export.parquet")
    ds = load_dataset("vggsound", split="train", data_dir=str(meta), media_dir=str(tmp_path / "export.parquet"),
                      streaming=True, decode=False, on_missing="keep")
    rows = {r["id"]: r for r in ds}
    a = rows[f"{ytid}_1000_11000"]
    assert a["audio"]["bytes"] == flac.read_bytes() and a["video"]["bytes"] == src
    b = rows[f"{ytid}_21000_31000"]
    assert b["audio"] is None and b["video"] is None


def test_report_on_a_targz_copy_equals_verify(vgg):
    """``avsets report`` counts a streamed copy like ``verify``: the corrupt member too (from its bytes)."""
    from avsets.ops.report import build_report
    from avsets.ops.verify import verify

    kw = dict(data_dir=str(vgg.meta), media_dir=str(vgg.archives[0].parent))
    rep = {c.split: c for c in build_report("vggsound", **kw).coverage}
    ver = {c.split: c for c in verify("vggsound", progress=False, **kw)}
    assert {s: (c.rows, c.found, c.missing, c.corrupt, c.missing_ids, [x[0] for x in c.corrupt_ids])
            for s, c in rep.items()} == {s: (c.rows, c.found, c.missing, c.corrupt, c.missing_ids,
                                             [x[0] for x in c.corrupt_ids]) for s, c in ver.items()}
    assert rep["test"].corrupt == 1


@pytest.mark.parametrize("typ", ["binary", "large_binary"])
def test_parquet_member_bytes_are_the_cells_nulls_and_slices_included(typ):
    """The zero-copy slicing of a Parquet media column (members_parquet.buffers_of) against pyarrow's own values."""
    import pyarrow as pa

    from avsets.media.sources.members_parquet import buffers_of

    values = [b"fLaC" + bytes([i]) * (i * 37) for i in range(9)]
    values[3] = None
    values[7] = b""
    arr = pa.array(values, getattr(pa, typ)())
    for part in (arr, arr.slice(2), arr.slice(4, 3)):
        got = [None if b is None else b.to_pybytes() for b in buffers_of(part)]
        assert got == part.to_pylist()


def test_a_streaming_load_looks_for_archives_in_media_dir_once(vgg, monkeypatch):
    """``load_dataset`` finds the archives and hands them to the builder: a folder of 200k clips is not
    walked once more by the builder for the same answer."""
    import avsets.media.sources.base as base

    calls = []
    real = base.expand_sources
    monkeypatch.setattr(base, "expand_sources", lambda roots: calls.append(roots) or real(roots))
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=str(vgg.archives[0].parent),
                      streaming=True, decode=False)
    assert set(_rows(ds)) == set(vgg.splits["train"]) - vgg.missing["train"]
    assert len(calls) == 1


_HUB_REV_SCRIPT = r"""
import json, sys
from huggingface_hub import HfApi
import avsets

args = json.loads(sys.argv[1])
api = HfApi()
api.create_repo("me/vgg-rev", repo_type="dataset")
api.upload_file(path_or_fileobj=args["first"], path_in_repo="tars/vggsound_00.tar.gz", repo_id="me/vgg-rev",
                repo_type="dataset")
api.create_branch("me/vgg-rev", branch="v1", repo_type="dataset")
api.upload_file(path_or_fileobj=args["second"], path_in_repo="tars/vggsound_01.tar.gz", repo_id="me/vgg-rev",
                repo_type="dataset")
out = {}
for name, media in (("v1", "hf://datasets/me/vgg-rev@v1/tars"), ("main", "hf://datasets/me/vgg-rev/tars")):
    ds = avsets.load_dataset("vggsound", split="train", data_dir=args["meta"], media_dir=media, streaming=True,
                             decode=False)
    out[name] = {"num_shards": ds.num_shards, "rows": {r["id"]: r["video"]["path"] for r in ds}}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_hub_folder_at_a_revision_streams_that_revisions_archives(vgg):
    """``hf://datasets/<repo>@<rev>/<folder>``: the folder is listed at that revision, so an archive added
    on ``main`` later is not read from ``v1``."""
    import json
    import subprocess
    import sys

    from hub_server import HubServer

    with HubServer() as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_test_token_1234",
                   HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0")
        arg = json.dumps({"first": str(vgg.archives[0]), "second": str(vgg.archives[1]), "meta": str(vgg.meta)})
        proc = subprocess.run([sys.executable, "-c", _HUB_REV_SCRIPT, arg], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["v1"]["num_shards"] == 1 and out["main"]["num_shards"] == 2
    assert set(out["v1"]["rows"]) < set(out["main"]["rows"])
    assert all("@v1/tars/vggsound_00.tar.gz!/" in p for p in out["v1"]["rows"].values())
    assert set(out["main"]["rows"]) == set(vgg.splits["train"]) - vgg.missing["train"]
