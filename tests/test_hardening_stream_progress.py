"""Issue 19 friction: streaming a remote tar.gz from a slow mirror says what it is doing.

A real loopback range server plays the slow mirror (``chunk`` + ``delay``: the archive trickles in over
about a second; ``latency``: every request waits).  The first line (which archive, its size) must be logged
before the first row arrives, progress lines must follow while the bytes arrive (the interval, 10 s for
users, is patched down so the test takes a second), and a local archive read fast says nothing.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import zipfile

import pytest
from range_server import serve_folder
from source_fixtures import VGG_IDS, vggsound_mirror

from avsets import load_dataset
from avsets.media.sources import media_source, sequential
from avsets.media.sources.stream import _PASSES

SECRET = "sigSECRET42"


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return vggsound_mirror(tmp_path_factory.mktemp("vgg"))


@pytest.fixture(scope="module")
def slow_archive(vgg, tmp_path_factory):
    """A 1.2-MB tar.gz: three mp4 members of train rows, each followed by 400 KB of incompressible junk, so
    bytes keep arriving after a member has been matched."""
    path = tmp_path_factory.mktemp("slow") / "vggsound_slow.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for n, i in enumerate((0, 2, 4)):
            tf.add(str(vgg.sources[_row(i)]), arcname=f"video/{VGG_IDS[i]}_{10 * i + 1:06d}.mp4")
            junk = path.parent / f"junk{n}.bin"
            junk.write_bytes(os.urandom(400_000))
            tf.add(str(junk), arcname=f"video/junk{n}.bin")
    return path


def _row(i: int) -> str:
    start = 10 * i + 1
    return f"{VGG_IDS[i]}_{start * 1000}_{(start + 10) * 1000}"


@pytest.fixture(autouse=True)
def _fresh_passes():
    _PASSES.clear()
    yield
    _PASSES.clear()


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "avsets" and r.levelno == logging.INFO]


def test_a_slow_remote_targz_says_which_archive_before_the_first_row_then_progress(vgg, slow_archive, caplog,
                                                                                  monkeypatch):
    monkeypatch.setattr(sequential, "PROGRESS_SECONDS", 0.1)
    archive = slow_archive
    size = archive.stat().st_size
    server = serve_folder(archive.parent)
    server.chunk, server.delay, server.latency = 64 * 1024, 0.06, 0.05  # ~1.2 s for the archive
    caplog.set_level(logging.INFO, logger="avsets")
    try:
        url = server.url(archive.name) + f"?X-Amz-Signature={SECRET}"
        ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=url, streaming=True,
                          decode=False)
        it = iter(ds)
        first = next(it)
        before_first_row = _lines(caplog)
        rest = list(it)
    finally:
        server.stop()
    opened = [ln for ln in before_first_row if "in archive order" in ln]
    assert len(opened) == 1, before_first_row
    assert archive.name in opened[0] and f"({size / 1e6:.1f} MB)" in opened[0], opened
    assert {first["id"], *(r["id"] for r in rest)} == {_row(i) for i in (0, 2, 4)}
    lines = _lines(caplog)
    progress = [ln for ln in lines if " read, " in ln and "matched so far" in ln]
    assert len(progress) >= 3, lines  # at most one per interval, and the transfer lasts ~12 intervals
    assert all(archive.name in ln for ln in progress)
    read = [float(m) for ln in progress for m in re.findall(r"avsets: ([\d.]+) (?:MB|KB) read", ln)]
    matched = [int(m) for ln in progress for m in re.findall(r"(\d+) media member", ln)]
    assert len(read) == len(matched) == len(progress), progress
    assert matched == sorted(matched) and 1 <= matched[-1] <= 3, progress  # counted as members arrive
    assert sum("in archive order" in ln for ln in lines) == 1  # once per archive
    assert SECRET not in caplog.text  # the URL went through the one redaction function


def test_progress_lines_are_spaced_by_the_interval(vgg, slow_archive, caplog, monkeypatch):
    """The same slow mirror with the interval longer than the transfer: the opening line and no progress."""
    monkeypatch.setattr(sequential, "PROGRESS_SECONDS", 60.0)
    archive = slow_archive
    server = serve_folder(archive.parent)
    server.chunk, server.delay = 128 * 1024, 0.03
    caplog.set_level(logging.INFO, logger="avsets")
    try:
        ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=server.url(archive.name),
                          streaming=True, decode=False)
        assert list(ds)
    finally:
        server.stop()
    lines = _lines(caplog)
    assert sum("in archive order" in ln for ln in lines) == 1, lines
    assert not [ln for ln in lines if "matched so far" in ln], lines


def test_a_local_archive_read_fast_says_nothing_of_the_kind(vgg, caplog, monkeypatch):
    monkeypatch.setattr(sequential, "PROGRESS_SECONDS", 0.0)  # even with no interval at all
    caplog.set_level(logging.INFO, logger="avsets")
    ds = load_dataset("vggsound", split="train", data_dir=str(vgg.meta), media_dir=str(vgg.archives[0]),
                      streaming=True, decode=False)
    assert list(ds)
    lines = _lines(caplog)
    assert not [ln for ln in lines if "in archive order" in ln or "matched so far" in ln], lines


def test_a_remote_zip_read_in_order_names_itself_and_its_size_once(vgg, tmp_path, caplog, monkeypatch):
    """Every remote kind read in archive order says the same (a zip here, through the interface)."""
    monkeypatch.setattr(sequential, "PROGRESS_SECONDS", 0.0)  # a line at every member that arrives
    path = tmp_path / "clips.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in (0, 2, 4):
            zf.write(vgg.sources[_row(i)], f"{VGG_IDS[i]}_{10 * i + 1:06d}.mp4")
    caplog.set_level(logging.INFO, logger="avsets")
    with serve_folder(tmp_path) as server:
        got = list(media_source(server.url("clips.zip")).iter_members())
    assert len(got) == 3
    lines = _lines(caplog)
    opened = [ln for ln in lines if "in archive order" in ln]
    assert opened == [f"avsets: reading {server.url('clips.zip')} in archive order "
                      f"({path.stat().st_size / 1e3:,.0f} KB)"], lines
    matched = [int(m) for ln in lines for m in re.findall(r"(\d+) media member", ln)]
    assert matched == [1, 2, 3], lines
