"""Manifests, ``avsets compare`` and ``load_dataset(only_ids=...)`` on the real VGGSound sample."""

from __future__ import annotations

import csv
import hashlib
import json
import random

import pytest

import avsets
from avsets.cli.app import main
from avsets.metadata.manifest import (
    ALL,
    Manifest,
    ManifestError,
    compare,
    manifest_hash,
    read_id_sets,
    read_ids,
    write_segments_csv,
)
from avsets.ops.fetch import Ledger, LedgerRow
from avsets.ops.fetch.corpus import file_requests


def test_hash_is_stable_and_order_independent():
    ids = [f"clip{i:07d}xx_{i * 1000}_{i * 1000 + 10000}" for i in range(500)]
    expected = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:12]
    assert manifest_hash(ids) == expected
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    assert manifest_hash(shuffled + ids[:7]) == expected  # order and duplicates do not matter
    assert manifest_hash(ids[1:]) != expected
    assert manifest_hash([]) == hashlib.sha256(b"").hexdigest()[:12]


def test_manifest_round_trip_and_tamper_check(tmp_path):
    m = Manifest({"test": ["b_0_1000", "a_0_1000", "a_0_1000"], "train": ["c_0_1000"]}, corpus="vggsound",
                 config="default")
    assert m.splits["test"] == ["a_0_1000", "b_0_1000"]
    path = tmp_path / "m.json"
    m.write(path)
    back = read_id_sets(path)
    assert back.splits == m.splits and back.hashes == m.hashes and back.hash == m.hash
    assert not list(tmp_path.glob("*.tmp*"))
    data = json.loads(path.read_text())
    data["splits"]["test"]["ids"].append("zzz_0_1000")
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="do not match its hash"):
        read_id_sets(path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ManifestError, match="not an avsets manifest"):
        read_id_sets(tmp_path / "x.json")


def _ledger(path, ok, failed=()):
    with Ledger(path) as led:
        for i in ok:
            led.record(LedgerRow(id=i, status="ok"))
        for i in failed:
            led.record(LedgerRow(id=i, status="removed"))
    return path


def test_compare_manifests_and_ledgers(tmp_path, capsys):
    keys = [f"AbCdEfGhIj{c}_{s * 1000}_{s * 1000 + 10000}" for c in "klmnop" for s in range(0, 50, 10)]
    a = Manifest({"train": keys[:20], "test": keys[20:25]}, corpus="vggsound", config="default")
    b = Manifest({"train": keys[5:22], "test": keys[20:30]}, corpus="vggsound", config="default")
    a.write(tmp_path / "a.json")
    b.write(tmp_path / "b.json")
    c = compare(read_id_sets(tmp_path / "a.json"), read_id_sets(tmp_path / "b.json"))
    by = {r.split: r for r in c.splits}
    assert by["train"].both == sorted(keys[5:20]) and by["train"].only_a == sorted(keys[:5])
    assert by["train"].only_b == sorted(keys[20:22])  # A holds them, but as test clips: splits are compared apart
    assert by["test"].both == sorted(keys[20:25]) and by["test"].only_b == sorted(keys[25:30])

    out = tmp_path / "both.csv"
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and manifest_hash(keys[5:20]) in printed
    reqs = list(file_requests(str(out)))  # the CSV `avsets fetch --segments` reads
    assert sorted(r.key for r in reqs) == sorted(keys[5:25])
    assert {r.fields["split"] for r in reqs} == {"train", "test"}

    # ledgers: their ok clips, compared as wholes against a manifest's splits
    led = _ledger(tmp_path / "led" / "avsets-ledger.sqlite", keys[:10], failed=keys[10:12])
    s = read_id_sets(led.parent)
    assert s.splits == {ALL: sorted(keys[:10])}
    c2 = compare(read_id_sets(led), read_id_sets(tmp_path / "a.json"))
    assert [(r.split, len(r.both), len(r.only_a), len(r.only_b)) for r in c2.splits] == [(ALL, 10, 0, 15)]
    led2 = _ledger(tmp_path / "led2.sqlite", keys[5:15])
    assert main(["compare", str(led.parent), str(led2), "--out", str(tmp_path / "l.csv")]) == 0
    assert sorted(r.key for r in file_requests(str(tmp_path / "l.csv"))) == sorted(keys[5:10])
    assert main(["compare", str(tmp_path / "nothing"), str(led2)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_write_segments_csv_is_what_fetch_reads(tmp_path):
    ids = ["-abc_def-gh_30000_40000", "not-a-clip-key"]
    n = write_segments_csv({ALL: ids}, tmp_path / "s.csv")
    assert n == 2
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert rows[0] == {"id": "-abc_def-gh_30000_40000", "youtube_id": "-abc_def-gh", "start": "30", "end": "40",
                       "split": ""}
    assert [r.key for r in file_requests(str(tmp_path / "s.csv"))] == ["-abc_def-gh_30000_40000"]


def test_only_ids_loads_exactly_those_rows(vgg_sample_dir, cache_dir, tmp_path):
    full = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=cache_dir)
    train_ids = full["train"]["id"]
    chosen = sorted(train_ids[::50]) + [full["test"]["id"][3]]
    Manifest({"train": chosen[:-1], "test": chosen[-1:]}).write(tmp_path / "m.json")
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=cache_dir, only_ids=tmp_path / "m.json")
    assert sorted(ds["train"]["id"]) == chosen[:-1] and ds["test"]["id"] == chosen[-1:]
    # the CSV that compare writes works the same; a different selection is a different cache
    write_segments_csv({"train": chosen[:3]}, tmp_path / "three.csv")
    ds3 = avsets.load_dataset("vggsound", "default", split="train", data_dir=vgg_sample_dir, cache_dir=cache_dir,
                              only_ids=str(tmp_path / "three.csv"))
    assert sorted(ds3["id"]) == chosen[:3]
    assert ds3.cache_files[0]["filename"] != ds["train"].cache_files[0]["filename"]
    stream = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, streaming=True,
                                 only_ids=chosen[:3])
    assert sorted(r["id"] for r in stream) == chosen[:3]
    assert read_ids(tmp_path / "m.json") == frozenset(chosen)
