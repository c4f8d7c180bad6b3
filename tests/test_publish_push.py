"""Push: real huggingface_hub client -> loopback Hub server; stock `datasets` loads it back in a subprocess.

Each CLI run and load-back is a subprocess with ``HF_ENDPOINT``/``HF_HUB_DISABLE_XET``/``HF_TOKEN`` set
before import (docs/datasets-behaviour.md, "Hubs other than huggingface.co"). The token is a recognisable secret that must never show up in any
output, log or exception text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hub_server import HubServer
from test_publish_support import as_dict, corpus_rows, make_dataset

from avsets.ops.publish.export import export_dataset

TOKEN = "hf_SeCrEt0123456789tokenNeverShown"


@pytest.fixture()
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    train = make_dataset(corpus_rows(root / "media", 14, kind="trimmed", missing_every=7))
    test = make_dataset(corpus_rows(root / "media", 4, split="test", kind="whole"), "test")
    out = {}
    out["default"] = root / "default"
    export_dataset(as_dict(train=train, test=test), "vggsound", "default", str(out["default"]),
                   max_shard_size="150KB")
    out["astest"] = root / "astest"
    export_dataset(as_dict(test=test), "vggsound", "astest", str(out["astest"]), max_shard_size="150KB")
    out["default_big"] = root / "default_big"
    export_dataset(as_dict(train=train, test=test), "vggsound", "default", str(out["default_big"]),
                   max_shard_size="10MB")
    return out


def _env(hub: HubServer, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(tmp / "hf_home"),
               HF_HUB_DISABLE_TELEMETRY="1", NO_COLOR="1")
    return env


def _cli(hub: HubServer, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "avsets.cli.app", "-v", *args], capture_output=True, text=True,
                       env=_env(hub, tmp), timeout=300)
    assert TOKEN not in p.stdout and TOKEN not in p.stderr
    return p


LOAD = textwrap.dedent("""
    import json, sys, datasets
    from datasets import Audio
    datasets.config.USE_PARQUET_EXPORT = False
    out = {}
    for repo, config in json.loads(sys.argv[1]):
        ds = datasets.load_dataset(repo, config, cache_dir=sys.argv[2])
        ids = datasets.load_dataset(repo, config, split=list(ds)[0], streaming=True).decode(False)
        out[config] = {
            "features": {k: str(type(v).__name__) for k, v in ds[list(ds)[0]].features.items()},
            "label_names": ds[list(ds)[0]].features["label"].names,
            "splits": {s: [[r["id"], r["label"], r["audio"]["bytes"].hex()]
                           for r in d.cast_column("audio", Audio(decode=False))] for s, d in ds.items()},
            "streamed": [[r["id"], r["audio"]["bytes"].hex()] for r in ids],
            "num_shards": ids.num_shards,
        }
    print(json.dumps(out))
""")


def _load_back(hub: HubServer, tmp: Path, pairs: list[tuple[str, str]]) -> dict:
    p = subprocess.run([sys.executable, "-c", LOAD, json.dumps(pairs), str(tmp / "cache")], capture_output=True,
                       text=True, env=_env(hub, tmp), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert TOKEN not in p.stdout and TOKEN not in p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _local_rows(folder: Path, config: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in sorted((folder / "data" / config).glob("*.parquet")):
        split = f.name.split("-")[0]
        t = pq.read_table(f).to_pylist()
        out.setdefault(split, []).extend([[r["id"], r["label"], r["audio"]["bytes"].hex()] for r in t])
    return out


@pytest.mark.slow
def test_push_then_stock_load_back(hub, exports, tmp_path):
    p = _cli(hub, tmp_path, "push", "--from", str(exports["default"]), "--repo-id", "org/vgg",
             "--commit-max-files", "2")
    assert p.returncode == 0, p.stderr
    files = hub.files("org/vgg")
    local = sorted(x.relative_to(exports["default"]).as_posix()
                   for x in exports["default"].rglob("*.parquet") if ".avsets" not in x.parts)
    assert sorted(f for f in files if f.endswith(".parquet")) == local
    n_commits = len([c for c in hub.state.commits if c["repo"] == "org/vgg"])
    assert "manifests/default.json" in files
    uploads = len(local) + 1  # the shards and the manifest
    assert n_commits == (uploads + 1) // 2 + 1  # bounded commits of 2 files, then the card
    assert all(r.authorized for r in hub.state.requests if r.method == "POST" and "/commit/" in r.path)

    got = _load_back(hub, tmp_path, [("org/vgg", "default")])["default"]
    assert got["features"]["audio"] == "Audio" and got["features"]["label"] == "ClassLabel"
    assert got["label_names"] == ["bird chirping", "dog barking", "engine idling"]
    assert got["splits"] == _local_rows(exports["default"], "default")
    assert got["streamed"] == [[i, b] for i, _, b in got["splits"]["train"]]
    assert got["num_shards"] == len([f for f in local if "/train-" in f])


@pytest.mark.slow
def test_second_config_merges_remote_card(hub, exports, tmp_path):
    assert _cli(hub, tmp_path, "push", "--from", str(exports["default"]), "--repo-id", "org/vgg").returncode == 0
    assert _cli(hub, tmp_path, "push", "--from", str(exports["astest"]), "--repo-id", "org/vgg").returncode == 0
    card = hub.files("org/vgg")["README.md"].decode()
    assert "config_name: default" in card and "config_name: astest" in card
    assert "| default | train | 14 | 12 |" in card and "| astest | test | 4 | 4 |" in card
    got = _load_back(hub, tmp_path, [("org/vgg", "default"), ("org/vgg", "astest")])
    assert got["default"]["splits"] == _local_rows(exports["default"], "default")
    assert got["astest"]["splits"] == _local_rows(exports["astest"], "astest")


@pytest.mark.slow
def test_push_resumes_after_failed_commit_and_removes_stale_shards(hub, exports, tmp_path):
    hub.state.allow_commits = 2  # the third commit fails
    p = _cli(hub, tmp_path, "push", "--from", str(exports["default"]), "--repo-id", "org/vgg",
             "--commit-max-files", "1")
    assert p.returncode == 1 and "push to org/vgg failed" in p.stderr
    sent_first = [a for c in hub.state.commits for a in c["added"]]
    assert len(sent_first) == 2
    p = _cli(hub, tmp_path, "push", "--from", str(exports["default"]), "--repo-id", "org/vgg",
             "--commit-max-files", "1")
    assert p.returncode == 0, p.stderr
    sent_second = [a for c in hub.state.commits for a in c["added"]][2:]
    assert not set(sent_first) & set(sent_second)  # files already on the Hub were skipped
    assert "2 already there" in p.stdout

    # a re-export with bigger shards: the old shards of that config go in the card's commit
    p = _cli(hub, tmp_path, "push", "--from", str(exports["default_big"]), "--repo-id", "org/vgg")
    assert p.returncode == 0, p.stderr
    parquet = sorted(f for f in hub.files("org/vgg") if f.endswith(".parquet"))
    assert parquet == ["data/default/test-00000-of-00001.parquet", "data/default/train-00000-of-00001.parquet"]


@pytest.mark.slow
def test_dry_run_sends_nothing(hub, exports, tmp_path):
    p = _cli(hub, tmp_path, "push", "--from", str(exports["default"]), "--repo-id", "org/dry", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "would push to org/dry" in p.stdout and "add    README.md" in p.stdout
    assert "data/default/train-00000-of-" in p.stdout
    assert "org/dry" not in hub.state.repos
    assert not [r for r in hub.state.requests if r.method in ("POST", "PUT")]


@pytest.mark.slow
def test_private_repo_and_revision(hub, exports, tmp_path):
    p = _cli(hub, tmp_path, "push", "--from", str(exports["astest"]), "--repo-id", "org/priv", "--private",
             "--revision", "dev")
    assert p.returncode == 0, p.stderr
    repo = hub.state.repos["org/priv"]
    assert repo.private
    assert "README.md" in hub.files("org/priv", "dev") and "README.md" not in hub.files("org/priv", "main")


@pytest.mark.slow
def test_token_scrubbed_from_errors(hub, exports, tmp_path):
    hub.state.echo_auth_in_errors = True
    hub.state.fail_commits = 5
    p = _cli(hub, tmp_path, "push", "--from", str(exports["astest"]), "--repo-id", "org/leak")
    assert p.returncode == 1
    assert "***" in p.stderr  # the server echoed the header; the client replaced the token
    for f in tmp_path.rglob("*"):  # nothing the run left on disk (HF_HOME, caches) holds the token either
        if f.is_file():
            assert TOKEN.encode() not in f.read_bytes(), f


def test_push_exports_then_uploads(hub, tmp_path, monkeypatch):
    """``push(corpus, ...)`` without --from exports to a work folder first (here through a stub loader)."""
    import avsets

    rows = corpus_rows(tmp_path / "media", 5, kind="trimmed")
    monkeypatch.setattr(avsets, "load_dataset", lambda *a, **k: as_dict(train=make_dataset(rows)))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # conftest makes the suite offline; this is loopback
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    from avsets.ops.publish.push import push

    res = push("vggsound", "default", repo_id="org/direct", token=TOKEN, endpoint=hub.url,
               work_dir=tmp_path / "work")
    assert res.commits == 2 and len(res.added) == 3  # shard, manifest, card
    assert "data/default/train-00000-of-00001.parquet" in hub.files("org/direct")
    assert "manifests/default.json" in hub.files("org/direct")
