"""CLI mistakes exit 2 with one line saying what to do, before the first clip and with nothing written
(issue 12, items 5 and 6); anything unexpected is one line and exit 1, the traceback only with --debug."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

import pytest
from fetch_cli import assert_one_line_error, run_cli, segments_csv

from avsets.cli.app import guarded, main


@pytest.fixture
def work(tmp_path, vgg_meta) -> dict[str, str]:
    """Paths the table refers to: a file, a folder, a readonly folder, bad ledgers and cookies."""
    (tmp_path / "a_file.txt").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "not_sqlite.sqlite").write_text("hello, I am text\n")
    other = sqlite3.connect(str(tmp_path / "other_schema.sqlite"))
    other.execute("CREATE TABLE songs (title TEXT)")
    other.commit()
    other.close()
    (tmp_path / "truncated.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    (tmp_path / "cookies_bad.txt").write_text("session=SECRETcookieVALUE; other=def\n")
    if os.geteuid() == 0:
        readonly = "/sys/kernel"  # root ignores permission bits; sysfs refuses new files even to root
    else:
        ro = tmp_path / "readonly"
        ro.mkdir()
        ro.chmod(0o555)
        readonly = str(ro)
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "abcdefghijk", "start": 0, "end": 3}])
    return {"tmp": str(tmp_path), "file": str(tmp_path / "a_file.txt"), "folder": str(tmp_path / "folder"),
            "readonly": readonly, "meta": vgg_meta, "segs": str(listing), "out": str(tmp_path / "out"),
            "not_sqlite": str(tmp_path / "not_sqlite.sqlite"), "other": str(tmp_path / "other_schema.sqlite"),
            "truncated": str(tmp_path / "truncated.sqlite"), "cookies_bad": str(tmp_path / "cookies_bad.txt")}


FETCH = ["fetch", "--segments", "{segs}", "--audio", "--source-url-template", "http://127.0.0.1:9/{{youtube_id}}.mp4"]

# name -> (argv with {placeholders} from ``work``, a word the error line must contain)
MISTAKES = {
    "--out is a file": (["fetch", "--segments", "{segs}", "--out", "{file}", "--audio"], "is a file"),
    "--out under a file": (["fetch", "--segments", "{segs}", "--out", "{file}/sub", "--audio"], "is a file"),
    "--out read-only": (["fetch", "--segments", "{segs}", "--out", "{readonly}", "--audio"], "not writable"),
    "--timeout -1": ([*FETCH, "--out", "{out}", "--timeout", "-1"], "--timeout"),
    "--timeout 0": ([*FETCH, "--out", "{out}", "--timeout", "0"], "--timeout"),
    "--timeout nan": ([*FETCH, "--out", "{out}", "--timeout", "nan"], "--timeout"),
    "--tolerance nan": ([*FETCH, "--out", "{out}", "--tolerance", "nan"], "--tolerance"),
    "--tolerance -1": ([*FETCH, "--out", "{out}", "--tolerance", "-1"], "--tolerance"),
    "--tolerance inf": ([*FETCH, "--out", "{out}", "--tolerance", "inf"], "--tolerance"),
    "--rate 0": ([*FETCH, "--out", "{out}", "--rate", "0"], "--rate"),
    "--backoff -2": ([*FETCH, "--out", "{out}", "--backoff", "-2"], "--backoff"),
    "--refusal-pause nan": ([*FETCH, "--out", "{out}", "--refusal-pause", "nan"], "--refusal-pause"),
    "--refusal-threshold -1": ([*FETCH, "--out", "{out}", "--refusal-threshold", "-1"], "--refusal-threshold"),
    "--proxy not a URL": ([*FETCH, "--out", "{out}", "--proxy", "proxyhost"], "--proxy"),
    "--shard 3/2": ([*FETCH, "--out", "{out}", "--shard", "3/2"], "--shard"),
    "--shard text": ([*FETCH, "--out", "{out}", "--shard", "half"], "--shard"),
    "unknown template field": (["fetch", "--segments", "{segs}", "--audio", "--out", "{out}",
                                "--source-url-template", "http://h/{{nope}}.mp4"], "nope"),
    "positional field": (["fetch", "--segments", "{segs}", "--audio", "--out", "{out}",
                          "--source-url-template", "http://h/{{0}}.mp4"], "positional"),
    "--cookies not cookies": ([*FETCH, "--out", "{out}", "--cookies", "{cookies_bad}"], "Netscape"),
    "--cookies a folder": ([*FETCH, "--out", "{out}", "--cookies", "{folder}"], "--cookies"),
    "--cookies missing": ([*FETCH, "--out", "{out}", "--cookies", "{tmp}/nope.txt"], "--cookies"),
    "--segments missing": (["fetch", "--segments", "{tmp}/nope.csv", "--out", "{out}", "--audio"], "--segments"),
    "fetch --option on_missing": (["fetch", "vggsound", "--data-dir", "{meta}", "--out", "{out}", "--option",
                                   "on_missing=skip"], "on_missing"),
    "fetch --option without =": (["fetch", "vggsound", "--data-dir", "{meta}", "--out", "{out}", "--option",
                                  "on_missing"], "key=value"),
    "fetch an unknown corpus": (["fetch", "nosuchcorpus", "--out", "{out}"], "nosuchcorpus"),
    "verify --missing-csv a folder": (["verify", "vggsound", "--data-dir", "{meta}", "--media-dir", "{folder}",
                                       "--missing-csv", "{folder}"], "is a folder"),
    "verify --missing-csv in a missing folder": (["verify", "vggsound", "--data-dir", "{meta}", "--media-dir",
                                                  "{folder}", "--missing-csv", "{tmp}/no/such/dir/m.csv"],
                                                 "does not exist"),
    "verify --option on_missing": (["verify", "vggsound", "--data-dir", "{meta}", "--media-dir", "{folder}",
                                    "--option", "on_missing=keep"], "on_missing"),
    "ledger diff non-SQLite": (["ledger", "diff", "{not_sqlite}", "{not_sqlite}"], "not a fetch ledger"),
    "ledger diff another schema": (["ledger", "diff", "{other}", "{other}"], "not an avsets fetch ledger"),
    "ledger diff truncated": (["ledger", "diff", "{truncated}", "{truncated}"], "ledger"),
    "ledger diff a folder without ledger": (["ledger", "diff", "{folder}", "{folder}"], "no fetch ledger"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_one_line_and_exit_2(work, name, capsys):
    argv, word = MISTAKES[name]
    args = [a.format(**work) for a in argv]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2, (name, code, captured.err)
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    assert "error" in lines[0] and word in lines[0], lines[0]
    assert "SECRETcookieVALUE" not in captured.out + captured.err
    assert not Path(work["out"]).exists()  # nothing written, not even the folder


def test_an_older_ledger_with_fewer_columns_is_still_read(tmp_path, capsys):
    """Backward compatibility: a ledger written before some columns existed is read (missing ones None)."""
    from avsets.ops.fetch import read_ledger

    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(str(old))
    con.execute("CREATE TABLE clips (id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, files TEXT)")
    con.execute("INSERT INTO clips VALUES ('abcdefghijk_0_3000', 'ok', NULL, 'abcdefghijk_0_3000.flac')")
    con.commit()
    con.close()
    (row,) = read_ledger(old)
    assert row.status == "ok" and row.file_names() == ["abcdefghijk_0_3000.flac"] and row.sha256 is None
    assert main(["ledger", "diff", str(old), str(old)]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["--out is a file", "--tolerance nan", "ledger diff another schema",
                                  "verify --missing-csv a folder", "--cookies not cookies"])
def test_the_same_mistakes_in_a_subprocess(work, name):
    """As a user runs them: no traceback on stderr, exit 2 (a sample of the table; the rest runs in-process)."""
    argv, word = MISTAKES[name]
    proc = run_cli(*[a.format(**work) for a in argv])
    assert word in assert_one_line_error(proc)


def test_an_unexpected_error_is_one_line_and_exit_1(capsys):
    def boom(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug at http://bob:hunter2@host/x?token=abc")

    assert guarded(argparse.Namespace(func=boom, debug=False)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--debug" in err and "RuntimeError" in err
    assert "hunter2" not in err and "token=abc" not in err
    with pytest.raises(RuntimeError):  # --debug: the traceback, for a bug report
        guarded(argparse.Namespace(func=boom, debug=True))


@pytest.mark.slow
def test_debug_flag_exists_on_both_entry_points():
    assert "--debug" in run_cli("--help").stdout
    assert "--debug" in run_cli("--help", module="avsets.cli.fetch").stdout
