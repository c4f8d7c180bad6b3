"""The ``avsets`` command as a user runs it: list, info, verify (with the missing-ids CSV), demo."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from avsets.cli.app import main
from avsets.media.synth import write_audio


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "avsets.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    assert "vggsound" in capsys.readouterr().out
    assert main(["info", "vggsound", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["license"] == "cc-by-4.0" and "Chen20" in info["citation"]
    assert set(info["configs"]) == {"default", "common", "astest"}
    assert info["configs"]["default"]["features"]["label"] == "ClassLabel(310 names)"


def test_verify_table_and_missing_csv(vgg_sample_dir, tmp_path, capsys):
    media = tmp_path / "media"
    media.mkdir()
    write_audio(media / "--0PQM4-hqg_000030.flac", seconds=10.0)
    (media / "--9O4XZOge4_000030.flac").write_bytes(b"garbage")
    out_csv = tmp_path / "missing.csv"
    code = main(["verify", "vggsound", "--data-dir", vgg_sample_dir, "--media-dir", str(media),
                 "--missing-csv", str(out_csv)])
    text = capsys.readouterr().out
    assert code == 1  # something is missing
    lines = {ln.split()[0]: ln.split() for ln in text.splitlines() if ln.startswith(("train", "test"))}
    assert lines["train"][1:5] == ["868", "2", "866", "1"]
    assert lines["test"][1:5] == ["102", "0", "102", "0"]
    rows = list(csv.DictReader(open(out_csv)))
    assert sum(r["status"] == "missing" for r in rows) == 866 + 102
    corrupt = [r for r in rows if r["status"] == "corrupt"]
    assert [r["id"] for r in corrupt] == ["--9O4XZOge4_30000_40000"]


@pytest.mark.slow
def test_bad_usage_exit_codes(tmp_path):
    assert run("info", "nope").returncode == 2
    assert run("verify", "vggsound", "--data-dir", str(tmp_path)).returncode == 2


@pytest.mark.slow
def test_demo_runs_offline(tmp_path):
    out = run("demo", "--out", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "map-style with media" in out.stdout and "streaming" in out.stdout
