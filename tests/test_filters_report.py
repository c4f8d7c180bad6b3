"""``avsets report --quality``: flag counts per split, histograms, the most flagged classes, in every format;
numbers checked against an independent count over the quality table; the page in a real browser when
Chromium is installed."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from browser import Page, file_url, find_chromium
from test_filters_load import write_quality

import avsets
from avsets.cli.app import main
from avsets.ops.report import build_report
from avsets.ops.report_quality import chart_quality
from avsets.ops.report_render import render_html, render_md, write_report


@pytest.fixture(scope="module")
def setup(vgg_sample_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rq")
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=root / "c")
    train, test = list(ds["train"]["id"]), list(ds["test"]["id"])
    label = {r["id"]: ds["train"].features["label"].names[r["label"]] for s in ds for r in ds[s]}
    silent = set(train[:30:3]) | {test[0], test[5]}
    still = set(train[10:20]) | {test[5]}
    q = write_quality(root / "q.parquet", train[:60] + test[:10], silent=silent, still=still)
    rep = build_report("vggsound", data_dir=vgg_sample_dir, probe=False, quality=q)
    return rep, dict(train=train, test=test, silent=silent, still=still, label=label, q=q, root=root)


def test_quality_numbers_equal_an_independent_count(setup):
    rep, t = setup
    sec = rep.quality
    assert sec is not None and sec.source == "q.parquet"
    by = {s.split: s for s in sec.splits}
    assert (by["train"].rows, by["train"].measured, by["test"].measured) == (868, 60, 10)
    assert by["train"].flags["silent"] == len([i for i in t["silent"] if i in t["train"]]) == 10
    assert by["train"].flags["still"] == 10 and by["test"].flags == {**{f: 0 for f in by["test"].flags},
                                                                     "silent": 2, "still": 1}
    assert by["train"].flagged == len((t["silent"] | t["still"]) & set(t["train"])) == 17
    assert by["test"].flagged == 2
    # histograms hold every measured row
    assert sum(by["train"].histograms["silent_fraction"]) == 60
    assert by["train"].histograms["silent_fraction"][-1] == 10  # silent_fraction 1.0 falls in the last bin
    assert by["train"].histograms["still_fraction"][np.searchsorted(sec.edges["still_fraction"], 0.95) - 1] == 10
    # classes with the most flagged clips
    flagged = Counter(t["label"][i] for i in (t["silent"] | t["still"]) if i in t["train"])
    rows = Counter(t["label"][i] for i in t["train"])
    want = sorted(flagged, key=lambda c: (-flagged[c], -flagged[c] / rows[c], c))[:10]
    assert [(c.name, c.rows, c.flagged) for c in by["train"].classes] == [(c, rows[c], flagged[c]) for c in want]


def test_every_format_carries_the_section(setup, tmp_path):
    rep, t = setup
    md = render_md(rep)
    assert "## Quality (from `q.parquet`)" in md
    assert "| train | 868 | 60 | 0 | 10 | 10 | 0 | 0 | 0 | 0 | 0 | 17 |" in md
    chart = chart_quality(rep.quality)
    assert chart is not None and chart.startswith(b"\x89PNG")
    html = render_html(rep, charts={"quality": chart})
    assert 'data-chart="quality"' in html
    assert 'data-k="train.quality.silent">10<' in html and 'data-k="test.quality.flagged">2<' in html
    paths = write_report(rep, tmp_path / "r.json")
    data = json.loads(open(paths[0]).read())
    assert data["quality"]["splits"]["test"]["flags"]["silent"] == 2


def test_cli_report_quality(setup, vgg_sample_dir, tmp_path, capsys):
    _, t = setup
    out = tmp_path / "r.md"
    assert main(["report", "vggsound", "--data-dir", vgg_sample_dir, "--no-probe", "--quality", t["q"],
                 "--out", str(out)]) == 0
    assert "## Quality" in out.read_text()
    assert main(["report", "vggsound", "--data-dir", vgg_sample_dir, "--no-probe", "--quality",
                 str(tmp_path / "none.parquet"), "--out", str(out)]) == 2
    assert "none.parquet" in capsys.readouterr().err


@pytest.mark.skipif(find_chromium() is None, reason="no chromium on this machine (CI installs it in .ci/run)")
def test_quality_section_in_a_real_browser(setup, tmp_path):
    rep, _ = setup
    html_path, _ = write_report(rep, tmp_path / "r.html")
    with Page() as page:
        page.load(file_url(html_path))
        images = page.evaluate("Array.from(document.images).map(i => [i.dataset.chart, i.naturalWidth])")
        numbers = page.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('[data-k]'))"
                                ".map(e => [e.dataset.k, e.textContent.trim()]))")
        assert page.errors == []
    assert ["quality"] in [[c] for c, w in images if w > 0]
    assert numbers["train.quality.flagged"] == "17"
