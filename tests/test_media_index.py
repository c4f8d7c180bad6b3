"""Scanning media roots and resolving rows: every naming, several roots, templates, hostile names."""

from __future__ import annotations

import os

import fsspec
import pyarrow as pa
import pytest

from avsets.core.errors import MissingMediaError, UnsafePathError
from avsets.core.paths import safe_relpath
from avsets.media.media_index import MediaIndex, check_pattern
from avsets.media.resolve import ResolveOptions, attach_media, ensure_ids

YT = "-5o4C4ZtHSU"


def touch(path, size=10):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x" * size)


def rows(*segs):
    t = pa.table({"youtube_id": [s[0] for s in segs], "start": [float(s[1]) for s in segs],
                  "end": [float(s[2]) for s in segs], "label": [s[3] if len(s) > 3 else 0 for s in segs]})
    return ensure_ids(t)


@pytest.mark.parametrize(
    "relpath, offset",
    [
        (f"{YT}_000030.flac", 0.0),
        (f"{YT}_30000_40000.wav", 0.0),
        (f"deep/er/{YT}_30.000_40.000.ogg", 0.0),
        (f"Y{YT}_30.000_40.000.flac", 0.0),
        (f"videos/{YT}.mp4", 30.0),
        (f"{YT}_30.000.mp4", 0.0),  # AudioSet's one-time name: matched on the start alone
    ],
)
def test_every_naming_resolves(tmp_path, relpath, offset):
    touch(tmp_path / relpath)
    index = MediaIndex.scan(str(tmp_path))
    out, stats = attach_media(rows((YT, 30, 40)), index, ResolveOptions())
    assert stats.found == 1 and out.num_rows == 1
    r = out.to_pylist()[0]
    media = r["audio"] or r["video"]
    assert media["path"] == os.path.join(str(tmp_path), *relpath.split("/"))
    assert r["media_offset"] == offset
    if relpath.endswith(".mp4"):
        assert r["video"] is not None and r["audio"] == r["video"]  # a video file serves both


def test_trimmed_audio_plus_whole_video_share_one_offset(tmp_path):
    touch(tmp_path / f"{YT}_30000_40000.flac")
    touch(tmp_path / f"{YT}.mp4")
    out, _ = attach_media(rows((YT, 30, 40)), MediaIndex.scan(str(tmp_path)), ResolveOptions())
    r = out.to_pylist()[0]
    assert r["audio"]["path"] == r["video"]["path"] and r["media_offset"] == 30.0
    out, _ = attach_media(rows((YT, 30, 40)), MediaIndex.scan(str(tmp_path)), ResolveOptions(modalities=("audio",)))
    r = out.to_pylist()[0]
    assert r["audio"]["path"].endswith(".flac") and r["video"] is None and r["media_offset"] == 0.0


def test_audio_only_modality_uses_a_video_file(tmp_path):
    touch(tmp_path / f"{YT}.mp4")
    out, _ = attach_media(rows((YT, 30, 40)), MediaIndex.scan(str(tmp_path)), ResolveOptions(modalities=("audio",)))
    r = out.to_pylist()[0]
    assert r["audio"]["path"].endswith(".mp4") and r["video"] is None and r["media_offset"] == 30.0
    out, _ = attach_media(rows((YT, 30, 40)), MediaIndex.scan(str(tmp_path)), ResolveOptions(modalities=("video",)))
    r = out.to_pylist()[0]
    assert r["audio"] is None and r["video"]["path"].endswith(".mp4")


def test_on_missing_modes(tmp_path):
    touch(tmp_path / f"{YT}_000030.flac")
    table = rows((YT, 30, 40), ("abcdefghijk", 0, 10))
    index = MediaIndex.scan(str(tmp_path))
    out, stats = attach_media(table, index, ResolveOptions(on_missing="skip"))
    assert out.num_rows == 1 and stats.missing == 1 and stats.missing_ids == ["abcdefghijk_0_10000"]
    out, _ = attach_media(table, index, ResolveOptions(on_missing="keep"))
    assert out.num_rows == 2 and out.column("audio").to_pylist()[1] is None
    with pytest.raises(MissingMediaError, match="abcdefghijk_0_10000"):
        attach_media(table, index, ResolveOptions(on_missing="error"))


def test_empty_file_counts_as_missing(tmp_path):
    touch(tmp_path / f"{YT}_000030.flac", size=0)
    out, stats = attach_media(rows((YT, 30, 40)), MediaIndex.scan(str(tmp_path)), ResolveOptions())
    assert out.num_rows == 0 and stats.empty == 1


def test_first_root_wins_and_roots_are_all_scanned(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    touch(a / f"{YT}_000030.flac")
    touch(b / f"{YT}_000030.flac")
    touch(b / "sub" / "abcdefghijk.mp4")
    index = MediaIndex.scan([str(a), str(b)])
    out, stats = attach_media(rows((YT, 30, 40), ("abcdefghijk", 5, 15)), index, ResolveOptions())
    paths = [r["audio"]["path"] for r in out.to_pylist()]
    assert paths[0].startswith(str(a)) and paths[1].startswith(str(b)) and stats.found == 2


def test_fsspec_root(tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe(f"/mirror/x/{YT}_30000_40000.flac", b"abc")
    index = MediaIndex.scan("memory://mirror")
    out, stats = attach_media(rows((YT, 30, 40)), index, ResolveOptions())
    assert stats.found == 1 and out.column("audio").to_pylist()[0]["path"].startswith("memory://mirror/")


def test_media_pattern_with_label_names(tmp_path):
    touch(tmp_path / "dog barking" / f"{YT}_30.flac")
    touch(tmp_path / "dog barking" / "abcdefghijk.mp4")
    table = rows((YT, 30, 40, 1), ("abcdefghijk", 5, 15, 1))
    opts = ResolveOptions(media_pattern="{label}/{youtube_id}_{start_s}.flac",
                          label_names={"label": ["cat", "dog barking"]})
    out, stats = attach_media(table, MediaIndex.scan(str(tmp_path)), opts)
    assert stats.found == 2
    r = out.to_pylist()
    assert r[0]["audio"]["path"].endswith("_30.flac") and r[0]["media_offset"] == 0.0
    # a pattern without a start placeholder names a whole video: the segment is cut at `start`
    opts.media_pattern = "{label}/{youtube_id}.mp4"
    out, _ = attach_media(table, MediaIndex.scan(str(tmp_path)), opts)
    assert out.to_pylist()[1]["media_offset"] == 5.0


@pytest.mark.parametrize("pattern", ["../{youtube_id}.wav", "/abs/{youtube_id}.wav", "a/../../{youtube_id}.wav",
                                     "{youtube_id.__class__}.wav", "x\x00{youtube_id}.wav", "..\\{youtube_id}.wav"])
def test_escaping_patterns_are_refused(pattern):
    with pytest.raises(UnsafePathError):
        check_pattern(pattern)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "C:\\x", "a\x00b", "", "x" * 5000])
def test_safe_relpath_refuses(name):
    with pytest.raises(UnsafePathError):
        safe_relpath(name)


def test_symlink_out_of_root_is_ignored(tmp_path):
    outside = tmp_path / "outside"
    touch(outside / "secret.flac")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "secret.flac", root / f"{YT}_000030.flac")
    touch(root / "inside" / "abcdefghijk_000005.flac")
    os.symlink(root / "inside" / "abcdefghijk_000005.flac", root / "abcdefghijk_000007.flac")
    index = MediaIndex.scan(str(root))
    out, stats = attach_media(rows((YT, 30, 40), ("abcdefghijk", 7, 17)), index, ResolveOptions())
    assert stats.found == 1 and out.column("id").to_pylist() == ["abcdefghijk_7000_17000"]


def test_fingerprint_tracks_names_sizes_mtimes(tmp_path):
    touch(tmp_path / f"{YT}_000030.flac")
    f1 = MediaIndex.scan(str(tmp_path)).fingerprint
    assert MediaIndex.scan(str(tmp_path)).fingerprint == f1
    touch(tmp_path / "abcdefghijk.mp4")
    f2 = MediaIndex.scan(str(tmp_path)).fingerprint
    touch(tmp_path / "abcdefghijk.mp4", size=99)
    f3 = MediaIndex.scan(str(tmp_path)).fingerprint
    assert len({f1, f2, f3}) == 3


def test_non_media_and_hidden_temp_files_are_ignored(tmp_path):
    touch(tmp_path / f"{YT}_000030.txt")
    touch(tmp_path / f".{YT}_000030.flac")
    touch(tmp_path / f"{YT}_000030.flac.part")
    assert len(MediaIndex.scan(str(tmp_path))) == 0


def test_one_time_name_matches_only_rows_with_that_start(tmp_path):
    touch(tmp_path / f"{YT}_30.500.m4a")
    index = MediaIndex.scan(str(tmp_path))
    out, stats = attach_media(rows((YT, 30.5, 40.5), (YT, 30, 40), (YT, 30.5, 35)), index, ResolveOptions())
    assert stats.found == 2 and [r["start"] for r in out.to_pylist()] == [30.5, 30.5]
    assert all(r["media_offset"] == 0.0 and r["audio"]["path"].endswith("_30.500.m4a") for r in out.to_pylist())
