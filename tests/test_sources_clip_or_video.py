"""Issue 18: one clip-or-video decision, per member, in both halves of a source.

A mirror patched with fresh downloads holds, under names of the YouTube id alone, both 10-s segment files
and whole videos.  Map-style (random access, the index probes every such member once) and streaming
(archive order, the bytes in hand) must read each member the same way: the same rows, the same
``media_offset``, the same decoded samples (sample-exact), the same counts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from source_fixtures import make_flac

import avsets
from avsets.media.media_index import MediaIndex
from avsets.media.synth import BAND_BITS, frame_band, write_video

SR = 8000
LABEL = "dog barking"
# (youtube id, row start, seconds in the file named {id}.flac, what the file is)
ROWS = [
    ("clipAAAAAA0", 30, 10.0, "segment"),
    ("clipBBBBBB1", 50, 10.4, "segment"),  # within the 0.5-s tolerance: still the segment
    ("wholeCCCCC2", 20, 60.0, "video"),
    ("wholeDDDDD3", 5, 30.0, "video"),
    ("wholeEEEEE4", 0, 10.8, "video"),  # just past the tolerance: a whole video, cut at start 0
    ("missingFFF5", 40, None, None),  # no file at all
]
# the same question for videos (PyAV reads their duration): {id}.mp4 with a picture and an AAC track
VIDEOS = [
    ("vclipGGGGG6", 40, 10.0, "segment"),
    ("vwholeHHHH7", 12, 30.0, "video"),
]
FPS = 25


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("mixed")
    meta = root / "meta"
    meta.mkdir()
    (meta / "vggsound.csv").write_text("".join(f"{y},{s},{LABEL},train\n" for y, s, _, _ in ROWS + VIDEOS))
    (meta / "stat.csv").write_text(f"{LABEL},1,animals\n")
    expected: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(root / "mirror.zip", "w") as zf:
        for seed, (ytid, start, seconds, what) in enumerate(ROWS):
            if seconds is None:
                continue
            path = make_flac(root / f"{ytid}.flac", seconds, sr=SR, seed=seed + 1)
            zf.write(path, f"audio/{ytid}.flac")
            samples, _ = sf.read(str(path), dtype="float32")
            lo = 0 if what == "segment" else start * SR
            expected[ytid] = samples[lo:lo + 10 * SR]
        for ytid, _, seconds, _ in VIDEOS:
            write_video(root / f"{ytid}.mp4", seconds, fps=FPS, sr=SR)
            zf.write(root / f"{ytid}.mp4", f"video/{ytid}.mp4")
    return meta, root / "mirror.zip", expected


def _rows(ds) -> dict[str, dict]:
    return {r["youtube_id"]: r for r in ds}


def test_a_mirror_mixing_clips_and_whole_videos_reads_the_same_both_ways(mixed, tmp_path):
    meta, mirror, expected = mixed
    kw = dict(split="train", data_dir=str(meta), media_dir=str(mirror), on_missing="keep")
    mapped = _rows(avsets.load_dataset("vggsound", cache_dir=str(tmp_path / "map"), **kw))
    streamed = _rows(avsets.load_dataset("vggsound", streaming=True, **kw))

    assert sorted(mapped) == sorted(streamed) == sorted(r[0] for r in ROWS + VIDEOS)  # the same rows
    found = {y for y, r in mapped.items() if r["audio"] is not None}
    videos = {v[0] for v in VIDEOS}
    assert found == {y for y, r in streamed.items() if r["audio"] is not None} == set(expected) | videos  # counts
    for ytid, start, _, what in ROWS:
        m, s = mapped[ytid], streamed[ytid]
        if what is None:
            assert m["audio"] is None and s["audio"] is None
            continue
        assert m["media_offset"] == s["media_offset"] == (0.0 if what == "segment" else float(start)), ytid
        assert m["audio"]["sampling_rate"] == s["audio"]["sampling_rate"] == SR
        np.testing.assert_array_equal(m["audio"]["array"], s["audio"]["array"])  # sample-exact, both ways
        np.testing.assert_array_equal(m["audio"]["array"], expected[ytid])
    for ytid, start, _, what in VIDEOS:
        m, s = mapped[ytid], streamed[ytid]
        offset = 0.0 if what == "segment" else float(start)
        assert m["media_offset"] == s["media_offset"] == offset, ytid
        np.testing.assert_array_equal(m["audio"]["array"], s["audio"]["array"])  # the video's own audio track
        np.testing.assert_array_equal(m["video"]["frames"], s["video"]["frames"])
        first = frame_band(np.asarray(m["video"]["frames"][0]))  # the frame the segment starts at
        assert first == round(offset * FPS) % 2**BAND_BITS, ytid


def test_a_stated_id_named_overrides_the_durations_in_both_halves(mixed, tmp_path):
    """``id_named="segment"`` reads every id-named member as the segment, map-style and streaming alike (a
    whole video then yields its first 10 s), and probes nothing."""
    meta, mirror, _ = mixed
    kw = dict(split="train", data_dir=str(meta), media_dir=str(mirror), id_named="segment", decode=False)
    mapped = _rows(avsets.load_dataset("vggsound", cache_dir=str(tmp_path / "map"), **kw))
    streamed = _rows(avsets.load_dataset("vggsound", streaming=True, **kw))
    assert {y: r["media_offset"] for y, r in mapped.items()} == {y: r["media_offset"] for y, r in streamed.items()}
    assert set(r["media_offset"] for r in mapped.values()) == {0.0} and len(mapped) == 7
    assert MediaIndex.scan(str(mirror), id_named="segment").seconds == {}


def test_the_index_keeps_each_members_duration(mixed):
    """Map-style measures every member named by id alone from its header (the streaming rule's input)."""
    _, mirror, _ = mixed
    index = MediaIndex.scan(str(mirror))
    got = {loc.rsplit("/", 1)[-1]: round(s, 2) for loc, s in index.seconds.items()}
    assert got == {f"{y}.flac": s for y, _, s, _ in ROWS if s is not None} | {f"{y}.mp4": s for y, _, s, _ in VIDEOS}


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_remote_probe_reads_a_stored_members_header_not_the_member(tmp_path, monkeypatch, kind):
    """Probing every id-named member must not download the mirror: a member stored as it is (tar, stored
    zip) is read by ranges, a block of 64 KiB, not its 1 MB; the duration is the same as from the whole."""
    import io
    import tarfile

    from range_server import RangeServer

    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "cache"))
    clip = make_flac(tmp_path / "c.flac", 12.0, sr=SR).read_bytes()
    big = clip + bytes(1 << 20)  # a whole video's size class; the FLAC header says 12 s
    ids = [f"big{i:08d}" for i in range(6)]
    if kind == "tar":
        with tarfile.open(tmp_path / "m.tar", "w") as t:
            for y in ids:
                ti = tarfile.TarInfo(f"a/{y}.flac")
                ti.size = len(big)
                t.addfile(ti, io.BytesIO(big))
    else:
        with zipfile.ZipFile(tmp_path / "m.zip", "w", zipfile.ZIP_STORED) as z:
            for y in ids:
                z.writestr(f"a/{y}.flac", big)
    with RangeServer(tmp_path) as srv:
        url = srv.url(f"m.{kind}")
        MediaIndex.scan(url, id_named="video")  # the index alone, cached: what follows is the probes
        srv.reset()
        index = MediaIndex.scan(url)
        reqs, moved = srv.total()
    assert sorted(round(s, 3) for s in index.seconds.values()) == [12.0] * len(ids)
    assert moved <= len(ids) * (64 << 10) + (64 << 10), moved  # at most a block each, not 6 MB
    assert reqs <= 2 * len(ids) + 4
