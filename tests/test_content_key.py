"""One content key for derived tables (``avsets.media.sources.content_key``): the quality table and the fingerprint
table key the same media alike, and both see a changed file, for every place media can be (a local file,
bytes, a zip member, a tar member, a remote file over a loopback HTTP server)."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from leakage_media import real_clip
from range_server import RangeServer

from avsets.core.errors import MediaError
from avsets.media.sources.base import media_source
from avsets.media.sources.content_key import EDGE, ContentKeys, content_key
from avsets.ops.leakage.store import media_key
from avsets.ops.quality.run import _jobs


def _row(cell: dict) -> dict:
    return {"id": "clip", "youtube_id": "clip", "start": 0.0, "end": 10.0, "media_offset": 0.0,
            "audio": cell, "video": dict(cell)}


def _both(cell: dict, keys: ContentKeys | None = None) -> tuple[str, str]:
    """(the quality table's media key, the fingerprint table's) of a row whose audio and video are ``cell``."""
    keys = keys or ContentKeys()
    (job, key), = _jobs(iter([_row(cell)]), "test", keys)
    assert job is not None, key
    quality = key["fingerprint"].split("@")[0]
    fp = media_key(_row(cell), keys)
    audio, video = fp.split("|")[:2]
    assert audio[2:] == video[2:]
    return quality, audio[2:]


def _member_cell(archive: Path, name: str) -> dict:
    members = media_source(str(archive)).index(use_cache=False).members
    loc = next(m.locator for m in members if m.relpath.endswith(name))
    return {"path": loc, "bytes": None}


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, src in files.items():
            zf.write(src, arcname=name)
    return path


def _tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, src in files.items():
            tf.add(src, arcname=name)
    return path


def test_both_tables_key_the_same_media_alike(tmp_path):
    clip = shutil.copyfile(real_clip("bbb_00.mp4"), tmp_path / "a.mp4")
    data = Path(clip).read_bytes()
    files = {"a.mp4": str(clip), "b.mp4": real_clip("chaplin_00.mp4")}
    cells = {
        "local": {"path": str(clip), "bytes": None},
        "file-url": {"path": f"file://{clip}", "bytes": None},
        "bytes": {"path": "a.mp4", "bytes": data},
        "zip": _member_cell(_zip(tmp_path / "m.zip", files), "a.mp4"),
        "tar": _member_cell(_tar(tmp_path / "m.tar", files), "a.mp4"),
    }
    with RangeServer(tmp_path) as server:
        cells["remote"] = {"path": server.url("a.mp4"), "bytes": None}
        got = {kind: _both(cell) for kind, cell in cells.items()}
    for kind, (quality, fp) in got.items():
        assert quality == fp, kind
        if kind != "remote":  # (the server is gone)
            assert quality == content_key(cells[kind]), kind
    assert got["local"] == got["file-url"]  # the same file named two ways
    assert got["tar"] == got["bytes"]  # a tar member is keyed by its bytes, wherever they come from
    assert len({q for q, _ in got.values()}) == len(got) - 2  # otherwise each place has its own key
    # the same bytes elsewhere (a moved folder) keep their key; the key names no path
    moved = shutil.copy2(clip, tmp_path / "moved.mp4")
    assert _both({"path": str(moved), "bytes": None}) == got["local"]
    assert _both({"path": "elsewhere/z.mp4", "bytes": data}) == got["bytes"]


def test_a_changed_file_gets_a_new_key_in_both_tables(tmp_path):
    clip = shutil.copyfile(real_clip("bbb_00.mp4"), tmp_path / "a.mp4")
    local = {"path": str(clip), "bytes": None}
    before = _both(local)
    # another clip of the same size written over it, its mtime set back: the head/tail hash sees it
    st = os.stat(clip)
    other = Path(real_clip("chaplin_00.mp4")).read_bytes()
    other = (other * (st.st_size // len(other) + 1))[:st.st_size]
    Path(clip).write_bytes(other)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(clip).st_size == st.st_size and os.stat(clip).st_mtime_ns == st.st_mtime_ns
    after = _both(local)
    assert after[0] == after[1] and after[0] != before[0]
    # a change in the middle of a long file (past both hashed ends) moves its mtime, which the key holds
    long = tmp_path / "long.mp4"
    long.write_bytes(os.urandom(3 * EDGE))
    st = os.stat(long)
    first = _both({"path": str(long), "bytes": None})
    mid = bytearray(long.read_bytes())
    mid[len(mid) // 2] ^= 0xFF
    long.write_bytes(bytes(mid))
    os.utime(long, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _both({"path": str(long), "bytes": None}) == first  # (what no stat and no end can see)
    os.utime(long, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = _both({"path": str(long), "bytes": None})
    assert second[0] == second[1] != first[0]

    # archive members: the archive rewritten with another clip under the same name
    for build in (_zip, _tar):
        arc = tmp_path / f"m.{build.__name__[1:]}"
        build(arc, {"x.mp4": real_clip("bbb_00.mp4")})
        old = _both(_member_cell(arc, "x.mp4"))
        build(arc, {"x.mp4": real_clip("bbb_12.mp4")})
        new = _both(_member_cell(arc, "x.mp4"))
        assert old[0] == old[1] and new[0] == new[1] and old != new, build.__name__

    # a remote file: its ETag / Last-Modified change with it
    with RangeServer(tmp_path) as server:
        remote = {"path": server.url("r.mp4"), "bytes": None}
        shutil.copyfile(real_clip("bbb_00.mp4"), tmp_path / "r.mp4")
        old = _both(remote)
        shutil.copyfile(real_clip("bbb_12.mp4"), tmp_path / "r.mp4")
        os.utime(tmp_path / "r.mp4", ns=(0, os.stat(tmp_path / "r.mp4").st_mtime_ns + 2_000_000_000))
        new = _both(remote)
    assert old[0] == old[1] and new[0] == new[1] and old != new


def test_keys_never_make_a_pass_read_remote_media_twice(tmp_path):
    """The fingerprint pass keys, then decodes.  Keying a remote file reads no body (one metadata request);
    a remote zip member is keyed from its locator (no request); a remote tar member has no checksum, so it
    is read to be keyed and the row comes back with those bytes: decoding it makes no further request."""
    from avsets.ops.leakage.store import fingerprint_row, keyed_row

    shutil.copyfile(real_clip("bbb_00.mp4"), tmp_path / "r.mp4")
    files = {"x.mp4": real_clip("bbb_00.mp4"), "y.mp4": real_clip("bbb_12.mp4")}
    _zip(tmp_path / "m.zip", files)
    _tar(tmp_path / "m.tar", files)
    with RangeServer(tmp_path) as server:
        zipped = media_source(server.url("m.zip")).index(use_cache=False).members
        tarred = media_source(server.url("m.tar")).index(use_cache=False).members
        server.reset()
        keys = ContentKeys()
        assert keys({"path": server.url("r.mp4"), "bytes": None}).startswith("r:")
        assert server.total()[1] == 0 and server.total()[0] <= 2  # a HEAD (or a 1-byte GET when HEAD fails)
        server.reset()
        assert all(keys({"path": m.locator, "bytes": None}).startswith("c:") for m in zipped)
        assert server.total() == (0, 0)
        member = next(m for m in tarred if m.relpath.endswith("x.mp4"))
        row = _row({"path": member.locator, "bytes": None})
        key, row = keyed_row(row, keys)
        read = server.total()
        size = os.path.getsize(files["x.mp4"])
        assert read[0] == 1 and size <= read[1] <= size + 1024  # audio and video: one read (+ its tar header)
        assert row["audio"]["bytes"] == row["video"]["bytes"] == Path(files["x.mp4"]).read_bytes()
        fp = fingerprint_row(row)
        assert fp.error is None and fp.audio is not None and fp.video is not None
        assert server.total() == read  # decoded from the bytes the key read
    assert key == f"a:{content_key({'path': 'x.mp4', 'bytes': row['audio']['bytes']})}|v:" \
                  f"{content_key({'path': 'x.mp4', 'bytes': row['audio']['bytes']})}|0.000+10.000"


def test_unreachable_media_is_a_named_media_error(tmp_path):
    with pytest.raises(MediaError, match="cannot identify the media"):
        content_key({"path": str(tmp_path / "missing.mp4"), "bytes": None})
    assert content_key(None) is None and content_key({"path": None, "bytes": None}) is None
    # the quality pass turns it into an error row; the fingerprint pass into a key no row is reused under
    (job, key), = _jobs(iter([_row({"path": str(tmp_path / "missing.mp4"), "bytes": None})]), "test")
    assert job is None and "cannot identify the media" in key["error"]
    assert media_key(_row({"path": str(tmp_path / "missing.mp4"), "bytes": None})).startswith("a:?|v:?|")
