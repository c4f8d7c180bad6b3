"""``load_dataset(only_ids=, exclude=, quality=, drop=)`` on the real VGGSound sample: order, counts, logs,
map-style = streaming, cache invalidation when the quality file changes, errors and warnings.

Quality tables are written here with pyarrow in the shape ``avsets quality`` writes (one row per clip, key
``id``, measures, boolean flags, ``error``; thresholds in the file's metadata).
"""

from __future__ import annotations

import csv
import json
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from source_fixtures import make_flac, vggsound_mirror

import avsets
from avsets.build.filters import cached_counts, id_kind, mismatch_text, read_exclude
from avsets.cli.app import main
from avsets.core.errors import AvsetsError
from avsets.metadata.manifest import Manifest
from avsets.metadata.quality.table import QUALITY_FLAGS


@pytest.fixture(scope="module")
def sample_ids(vgg_sample_dir) -> dict[str, list[str]]:
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=None)
    return {s: list(ds[s]["id"]) for s in ds}


def write_quality(path, ids: list[str], *, silent: set[str] = frozenset(), still: set[str] = frozenset(),
                  rms: float = -20.0, threshold: float = -60.0) -> str:
    """A quality table of ``ids`` in the shape ``avsets quality`` writes."""
    n = len(ids)
    cols = {
        "id": ids,
        "duration_s": [10.0] * n, "has_audio": [True] * n, "has_video": [True] * n,
        "av_length_diff_s": [0.0] * n, "rms_dbfs": [rms - (i % 7) for i in range(n)], "peak_dbfs": [-1.0] * n,
        "silent_fraction": [1.0 if i in silent else 0.0 for i in ids],
        "clipped_fraction": [0.0] * n, "still_fraction": [0.95 if i in still else 0.1 for i in ids],
        "black_fraction": [0.0] * n, "scene_cuts": pa.array([1] * n, pa.int32()), "fps": [25.0] * n,
        "width": pa.array([320] * n, pa.int32()), "height": pa.array([240] * n, pa.int32()),
    }
    for flag in QUALITY_FLAGS:
        cols[flag] = [(flag == "silent" and i in silent) or (flag == "still" and i in still) for i in ids]
    cols["error"] = pa.array([None] * n, pa.string())
    cols["media_size"] = pa.array([1000] * n, pa.int64())  # bookkeeping: not published as a row column
    table = pa.table(cols).replace_schema_metadata(
        {"avsets.metadata.quality": json.dumps({"thresholds": {"silence_dbfs": threshold, "still_fraction": 0.9},
                                       "avsets": "x"})})
    pq.write_table(table, path)
    return str(path)


def write_dups(path, pairs: list[tuple[str, str, str, str]]) -> str:
    """A leakage CSV (``avsets duplicates``' columns): (split_a, id_a, split_b, id_b) rows."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "kind", "score"])
        for sa, a, sb, b in pairs:
            w.writerow(["vggsound", sa, a, "audioset", sb, b, "both", "0.98"])
    return str(path)


def test_filters_compose_in_order_and_count(vgg_sample_dir, sample_ids, tmp_path, caplog):
    train, test = sample_ids["train"], sample_ids["test"]
    only = train[:40] + test[:20]
    excluded = [train[0], train[1], test[0]]
    silent = {train[2], train[3], test[1], train[100]}  # train[100]: removed by only_ids first, never counted
    still = {train[3], train[4]}  # train[3] is silent too: counted under the first flag of drop
    q = write_quality(tmp_path / "q.parquet", train[:30] + test[:20], silent=silent, still=still)
    dups = write_dups(tmp_path / "dups.csv", [("train", excluded[0], "eval", "AAAAAAAAAAA_0_10000"),
                                              ("train", excluded[1], "eval", "BBBBBBBBBBB_0_10000"),
                                              ("test", excluded[2], "balanced_train", "CCCCCCCCCCC_0_10000")])
    with caplog.at_level(logging.WARNING, logger="avsets"):
        ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=tmp_path / "c", only_ids=only,
                                 exclude=dups, quality=q, drop=["silent", "still"])
    want_train = [i for i in train[:40] if i not in excluded and i not in silent | still]
    assert sorted(ds["train"]["id"]) == sorted(want_train)
    assert sorted(ds["test"]["id"]) == sorted(i for i in test[:20] if i not in excluded and i not in silent)
    # measures joined by id; the rows the table lacks are kept and say so
    row = {r["id"]: r for r in ds["train"]}
    assert row[train[5]]["still_fraction"] == pytest.approx(0.1) and row[train[5]]["quality_missing"] is False
    assert row[train[35]]["quality_missing"] is True and row[train[35]]["rms_dbfs"] is None
    assert "media_size" not in ds["train"].column_names
    counts = cached_counts(avsets.load_dataset_builder(
        "vggsound", data_dir=vgg_sample_dir, cache_dir=tmp_path / "c", only_ids=only, exclude=dups, quality=q,
        drop=["silent", "still"], on_missing="skip").cache_dir)
    tr, te = counts["train"], counts["test"]
    assert (tr.rows, tr.only_ids, tr.exclude, dict(tr.drop)) == (868, 828, 2, {"silent": 2, "still": 1})
    assert dict(tr.exclude_into) == {"audioset/eval": 2} and dict(te.exclude_into) == {"audioset/balanced_train": 1}
    assert (te.rows, te.only_ids, te.exclude, dict(te.drop)) == (102, 82, 1, {"silent": 1})
    assert tr.quality_missing == 10 and tr.kept == len(want_train)
    text = caplog.text
    assert "vggsound/default train: only_ids removed 828 of 868 rows" in text
    assert "vggsound/default train: exclude removed 2 of 868 rows (2 leak into audioset/eval)" in text
    assert "vggsound/default train: drop silent removed 2 of 868 rows" in text
    assert "vggsound/default test: drop still removed 0 of 102 rows" in text


def test_streaming_equals_map_style_with_quality_and_media(vgg_sample_dir, sample_ids, tmp_path):
    train = sample_ids["train"]
    media = tmp_path / "media"
    media.mkdir()
    for k, clip in enumerate(train[:12]):
        make_flac(media / f"{clip}.flac", 0.2, seed=k)
    q = write_quality(tmp_path / "q.parquet", train[:8], silent={train[1]})
    kw = dict(data_dir=vgg_sample_dir, media_dir=str(media), decode=False, quality=q, drop="silent",
              exclude=[train[2]], split="train")
    mapped = avsets.load_dataset("vggsound", cache_dir=tmp_path / "c", **kw)
    streamed = list(avsets.load_dataset("vggsound", streaming=True, **kw))
    assert sorted(mapped["id"]) == sorted(r["id"] for r in streamed) == sorted(set(train[:12]) - {train[1], train[2]})
    by_id = {r["id"]: r for r in streamed}
    for r in mapped:
        s = by_id[r["id"]]
        assert {k: r[k] for k in r if k not in ("audio", "video")} == {k: s[k] for k in s if k not in ("audio", "video")}
    counts = cached_counts(avsets.load_dataset_builder(
        "vggsound", data_dir=vgg_sample_dir, media_dir=str(media), cache_dir=tmp_path / "c", quality=q,
        drop="silent", exclude=[train[2]], on_missing="skip").cache_dir)["train"]
    # on_missing runs last: of 868 rows, exclude took 1, drop 1, then 856 had no media
    assert (counts.exclude, counts.drop["silent"], counts.on_missing, counts.kept) == (1, 1, 856, 10)


def test_a_changed_quality_file_is_a_new_cache(vgg_sample_dir, sample_ids, tmp_path):
    train = sample_ids["train"]
    q = tmp_path / "q.parquet"
    write_quality(q, train[:10], silent={train[0]})
    kw = dict(data_dir=vgg_sample_dir, cache_dir=tmp_path / "c", split="train", quality=str(q), drop=["silent"])
    first = avsets.load_dataset("vggsound", **kw)
    assert train[0] not in first["id"] and train[1] in first["id"]
    write_quality(q, train[:10], silent={train[1]})  # same path, same size: other content
    second = avsets.load_dataset("vggsound", **kw)
    assert train[0] in second["id"] and train[1] not in second["id"]
    assert first.cache_files[0]["filename"] != second.cache_files[0]["filename"]


def test_unknown_drop_flag_lists_the_known_ones(vgg_sample_dir, sample_ids, tmp_path):
    q = write_quality(tmp_path / "q.parquet", sample_ids["train"][:3])
    with pytest.raises(AvsetsError, match=r"unknown flag\(s\) silnet.*known here: .*silent, still"):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, quality=q, drop=["silnet"])
    with pytest.raises(AvsetsError, match=r"quality flags need quality="):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, drop=["silent"])


def test_bad_id_elements_name_themselves(vgg_sample_dir):
    with pytest.raises(AvsetsError, match=r"only_ids takes clip id strings; element 1 is 5 \(int\)"):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, only_ids=["a", 5])
    with pytest.raises(ValueError, match=r"exclude takes clip id strings; element 0 is None"):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, exclude=[None])


def test_youtube_ids_warn_naming_the_mismatch(vgg_sample_dir, sample_ids, tmp_path, caplog):
    ytids = sorted({i[:11] for i in sample_ids["test"][:5]})
    with caplog.at_level(logging.WARNING, logger="avsets"):
        ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=tmp_path / "c", exclude=ytids)
    assert len(ds["test"]) == 102  # nothing excluded ...
    assert "none of the 5 exclude ids matches a row: they look like YouTube ids" in caplog.text  # ... and said
    assert "rows are keyed by clip ids" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="avsets"):
        ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=tmp_path / "c",
                                 only_ids=["zzzzzzzzzzz_0_10000"])
    assert len(ds["train"]) == len(ds["test"]) == 0
    assert "none of the 1 only_ids ids matches a row" in caplog.text


def test_exclude_reads_every_kind_of_id_source(vgg_sample_dir, sample_ids, tmp_path):
    ids = sample_ids["train"][:3]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    with open(tmp_path / "ids.csv", "w") as f:
        f.write("id\n" + "\n".join(ids) + "\n")
    Manifest({"train": ids}).write(tmp_path / "m.json")
    for src in (tmp_path / "ids.txt", str(tmp_path / "ids.csv"), tmp_path / "m.json", ids):
        ex = read_exclude(src)
        assert ex.ids == tuple(sorted(ids)) and ex.into == []
    ds = avsets.load_dataset("vggsound", "default", split="train", data_dir=vgg_sample_dir,
                             cache_dir=tmp_path / "c", exclude=tmp_path / "ids.txt")
    assert len(ds) == 868 - 3 and not set(ids) & set(ds["id"])


def test_archive_streaming_applies_the_same_filters(tmp_path, caplog):
    """A ``.tar.gz`` mirror streams in archive order (its own row pass): quality, exclude and drop apply
    there too, before the pass counts rows without a member."""
    vgg = vggsound_mirror(tmp_path / "vgg")
    served = sorted(vgg.sources)  # rows with a member
    train_served = [i for i in served if i in vgg.splits["train"]]
    q = write_quality(tmp_path / "q.parquet", served, silent={train_served[0]})
    caplog.set_level(logging.WARNING, logger="avsets")
    ds = avsets.load_dataset("vggsound", split="train", data_dir=str(vgg.meta), streaming=True, decode=False,
                             media_dir=[str(a) for a in vgg.archives], quality=q, drop=["silent"],
                             exclude=[train_served[1]])
    rows = list(ds)
    assert sorted(r["id"] for r in rows) == sorted(train_served[2:])
    assert all(r["quality_missing"] is False and r["silent"] is False for r in rows)
    assert "vggsound/default train: drop silent removed 1 of 7 rows" in caplog.text
    assert "exclude removed 1 of 7 rows" in caplog.text
    # on_missing comes after: the 7 train rows less the 2 filtered leave 5, of which 2 have no member
    assert "2 of 5 rows have no member" in caplog.text


def test_counts_of_num_proc_workers_add_up(vgg_sample_dir, sample_ids, tmp_path):
    """Under ``num_proc`` every generating job writes its own counts beside the cache; they sum to the
    counts of a one-process prepare."""
    train = sample_ids["train"]
    q = write_quality(tmp_path / "q.parquet", train[:300], silent=set(train[:300:7]))
    kw = dict(data_dir=vgg_sample_dir, quality=q, drop=["silent"], exclude=train[:50:5], rows_per_shard=100,
              on_missing="skip")
    one = avsets.load_dataset_builder("vggsound", cache_dir=tmp_path / "one", **kw)
    one.download_and_prepare()
    two = avsets.load_dataset_builder("vggsound", cache_dir=tmp_path / "two", **kw)
    two.download_and_prepare(num_proc=2)
    a, b = cached_counts(one.cache_dir), cached_counts(two.cache_dir)
    assert len(os.listdir(os.path.join(two.cache_dir, "avsets_filters"))) > len(a)  # several jobs wrote
    assert {s: c.to_dict() | {"sample": []} for s, c in a.items()} == {
        s: c.to_dict() | {"sample": []} for s, c in b.items()}
    assert a["train"].drop["silent"] == len([i for i in train[:300:7] if i not in train[:50:5]])


def test_overlap_csv_and_id_kinds(tmp_path):
    """``avsets overlap``'s CSV excludes both sides like ``dups.csv``; the warning text names each kind."""
    path = tmp_path / "overlap.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "youtube_id", "overlap_s"])
        w.writerow(["vggsound", "test", "abcdefghijk_30000_40000", "audiosetzsl", "train", "abcdefghijk_25000_35000",
                    "abcdefghijk", "5.0"])
    ex = read_exclude(path)
    assert ex.ids == ("abcdefghijk_25000_35000", "abcdefghijk_30000_40000")
    assert ex.into == [("abcdefghijk_25000_35000", "vggsound/test"), ("abcdefghijk_30000_40000", "audiosetzsl/train")]
    assert id_kind("abcdefghijk_000030") == "youtube+seconds" and id_kind("abcdefghijk") == "youtube"
    assert id_kind("abcdefghijk_30000_40000") == "clip" and id_kind("label/clip.mp4") == "other"
    text = mismatch_text(["abcdefghijk_000030"], ["abcdefghijk_30000_40000"])
    assert "VGGSound file stems" in text and "rows are keyed by clip ids" in text


def test_cli_unknown_drop_flag_is_a_usage_error(vgg_sample_dir, tmp_path, capsys):
    code = main(["export", "vggsound", "--data-dir", vgg_sample_dir, "--out", str(tmp_path / "o"), "--drop", "bogus"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown flag(s) bogus" in err and "quality flags: silent, still" in err
    assert "Traceback" not in err
