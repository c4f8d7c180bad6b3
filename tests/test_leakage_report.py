"""``avsets report --leakage CSV``: a leakage line per split from overlap and duplicates CSVs."""

from __future__ import annotations

import json

import pytest

from avsets.audiosetzsl.metadata import bundled_archive, extract_archive
from avsets.cli.app import main


@pytest.fixture(scope="module")
def overlap_csv(tmp_path_factory, vgg_sample_dir) -> str:
    root = tmp_path_factory.mktemp("ov")
    zsl = extract_archive(bundled_archive(), str(root / "zsl"))
    out = str(root / "overlap.csv")
    assert main(["overlap", "vggsound", "audiosetzsl/test", "--data-dir", f"vggsound={vgg_sample_dir}",
                 "--data-dir", f"audiosetzsl={zsl}", "--out", out]) == 0
    return out


def test_report_has_a_leakage_line_per_split(overlap_csv, vgg_sample_dir, tmp_path, capsys):
    dups = tmp_path / "dups.csv"
    dups.write_text("corpus_a,split_a,id_a,corpus_b,split_b,id_b,kind,score\n"
                    "vggsound,train,--0PQM4-hqg_30000_40000,vggsound,test,---g-f_I2yQ_1000_11000,both,0.91\n"
                    "vggsound,train,--0PQM4-hqg_30000_40000,vggsound,train,--56QUhyDQM_185000_195000,audio,0.8\n")
    out = tmp_path / "r.json"
    code = main(["report", "vggsound", "--data-dir", vgg_sample_dir, "--out", str(out), "--leakage", overlap_csv,
                 "--leakage", str(dups), "--no-probe"])
    assert code == 0
    printed = capsys.readouterr().out
    leak = json.loads(out.read_text())["leakage"]
    # the overlap CSV: 10 train and 9 test clips share a video with AudioSetZSL test (the real lists)
    assert leak["train"]["partners"] == {"audiosetzsl/test": 10, "vggsound/test": 1}
    assert leak["train"]["leaking"] == 11 and leak["train"]["within"] == 2
    assert leak["train"]["kinds"] == {"id": 10, "both": 1}
    assert leak["test"]["partners"] == {"audiosetzsl/test": 9, "vggsound/train": 1}
    assert leak["test"]["rows"] == 102 and leak["test"]["leaking"] == 10
    assert "leakage test: 10 of 102 clips (9.8%) also in another split: audiosetzsl/test 9, vggsound/train 1" in printed
    md = tmp_path / "r.md"
    assert main(["report", "vggsound", "--data-dir", vgg_sample_dir, "--out", str(md), "--leakage", overlap_csv,
                 "--no-probe"]) == 0
    assert "## Leakage" in md.read_text() and "- train: 10 of 868 clips (1.2%)" in md.read_text()


def test_report_without_leakage_has_no_section(vgg_sample_dir, tmp_path):
    md = tmp_path / "r.md"
    assert main(["report", "vggsound", "--data-dir", vgg_sample_dir, "--out", str(md), "--no-probe"]) == 0
    assert "Leakage" not in md.read_text()


def test_a_csv_that_is_not_pairs_is_a_usage_error(vgg_sample_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id\nabc\n")
    assert main(["report", "vggsound", "--data-dir", vgg_sample_dir, "--out", str(tmp_path / "r.md"),
                 "--leakage", str(bad)]) == 2
    assert "not an avsets overlap/duplicates CSV" in capsys.readouterr().err
