"""Issue 19 at the command line: relative output folders where ffmpeg cuts (14) and no secret in what any
command prints (15). Real mirrors (tar.gz / tar of PyAV-made mp4s), a real loopback HTTP server, the real CLI
in a subprocess where the exact output matters."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from fetch_cli import cli_env
from fetch_server import make_video
from range_server import serve_folder
from source_fixtures import audioset_mirrors, vgg_row_id, vggsound_mirror

from avsets.cli.app import main
from avsets.metadata.manifest import Manifest

pytest.importorskip("imageio_ffmpeg")

SECRETS = ("hunter2", "sigVALUE42", "bobuser")


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return vggsound_mirror(tmp_path_factory.mktemp("vgg"))


@pytest.fixture(scope="module")
def aset(tmp_path_factory):
    return audioset_mirrors(tmp_path_factory.mktemp("aset"))


def _ok_ids(out: Path) -> set[str]:
    con = sqlite3.connect(out / "avsets-ledger.sqlite")
    try:
        return {r[0] for r in con.execute("SELECT id FROM clips WHERE status = 'ok'")}
    finally:
        con.close()


def test_unpack_into_a_relative_folder_cuts_whole_videos(aset, tmp_path, monkeypatch):
    """Item 14: ``--out media`` (relative, as the README writes it) with a whole-video member to cut."""
    whole_id = aset.ids[5]
    video = make_video(tmp_path / "whole.mp4", 45.0, seed=7, width=64, height=48)
    tar = tmp_path / "videos.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(str(video), arcname=f"videos/{whole_id}.mp4")
    monkeypatch.chdir(tmp_path)
    rc = main(["unpack", "ascc", "--data-dir", str(aset.meta), "--media-dir", "videos.tar", "--media-dir",
               str(aset.parquet), "--out", "media", "--quiet"])
    assert rc == 0
    rid = f"{whole_id}_30000_40000"
    with av.open(str(tmp_path / "media" / f"{rid}.mp4")) as c:
        assert abs(c.duration / 1e6 - 10.0) < 0.5
    assert rid in _ok_ids(tmp_path / "media")
    assert f"{aset.ids[4]}_30000_40000" in _ok_ids(tmp_path / "media")  # the 60-s FLAC, cut too


def test_fetch_source_audio_from_mp4_members_into_a_relative_folder(vgg, tmp_path, monkeypatch):
    """Item 14: ``fetch --source ARCHIVE --audio --out media``: every served mp4 member is converted."""
    monkeypatch.chdir(tmp_path)
    rc = main(["fetch", "vggsound", "--data-dir", str(vgg.meta), "--source", str(vgg.archives[1]), "--audio",
               "--out", "media"])
    assert rc == 1  # most rows are not in this archive
    got = _ok_ids(tmp_path / "media")
    assert {vgg_row_id(i) for i in (4, 6, 7)} <= got
    assert all((tmp_path / "media" / f"{rid}.flac").stat().st_size > 0 for rid in got)


@contextlib.contextmanager
def _listing_server(root: Path) -> Iterator[str]:
    """The standard library's ``http.server`` (folders listed as HTML, as fsspec's HTTP backend reads them)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avsets.cli.app", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(HF_HUB_OFFLINE="1"), cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_no_command_prints_a_planted_secret(vgg, tmp_path):
    """Item 15: URLs carrying a password and a signature, given to compare, verify, report and unpack: their
    stdout and stderr (tables, summaries, warnings, errors) never show the secret, yet name the host."""
    site = tmp_path / "site"
    (site / "fetched").mkdir(parents=True)
    shutil.copy(vgg.archives[1], site / "vggsound_01.tar.gz")
    ids = [vgg_row_id(i) for i in range(4)]
    Manifest({"test": ids}, corpus="vggsound", config="default").write(site / "a.json")
    Manifest({"test": ids[:2]}, corpus="vggsound", config="default").write(site / "b.json")
    assert main(["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[1]),
                 "--out", str(site / "fetched"), "--quiet"]) == 1
    with serve_folder(site) as srv, _listing_server(site) as listing:
        base = srv.base_url.replace("http://", "http://bobuser:hunter2@")
        lbase = listing.replace("http://", "http://bobuser:hunter2@")
        sig = "?X-Amz-Signature=sigVALUE42&X-Amz-Credential=bobuser"
        runs = {
            "compare": ["compare", f"{base}/a.json{sig}", f"{base}/b.json{sig}"],
            "verify": ["verify", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", f"{lbase}/fetched/",
                       "--no-probe"],
            "report": ["report", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", f"{lbase}/fetched/",
                       "--out", str(tmp_path / "r.json"), "--no-probe"],
            "unpack": ["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir",
                       f"{base}/vggsound_01.tar.gz", "--out", str(tmp_path / "u"), "--quiet"],
            "unpack-missing": ["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir",
                               f"{base}/nothing-here.zip{sig}", "--out", str(tmp_path / "u2"), "--quiet"],
        }
        outputs = {name: _run(args, tmp_path) for name, args in runs.items()}
    for name, p in outputs.items():
        text = p.stdout + p.stderr
        assert "Traceback" not in text, (name, text)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, (name, leaked, text)
    # the sources are still named, only their secrets are masked
    assert "127.0.0.1" in outputs["compare"].stdout and "a.json" in outputs["compare"].stdout
    assert "fetch ledger in http://***@127.0.0.1" in outputs["verify"].stdout
    assert "nothing-here.zip" in outputs["unpack-missing"].stderr


def test_compare_names_the_paths_given_and_warns_across_configs(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    Manifest({"test": ["abcdefghijk_0_10000"]}, corpus="vggsound", config="default",
             source="avsets export").write(a)
    Manifest({"test": ["abcdefghijk_0_10000"]}, corpus="audiosetzsl", config="seen").write(b)
    assert main(["compare", str(a), str(b)]) == 0
    cap = capsys.readouterr()
    assert f"A: {a}" in cap.out and f"B: {b}" in cap.out and "avsets export" not in cap.out
    assert "corpus 'vggsound'" in cap.err and "config 'default'" in cap.err
    assert main(["compare", str(a), str(b), "--config", "other"]) == 2
    assert "not 'other'" in capsys.readouterr().err
    assert main(["compare", str(a), str(a), "--out", str(tmp_path / "nonexistent" / "x.csv")]) == 2
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("typo", ["results/both.csv", "nonexist/x"])
def test_a_local_typo_with_a_slash_is_named(tmp_path, typo, capsys, monkeypatch):
    """Friction: a path typo containing ``/`` is not sent to the Hub as ``org/name``, or, when it could be a
    repo, the error names both readings and that the Hub is offline; never "unexpected error"."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "results").mkdir()
    a = tmp_path / "a.json"
    Manifest({"test": ["abcdefghijk_0_10000"]}).write(a)
    assert main(["compare", str(a), typo]) == 2
    err = capsys.readouterr().err
    assert typo in err and "unexpected" not in err
    assert "no such" in err
    from avsets.metadata.manifest import ManifestError, read_ids

    with pytest.raises(ManifestError, match="no such"):
        read_ids(typo)
    json.dumps(err)
    os.fspath(a)


@pytest.mark.slow
def test_disk_full_during_unpack_says_so_and_keeps_the_ledger(vgg, tmp_path):
    """Friction: a full disk during ``unpack`` says "no space left" (not SQLite's "cannot rollback - no
    transaction is active"), prints the summary, exits 1 and leaves a valid ledger; grown, a rerun finishes."""
    from test_reliability_faults import Tmpfs

    disk = Tmpfs(tmp_path / "disk", "160k")
    try:
        args = ["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[0]),
                "--media-dir", str(vgg.archives[1]), "--out", str(disk.path / "media"), "--quiet"]
        p = _run(args, tmp_path)
        text = p.stdout + p.stderr
        assert p.returncode == 1, text
        assert "no space left" in text and "cannot rollback" not in text and "Traceback" not in text, text
        assert "not reached" in p.stdout
        con = sqlite3.connect(disk.path / "media" / "avsets-ledger.sqlite")
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            recorded = {r[0] for r in con.execute("SELECT id FROM clips WHERE status = 'ok'")}
        finally:
            con.close()
        assert all((disk.path / "media" / f"{rid}.mp4").is_file() for rid in recorded)
        disk.grow("64m")
        p = _run(args, tmp_path)
        assert "no space" not in p.stdout + p.stderr and f"{len(recorded)} already there" in p.stdout, p.stdout
        assert _ok_ids(disk.path / "media") >= {vgg_row_id(i) for i in (0, 1, 2, 4, 6, 7)}
    finally:
        disk.close()


def test_one_rule_for_set_up_mistakes_and_bars(vgg, tmp_path, capsys):
    """Friction: a nonexistent ``--media-dir`` is exit 2 with nothing created, in unpack and fetch --source
    as in verify; ``--probe-limit -5``, ``report --out r.pdf`` and ``report --out DIR`` are exit 2 before any
    scan; ``--debug``/``-v`` are accepted after the subcommand; verify has ``--split``."""
    gone = str(tmp_path / "typo")
    for args in (["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", gone, "--out",
                  str(tmp_path / "u"), "--debug"],
                 ["fetch", "vggsound", "--data-dir", str(vgg.meta), "--source", gone, "--audio", "--out",
                  str(tmp_path / "f"), "-v"]):
        assert main(args) == 2, args
        assert "typo" in capsys.readouterr().err
        assert not (tmp_path / "u").exists() and not (tmp_path / "f").exists()
    report = ["report", "vggsound", "--data-dir", str(vgg.meta), "--no-probe"]
    with pytest.raises(SystemExit) as e:
        main([*report, "--out", str(tmp_path / "r.html"), "--probe-limit", "-5"])
    assert e.value.code == 2
    assert main([*report, "--out", str(tmp_path / "r.pdf")]) == 2
    assert ".pdf" in capsys.readouterr().err and not (tmp_path / "r.pdf").exists()
    (tmp_path / "DIR").mkdir()
    assert main([*report, "--out", str(tmp_path / "DIR")]) == 2
    assert "is a folder" in capsys.readouterr().err and not list((tmp_path / "DIR").iterdir())
    capsys.readouterr()
    assert main(["verify", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[1]),
                 "--split", "test", "--no-probe", "--debug"]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith("test")
    assert not any(line.startswith("train") for line in table)


@pytest.mark.slow
def test_no_progress_bar_in_a_pipe(vgg, tmp_path):
    """Friction: verify and report draw no bar into a pipe (unpack already did not); a log stays readable."""
    for args in (["verify", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[1])],
                 ["report", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[1]),
                  "--out", str(tmp_path / "r.json")]):
        p = _run(args, tmp_path)
        assert "\r" not in p.stderr and "it/s" not in p.stderr and "%|" not in p.stderr, (args[0], p.stderr)


def test_unpack_records_its_run(vgg, tmp_path):
    """Friction: unpack appends its run to the ledger's history, as fetch does (the report's chart reads it)."""
    out = tmp_path / "out"
    assert main(["unpack", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[1]),
                 "--out", str(out), "--quiet"]) == 1
    con = sqlite3.connect(out / "avsets-ledger.sqlite")
    try:
        runs = con.execute("SELECT run_id, finished_at, counts FROM runs").fetchall()
        history = con.execute("SELECT COUNT(*) FROM history").fetchone()[0]
    finally:
        con.close()
    assert len(runs) == 1 and runs[0][1] and json.loads(runs[0][2])["ok"] == 4
    assert history == 5  # 4 written + 1 failed


@pytest.mark.slow
def test_unpack_uses_a_system_ffmpeg_without_the_fetch_extra(aset, tmp_path):
    """Friction: without imageio-ffmpeg (``avsets[fetch]``), ``unpack`` cuts whole videos with ``ffmpeg`` on
    PATH; with neither, the error names ffmpeg and both ways to get it (exit 2, no traceback)."""
    import imageio_ffmpeg

    whole_id = aset.ids[5]
    video = make_video(tmp_path / "whole.mp4", 45.0, seed=7, width=64, height=48)
    tar = tmp_path / "videos.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(str(video), arcname=f"videos/{whole_id}.mp4")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    code = ("import sys; sys.modules['imageio_ffmpeg'] = None\n"
            "from avsets.cli.app import main; sys.exit(main(sys.argv[1:]))")
    args = ["unpack", "ascc", "--data-dir", str(aset.meta), "--media-dir", str(tar), "--quiet"]
    for path, expect in ((str(bin_dir), 1), ("/nonexistent", 2)):  # 1: the other rows are in no source
        out = tmp_path / f"out-{expect}"
        env = cli_env(PATH=path)
        p = subprocess.run([sys.executable, "-c", code, *args, "--out", str(out)], capture_output=True, text=True,
                           env=env, timeout=300)
        assert p.returncode == expect, p.stderr[-2000:]
        assert "Traceback" not in p.stderr
        if expect == 1:
            assert f"{whole_id}_30000_40000" in _ok_ids(out)
        else:
            assert "ffmpeg" in p.stderr and "PATH" in p.stderr and "avsets[fetch]" in p.stderr


def test_export_streams_a_targz_mirror_itself(vgg, tmp_path, capsys):
    """Friction: ``export`` from a folder of ``.tar.gz`` archives (map-style cannot read them) reads them in
    one archive-order pass and exports every row a member serves; stock ``datasets`` loads the result, and a
    rerun reuses the staged clips."""
    import datasets

    out = tmp_path / "exp"
    args = ["export", "vggsound", "--data-dir", str(vgg.meta), "--media-dir", str(vgg.archives[0].parent),
            "--out", str(out), "-q"]
    assert main(args) == 0
    ds = datasets.load_dataset(str(out), "default", cache_dir=str(tmp_path / "c"))
    assert sorted(i for split in ds.values() for i in split["id"]) == sorted(vgg.sources)
    assert "streaming=True" not in capsys.readouterr().err
    assert main(args) == 0  # a rerun: the staged clips are there, the export finds its work done
