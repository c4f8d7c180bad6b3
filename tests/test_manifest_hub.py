"""``avsets compare`` against a published repo: the real huggingface_hub client on a loopback Hub."""

from __future__ import annotations

import csv
import json

import pytest
from hub_server import HubServer
from test_publish_push import _cli
from test_publish_support import as_dict, corpus_rows, make_dataset

from avsets.metadata.manifest import Manifest, manifest_hash
from avsets.ops.publish.export import export_dataset


@pytest.fixture()
def hub():
    with HubServer() as server:
        yield server


@pytest.mark.slow
def test_compare_a_published_repo_with_a_manifest(hub, tmp_path):
    train = make_dataset(corpus_rows(tmp_path / "media", 10, kind="trimmed", missing_every=5))
    test = make_dataset(corpus_rows(tmp_path / "media", 3, split="test", kind="whole"), "test")
    out = tmp_path / "export"
    export_dataset(as_dict(train=train, test=test), "vggsound", "default", str(out))
    published = json.loads((out / "manifests" / "default.json").read_text())
    p = _cli(hub, tmp_path, "push", "--from", str(out), "--repo-id", "org/vgg")
    assert p.returncode == 0, p.stderr

    # another lab holds all but two train clips and one clip the repo does not have
    train_ids = published["splits"]["train"]["ids"]
    mine = Manifest({"train": train_ids[2:] + ["zzzzzzzzzzz_0_10000"], "test": published["splits"]["test"]["ids"]})
    mine.write(tmp_path / "mine.json")
    both = tmp_path / "both.csv"
    p = _cli(hub, tmp_path, "compare", "hf://datasets/org/vgg", str(tmp_path / "mine.json"), "--out", str(both))
    assert p.returncode == 0, p.stderr
    lines = {ln.split()[0]: ln.split() for ln in p.stdout.splitlines() if ln.startswith(("train ", "test "))}
    assert lines["train"][1:6] == [str(len(train_ids)), str(len(train_ids) - 1), str(len(train_ids) - 2), "2", "1"]
    assert lines["train"][6] == manifest_hash(train_ids[2:])
    assert published["splits"]["train"]["hash"] in p.stdout or published["hash"] in p.stdout
    rows = list(csv.DictReader(both.open()))
    assert sorted(r["id"] for r in rows if r["split"] == "train") == sorted(train_ids[2:])
    # the repo name alone works too, and a missing repo is a one-line error (exit 2)
    p = _cli(hub, tmp_path, "compare", "org/vgg", str(out))
    assert p.returncode == 0 and "train" in p.stdout, p.stderr
    p = _cli(hub, tmp_path, "compare", "hf://datasets/org/nothing", str(out))
    assert p.returncode == 2 and "Traceback" not in p.stderr
