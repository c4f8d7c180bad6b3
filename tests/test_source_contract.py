"""The media-source contract: every kind, local and over a loopback HTTP Range server, behaves the same.

One list of kinds (``KINDS``), one set of clips written into each form; every kind must give the same
members (names, bytes), the same row matches through random access (``MediaIndex`` + ``attach_media``)
and through archive order (``RowIndex`` + ``serve_group``), and read only the members a ``want`` predicate
accepts.  Adding a mirror format is one :class:`avsets.media.sources.MediaSource` subclass and one entry here.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from range_server import RangeServer
from source_fixtures import make_flac

from avsets.core.errors import StreamingOnlySourceError
from avsets.media.media_index import MediaIndex
from avsets.media.resolve import ResolveOptions, attach_media
from avsets.media.sources import SourceStats, media_source
from avsets.media.sources.row_join import RowIndex, iter_groups, serve_group

# (youtube id, start, end, member name): three namings the resolver knows, at several depths
CLIPS = [
    ("contractA01", 30.0, 40.0, "audio/contractA01_30000_40000.flac"),
    ("contractB02", 12.0, 22.0, "contractB02_000012.flac"),
    ("contractC03", 5.0, 15.0, "deep/er/contractC03_5000_15000.flac"),
    ("contractD04", 0.0, 10.0, "contractD04_0_10000.flac"),
]
ROW_ONLY = ("contractE05", 1.0, 11.0)  # a row no member serves
JUNK = ("README.txt", b"not media")


@dataclass(frozen=True)
class Kind:
    """One source kind: how to write the clips in its form, and what the interface must say about it."""

    name: str
    relpath: str  # where the source lives under the test folder
    write: Callable[[Path, dict[str, bytes]], None]
    random_access: bool


def _write_folder(dst: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        (dst / name).write_bytes(data)
    (dst / JUNK[0]).write_bytes(JUNK[1])


def _write_zip(dst: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(*JUNK)


def _write_tar(mode: str) -> Callable[[Path, dict[str, bytes]], None]:
    def write(dst: Path, files: dict[str, bytes]) -> None:
        with tarfile.open(dst, mode) as tf:
            for name, data in [*files.items(), JUNK]:
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return write


def _write_parquet(dst: Path, files: dict[str, bytes]) -> None:
    names = list(files)
    table = pa.table({
        "video_id": [n.rsplit("/", 1)[-1].split("_")[0] for n in names],
        "audio": pa.array([{"bytes": files[n], "path": n} for n in names],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    })
    pq.write_table(table, dst, row_group_size=2)


KINDS = [
    Kind("folder", "mirror_folder", _write_folder, True),
    Kind("zip", "clips.zip", _write_zip, True),
    Kind("tar", "clips.tar", _write_tar("w"), True),
    Kind("tgz", "clips.tar.gz", _write_tar("w:gz"), False),
    Kind("parquet", "clips.parquet", _write_parquet, True),
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("contract")
    files = {}
    for i, (_, _, _, name) in enumerate(CLIPS):
        files[name] = make_flac(root / f"src{i}.flac", 0.3, seed=i).read_bytes()
    for kind in KINDS:
        dst = root / kind.relpath
        if kind.name == "folder":
            dst.mkdir()
        kind.write(dst, files)
    return root, files


@pytest.fixture(scope="module")
def server(mirror):
    srv = RangeServer(mirror[0])
    srv.listing = True
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _private_index_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))


def _url(where: str, kind: Kind, mirror, server) -> str:
    return str(mirror[0] / kind.relpath) if where == "local" else server.url(kind.relpath)


def _rows() -> pa.Table:
    rows = [c[:3] for c in CLIPS] + [ROW_ONLY]
    return pa.table({"youtube_id": [r[0] for r in rows], "start": [r[1] for r in rows], "end": [r[2] for r in rows],
                     "id": [f"{r[0]}_{int(r[1] * 1000)}_{int(r[2] * 1000)}" for r in rows]})


PARAMS = [pytest.param(kind, where, id=f"{kind.name}-{where}") for kind in KINDS for where in ("local", "http")]


@pytest.mark.parametrize(("kind", "where"), PARAMS)
def test_kind_and_access_come_from_the_one_registry(kind, where, mirror, server):
    src = media_source(_url(where, kind, mirror, server))
    assert src.kind == kind.name
    assert src.random_access is kind.random_access


@pytest.mark.parametrize(("kind", "where"), PARAMS)
def test_archive_order_gives_every_media_member_with_its_bytes_and_skips_junk(kind, where, mirror, server):
    src = media_source(_url(where, kind, mirror, server))
    stats = SourceStats()
    got = {m.relpath: bytes(m.data) for m in src.iter_members(stats)}
    assert got == mirror[1]
    assert stats.media == len(CLIPS)


@pytest.mark.parametrize(("kind", "where"), PARAMS)
def test_archive_order_reads_only_wanted_members(kind, where, mirror, server):
    src = media_source(_url(where, kind, mirror, server))
    asked: list[str] = []
    wanted = CLIPS[2][3]

    def want(m) -> bool:
        assert m.data is None  # asked before any byte of it is held
        asked.append(m.relpath)
        return m.relpath == wanted

    got = [m.relpath for m in src.iter_members(want=want)]
    assert got == [wanted]
    assert set(asked) == set(mirror[1])  # every member was asked (a Parquet file may ask twice)


@pytest.mark.parametrize(("kind", "where"), PARAMS)
def test_random_access_index_and_read_give_the_same_members(kind, where, mirror, server):
    src = media_source(_url(where, kind, mirror, server))
    if not kind.random_access:
        with pytest.raises(StreamingOnlySourceError):
            src.index()
        return
    si = src.index()
    assert {m.relpath for m in si.members} == set(mirror[1])
    for m in si.members:
        assert m.data is None and m.keys, m
        assert src.read(m) == mirror[1][m.relpath]


@pytest.mark.parametrize(("kind", "where"), PARAMS)
def test_both_halves_match_the_same_rows(kind, where, mirror, server):
    """Random access (MediaIndex + attach_media) and archive order (RowIndex + serve_group) serve the same
    rows from the same members: one rule set."""
    url = _url(where, kind, mirror, server)
    table = _rows()
    expected = {f"{y}_{int(s * 1000)}_{int(e * 1000)}": name for y, s, e, name in CLIPS}
    rows = RowIndex.build(table)
    served: set[int] = set()
    streamed = {}
    for group in iter_groups(media_source(url).iter_members(want=rows.wants)):
        got, _ = serve_group(group, rows, served, want_audio=True, want_video=False)
        for s in got:
            streamed[table.column("id")[s.row].as_py()] = s.audio.relpath
    assert streamed == expected
    if not kind.random_access:
        return
    index = MediaIndex.scan(url)
    out, stats = attach_media(table, index, ResolveOptions(modalities=("audio",)))
    resolved = {rid: path.rsplit("!/", 1)[-1] for rid, path in
                zip(out.column("id").to_pylist(), (a["path"] for a in out.column("audio").to_pylist()), strict=True)}
    assert {rid: p.removeprefix(url.rstrip("/") + "/").removeprefix(str(mirror[0] / kind.relpath) + "/")
            for rid, p in resolved.items()} == expected
    assert stats.missing == 1 and stats.missing_ids == [f"{ROW_ONLY[0]}_1000_11000"]


def test_every_registered_kind_is_in_the_contract():
    from avsets.media.sources.registry import SOURCE_CLASSES

    assert {k.name for k in KINDS} == set(SOURCE_CLASSES)


def test_a_webdataset_member_named_by_its_json_matches_in_both_halves(tmp_path, monkeypatch):
    """Issue 19 item 11: ``{key}.flac`` + ``{key}.json`` naming the clip: the random-access index (verify,
    report, map-style) and archive order (unpack, streaming) match the same member."""
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "idx"))
    flac = make_flac(tmp_path / "a.flac", 0.3).read_bytes()
    meta = json.dumps({"youtube_id": "contractJ06", "start": 3.0, "end": 13.0}).encode()
    for name, mode in (("wds.tar", "w"), ("wds.zip", None)):
        path = tmp_path / name
        if mode:
            _write_tar(mode)(path, {"sample0001.flac": flac, "sample0001.json": meta})
        else:
            _write_zip(path, {"sample0001.flac": flac, "sample0001.json": meta})
        table = pa.table({"youtube_id": ["contractJ06"], "start": [3.0], "end": [13.0], "id": ["contractJ06_3000_13000"]})
        out, stats = attach_media(table, MediaIndex.scan(str(path)), ResolveOptions(modalities=("audio",)))
        assert stats.found == 1, name
        assert out.column("audio")[0].as_py()["path"].endswith("!/sample0001.flac")
        rows = RowIndex.build(table)
        served: set[int] = set()
        for group in iter_groups(media_source(str(path)).iter_members(want=rows.wants)):
            serve_group(group, rows, served, want_audio=True, want_video=False)
        assert served == {0}, name


def test_no_caller_outside_the_sources_package_tests_a_source_kind():
    """Callers loop over sources (issue 18): a kind string compared, or a kind's class named, outside
    ``avsets.media.sources`` means a second place decides what a kind can do."""
    import re

    import avsets

    root = Path(avsets.__file__).parent
    kinds = "|".join(k.name for k in KINDS)
    compare = re.compile(rf"""(source|src|archive|s)\.kind\s*(==|!=|in\b|not in\b)|["']({kinds})["']\s*(==|!=|in\b)""")
    named = re.compile(r"\b(ZipSource|TarSource|TarGzSource|ParquetSource|FolderSource)\b")
    hits = []
    for path in root.rglob("*.py"):
        if path.relative_to(root).parts[:2] == ("media", "sources"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if compare.search(line) or named.search(line):
                hits.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not hits, hits
