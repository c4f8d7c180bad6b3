"""`avsets verify` without ``--media-dir`` reports on the metadata (rows, labels used, skipped rows) and
exits 0; with a fetch ledger in the media folder, ``--missing-csv`` says for each missing clip what the
ledger knows (status and reason).

Through the CLI, on the bundled samples (VGGSound, ASCC) and the shipped AudioSetZSL copy; the expected
numbers are counted independently from ``avsets.load_dataset`` (metadata only).
"""

from __future__ import annotations

import csv
import importlib.resources
import re

import pytest
from ux_support import demo_media, run_cli

import avsets
from avsets.metadata.ledger import LEDGER_NAME, Ledger, LedgerRow
from avsets.ops.demo import sample_data_dir


def _data(corpus: str) -> str | None:
    return None if corpus == "audiosetzsl" else str(importlib.resources.files(f"avsets.{corpus}") / "sample")


def _expected(corpus: str, config: str, data_dir: str | None, cache: str) -> dict[str, tuple[int, int, int]]:
    """``{split: (rows, labels used, label space)}`` counted from a metadata-only load."""
    dsd = avsets.load_dataset(corpus, config, data_dir=data_dir, cache_dir=cache, decode=False)
    out = {}
    for split, ds in dsd.items():
        col = "label" if "label" in ds.column_names else "labels"
        feat = ds.features[col]
        names = feat.names if hasattr(feat, "names") else feat.feature.names
        values = ds[col]
        used = {v for x in values for v in (x if isinstance(x, list) else [x]) if v is not None}
        out[split] = (len(ds), len(used), len(names))
    return out


def _table(stdout: str) -> dict[str, tuple[int, int, int]]:
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s+(\d+) of (\d+)$", line.strip())
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return rows


@pytest.mark.parametrize(("corpus", "config"), [
    ("vggsound", "default"), ("vggsound", "common"), ("vggsound", "astest"),
    ("ascc", "default"), ("ascc", "single_label"), ("audiosetzsl", "zsl"),
])
@pytest.mark.slow
def test_metadata_only_report(tmp_path, corpus, config):
    args = ["verify", corpus, config] + (["--data-dir", _data(corpus)] if _data(corpus) else [])
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "metadata only" in p.stdout and "skipped rows: 0" in p.stdout
    assert "found" not in p.stdout and "%" not in p.stdout  # no coverage table of zeros
    assert _table(p.stdout) == _expected(corpus, config, _data(corpus), str(tmp_path / "c"))


@pytest.mark.parametrize(("bad_lines", "skipped"), [
    ([], 0),
    (["abcdefghijk,30,no such label,train"], 1),
    (["abcdefghijk,30,no such label,train", "ab,x,dog barking,test", "abcdefghijl,40,dog barking,nosplit"], 3),
])
@pytest.mark.slow
def test_skipped_rows_are_counted_and_named(vgg_meta, bad_lines, skipped):
    with open(f"{vgg_meta}/vggsound.csv", "a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in bad_lines)
    p = run_cli("verify", "vggsound", "--data-dir", vgg_meta, "--option", "errors=skip")
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"skipped rows: {skipped}" in p.stdout
    if skipped:
        assert "vggsound.csv" in p.stdout and "line" in p.stdout
        assert "skipped" not in p.stderr  # said once, in the report, not also as a log line
    rows = _table(p.stdout)
    assert rows["train"][0] + rows["test"][0] == 970


@pytest.mark.slow
def test_missing_csv_without_media_is_a_usage_error(tmp_path):
    p = run_cli("verify", "vggsound", "--data-dir", sample_data_dir(), "--missing-csv", str(tmp_path / "m.csv"))
    assert p.returncode == 2 and "give --media-dir" in p.stderr and p.stderr.count("\n") == 1
    assert not (tmp_path / "m.csv").exists()


LEDGER = [  # (status, reason) recorded for a missing clip; None: the clip has no ledger row
    ("unavailable", "HTTP 404 from mirror"),
    ("private", "video is private"),
    ("error", "timed out after 30 s"),
    ("rate_limited", "HTTP 429"),
    None,
]


@pytest.mark.slow
def test_missing_csv_carries_ledger_status(tmp_path):
    media = demo_media(tmp_path, n_train=3, n_test=1)
    meta = avsets.load_dataset("vggsound", data_dir=sample_data_dir(), cache_dir=str(tmp_path / "c2"))
    present = {p.name.split(".")[0] for p in media.rglob("*") if p.is_file()}
    missing = [r for r in meta["train"] if not any(r["youtube_id"] in n for n in present)][: len(LEDGER)]
    want = {}
    with Ledger(media / LEDGER_NAME) as led:
        for row, entry in zip(missing, LEDGER, strict=True):
            if entry is not None:
                led.record(LedgerRow(id=row["id"], status=entry[0], reason=entry[1], youtube_id=row["youtube_id"],
                                     start=row["start"], end=row["end"]))
            want[row["id"]] = entry or ("", "")
    out = tmp_path / "missing.csv"
    p = run_cli("verify", "vggsound", "--data-dir", sample_data_dir(), "--media-dir", str(media), "--no-probe",
                "--missing-csv", str(out))
    assert p.returncode == 1, p.stderr[-2000:]  # clips are missing
    with open(out, newline="", encoding="utf-8") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    for clip_id, (status, reason) in want.items():
        assert rows[clip_id]["status"] == "missing"
        assert (rows[clip_id]["ledger_status"], rows[clip_id]["ledger_reason"]) == (status, reason), clip_id
    others = [r for i, r in rows.items() if i not in want]
    assert others and all(r["ledger_status"] == "" for r in others)
    assert "fetch ledger in" in p.stdout
