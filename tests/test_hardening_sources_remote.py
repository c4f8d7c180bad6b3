"""Remote media roots: looking for a ledger costs no media bytes, and presigned URLs are archives whose
signature never leaves (issue 19, items 7 and 8).

Every remote root a user may give ``--media-dir`` (an archive of each kind, a media file, a presigned
archive URL, a folder with and without a ledger) is served by the loopback range server, which counts the
body bytes of every path: the ledger lookup of ``verify`` and ``report`` may move the ledger's bytes and
nothing else.  The presigned URL carries a query with an ``X-Amz-Signature``; it must be recognised as the
archive it names and its signature must appear in no error, log line or printed output.
"""

from __future__ import annotations

import importlib.resources
import logging
import shutil
import zipfile

import pytest
import source_mirrors as sm
from range_server import RangeServer

from avsets.cli.app import _ledger_status, main
from avsets.core.errors import MediaError, MediaSourceError
from avsets.media.sources import (
    Source,
    expand_sources,
    index_source,
    media_source,
    read_media_bytes,
    source_kind,
)
from avsets.media.sources import ranged as ranged_mod
from avsets.media.sources.members import ReadStats
from avsets.metadata.ledger import Ledger, LedgerRow, read_ledger, remote_ledger_url
from avsets.ops.report import _default_ledgers
from avsets.ops.verify import verify

SIG = "s3cr3tSIGNATUREvalue0123456789"
QUERY = f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature={SIG}"


def _vgg() -> str:
    return str(importlib.resources.files("avsets.vggsound") / "sample")


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory):
    m = sm.build(tmp_path_factory.mktemp("mirrors"))
    with zipfile.ZipFile(m.root / "clips.zip") as zf:  # a plain media file as a root too
        mp4 = next(n for n in zf.namelist() if n.endswith(".mp4"))
        (m.root / "one.mp4").write_bytes(zf.read(mp4))
    out = m.root / "fetched"
    out.mkdir()
    with Ledger.in_folder(out) as led:
        led.begin_run()
        led.record(LedgerRow(id="abc_0_10000", status="ok", youtube_id="abc", files="abc_0_10000.flac"))
        led.end_run({"ok": 1})
    (m.root / "empty-folder").mkdir()
    return m


@pytest.fixture(scope="module")
def server(mirrors):
    with RangeServer(mirrors.root) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVSETS_SOURCE_CACHE", str(tmp_path / "source-index"))


MEDIA_ROOTS = ["clips.zip", "wds-000000.tar", "vggsound_00.tar.gz", "audioset-bal.parquet", "one.mp4",
               "clips.zip" + QUERY, "empty-folder", "empty-folder/", "no-such-folder"]


@pytest.mark.parametrize("root", MEDIA_ROOTS)
def test_looking_for_a_ledger_in_a_remote_media_root_moves_no_bytes(server, root):
    url = server.url(root)
    server.reset()
    with pytest.raises(FileNotFoundError) as exc:
        read_ledger(url)
    assert SIG not in str(exc.value)
    assert _default_ledgers([url]) == []
    assert _ledger_status([url]) == {}
    assert server.total()[1] == 0, server.log
    path = root.split("?", 1)[0]
    assert not any(m == "GET" and p == path and not r for m, p, r in server.log), server.log  # no whole-file GET


def test_a_remote_folder_with_a_ledger_moves_only_the_ledger(mirrors, server):
    size = (mirrors.root / "fetched" / "avsets-ledger.sqlite").stat().st_size
    for url in (server.url("fetched"), server.url("fetched/"), server.url("fetched/avsets-ledger.sqlite")):
        server.reset()
        assert [r.id for r in read_ledger(url)] == ["abc_0_10000"]
        assert server.total()[1] == size
        assert set(server.bytes_sent) == {"fetched/avsets-ledger.sqlite"}
    assert _default_ledgers([server.url("fetched")]) == [server.url("fetched")]
    assert _ledger_status([server.url("fetched")])["abc"][0] == "ok"


def test_report_of_a_remote_archive_never_downloads_it_whole(mirrors, server, tmp_path, capsys):
    url = server.url("clips.zip")
    server.reset()
    out = tmp_path / "r.json"
    assert main(["report", "vggsound", "--data-dir", _vgg(), "--media-dir", url, "--out", str(out),
                 "--no-probe"]) == 0, capsys.readouterr().err
    assert "not a fetch ledger" not in capsys.readouterr().err
    size = (mirrors.root / "clips.zip").stat().st_size
    assert server.bytes_sent["clips.zip"] < size / 2
    assert not any(m == "GET" and p == "clips.zip" and not r for m, p, r in server.log), server.log


# ------------------------------------------------------------------------------------------ presigned URLs

PRESIGNED = {"clips.zip": "zip", "wds-000000.tar": "tar", "vggsound_00.tar.gz": "tgz",
             "audioset-bal.parquet": "parquet"}


@pytest.mark.parametrize("name", list(PRESIGNED))
def test_a_presigned_url_is_the_archive_its_path_names(name):
    for tail in (QUERY, QUERY + "#frag", "?sig=a/b.mp4&x=y.tar"):
        url = f"https://bucket.s3.example.com/mirror/{name}{tail}"
        assert source_kind(url) == PRESIGNED[name]
        assert expand_sources(url) == [Source(url, PRESIGNED[name])]  # not a glob, not a folder
    assert source_kind("https://host/folder?name=a.zip") is None  # a query naming an archive is not one


def test_a_presigned_zip_serves_its_rows_like_the_plain_url(server):
    plain = {c.split: (c.found, c.missing, c.corrupt)
             for c in verify("vggsound", data_dir=_vgg(), media_dir=server.url("clips.zip"), progress=False)}
    signed = {c.split: (c.found, c.missing, c.corrupt)
              for c in verify("vggsound", data_dir=_vgg(), media_dir=server.url("clips.zip") + QUERY,
                              progress=False)}
    assert signed == plain and plain["train"][0] > 0


def test_the_signature_appears_in_no_error_log_or_output(mirrors, server, tmp_path, caplog, capsys):
    # a source that is not what its name says
    shutil.copy(mirrors.root / "one.mp4", mirrors.root / "fake.zip")
    with pytest.raises(MediaSourceError) as exc:
        index_source(Source(server.url("fake.zip") + QUERY, "zip"), use_cache=False)
    assert SIG not in str(exc.value) and "fake.zip" in str(exc.value)
    # a member that cannot be read (its locator points at the wrong place)
    si = index_source(Source(server.url("clips.zip") + QUERY, "zip"), use_cache=False)
    loc = si.members[0].locator.replace(":o=", ":o=1")
    with pytest.raises(MediaError) as exc:
        read_media_bytes(loc)
    assert SIG not in str(exc.value) and "clips.zip" in str(exc.value)
    # a server that ignores Range: said once, without the signature
    server.honour_range = False
    ranged_mod._WARNED.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="avsets"):
            si = index_source(Source(server.url("wds-000000.tar") + QUERY, "tar"), use_cache=False)
            read_media_bytes(si.members[0].locator)
    finally:
        server.honour_range = True
    assert "ignores Range" in caplog.text and SIG not in caplog.text
    # the CLI's own output
    assert main(["verify", "vggsound", "--data-dir", _vgg(), "--media-dir", server.url("clips.zip") + QUERY,
                 "--missing-csv", str(tmp_path / "missing.csv")]) == 1
    printed = capsys.readouterr()
    assert SIG not in printed.out + printed.err
    assert SIG not in (tmp_path / "missing.csv").read_text()


def test_remote_ledger_url_keeps_the_query_of_a_signed_folder():
    assert remote_ledger_url("https://h/out?sig=1") == "https://h/out/avsets-ledger.sqlite?sig=1"
    assert remote_ledger_url("https://h/clips.zip" + QUERY) is None
    assert remote_ledger_url("s3://bucket/out/") == "s3://bucket/out/avsets-ledger.sqlite"
    assert remote_ledger_url("s3://bucket/l.sqlite?versionId=3") == "s3://bucket/l.sqlite?versionId=3"


def test_a_url_signed_for_get_only_is_indexed_without_downloading_it(mirrors, server):
    """S3 and GCS presigned URLs refuse HEAD; fsspec's fallback was a GET of the whole archive."""
    size = (mirrors.root / "clips.zip").stat().st_size
    server.refuse_head = True
    try:
        server.reset()
        si = index_source(Source(server.url("clips.zip") + QUERY, "zip"), use_cache=False)
        requests, moved = server.total()
        head_refused = [m for m, p, _ in server.log if m == "HEAD"]
    finally:
        server.refuse_head = False
    assert head_refused and len(si.members) > 0
    assert moved <= 64 * 1024 + 200 < size, f"{moved:,} of {size:,} bytes to index"
    assert not any(m == "GET" and not r for m, _, r in server.log), server.log
    assert si.info.size == size
    assert read_media_bytes(si.members[0].locator)


def test_archive_order_over_a_get_only_url_reads_the_archive_once(mirrors, server):
    size = (mirrors.root / "clips.zip").stat().st_size
    plain = [m.name for m in media_source(Source(str(mirrors.root / "clips.zip"), "zip")).iter_members(ReadStats())]
    server.refuse_head = True
    try:
        server.reset()
        names = [m.name for m in media_source(Source(server.url("clips.zip") + QUERY, "zip")).iter_members(ReadStats())]
        moved = server.total()[1]
    finally:
        server.refuse_head = False
    assert names == plain
    assert moved <= size + 1024, f"{moved:,} bytes for a {size:,}-byte archive"
