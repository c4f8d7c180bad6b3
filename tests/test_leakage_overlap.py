"""``avsets overlap`` on the real metadata in the project (AudioSetZSL's bundled release, ASCC's and
VGGSound's bundled lists) against an independent pandas join of the raw files."""

from __future__ import annotations

import csv
import glob
import importlib.resources
import os

import pandas as pd
import pytest

from avsets.audiosetzsl.metadata import bundled_archive, extract_archive
from avsets.cli.app import main
from avsets.ops.leakage.units import LeakageUsageError, parse_folder_options, parse_spec


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    return {
        "audiosetzsl": extract_archive(bundled_archive(), str(tmp_path_factory.mktemp("zsl"))),
        "vggsound": str(importlib.resources.files("avsets.vggsound") / "sample"),
        "ascc": str(importlib.resources.files("avsets.ascc") / "sample"),
    }


def _ms(x: float) -> int:
    return int(round(float(x) * 1000))


def _pandas_units(d: dict[str, str]) -> dict[tuple[str, str], pd.DataFrame]:
    """Every unit as (id, youtube_id, start, end), parsed straight from the upstream files with pandas."""
    out = {}
    zsl = []
    for folder, split in (("trn", "train"), ("val", "validation"), ("tst", "test")):
        for path in glob.glob(os.path.join(d["audiosetzsl"], "youtube-id", folder, "*.txt")):
            df = pd.read_csv(path, header=None, usecols=[1, 2, 3], names=["y", "s", "e"], skipinitialspace=True)
            df["split"] = split
            zsl.append(df)
    zsl = pd.concat(zsl)
    for split in ("train", "validation", "test"):
        z = zsl[zsl.split == split]
        out[("audiosetzsl", split)] = pd.DataFrame({
            "id": [f"{y}_{_ms(s)}_{_ms(e)}" for y, s, e in zip(z.y, z.s, z.e, strict=True)],
            "youtube_id": z.y.values, "start": z.s.values.astype(float), "end": z.e.values.astype(float)})
    v = pd.read_csv(os.path.join(d["vggsound"], "vggsound.csv"), header=None, names=["y", "s", "label", "split"])
    for split in ("train", "test"):
        part = v[v.split == split]
        out[("vggsound", split)] = pd.DataFrame({
            "id": [f"{y}_{s * 1000}_{(s + 10) * 1000}" for y, s in zip(part.y, part.s, strict=True)],
            "youtube_id": part.y.values, "start": part.s.values.astype(float),
            "end": part.s.values.astype(float) + 10})
    a = pd.read_csv(os.path.join(d["ascc"], "all_cc_df.csv"))
    out[("ascc", "train")] = pd.DataFrame({"id": a["id"].values, "youtube_id": a["id"].values,
                                           "start": float("nan"), "end": float("nan")})
    return out


def _expected(units, order) -> pd.DataFrame:
    rows = []
    for i, ka in enumerate(order):
        for kb in order[i + 1:]:
            m = units[ka].merge(units[kb], on="youtube_id", suffixes=("_a", "_b"))
            ov = (m[["end_a", "end_b"]].min(axis=1, skipna=False) - m[["start_a", "start_b"]].max(axis=1, skipna=False))
            m["overlap_s"] = ov.clip(lower=0).round(3)
            m["corpus_a"], m["split_a"], m["corpus_b"], m["split_b"] = ka[0], ka[1], kb[0], kb[1]
            rows.append(m)
    return pd.concat(rows)


def test_overlap_counts_match_an_independent_pandas_join(dirs, tmp_path, capsys):
    out = tmp_path / "overlap.csv"
    code = main(["overlap", "vggsound", "audiosetzsl", "ascc", "--data-dir", dirs["vggsound"],
                 "--data-dir", f"audiosetzsl={dirs['audiosetzsl']}", "--data-dir", f"ascc={dirs['ascc']}",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    order = [("vggsound", "train"), ("vggsound", "test"), ("audiosetzsl", "train"), ("audiosetzsl", "validation"),
             ("audiosetzsl", "test"), ("ascc", "train")]
    expected = _expected(_pandas_units(dirs), order)
    got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(got.columns) == ["corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "youtube_id",
                                 "overlap_s"]
    key = ["corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b"]
    want = expected[key + ["youtube_id", "overlap_s"]].sort_values(key).reset_index(drop=True)
    have = got.sort_values(key).reset_index(drop=True)
    assert len(have) == len(want) > 800
    pd.testing.assert_frame_equal(have[key + ["youtube_id"]], want[key + ["youtube_id"]])
    assert (have["overlap_s"].isna() == want["overlap_s"].isna()).all()
    assert (have["overlap_s"].fillna(-1) == want["overlap_s"].fillna(-1)).all()
    # per-pair counts printed in the summary (pairs of units with shared videos)
    counts = want.groupby(["corpus_a", "split_a", "corpus_b", "split_b"]).size()
    for (ca, sa, cb, sb), n in counts.items():
        line = next(ln for ln in printed.splitlines() if ln.startswith(f"{ca}/{sa} ") and f" {cb}/{sb} " in ln)
        assert f"{n:,}" in line.split()
    # the real leaks these files hold: AudioSetZSL/ASCC share AudioSet ids, ASCC has no segments
    assert counts[("audiosetzsl", "train", "ascc", "train")] == 510
    assert want[want.corpus_b == "ascc"].overlap_s.isna().all()
    assert counts[("vggsound", "train", "audiosetzsl", "train")] == 61


def test_astest_is_inside_audioset_test(dirs, tmp_path):
    """VGGSound's AStest rows are AudioSet evaluation clips: all of them are AudioSetZSL test clips here."""
    out = tmp_path / "o.csv"
    assert main(["overlap", "vggsound:astest", "audiosetzsl/test", "--data-dir", f"vggsound={dirs['vggsound']}",
                 "--data-dir", f"audiosetzsl={dirs['audiosetzsl']}", "--out", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    ast = pd.read_csv(os.path.join(dirs["vggsound"], "AStest.csv"), header=None, names=["f", "label"])
    zsl_test = set(_pandas_units(dirs)[("audiosetzsl", "test")].youtube_id)
    assert len(rows) == len(set(ast.f.str[:11]) & zsl_test) == 1554
    # VGGSound cut its own 10-s windows: the same videos, mostly other seconds of them
    overlaps = [float(r["overlap_s"]) for r in rows]
    assert all(0 <= x <= 10 for x in overlaps) and 0 < sum(x == 10 for x in overlaps) < len(overlaps)


def test_specs_and_folder_options():
    assert parse_spec("avset10m:700k/train").text == "avset10m:700k/train"
    assert parse_spec("vggsound/test").split == "test"
    with pytest.raises(LeakageUsageError, match="no config"):
        parse_spec("vggsound:nope")
    with pytest.raises(LeakageUsageError, match="unknown corpus"):
        parse_spec("kinetics")
    default, per = parse_folder_options(["/m", "ascc=/a", "/x=y"][:2])
    assert default == "/m" and per == {"ascc": "/a"}
    assert parse_folder_options(["/data/a=b"]) == ("/data/a=b", {})
    with pytest.raises(LeakageUsageError, match="twice"):
        parse_folder_options(["/a", "/b"])


def test_cli_errors_exit_2(dirs, capsys):
    assert main(["overlap", "vggsound/nope", "--data-dir", dirs["vggsound"]]) == 2
    assert "no split 'nope'" in capsys.readouterr().err
    assert main(["overlap", "vggsound/test", "--data-dir", dirs["vggsound"]]) == 2
    assert "at least two" in capsys.readouterr().err


def test_avset_key_rows_are_load_datasets_rows(tmp_path):
    """The overlap reads AVSET-10M through the builder's key-only parse (no captions): the very ids and
    segments ``load_dataset`` gives, for the real viewer rows (700K) and 10M-part rows."""
    from test_avset10m import dump, make_dir, ten_m_records, viewer_records

    import avsets
    from avsets.ops.leakage.units import iter_units

    root = make_dir(tmp_path / "d", [dump(viewer_records(), "lines")], [dump(ten_m_records(), "array")])
    (unit,) = iter_units(parse_spec("avset10m:all"), data_dir=root)
    ds = avsets.load_dataset("avset10m", "all", split="train", data_dir=root, cache_dir=str(tmp_path / "c"))
    want = sorted(zip(ds["id"], ds["youtube_id"], ds["start"], ds["end"], strict=True))
    got = sorted(zip(*(unit.table.column(c).to_pylist() for c in ("id", "youtube_id", "start", "end")), strict=True))
    assert got == want and len(got) == 18


def _die_in_a_worker(shard):
    """A key reader that kills any worker process running it (as an unguarded ``__main__`` would)."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        os._exit(3)
    from avsets.avset10m.keys import read_shard_keys

    return read_shard_keys(shard)


@pytest.mark.slow
def test_avset_keys_in_worker_processes_give_the_same_csv(dirs, tmp_path, monkeypatch, caplog):
    """AVSET-10M in 10 files: the key reader in 2 spawned processes, in this process, and the full parser
    (``errors=skip`` turns the key reader off) write the same CSV; a pool that dies falls back to this process."""
    import json

    from test_avset10m import make_dir

    from avsets.avset10m.avset10m import AVSET10M
    from avsets.ops.leakage.units import MIN_POOL_SHARDS

    vgg = pd.read_csv(os.path.join(dirs["vggsound"], "vggsound.csv"), header=None, names=["y", "s", "label", "split"])
    files = []
    for k in range(10):
        recs = [{"Label": "/m/09x0r", "Flag (Sound Separation)": 0, "Youtube ID": y, "AVC": "0.3",
                 "Start Time": f"{s + k:.3f}", "End Time": f"{s + k + 10:.3f}"}
                for y, s in zip(vgg.y[k * 40:(k + 1) * 40], vgg.s[k * 40:(k + 1) * 40], strict=True)]
        files.append("\n".join(json.dumps(r) for r in recs) + "\n")
    assert len(files) >= MIN_POOL_SHARDS
    root = make_dir(tmp_path / "avset", files)
    base = ["overlap", "avset10m:700k", "vggsound", "--data-dir", f"avset10m={root}", "--data-dir",
            f"vggsound={dirs['vggsound']}"]
    outs = {}
    for name, extra in (("pool", ["--workers", "2"]), ("here", ["--workers", "1"]),
                        ("full", ["--workers", "2", "--option", "errors=skip"])):
        outs[name] = tmp_path / f"{name}.csv"
        assert main([*base, *extra, "--out", str(outs[name])]) == 0
    texts = {name: path.read_text() for name, path in outs.items()}
    assert texts["pool"] == texts["here"] == texts["full"]
    got = pd.read_csv(outs["pool"])
    assert len(got) == 400 and (got.overlap_s > 0).all() and (got.overlap_s < 10).sum() == 360  # k s later
    monkeypatch.setattr(AVSET10M, "_key_reader", lambda self: _die_in_a_worker)
    with caplog.at_level("WARNING", logger="avsets"):
        assert main([*base, "--workers", "2", "--out", str(tmp_path / "d.csv")]) == 0
    assert (tmp_path / "d.csv").read_text() == texts["pool"]
    assert "reading in this process" in caplog.text


def test_shrinking_every_unit_first_changes_no_pair():
    """``shared_keys`` cuts each unit to ids some other unit has, largest first: every pair's rows are those of
    the join of the whole units (ids in 1, 2 and 3 units, null ids, an empty unit, one unit far larger)."""
    import pyarrow as pa

    from avsets.ops.leakage.overlap import overlap_units, pair_overlap, shared_keys
    from avsets.ops.leakage.units import Unit

    def unit(name: str, ytids: list, start: float = 0.0) -> Unit:
        n = len(ytids)
        return Unit(name, None, "train", pa.table({
            "id": pa.array([f"{name}{i}" for i in range(n)], pa.string()), "youtube_id": pa.array(ytids, pa.string()),
            "start": pa.array([start + i % 3 for i in range(n)], pa.float64()),
            "end": pa.array([start + 10 + i % 3 for i in range(n)], pa.float64())}))

    big = unit("big", [f"v{i:05d}" for i in range(5000)] + ["shared-all", None, "v00001"])
    units = [unit("a", ["v00001", "v00002", "shared-all", "only-a", None], 5.0), big,
             unit("b", ["v00002", "shared-all", "only-b", "a-and-b"], 12.0), unit("c", []),
             unit("d", ["a-and-b", "shared-all", "v04999"], 3.0)]
    units[0].table = pa.concat_tables([units[0].table, unit("a", ["a-and-b"]).table.set_column(
        0, "id", pa.array(["a9"]))])
    keys = shared_keys(units)
    assert keys[1].num_rows == 5  # v00001 twice, v00002, v04999, shared-all
    assert "only-a" not in keys[0].column("youtube_id").to_pylist() and keys[3].num_rows == 0
    table, summaries = overlap_units(units)
    want = [pair_overlap(a, b) for i, a in enumerate(units) for b in units[i + 1:]]
    assert table.equals(pa.concat_tables(want))
    assert [s.pairs for s in summaries] == [w.num_rows for w in want]
    assert summaries[0].rows_b == 5003 and sum(s.pairs for s in summaries) > 10
