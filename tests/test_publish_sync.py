"""Takedowns reach published copies: ``avsets export --prune`` and ``avsets push --sync`` (issue 14, part 2).

The pipeline is the real one: ``avsets fetch vggsound`` against a loopback mirror (``fetch_server``) makes
the media and the ledgers, ``avsets export vggsound`` publishes them, and later fetch runs into new folders
find videos gone (404, private, removed by the uploader): their ledgers are the "newer ledgers" a sync
reads. The Hub is the loopback fake (``hub_server``) driven by the real ``huggingface_hub`` client; stock
``datasets`` loads every result (with ``Audio(decode=False)``, so torch is never needed) and checks the
split sizes the card declares.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from fetch_server import PRIVATE_PAGE, Behavior, start_server
from hub_server import HubServer
from huggingface_hub import DatasetCard

from avsets.core.errors import MetadataError
from avsets.ops.publish.sync import KILL_ENV
from avsets.ops.publish.sync_local import prune_export
from avsets.ops.publish.takedowns import ledger_takedowns, read_takedown_list

TOKEN = "hf_SeCrEt0123456789tokenNeverShown"
REMOVED_PAGE = "<html><body><p>Video unavailable. This video has been removed by the uploader.</p></body></html>"
# 8 videos, 2 ten-second segments each (VGGSound clips are 10 s from an integer start): 16 rows
VIDEOS = [f"vid{i}{'x' * 7}" for i in range(8)]
LABELS = ["dog barking", "playing tennis", "waterfall burbling"]
MANIFEST = "manifests/default.json"


def _vggsound_meta(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sample = Path(__file__).resolve().parents[1] / "vggsound" / "sample"
    for name in ("stat.csv", "Common.txt", "AStest.csv"):
        shutil.copyfile(sample / name, folder / name)
    lines = [f"{v},{start},{LABELS[(i + start) % 3]},{'test' if i >= 6 else 'train'}"
             for i, v in enumerate(VIDEOS) for start in (0, 20)]
    (folder / "vggsound.csv").write_text("\n".join(lines) + "\n")
    return folder


def _avsets(*args: str) -> int:
    from avsets.cli.app import main

    return main(list(args))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    """Three fetch runs (ledgers) and the export of the first run's media."""
    root = tmp_path_factory.mktemp("sync")
    meta = _vggsound_meta(root / "meta")
    server = start_server()
    saved = {k: os.environ.get(k) for k in ("no_proxy", "NO_PROXY")}
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    try:
        fetch = ["fetch", "vggsound", "--data-dir", str(meta), "--audio", "--source-url-template",
                 server.media_template(), "--backoff", "0.01", "--max-attempts", "1"]
        assert _avsets(*fetch, "--out", str(root / "run1")) == 0
        server.behaviors[VIDEOS[1]] = Behavior(status=404)  # run 2: one video gone, one private
        server.behaviors[VIDEOS[6]] = Behavior(status=403, body=PRIVATE_PAGE)
        assert _avsets(*fetch, "--out", str(root / "run2")) == 1
        server.behaviors[VIDEOS[3]] = Behavior(status=403, body=REMOVED_PAGE)  # run 3: one more removed
        assert _avsets(*fetch, "--out", str(root / "run3")) == 1
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    export = root / "export"
    assert _avsets("export", "vggsound", "--data-dir", str(meta), "--media-dir", str(root / "run1"),
                   "--out", str(export), "--max-shard-size", "1MB") == 0
    return {"root": root, "meta": meta, "export": export, "run1": root / "run1", "run2": root / "run2",
            "run3": root / "run3"}


def _published(folder: Path) -> dict[str, str]:
    """sha256 of every published file (the ``.avsets`` state excluded)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".avsets" not in p.parts}


def _all_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def _rows(folder: Path) -> dict[str, dict[str, bytes]]:
    """split -> id -> audio bytes, read with pyarrow from the shards."""
    out: dict[str, dict[str, bytes]] = {}
    for f in sorted((folder / "data" / "default").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "audio"]).to_pylist()
        out.setdefault(f.name.split("-")[0], {}).update({r["id"]: r["audio"]["bytes"] for r in t})
    return out


def _ids_of(videos: list[str]) -> set[str]:
    return {f"{v}_{s * 1000}_{s * 1000 + 10000}" for v in videos for s in (0, 20)}


def _stock_load(folder: Path, cache: Path) -> dict[str, dict[str, bytes]]:
    ds = datasets.load_dataset(str(folder), "default", cache_dir=str(cache))
    out = {}
    for split, d in ds.items():
        d = d.cast_column("audio", datasets.Audio(decode=False))
        out[split] = {r["id"]: r["audio"]["bytes"] for r in d}
    return out


def _card_sizes(text: str) -> dict[str, int]:
    info = DatasetCard(text).data["dataset_info"]
    return {s["name"]: s["num_examples"] for s in info["splits"]}


@pytest.mark.slow
def test_ledgers_from_real_fetch_runs(pipeline):
    """The newer ledgers name the vanished videos with their statuses; ``ledger_takedowns`` keys them."""
    td = ledger_takedowns([pipeline["run2"]])
    assert set(td) == _ids_of([VIDEOS[1], VIDEOS[6]]) | {VIDEOS[1], VIDEOS[6]}
    assert td[VIDEOS[1]].reason.startswith("unavailable") and td[VIDEOS[6]].reason.startswith("private")
    td3 = ledger_takedowns([pipeline["run2"], pipeline["run3"]])
    assert td3[VIDEOS[3]].reason.startswith("removed")
    assert ledger_takedowns([pipeline["run1"]]) == {}


def test_prune_local_export(pipeline, tmp_path, capsys):
    src = pipeline["export"]
    out = tmp_path / "export"
    shutil.copytree(src, out)
    before_files, before_rows = _published(out), _rows(out)
    card_before = _card_sizes((out / "README.md").read_text())

    assert _avsets("export", "--prune", "--out", str(out), "--ledger", str(pipeline["run2"])) == 0
    text = capsys.readouterr().out
    gone = _ids_of([VIDEOS[1], VIDEOS[6]])
    assert "removed 4 row(s)" in text and all(i in text for i in gone)

    after_rows = _rows(out)
    for split, rows in before_rows.items():
        assert after_rows.get(split, {}) == {i: b for i, b in rows.items() if i not in gone}  # values kept as they were
    after_files = _published(out)
    changed = {p for p in before_files if after_files.get(p) != before_files[p]}
    holders = {p for p in before_files if p.endswith(".parquet")
               and set(pq.read_table(src / p, columns=["id"])["id"].to_pylist()) & gone}
    assert changed == holders | {"README.md", MANIFEST}  # every other shard: same bytes, same sha256
    assert set(after_files) - set(before_files) == {"takedowns.csv"}
    manifest = json.loads((out / MANIFEST).read_text())
    assert {s: set(v["ids"]) for s, v in manifest["splits"].items()} == {s: set(r) for s, r in after_rows.items()}
    assert all(f"`{v['hash']}`" in (out / "README.md").read_text() for v in manifest["splits"].values())

    rows = list(csv.DictReader(io.StringIO((out / "takedowns.csv").read_text())))
    assert {r["id"] for r in rows} == gone
    assert {r["reason"].split(":")[0] for r in rows} == {"unavailable", "private"}
    assert all(len(r["date"]) == 10 and r["config"] == "default" for r in rows)
    card = (out / "README.md").read_text()
    sizes = _card_sizes(card)
    assert sizes == {"train": card_before["train"] - 2, "test": card_before["test"] - 2}
    assert f"| default | train | 12 | {sizes['train']} |" in card
    assert f"| default | test | 4 | {sizes['test']} |" in card and "## Takedowns" in card

    # stock `datasets` loads it and checks the split sizes the card declares
    loaded = _stock_load(out, tmp_path / "cache")
    assert loaded == after_rows

    # a newer ledger: one more video removed; takedowns.csv keeps the earlier rows and gains the new ones
    assert _avsets("export", "--prune", "--out", str(out), "--ledger", str(pipeline["run2"]), "--ledger",
                   str(pipeline["run3"])) == 0
    rows = list(csv.DictReader(io.StringIO((out / "takedowns.csv").read_text())))
    assert {r["id"] for r in rows[:4]} == gone  # appended after the earlier rows
    assert {r["id"] for r in rows} == gone | _ids_of([VIDEOS[3]])
    capsys.readouterr()
    assert _avsets("export", "--prune", "--out", str(out), "--ledger", str(pipeline["run3"])) == 0
    assert "removed 0 row(s)" in capsys.readouterr().out  # nothing left to do
    assert _stock_load(out, tmp_path / "cache2") == _rows(out)


def test_dry_run_changes_nothing(pipeline, tmp_path, capsys):
    out = tmp_path / "export"
    shutil.copytree(pipeline["export"], out)
    before = _all_files(out)
    listing = tmp_path / "takedowns.csv"
    listing.write_text(f"https://www.youtube.com/watch?v={VIDEOS[0]}\n{VIDEOS[2]}_20000_30000,2026-03-01,DMCA\n")
    assert _avsets("export", "--prune", "--dry-run", "--out", str(out), "--takedowns", str(listing)) == 0
    text = capsys.readouterr().out
    assert "dry run: would remove 3 row(s)" in text
    assert f"{VIDEOS[2]}_20000_30000\tdefault/train\t2026-03-01\tDMCA" in text
    assert "rewrite data/default/train-" in text
    assert _all_files(out) == before


def test_emptied_shard_is_deleted_and_split_dropped(pipeline, tmp_path, capsys):
    """A shard left without rows is deleted (stock `datasets` fails on a zero-row Parquet file); a split
    left without rows leaves the card; a re-run of the same export does not resurrect anything."""
    out = tmp_path / "export"
    shutil.copytree(pipeline["export"], out)
    listing = tmp_path / "t.csv"
    listing.write_text("youtube_id,reason\n" + "".join(f"{v},gone\n" for v in VIDEOS[6:]))  # all of test
    assert _avsets("export", "--prune", "--out", str(out), "--takedowns", str(listing)) == 0
    assert not list((out / "data" / "default").glob("test-*"))
    capsys.readouterr()
    assert _avsets("export", "--prune", "--out", str(out), "--takedowns", str(listing)) == 0
    text = capsys.readouterr().out
    assert "removed 0 row(s)" in text and "2 listed id(s) were removed by an earlier sync" in text
    card = (out / "README.md").read_text()
    assert set(_card_sizes(card)) == {"train"} and "data/default/test-*" not in card
    assert set(_stock_load(out, tmp_path / "cache")) == {"train"}
    sizes = _card_sizes(card)
    published = _published(out)
    # the same export again into the folder: finds its work done, keeps the pruned shards and the counts
    assert _avsets("export", "vggsound", "--data-dir", str(pipeline["meta"]), "--media-dir",
                   str(pipeline["run1"]), "--out", str(out), "--max-shard-size", "1MB") == 0
    assert {p: h for p, h in _published(out).items() if p.endswith(".parquet")} == \
        {p: h for p, h in published.items() if p.endswith(".parquet")}
    card = (out / "README.md").read_text()
    assert _card_sizes(card) == sizes and "## Takedowns" in card  # the rebuilt card keeps both
    assert "| default | test | 4 | 0 |" in card
    assert _published(out)["takedowns.csv"] == published["takedowns.csv"]


def test_card_merge_keeps_the_takedowns_note():
    """Pushing another config merges cards: the note a sync wrote on the Hub card survives."""
    from avsets.ops.publish.card import merge_cards

    base = "---\npretty_name: x\n---\n\n# X\n\n<!-- avsets:takedowns:start -->\n## Takedowns\n\n2 clip(s)\n" \
           "<!-- avsets:takedowns:end -->\n"
    merged = merge_cards(base, "---\npretty_name: x\n---\n\n# X\n")
    assert merged.count("## Takedowns") == 1 and "2 clip(s)" in merged
    assert merge_cards(merged, merged).count("## Takedowns") == 1


def _cli_env(extra: dict[str, str] | None = None, hub: HubServer | None = None, tmp: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != KILL_ENV}
    if hub is not None and tmp is not None:
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(tmp / "hf_home"),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.update(extra or {})
    return env


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "avsets.cli.app", *args], capture_output=True, text=True, env=env,
                       timeout=300)
    assert TOKEN not in p.stdout and TOKEN not in p.stderr
    return p


@pytest.mark.slow
@pytest.mark.parametrize("step", ["staged", "journal", "moved"])
def test_killed_prune_is_finished_by_a_rerun(pipeline, tmp_path, step):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    shutil.copytree(pipeline["export"], clean)
    shutil.copytree(pipeline["export"], killed)
    args = ["export", "--prune", "--ledger", str(pipeline["run2"]), "--out"]
    assert _avsets(*args, str(clean)) == 0
    p = _run([*args, str(killed)], _cli_env({KILL_ENV: step}))
    assert p.returncode == -9, p.stderr
    if step == "staged":  # before the journal: the folder is still the old export
        assert _published(killed) == _published(pipeline["export"])
    else:
        assert (killed / ".avsets" / "sync" / "journal.json").is_file()
        plan = prune_export(killed, ledger_takedowns([pipeline["run2"]]), dry_run=True)
        assert plan.interrupted and (killed / ".avsets" / "sync" / "journal.json").is_file()
    assert _avsets(*args, str(killed)) == 0
    assert _published(killed) == _published(clean)
    assert not (killed / ".avsets" / "sync").exists()


def test_takedown_list_parsing(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("# requests from the owners\nid,date,reason\nabcdefghijk,2026-01-02,asked\n"
                 "https://youtu.be/ABCDEFGHIJK,,\nxyz_1000_11000,2026-01-03T10:00:00+00:00,\n")
    got = read_takedown_list(f)
    assert set(got) == {"abcdefghijk", "ABCDEFGHIJK", "xyz_1000_11000"}
    assert got["abcdefghijk"].reason == "asked" and got["xyz_1000_11000"].date == "2026-01-03"
    assert got["ABCDEFGHIJK"].reason == "takedown request"
    f.write_text("abcdefghijk\nzzz,03/01/2026,x\n")
    with pytest.raises(MetadataError) as e:
        read_takedown_list(f)
    assert "line 2" in str(e.value) and "date" in str(e.value)


def test_cli_usage_errors(pipeline, tmp_path, capsys):
    out = pipeline["export"]
    assert _avsets("export", "--prune", "--out", str(out)) == 2
    assert "--takedowns" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("clip,date\nx,notadate\n")
    assert _avsets("export", "--prune", "--out", str(out), "--takedowns", str(bad)) == 2
    assert _avsets("export", "--prune", "--out", str(tmp_path), "--takedowns", str(bad)) == 2
    assert _avsets("push", "--sync", "--repo-id", "org/x", "--from", str(out), "--takedowns", str(bad)) == 2


# -- the Hub ---------------------------------------------------------------------------------------------------

@pytest.fixture()
def hub():
    with HubServer() as server:
        yield server


LOAD = textwrap.dedent("""
    import json, sys, datasets
    datasets.config.USE_PARQUET_EXPORT = False
    ds = datasets.load_dataset(sys.argv[1], "default", cache_dir=sys.argv[2])
    out = {s: sorted(r["id"] for r in d.cast_column("audio", datasets.Audio(decode=False))) for s, d in ds.items()}
    print(json.dumps(out))
""")


def _hub_load(hub: HubServer, tmp: Path, repo: str) -> dict:
    p = subprocess.run([sys.executable, "-c", LOAD, repo, str(tmp / "cache")], capture_output=True, text=True,
                       env=_cli_env(hub=hub, tmp=tmp), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _sha(files: dict[str, bytes]) -> dict[str, str]:
    return {p: hashlib.sha256(b).hexdigest() for p, b in files.items()}


@pytest.fixture()
def online(hub, monkeypatch):
    """In-process CLI runs against the loopback Hub (``--endpoint``): far cheaper than a subprocess each."""
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # conftest makes the suite offline; this is loopback
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return hub


def _hub_cli(hub: HubServer, capsys, *args: str) -> tuple[int, str]:
    code = _avsets(*args, "--endpoint", hub.url)
    out = capsys.readouterr()
    assert TOKEN not in out.out and TOKEN not in out.err
    return code, out.out + out.err


@pytest.mark.slow
def test_push_sync_one_commit(pipeline, online, tmp_path, capsys):
    hub = online
    assert _hub_cli(hub, capsys, "push", "--from", str(pipeline["export"]), "--repo-id", "org/vgg")[0] == 0
    before = _sha(hub.files("org/vgg"))
    listing = tmp_path / "t.csv"
    listing.write_text(f"youtube_id,date,reason\n{VIDEOS[4]},2026-04-01,owner request\n")
    sync = ["push", "--sync", "--repo-id", "org/vgg", "--ledger", str(pipeline["run2"]), "--takedowns", str(listing)]

    n_req = len(hub.state.requests)
    code, text = _hub_cli(hub, capsys, *sync, "--dry-run")
    assert code == 0, text
    assert "dry run: would remove 6 row(s)" in text and "rewrite data/default/" in text
    assert not [r for r in hub.state.requests[n_req:] if r.method in ("POST", "PUT")]
    assert _sha(hub.files("org/vgg")) == before

    commits = len(hub.state.commits)
    code, text = _hub_cli(hub, capsys, *sync)
    assert code == 0, text
    assert len(hub.state.commits) == commits + 1  # one commit: the Hub changed at once
    after = _sha(hub.files("org/vgg"))
    gone = _ids_of([VIDEOS[1], VIDEOS[6], VIDEOS[4]])
    local = {p: pq.read_table(pipeline["export"] / p, columns=["id"])["id"].to_pylist()
             for p in before if p.endswith(".parquet")}
    holders = {p for p, ids in local.items() if set(ids) & gone}
    assert {p for p in before if after.get(p) != before[p]} == holders | {"README.md", MANIFEST}
    assert set(after) - set(before) == {"takedowns.csv"}
    rows = list(csv.DictReader(io.StringIO(hub.files("org/vgg")["takedowns.csv"].decode())))
    assert {r["id"] for r in rows} == gone
    assert {r["reason"] for r in rows if r["youtube_id"] == VIDEOS[4]} == {"owner request"}
    loaded = _hub_load(hub, tmp_path, "org/vgg")  # stock `datasets` in a fresh process (HF_ENDPOINT)
    expected = {}
    for p, ids in local.items():
        expected.setdefault(p.split("/")[-1].split("-")[0], set()).update(i for i in ids if i not in gone)
    assert {s: set(v) for s, v in loaded.items()} == expected
    card = hub.files("org/vgg")["README.md"].decode()
    assert _card_sizes(card) == {s: len(v) for s, v in expected.items()}
    assert 'load_dataset("org/vgg"' in card  # the pushed card's repo id survives the rewrite

    code, text = _hub_cli(hub, capsys, *sync)  # a rerun: nothing left to do, no commit
    assert code == 0 and "removed 0 row(s)" in text and len(hub.state.commits) == commits + 1


@pytest.mark.slow
def test_push_sync_killed_then_rerun(pipeline, online, tmp_path, capsys):
    hub = online
    for repo in ("org/clean", "org/killed"):
        assert _hub_cli(hub, capsys, "push", "--from", str(pipeline["export"]), "--repo-id", repo)[0] == 0
    sync = ["push", "--sync", "--ledger", str(pipeline["run2"]), "--repo-id"]
    assert _hub_cli(hub, capsys, *sync, "org/clean")[0] == 0
    before = _sha(hub.files("org/killed"))
    p = _run([*sync, "org/killed"], _cli_env({KILL_ENV: "uploaded"}, hub, tmp_path))  # a real SIGKILL
    assert p.returncode == -9, p.stderr
    assert _sha(hub.files("org/killed")) == before  # new shards uploaded, but no commit: the repo is as it was
    puts = len([r for r in hub.state.requests if r.method == "PUT"])
    code, text = _hub_cli(hub, capsys, *sync, "org/killed")
    assert code == 0, text
    assert len([r for r in hub.state.requests if r.method == "PUT"]) == puts  # LFS objects already there
    killed, clean = hub.files("org/killed"), hub.files("org/clean")
    killed["README.md"] = killed["README.md"].replace(b"org/killed", b"org/clean")  # the card names its repo
    assert _sha(killed) == _sha(clean)


def test_sync_racing_another_push_changes_nothing(pipeline, hub, monkeypatch):
    """The commit names the commit the sync read as its parent: a push landing in between makes the sync fail
    with a clear message instead of overwriting it (in-process, the Python API)."""
    import huggingface_hub.constants as hc
    from huggingface_hub import CommitOperationAdd, HfApi

    import avsets.ops.publish.sync_hub as sync_hub_mod
    from avsets.ops.publish.push import PushError, push_folder
    from avsets.ops.publish.takedowns import Takedown

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # conftest makes the suite offline; this is loopback
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    push_folder(pipeline["export"], "org/race", endpoint=hub.url, token=TOKEN)

    def other_push(step: str) -> None:
        HfApi(endpoint=hub.url, token=TOKEN).create_commit(
            "org/race", [CommitOperationAdd(path_in_repo="NOTES.md", path_or_fileobj=b"someone else\n")],
            commit_message="meanwhile", repo_type="dataset")

    monkeypatch.setattr(sync_hub_mod, "kill_point", other_push)
    before = _sha(hub.files("org/race"))
    with pytest.raises(PushError, match="changed while the sync ran") as e:
        sync_hub_mod.sync_hub("org/race", {VIDEOS[0]: Takedown(VIDEOS[0], "2026-01-01", "x")}, endpoint=hub.url,
                              token=TOKEN)
    assert TOKEN not in str(e.value)
    after = _sha(hub.files("org/race"))
    assert set(after) - set(before) == {"NOTES.md"} and all(after[p] == h for p, h in before.items())


def test_card_update_with_two_configs():
    """Split sizes change for the synced config only; an emptied split (and config) leaves the YAML."""
    from test_publish_support import features

    from avsets.ops.publish.card import SplitStats, build_card
    from avsets.ops.publish.sync import ShardChange, SyncPlan, update_card
    from avsets.ops.publish.takedowns import Removed

    feats = features(with_video=False)
    card = build_card(corpus="vggsound", config="default", features=feats,
                      splits={"train": SplitStats(10, 1000, 12), "test": SplitStats(3, 300, 3)})
    card = build_card(corpus="vggsound", config="astest", features=feats, splits={"test": SplitStats(2, 200, 4)},
                      existing=card)
    rm = [Removed(f"c{i}", "", "default", "train", "2026-01-01", "x") for i in range(2)]
    gone = [Removed(f"a{i}", "", "astest", "test", "2026-01-01", "x") for i in range(2)]
    plan = SyncPlan(changes=[ShardChange("data/default/train-00000-of-00002.parquet", "default", "train", 5, 500, rm,
                                         bytes_after=320),
                             ShardChange("data/astest/test-00000-of-00001.parquet", "astest", "test", 2, 200, gone,
                                         bytes_after=0)],
                    files={"data/default/train-00000-of-00002.parquet": 500,
                           "data/default/train-00001-of-00002.parquet": 500,
                           "data/default/test-00000-of-00001.parquet": 300,
                           "data/astest/test-00000-of-00001.parquet": 200})
    data = DatasetCard(update_card(card, plan, total_removed=4, day="2026-01-02")).data
    infos = {i.get("config_name", "default"): i for i in data["dataset_info"]} if isinstance(
        data["dataset_info"], list) else {"default": data["dataset_info"]}
    assert set(infos) == {"default"}
    assert {s["name"]: (s["num_examples"], s["num_bytes"]) for s in infos["default"]["splits"]} == \
        {"train": (8, 820), "test": (3, 300)}
    assert infos["default"]["download_size"] == 1300 - 180
    assert [c["config_name"] for c in data["configs"]] == ["default"]
