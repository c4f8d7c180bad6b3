"""Media sources read at random: zip, tar/WebDataset and Parquet mirrors, local and over loopback HTTP.

Rows are real VGGSound sample rows; mirrors are built at test time (tests/source_mirrors.py) and served by
a Range-capable server that counts requests and bytes (tests/range_server.py).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import source_mirrors as sm
from range_server import RangeServer

import avsets
from avsets import MediaWarning
from avsets.core.errors import MediaError, MediaSourceError, MetadataError, StreamingOnlySourceError
from avsets.media.media_index import MediaIndex
from avsets.media.sources import (
    Source,
    index_source,
    is_member,
    keys_for_member,
    open_media,
    read_media_bytes,
)
from avsets.media.sources.locator import parse_locator
from avsets.media.synth import frame_band

TRAIN_ROWS = 868


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory):
    return sm.build(tmp_path_factory.mktemp("mirrors"))


@pytest.fixture(autouse=True)
def source_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))
    return tmp_path / "source-index"


@pytest.fixture(scope="module")
def server(mirrors):
    with RangeServer(mirrors.root) as srv:
        yield srv


def _flac(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="float32")[0]


def test_keys_for_member_every_naming_at_any_depth():
    assert keys_for_member("a/b/--0PQM4-hqg_000030.mp4") == ("video", ["s:--0PQM4-hqg_30"])
    assert keys_for_member("x/--0PQM4-hqg_30000_40000.flac") == ("audio", ["ms:--0PQM4-hqg_30000_40000"])
    assert keys_for_member("Y--0PQM4-hqg_30.000_40.000.wav") == ("audio", ["ms:--0PQM4-hqg_30000_40000"])
    assert keys_for_member("audio/bal_train/--0PQM4-hqg.flac") == ("audio", ["w:--0PQM4-hqg"])
    assert keys_for_member("--0PQM4-hqg.flac", id_named="segment") == ("audio", ["i:--0PQM4-hqg"])
    assert keys_for_member("shard/--0PQM4-hqg_000030.seg.flac") == ("audio", ["s:--0PQM4-hqg_30"])  # WDS key
    assert keys_for_member("meta/--0PQM4-hqg_000030.json") == (None, [])


@pytest.mark.slow
def test_zip_over_http_decodes_exactly_with_few_requests(mirrors, server, tmp_path):
    url = server.url("clips.zip")
    server.reset()
    si = index_source(Source(url, "zip"))
    reqs, _ = server.total()
    assert reqs <= 3 and si.stats.requests <= 2
    assert si.stats.unsafe == 1  # ../name never used
    names = {m.relpath for m in si.members}
    assert f"whole/{sm.ZIP_WHOLE[0]}.mp4" in names and not any(".." in n for n in names)
    # one member: one request, bytes moved <= member + 64 KiB
    member = next(m for m in si.members if m.relpath.endswith(f"{sm.ZIP_ROWS[1][0]}_185000_195000.flac"))
    server.reset()
    data = read_media_bytes(member.locator)
    reqs, moved = server.total()
    assert data == mirrors.media[sm.clip_id(*sm.ZIP_ROWS[1])]
    assert reqs == 1 and moved <= member.size + 64 * 1024
    # the cached index answers the next load without reading the central directory again
    server.reset()
    again = index_source(Source(url, "zip"))
    assert [m.locator for m in again.members] == [m.locator for m in si.members] and server.total()[0] == 1

    ds = avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=url, cache_dir=str(tmp_path / "c"))
    assert ds.num_rows == len(sm.ZIP_ROWS) + 2  # + the whole video + the corrupt member (found, fails to decode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = {r["id"]: r for r in ds}
    assert [str(w.message) for w in caught if issubclass(w.category, MediaWarning)] and \
        all(sm.clip_id(*sm.ZIP_CORRUPT) in str(w.message) for w in caught if issubclass(w.category, MediaWarning))
    assert rows[sm.clip_id(*sm.ZIP_CORRUPT)]["audio"] is None
    # FLAC member: sample-exact
    flac_id = sm.clip_id(*sm.ZIP_ROWS[1])
    np.testing.assert_array_equal(rows[flac_id]["audio"]["array"], _flac(mirrors.media[flac_id]))
    assert rows[flac_id]["media_offset"] == 0.0
    # trimmed mp4 member: 10 s at 10 fps; frames 0..99
    vid = rows[sm.clip_id(*sm.ZIP_ROWS[0])]
    assert vid["video"]["frames"].shape[0] == 100 and frame_band(vid["video"]["frames"][5]) == 5
    # whole 41-s video named by id alone: probed longer than the segment -> cut at start (frames 300..)
    whole = rows[sm.clip_id(*sm.ZIP_WHOLE)]
    assert whole["media_offset"] == 30.0
    assert [frame_band(f) for f in whole["video"]["frames"][:2]] == [300 % 256, 301 % 256]


def _vgg() -> str:
    import importlib.resources

    return str(importlib.resources.files("avsets.vggsound") / "sample")


def test_verify_and_missing_counts_on_an_archive(mirrors, server):
    from avsets.ops.verify import verify

    report = {c.split: c for c in verify("vggsound", data_dir=_vgg(), media_dir=server.url("clips.zip"),
                                         progress=False)}
    train = report["train"]
    assert (train.rows, train.found, train.missing, train.corrupt) == (TRAIN_ROWS, 6, TRAIN_ROWS - 6, 1)
    assert train.corrupt_ids[0][0] == sm.clip_id(*sm.ZIP_CORRUPT)


def test_webdataset_tar_indexed_once_and_one_request_per_member(mirrors, server, tmp_path, source_cache):
    url = server.url("wds-000000.tar")
    server.reset()
    si = index_source(Source(url, "tar"))
    assert [m.relpath for m in si.members] == [f"shard0/{y}_{s:06d}.flac" for y, s in sm.TAR_ROWS]  # json skipped
    assert len(os.listdir(source_cache)) == 1  # cached beside the datasets cache
    for m in si.members:
        server.reset()
        data = read_media_bytes(m.locator)
        reqs, moved = server.total()
        assert reqs == 1 and moved == m.size + 512
    # a list of sources: first match wins, rows of both found
    ds = avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=[server.url("clips.zip"), url],
                             cache_dir=str(tmp_path / "c"), decode=False)
    assert ds.num_rows == 6 + len(sm.TAR_ROWS)
    got = {r["id"]: r for r in ds}
    for ytid, start in sm.TAR_ROWS:
        cid = sm.clip_id(ytid, start)
        assert is_member(got[cid]["audio"]["path"]) and read_media_bytes(got[cid]["audio"]["path"]) == \
            mirrors.media[cid]
    assert data == mirrors.media[sm.clip_id(*sm.TAR_ROWS[-1])]


def test_audioset_parquet_mirror_segments_exact(mirrors, server, tmp_path):
    url = server.url("audioset-bal.parquet")
    ds = avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=url, cache_dir=str(tmp_path / "c"))
    assert ds.num_rows == len(sm.PARQUET_ROWS)
    for r in ds:
        # {ytid}.flac holds the 10-s segment: probed at 10 s -> media_offset 0, samples equal the member's
        assert r["media_offset"] == 0.0
        np.testing.assert_array_equal(r["audio"]["array"], _flac(mirrors.media["pq:" + r["id"]]))
    # one row: <= 2 requests (footer + the row group's media column), bytes bounded by the row group
    si = index_source(Source(url, "parquet"))
    from avsets.media.sources import parquetsrc

    parquetsrc._GROUPS.clear()
    parquetsrc._FOOTERS.clear()
    server.reset()
    data = read_media_bytes(si.members[2].locator)
    reqs, moved = server.total()
    group = [mirrors.media["pq:" + sm.clip_id(*row)] for row in sm.PARQUET_ROWS[2:4]]  # row group 1 = rows 2, 3
    assert data == group[0]
    assert reqs == 2 and moved <= sum(map(len, group)) + 64 * 1024


def test_id_named_video_on_a_segment_mirror_never_shifts_silently(mirrors, tmp_path):
    ds = avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=mirrors.path("audioset-bal.parquet"),
                             cache_dir=str(tmp_path / "c"), id_named="video")
    assert all(off == start for off, start in zip(ds["media_offset"], ds["start"], strict=True))
    with pytest.warns(MediaWarning, match="after the end of the file"):
        rows = list(ds)
    assert all(r["audio"] is None for r in rows)  # every start (11..185 s) lies past a 10-s file: an error


def test_bad_archives_named_errors_or_counted_skips(mirrors, tmp_path, caplog):
    data = (mirrors.root / "clips.zip").read_bytes()
    (tmp_path / "trunc.zip").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MediaSourceError, match="trunc.zip"):
        MediaIndex.scan([str(tmp_path / "trunc.zip")], on_missing="error")
    idx = MediaIndex.scan([str(tmp_path / "trunc.zip")])
    assert idx.skipped_sources == [str(tmp_path / "trunc.zip")] and len(idx) == 0
    damaged = bytearray(data)
    cd = damaged.rfind(b"PK\x01\x02")
    damaged[cd:cd + 4] = b"XXXX"  # the last central directory entry's signature
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(MediaSourceError, match=r"damaged.zip: central directory entry \d+ is damaged"):
        index_source(Source(str(tmp_path / "damaged.zip"), "zip"))
    tar = (mirrors.root / "wds-000000.tar").read_bytes()
    last = parse_locator(index_source(Source(mirrors.path("wds-000000.tar"), "tar")).members[-1].locator)
    (tmp_path / "trunc.tar").write_bytes(tar[: last.num("o") + last.num("s") // 2])  # cut inside the last clip
    si = index_source(Source(str(tmp_path / "trunc.tar"), "tar"))
    assert len(si.members) == len(sm.TAR_ROWS) - 1 and si.stats.truncated == 1
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"clip": ["x"], "audio": [{"bytes": b"1"}]}), tmp_path / "nokey.parquet")
    with pytest.raises(MetadataError, match=r"nokey.parquet.*columns found: \['clip', 'audio'\]"):
        MediaIndex.scan([str(tmp_path / "nokey.parquet")])
    with pytest.raises(StreamingOnlySourceError, match="streaming=True"):
        avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=mirrors.path("vggsound_00.tar.gz"),
                            cache_dir=str(tmp_path / "c"))
    idx = MediaIndex.scan([mirrors.path("clips.zip")])
    st = idx.source_stats[mirrors.path("clips.zip")]
    assert (st.unsafe, st.duplicates) == (1, 1)
    # a damaged member is a MediaError naming archive and member, never a foreign exception
    loc = parse_locator(next(m.locator for m in index_source(Source(mirrors.path("clips.zip"), "zip")).members
                             if m.relpath.endswith(".mp4")))
    bad = dict(loc.fields, crc="1")
    with pytest.raises(MediaError, match="CRC"):
        read_media_bytes(str(type(loc)(loc.kind, loc.archive, loc.member, bad)))


def _read_in_child(path: str) -> bytes:
    return read_media_bytes(path)


def test_locators_survive_pickle_fork_and_export(mirrors):
    si = index_source(Source(mirrors.path("wds-000000.tar"), "tar"))
    loc = pickle.loads(pickle.dumps(si.members[0].locator))
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_read_in_child, [loc]) == [read_media_bytes(loc)]
    with open_media(loc) as f:
        assert f.read() == mirrors.media[sm.clip_id(*sm.TAR_ROWS[0])]
    from avsets.ops.publish.media import read_source

    assert read_source(loc).to_pybytes() == mirrors.media[sm.clip_id(*sm.TAR_ROWS[0])]


def test_folder_holding_archives_is_expanded(mirrors, tmp_path):
    root = tmp_path / "hub_copy"
    (root / "sub").mkdir(parents=True)
    shutil.copy(mirrors.root / "clips.zip", root / "sub" / "clips.zip")
    shutil.copy(mirrors.root / "wds-000000.tar", root / "wds-000000.tar")
    idx = MediaIndex.scan([str(root)])
    assert idx.num_files == 6 + 1 + len(sm.TAR_ROWS)  # zip media members (incl. duplicate) + tar
    assert idx.get(f"s:{sm.TAR_ROWS[0][0]}_{sm.TAR_ROWS[0][1]}", "audio") is not None


# -- a loopback Hub: hf:// through huggingface_hub's HfFileSystem --------------------------------------------

_HUB_SCRIPT = r"""
import json, sys
import numpy as np
from huggingface_hub import HfApi
import avsets

args = json.loads(sys.argv[1])
api = HfApi()
api.create_repo("me/audioset-mirror", repo_type="dataset")
api.upload_folder(repo_id="me/audioset-mirror", repo_type="dataset", folder_path=args["folder"])
mirror = "hf://datasets/me/audioset-mirror"
out = {}
zsl = avsets.load_dataset("audiosetzsl", split="test", data_dir=args["zsl"], media_dir=mirror,
                          cache_dir=args["cache"] + "/z")
ascc = avsets.load_dataset("ascc", split="train", data_dir=args["ascc"], media_dir=mirror,
                           cache_dir=args["cache"] + "/a")
arrays = {}
for name, ds in (("zsl", zsl), ("ascc", ascc)):
    out[name] = {}
    for r in ds:
        out[name][r["id"]] = [r["youtube_id"], r["media_offset"], r["audio"]["path"]]
        arrays[r["id"]] = r["audio"]["array"]
np.savez(args["cache"] + "/arrays.npz", **arrays)
# one member of a fresh reader (caches dropped), between two marker requests the server records
import requests
from avsets.media.sources import access, parquetsrc
loc = next(iter(out["zsl"].values()))[2]
access._READERS.clear(); parquetsrc._GROUPS.clear(); parquetsrc._FOOTERS.clear()
import os
requests.get(os.environ["HF_ENDPOINT"] + "/marker-start")
avsets.media.sources.read_media_bytes(loc)
requests.get(os.environ["HF_ENDPOINT"] + "/marker-end")
print(json.dumps(out))
"""


@pytest.mark.slow
def test_hub_parquet_mirror_serves_audiosetzsl_and_ascc(tmp_path):
    import importlib.resources
    import json
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers import mini_audiosetzsl
    from hub_server import HubServer

    from avsets.audiosetzsl.metadata import bundled_archive, extract_archive

    zsl_root = mini_audiosetzsl(extract_archive(bundled_archive(), str(tmp_path / "zslsrc")), tmp_path / "zsl", rows=3)
    zsl_rows = avsets.load_dataset("audiosetzsl", split="test", data_dir=str(zsl_root),
                                   cache_dir=str(tmp_path / "c0")).select(range(4)).to_list()
    ascc_dir = str(importlib.resources.files("avsets.ascc") / "sample")
    ascc_ids = avsets.load_dataset("ascc", split="train", data_dir=ascc_dir,
                                   cache_dir=str(tmp_path / "c1"))["youtube_id"][:2]
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    work = tmp_path / "w"
    work.mkdir()
    media = {}
    rows = []
    for ytid in [r["youtube_id"] for r in zsl_rows[:3]] + ascc_ids:  # the 4th AudioSetZSL row stays missing
        data = sm._audio_bytes(work, float(len(rows)))
        media[ytid] = data
        rows.append({"video_id": ytid, "audio": {"bytes": data, "path": f"audio/bal_train/{ytid}.flac"},
                     "labels": ["/m/09x0r"], "human_labels": ["Speech"]})
    import zipfile

    r0 = zsl_rows[0]  # the first AudioSetZSL row lives in a zip of canonical names, not in the Parquet copy
    zipped = f"{r0['youtube_id']}_{int(r0['start'] * 1000)}_{int(r0['end'] * 1000)}.flac"
    (folder / "clips").mkdir()
    with zipfile.ZipFile(folder / "clips" / "extra.zip", "w") as z:
        z.writestr(f"audioset/{zipped}", media[r0["youtube_id"]])
    rows = rows[1:]
    pq.write_table(pa.Table.from_pylist(rows[:2]), folder / "data" / "bal_train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[2:]), folder / "data" / "bal_train-00001-of-00002.parquet")
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\nAudioSet segments\n")
    with HubServer() as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_test_token_1234",
                   HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", AVSETS_SOURCE_CACHE=str(tmp_path / "idx"))
        arg = json.dumps({"folder": str(folder), "zsl": str(zsl_root), "ascc": ascc_dir, "cache": str(tmp_path)})
        proc = subprocess.run([sys.executable, "-c", _HUB_SCRIPT, arg], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        paths = [r.path for r in hub.state.requests]
    between = paths[paths.index("/marker-start") + 1:paths.index("/marker-end")]
    assert 1 <= len(between) <= 2 and all("/resolve/" in p for p in between), between  # ranged GETs only
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["zsl"]) == 3 and zsl_rows[3]["id"] not in out["zsl"]
    assert len(out["ascc"]) == 2
    arrays = np.load(tmp_path / "arrays.npz")
    for name in ("zsl", "ascc"):
        for cid, (ytid, offset, path) in out[name].items():
            kind = "zip" if cid == zsl_rows[0]["id"] else "parquet"  # a repo holding a mix of sources
            assert offset == 0.0 and path.startswith(f"avsets:{kind}:") and "hf://datasets/me/audioset-mirror" in path
            np.testing.assert_array_equal(arrays[cid], _flac(media[ytid]))


def test_zip64_records_parse(tmp_path, monkeypatch):
    import zipfile

    # small limits make zipfile write zip64 extras, the zip64 end record and its locator for a tiny archive
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    payloads = {f"d/{y}_{s:06d}.flac": bytes([i]) * (100 + i) for i, (y, s) in enumerate(sm.TAR_ROWS)}
    with zipfile.ZipFile(tmp_path / "z64.zip", "w", allowZip64=True) as z:
        for name, data in payloads.items():
            z.writestr(name, data)
    assert b"PK\x06\x06" in (tmp_path / "z64.zip").read_bytes()
    si = index_source(Source(str(tmp_path / "z64.zip"), "zip"))
    assert {m.relpath: read_media_bytes(m.locator) for m in si.members} == payloads


def test_media_pattern_and_key_column_on_members(mirrors, tmp_path):
    import zipfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    ytid, start = sm.ZIP_ROWS[1]
    data = mirrors.media[sm.clip_id(ytid, start)]
    with zipfile.ZipFile(tmp_path / "own.zip", "w") as z:  # a layout no built-in name matches
        z.writestr(f"by_label/waterfall/{ytid}-{start}.flac", data)
    ds = avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=str(tmp_path / "own.zip"),
                             cache_dir=str(tmp_path / "c"), media_pattern="by_label/waterfall/{youtube_id}-{start_s}.flac",
                             decode=False)
    assert ds["id"] == [sm.clip_id(ytid, start)] and ds[0]["media_offset"] == 0.0
    # Parquet keyed by a column the user names (no path field)
    pq.write_table(pa.table({"clip": [f"{ytid}_{start:06d}"], "audio": [{"bytes": data}]}), tmp_path / "k.parquet")
    ds = avsets.load_dataset("vggsound", split="train", data_dir=_vgg(), media_dir=str(tmp_path / "k.parquet"),
                             cache_dir=str(tmp_path / "c2"), media_key_column="clip")
    assert ds.num_rows == 1 and ds[0]["id"] == sm.clip_id(ytid, start)
    np.testing.assert_array_equal(ds[0]["audio"]["array"], _flac(data))


def test_forked_worker_reads_over_http_and_a_dead_server_is_a_media_error(mirrors, tmp_path):
    with RangeServer(mirrors.root) as srv:
        si = index_source(Source(srv.url("wds-000000.tar"), "tar"))
        loc = si.members[1].locator
        assert read_media_bytes(loc) == mirrors.media[sm.clip_id(*sm.TAR_ROWS[1])]  # parent opens a session
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.map(_read_in_child, [loc]) == [mirrors.media[sm.clip_id(*sm.TAR_ROWS[1])]]
    gone = parse_locator(loc)
    gone = type(gone)(gone.kind, "http://127.0.0.1:9/wds-000000.tar", gone.member, gone.fields)  # nothing listens
    with pytest.raises(MediaError, match="wds-000000.tar member"):
        read_media_bytes(str(gone))


def test_export_reads_members_of_a_tar(mirrors, tmp_path):
    import glob

    import pyarrow.parquet as pq

    from avsets.ops.publish.export import export

    export("vggsound", data_dir=_vgg(), media_dir=mirrors.path("wds-000000.tar"), out=str(tmp_path / "out"),
           split="train", on_missing="skip")
    files = glob.glob(str(tmp_path / "out" / "**" / "*.parquet"), recursive=True)
    table = pq.read_table(files[0]) if len(files) == 1 else None
    assert table is not None and table.num_rows == len(sm.TAR_ROWS)
    for cid, audio in zip(table.column("id").to_pylist(), table.column("audio").to_pylist(), strict=True):
        assert audio["bytes"] == mirrors.media[cid]  # FLAC segments are copied byte for byte


def test_cli_verify_on_an_archive_and_a_truncated_one(mirrors, tmp_path, capsys):
    from avsets.cli.app import main

    code = main(["verify", "vggsound", "--data-dir", _vgg(), "--media-dir", mirrors.path("clips.zip")])
    out = capsys.readouterr().out
    assert code == 1  # some clips missing
    assert any(line.split()[:5] == ["train", str(TRAIN_ROWS), "6", str(TRAIN_ROWS - 6), "1"] for line in out.splitlines())
    data = (mirrors.root / "clips.zip").read_bytes()
    (tmp_path / "trunc.zip").write_bytes(data[: len(data) // 2])
    code = main(["verify", "vggsound", "--data-dir", _vgg(), "--media-dir", str(tmp_path / "trunc.zip"),
                 "--option", "id_named=segment"])
    captured = capsys.readouterr()
    assert code == 1  # runs; the unreadable archive's rows count as missing (on_missing keep)
    assert any(line.split()[:4] == ["train", str(TRAIN_ROWS), "0", str(TRAIN_ROWS)] for line in captured.out.splitlines())


def test_a_server_that_ignores_range_still_gives_the_right_bytes(mirrors, caplog):
    with RangeServer(mirrors.root) as srv:
        srv.honour_range = False
        si = index_source(Source(srv.url("clips.zip"), "zip"))
        member = next(m for m in si.members if m.relpath.endswith("_185000_195000.flac"))
        assert read_media_bytes(member.locator) == mirrors.media[sm.clip_id(*sm.ZIP_ROWS[1])]
    assert "ignores Range requests" in caplog.text


def test_clip_or_video_rule():
    """The one per-member rule: at most the row's segment plus 0.5 s is the segment (offset 0), longer or
    unknown is a whole video (offset = start); a stated ``id_named`` overrides the duration."""
    from avsets.media.sources.clip_or_video import holds_segment, segment_offset, stated

    assert holds_segment(10.0) and holds_segment(10.5) and not holds_segment(10.51) and not holds_segment(None)
    assert holds_segment(3.4, 3.0) and not holds_segment(3.6, 3.0)  # the row's own segment length counts
    assert [segment_offset(d, 30.0, 40.0) for d in (9.98, 10.4, 41.0, 300.0, None)] == [0.0, 0.0, 30.0, 30.0, 30.0]
    assert segment_offset(10.0, None, None) == 0.0 and segment_offset(10.0, 30.0, None) == 30.0  # no end: as a video
    assert segment_offset(300.0, 30.0, 40.0, stated("segment")) == 0.0
    assert segment_offset(10.0, 30.0, 40.0, stated("video")) == 30.0 and stated("auto") is None
    with pytest.raises(ValueError, match="id_named"):
        stated("clip")
