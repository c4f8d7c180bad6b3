"""``avsets report``: real ledgers from ``avsets fetch`` against a loopback mirror over three runs, clips
vanishing between runs; the numbers equal ``verify``'s; the page checked in a real headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import sqlite3
from html import escape
from pathlib import Path

import pytest
from browser import Page, file_url, find_chromium
from fetch_server import PRIVATE_PAGE, Behavior, start_server
from helpers import writable_sample

from avsets.cli.app import main
from avsets.metadata.manifest import manifest_hash, read_id_sets
from avsets.ops.report import NOT_IN_LEDGER, build_report
from avsets.ops.report_render import render_html, write_report
from avsets.ops.verify import verify

REMOVED_PAGE = "<html><body><p>This video has been removed for violating YouTube's Terms of Service.</p></body></html>"
LABELS = ("ambulance siren", "basketball bounce", "chicken crowing")
TEST_ROWS = (3, 7, 12, 13)
N = 14


def _ytid(i: int) -> str:
    return f"rep{i:08d}"


def _key(i: int) -> str:
    start = (i % 3) * 10
    return f"{_ytid(i)}_{start * 1000}_{start * 1000 + 10000}"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """Three ``avsets fetch`` runs into one folder; between runs the local files of clips 0-2 (after run 1)
    and 3 (after run 2) are deleted and the mirror now answers removed / 404 / private / 410 for them, so a
    rerun records them as gone: the ledger's history has three points."""
    root = tmp_path_factory.mktemp("report")
    meta = writable_sample("vggsound", root / "meta")
    with (meta / "vggsound.csv").open("w", newline="") as f:
        w = csv.writer(f)
        for i in range(N):
            w.writerow([_ytid(i), (i % 3) * 10, LABELS[i % 3], "test" if i in TEST_ROWS else "train"])
    media = root / "media"
    srv = start_server()
    try:
        srv.behaviors[_ytid(12)] = Behavior(status=404)
        srv.behaviors[_ytid(13)] = Behavior(status=403, body=PRIVATE_PAGE)
        args = ["fetch", "vggsound", "--data-dir", str(meta), "--out", str(media), "--audio", "--workers", "3",
                "--source-url-template", srv.media_template(), "--backoff", "0.01", "--max-attempts", "1"]
        assert main(args) == 1
        shutil.copy(media / "avsets-ledger.sqlite", root / "after-run-1.sqlite")
        for i, b in ((0, Behavior(status=403, body=REMOVED_PAGE)), (1, Behavior(status=404)),
                     (2, Behavior(status=403, body=PRIVATE_PAGE))):
            (media / f"{_key(i)}.flac").unlink()
            srv.behaviors[_ytid(i)] = b
        assert main(args) == 1
        (media / f"{_key(3)}.flac").unlink()
        srv.behaviors[_ytid(3)] = Behavior(status=410)
        assert main(args) == 1
    finally:
        srv.stop()
    return root, meta, media


EXPECTED_STATUS = {0: "removed", 1: "unavailable", 2: "private", 3: "unavailable", 12: "unavailable", 13: "private"}


def _same_as_verify(rep, ver) -> None:
    assert [c.split for c in rep.coverage] == [c.split for c in ver]
    for a, b in zip(rep.coverage, ver, strict=True):
        assert (a.rows, a.found, a.missing, a.corrupt) == (b.rows, b.found, b.missing, b.corrupt)
        assert a.missing_ids == b.missing_ids and a.corrupt_ids == b.corrupt_ids


def test_report_numbers_equal_verify_and_ledger_history(fetched):
    _, meta, media = fetched
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(media))
    ver = verify("vggsound", data_dir=str(meta), media_dir=str(media), progress=False)
    _same_as_verify(rep, ver)
    by = {s.split: s for s in rep.splits}
    train, test = by["train"], by["test"]
    assert (train.coverage.rows, train.coverage.found, test.coverage.rows, test.coverage.found) == (10, 7, 4, 1)
    for s in (train, test):
        assert s.missing_status == {_key(i): st for i, st in EXPECTED_STATUS.items() if _key(i) in s.missing_status}
    assert train.missing_by_status == {"private": 1, "removed": 1, "unavailable": 1}
    assert test.missing_by_status == {"unavailable": 2, "private": 1}
    # each fetch run is a point: run 1 fetched all but 12 and 13, run 2 lost 0-2, run 3 lost 3
    assert rep.history == "runs" and len(rep.runs) == 3
    assert [p.ok for p in train.over_time] == [10, 7, 7]
    assert [p.ok for p in test.over_time] == [2, 2, 1]
    assert rep.runs[0].counts == {"ok": 12, "private": 1, "unavailable": 1}
    assert rep.runs[-1].totals == {"ok": 8, "private": 2, "removed": 1, "unavailable": 3}
    # per class: every class has rows; sorted lowest coverage first
    assert sum(c.rows for c in train.classes) == 10 and sum(c.present for c in train.classes) == 7
    shares = [c.share for c in train.classes]
    assert shares == sorted(shares)
    # what is present: 10-s FLAC clips at the mirror's 16 kHz
    assert train.probed_files == train.present_files == 7
    assert all(abs(d - 10.0) < 0.05 for d in train.durations) and set(train.sample_rates) == {16000}
    # the manifest lists exactly the clips present
    man = rep.manifest()
    assert man.splits["train"] == sorted(_key(i) for i in range(N) if i not in TEST_ROWS and i > 2)
    assert man.splits["test"] == [_key(7)]


def test_legacy_ledger_without_history_and_no_ledger(fetched, tmp_path):
    _, meta, media = fetched
    legacy = tmp_path / "legacy.sqlite"
    shutil.copy(media / "avsets-ledger.sqlite", legacy)
    with sqlite3.connect(legacy) as conn:
        conn.execute("DROP TABLE runs")
        conn.execute("DROP TABLE history")
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(media), ledger=str(legacy), probe=False)
    assert rep.history == "fetched_at" and rep.runs == []
    train = next(s for s in rep.splits if s.split == "train")
    assert train.over_time and train.over_time[-1].ok == 7  # the last state, by date of last outcome
    assert any("predates per-run history" in n for n in rep.notes)
    assert not rep.corrupt_checked and "not checked" in render_html(rep, charts={})
    # media without a ledger: every missing clip is "not in ledger"
    bare = tmp_path / "bare"
    shutil.copytree(media, bare, ignore=shutil.ignore_patterns("avsets-ledger.sqlite*"))
    rep2 = build_report("vggsound", data_dir=str(meta), media_dir=str(bare), probe=False)
    assert rep2.history == "none" and {s.split: s.missing_by_status for s in rep2.splits} == {
        "train": {NOT_IN_LEDGER: 3}, "test": {NOT_IN_LEDGER: 3}}


@pytest.mark.slow
def test_formats_manifest_and_cli(fetched, tmp_path, capsys):
    _, meta, media = fetched
    base = ["--data-dir", str(meta), "--media-dir", str(media)]
    out = tmp_path / "r.json"
    assert main(["report", "vggsound", *base, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    ver = {c.split: c for c in verify("vggsound", data_dir=str(meta), media_dir=str(media), progress=False)}
    for split, d in data["splits"].items():
        assert (d["rows"], d["found"], d["missing"], d["corrupt"]) == (
            ver[split].rows, ver[split].found, ver[split].missing, ver[split].corrupt)
        assert d["missing_ids"] == ver[split].missing_ids
    man = read_id_sets(tmp_path / "r.manifest.json")
    assert man.hashes == {s: d["manifest_hash"] for s, d in data["splits"].items()}
    assert man.hash == data["manifest_hash"] and man.source == "avsets report"

    assert main(["report", "vggsound", *base, "--out", str(tmp_path / "r.md")]) == 0
    md = (tmp_path / "r.md").read_text()
    assert "| train | 10 | 7 | 3 | 0 | 70.0% |" in md and "## Fetch and unpack runs" in md
    assert main(["report", "vggsound", *base, "--out", str(tmp_path / "r.bin"), "--format", "png"]) == 0
    from PIL import Image

    img = Image.open(tmp_path / "r.bin")
    assert img.format == "PNG" and img.height > img.width / 2
    with pytest.raises(SystemExit) as e:
        main(["report", "vggsound", *base, "--out", str(tmp_path / "x.html"), "--format", "pdf"])
    assert e.value.code == 2
    assert main(["report", "vggsound", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "y.html")]) == 2
    capsys.readouterr()

    # verify --report: verify's table and exit code (1: clips missing), plus the report
    assert main(["verify", "vggsound", *base, "--report", str(tmp_path / "v.html")]) == 1
    printed = capsys.readouterr().out
    assert "train" in printed and "70.0%" in printed and (tmp_path / "v.html").is_file()
    assert (tmp_path / "v.manifest.json").is_file()


def test_compare_real_ledgers(fetched, tmp_path, capsys):
    """Run 1's ledger against the final one: four clips vanished since; the intersection CSV feeds fetch."""
    root, _, media = fetched
    out = tmp_path / "both.csv"
    assert main(["compare", str(root / "after-run-1.sqlite"), str(media), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "       12         8         8         4         0" in text
    ids = sorted(r["id"] for r in csv.DictReader(out.open()))
    assert ids == sorted(_key(i) for i in range(N) if i not in (0, 1, 2, 3, 12, 13))


def _numbers_in_page(page: Page) -> dict[str, str]:
    return page.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('[data-k]'))"
                         ".map(e => [e.dataset.k, e.textContent.trim()]))")


@pytest.mark.skipif(find_chromium() is None,
                    reason="no chromium on this machine (CI installs the Debian package in .ci/run)")
def test_report_in_a_real_browser(fetched, tmp_path):
    """The page loads in headless Chromium with no console error, every chart renders, the numbers equal
    verify's, and the missing-ids download holds exactly the missing clips."""
    _, meta, media = fetched
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(media))
    html_path, _ = write_report(rep, tmp_path / "report.html")
    ver = verify("vggsound", data_dir=str(meta), media_dir=str(media), progress=False)
    with Page() as page:
        page.load(file_url(html_path))
        images = page.evaluate("Array.from(document.images).map(i => [i.dataset.chart, i.complete, i.naturalWidth,"
                               " i.naturalHeight])")
        numbers = _numbers_in_page(page)
        link = page.evaluate("document.querySelector('a[download$=\"-missing.csv\"]').href")
        assert page.errors == []
    assert sorted(i[0] for i in images) == ["classes", "time", "worst"]  # one rate, one duration: no media chart
    assert all(done and w > 0 and h > 0 for _, done, w, h in images), images
    for c in ver:
        assert numbers[f"{c.split}.rows"] == str(c.rows)
        assert numbers[f"{c.split}.found"] == str(c.found)
        assert numbers[f"{c.split}.missing"] == str(c.missing)
        assert numbers[f"{c.split}.corrupt"] == str(c.corrupt)
        assert numbers[f"{c.split}.coverage"] == f"{100.0 * (c.found - c.corrupt) / c.rows:.1f}%"
    assert numbers["train.missing.unavailable"] == "1" and numbers["test.missing.unavailable"] == "2"
    assert numbers["train.manifest"] == manifest_hash(_key(i) for i in range(4, N) if i not in TEST_ROWS)
    rows = list(csv.DictReader(io.StringIO(base64.b64decode(link.split(",", 1)[1]).decode())))
    assert sorted((r["split"], r["id"]) for r in rows) == sorted(
        (c.split, i) for c in ver for i in c.missing_ids)
    assert {r["id"]: r["status"] for r in rows} == {_key(i): s for i, s in EXPECTED_STATUS.items()}


def test_report_page_with_an_error_is_caught(tmp_path):
    """The browser check can fail: a page with a broken image and a script error is reported as such."""
    if find_chromium() is None:
        pytest.skip("no chromium on this machine (CI installs the Debian package in .ci/run)")
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img data-chart="x" src="data:image/png;base64,AAAA">'
                   "<script>console.error('boom'); undefinedThing();</script></body></html>")
    with Page() as page:
        page.load(file_url(bad))
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        assert widths == [0]
        assert any("boom" in e for e in page.errors) and len(page.errors) >= 2


def test_report_png_of_the_bundled_sample_is_small():
    """The screenshot shown in the README exists and stays small."""
    png = Path(__file__).resolve().parents[1] / "docs" / "report.png"
    assert png.is_file() and png.stat().st_size < 400_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_of_upgraded_and_several_ledgers(tmp_path):
    """Clips recorded before a ledger kept history count from its first run on; runs of several ledgers are
    put in time order; an empty run is still a point."""
    import pyarrow as pa

    from avsets.metadata.ledger import Ledger, LedgerRow
    from avsets.ops.report import _read_ledgers

    with Ledger(tmp_path / "a.sqlite") as led:
        led.record(LedgerRow(id="A", status="ok"))
        led.record(LedgerRow(id="B", status="ok"))  # before any run: no history rows
        led.begin_run()
        led.record(LedgerRow(id="B", status="removed"))
        led.record(LedgerRow(id="C", status="ok"))
        led.end_run({"removed": 1, "ok": 1})
        led.begin_run()
        led.end_run({})
    facts = _read_ledgers([str(tmp_path / "a.sqlite")])
    assert len(facts.runs) == 2 and facts.runs[0].totals == {"ok": 2, "removed": 1}
    assert facts.ok_after_each_run(pa.array(["A", "B", "C"])) == [2, 2]
    assert facts.ok_after_each_run(pa.array(["B"])) == [0, 0]
    with Ledger(tmp_path / "b.sqlite") as led:
        led.begin_run()
        led.record(LedgerRow(id="A", status="private"))
        led.end_run({"private": 1})
    both = _read_ledgers([str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")])
    assert len(both.runs) == 3
    assert both.ok_after_each_run(pa.array(["A", "C"])) == [2, 2, 1]


def test_probe_limit_samples_and_says_so(fetched):
    _, meta, media = fetched
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(media), probe_limit=3)
    train = next(s for s in rep.splits if s.split == "train")
    assert train.present_files == 7 and train.probed_files == 3 and len(train.durations) == 3
    assert not rep.corrupt_checked and any("more than 3 files" in n for n in rep.notes)
    assert any("evenly spaced sample" in n for n in rep.notes)


def test_secrets_never_reach_the_page():
    from avsets.ops.report import CoverageReport
    from avsets.ops.report_render import render_json, render_md

    rep = CoverageReport(corpus="vggsound", config="default", splits=[], created="2026-01-01T00:00:00+00:00",
                         media_dirs=["https://alice:hunter2@mirror.example/clips?X-Amz-Signature=deadbeef"],
                         ledgers=["s3://bucket/ledger.sqlite?token=t0k3n"])
    for text in (render_html(rep, charts={}), render_json(rep), render_md(rep)):
        assert "hunter2" not in text and "deadbeef" not in text and "t0k3n" not in text
    assert "mirror.example" in render_html(rep, charts={})


# --- a typical first report: low coverage, media written by `avsets unpack` (issue 19) -----------------------


@pytest.fixture(scope="module")
def first_report(tmp_path_factory):
    """The bundled VGGSound sample (868 train rows, 254 classes) with a few clips unpacked from a zip by
    ``avsets unpack``: every train row of 2 classes, one train row of 4 others, nothing of the rest - the
    report a user sees after a first, small unpack."""
    import zipfile

    from source_fixtures import make_flac

    root = tmp_path_factory.mktemp("first")
    meta = writable_sample("vggsound", root / "meta")
    rows = list(csv.reader((meta / "vggsound.csv").open()))
    by_class: dict[str, list[tuple[str, int]]] = {}
    for ytid, start, label, split in rows:
        if split == "train":
            by_class.setdefault(label, []).append((ytid, int(start)))
    big = sorted((c for c, r in by_class.items() if len(r) >= 3), key=lambda c: (-len(by_class[c]), c))[:6]
    chosen = [r for c in big[:2] for r in by_class[c]] + [by_class[c][0] for c in big[2:]]
    flac = make_flac(root / "tone.flac", 10.0, sr=8000)
    with zipfile.ZipFile(root / "mirror.zip", "w") as zf:
        for ytid, start in chosen:
            zf.write(flac, f"clips/{ytid}_{start * 1000}_{(start + 10) * 1000}.flac")
    media = root / "media"
    rc = main(["unpack", "vggsound", "--data-dir", str(meta), "--media-dir", str(root / "mirror.zip"),
               "--out", str(media), "--audio-only", "--quiet"])
    assert rc == 1  # most rows are in no source: a first, partial unpack
    return meta, media, big, {c: len(by_class[c]) for c in big}


def test_low_coverage_report_shows_the_distribution_and_partly_present_classes(first_report):
    from avsets.ops.report_coverage_charts import media_panels
    from avsets.ops.report_render import all_charts, render_md

    meta, media, big, sizes = first_report
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(media))
    train = next(s for s in rep.splits if s.split == "train")
    assert len(train.classes) > 200 and train.coverage.found == sum(sizes[c] for c in big[:2]) + 4
    # the distribution: how many classes have none, part or all of their clips
    bins = train.class_bins()
    assert bins["all"] == 2 and bins["none"] == len(train.classes) - 6
    assert sum(bins.values()) == len(train.classes)
    assert sum(n for b, n in bins.items() if b not in ("none", "all")) == 4
    # the worst classes drawn are the partly present ones, never a panel of 0/1 bars
    worst = train.partly_present()
    assert {c.name for c in worst} == set(big[2:]) and all(c.present == 1 < c.rows for c in worst)
    assert [c.share for c in worst] == sorted(c.share for c in worst)
    test = next(s for s in rep.splits if s.split == "test")
    assert test.partly_present() == [] and test.class_bins()["none"] == len(test.classes)
    charts = all_charts(rep)
    assert charts["classes"] and charts["worst"]
    html = render_html(rep, charts=charts)
    assert f'data-k="train.classes.none">{bins["none"]}<' in html and 'data-k="train.classes.all">2<' in html
    md = render_md(rep)
    assert "partly present classes" in md and big[2] in md
    assert not re.search(r"^\| [^|]+ \| \d+ \| 0 \| 0\.0% \|$", md, re.M)  # no rows of classes with nothing present
    # one sample rate, one duration: a sentence, not one-bar histograms
    assert media_panels(rep) == [] and charts["media"] is None
    assert "sample rate 8000 Hz each" in html and "duration 10.0 s each" in html
    # unpack recorded its run: history per run, no "predates per-run history" note
    assert rep.history == "runs" and len(rep.runs) == 1 and rep.runs[0].counts == {"ok": train.coverage.found}
    assert not any("predates" in n for n in rep.notes) and "predates" not in html
    assert [p.ok for p in train.over_time] == [train.coverage.found]
    assert charts["time"] is None  # one point: a sentence, not a chart of one dot
    pct = f"{100 * train.coverage.found / train.coverage.rows:.1f}%"
    assert escape(f"After the ledger's one run ({rep.runs[0].finished_at}): clips ok in the ledger train {pct}") in html


def test_media_panels_only_where_files_differ(fetched):
    """Two sample rates get their chart; one rate does not, whatever the durations do."""
    from avsets.ops.report_coverage_charts import chart_media, media_panels, media_summary

    _, meta, media = fetched
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(media))
    assert media_panels(rep) == [] and chart_media(rep) is None
    train = next(s for s in rep.splits if s.split == "train")
    train.sample_rates[0] = 44100
    train.durations[0] = 4.0
    assert media_panels(rep) == ["duration", "sample rate"] and chart_media(rep)
    assert media_summary(train) == ("train: 7 of 7 files opened; duration 4.0-10.0 s (median 10.0 s); "
                                    "sample rate 16000 Hz (6), 44100 Hz (1).")
    train.durations[0] = 10.0
    assert media_panels(rep) == ["sample rate"]


def test_relative_paths_stay_relative_in_the_page(first_report, monkeypatch):
    """The README's screenshot shows what a user types (``meta``, ``media``), never this machine's folders:
    the report keeps the paths as given."""
    meta, media, _, _ = first_report
    monkeypatch.chdir(meta.parent)
    rep = build_report("vggsound", data_dir="meta", media_dir="media", probe=False)
    page = render_html(rep, charts={})
    assert "metadata <code>meta</code>" in page and "media <code>media</code>" in page
    assert "ledger <code>media</code>" in page and str(meta.parent) not in page
    assert rep.history == "runs"


def test_nothing_present_is_a_table_not_a_one_bar_chart(first_report, tmp_path):
    """Before any clip is fetched every class is in the "none" bin: the table says so, no chart of one bar."""
    from avsets.ops.report_coverage_charts import media_summary
    from avsets.ops.report_render import all_charts

    meta, _, _, _ = first_report
    (tmp_path / "empty").mkdir()
    rep = build_report("vggsound", data_dir=str(meta), media_dir=str(tmp_path / "empty"))
    charts = all_charts(rep)
    assert charts["classes"] is None and charts["worst"] is None and charts["media"] is None
    train = next(s for s in rep.splits if s.split == "train")
    page = render_html(rep, charts=charts)
    assert f'data-k="train.classes.none">{len(train.classes)}<' in page
    assert media_summary(train) == "train: no file present."
