"""AudioSetZSL on the real repository files (the bundled copy of commit 1c7ea1d, see
``audiosetzsl/data/PROVENANCE.md``): oracles, configs, streaming, media, h5 features, errors, download."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from helpers import mini_audiosetzsl

import avsets
from avsets.audiosetzsl import metadata as zsl_meta
from avsets.audiosetzsl.metadata import bundled_archive, class_names, extract_archive, read_class_split
from avsets.core.errors import MetadataError
from avsets.media.synth import write_audio, write_video

COUNTS = {"train": 93_865, "validation": 31_271, "test": 31_280}
UNSEEN = {"pig", "panther", "stream", "bus", "aircraft", "clock", "fan", "printer", "church-bell", "gunshot"}


@pytest.fixture(scope="session")
def zsl_root(tmp_path_factory) -> str:
    """The real repository files, extracted from the bundled archive."""
    return extract_archive(bundled_archive(), str(tmp_path_factory.mktemp("zsl")))


@pytest.fixture(scope="module")
def default_dd(zsl_root, tmp_path_factory):
    return avsets.load_dataset("audiosetzsl", data_dir=zsl_root, cache_dir=str(tmp_path_factory.mktemp("c")))


@pytest.fixture
def mini_root(tmp_path, zsl_root) -> str:
    """A small writable copy: the real class-split files and the first 3 rows of each real class file."""
    return str(mini_audiosetzsl(zsl_root, tmp_path / "AudioSetZSL", rows=3))


def test_real_oracles(default_dd):
    assert {k: v.num_rows for k, v in default_dd.items()} == COUNTS
    ids = [y for split in default_dd.values() for y in col(split, "youtube_id")]
    assert len(ids) == len(set(ids)) == 156_416  # every id appears once
    names = default_dd["train"].features["label"].names
    assert names == sorted(names) and len(names) == 33 and "church-bell" in names


def test_class_split_files_without_final_newline(zsl_root):
    seen = read_class_split(os.path.join(zsl_root, "class-split", "seen_class.txt"))
    unseen = read_class_split(os.path.join(zsl_root, "class-split", "unseen_class.txt"))
    with open(os.path.join(zsl_root, "class-split", "unseen_class.txt"), "rb") as f:
        assert not f.read().endswith(b"\n")  # the real quirk is present
    assert len(seen) == 23 and len(unseen) == 10 and set(unseen) == UNSEEN
    assert seen[-1] == "boom" and unseen[-1] == "gunshot"
    assert set(seen) | set(unseen) == set(class_names()) and not set(seen) & set(unseen)


def test_verbatim_rows_and_church_bell(default_dd):
    train = default_dd["train"]
    label = train.features["label"]
    as_names = train.features["audioset_labels"].feature
    row = next(r for r in train.select(range(4000)) if r["youtube_id"] == "1FCq89ykIII")
    assert (row["audioset_index"], row["start"], row["end"]) == (136315, 40.0, 50.0)
    assert label.int2str(row["label"]) == "aircraft" and row["seen"] is False
    assert [as_names.int2str(i) for i in row["audioset_labels"]] == ["Vehicle", "Aircraft"]
    assert row["id"] == "1FCq89ykIII_40000_50000"
    bell = label.str2int("church-bell")
    bell_rows = [labels for lab, labels in zip(col(train, "label"), col(train, "audioset_labels"), strict=True)
                 if lab == bell]
    assert len(bell_rows) == 662
    assert all(as_names.str2int("Church bell") in labels for labels in bell_rows)
    per_row = np.bincount([len(x) for split in default_dd.values() for x in col(split, "audioset_labels")])
    assert per_row[0] == 0 and len(per_row) == 11 and per_row[10] == 3  # 1..10 MIDs (3 rows hold 10)


def col(ds, name: str) -> list:
    """A column as a list straight from Arrow (iterating a ``Column`` decodes row by row)."""
    return ds.data.column(name).to_pylist()


def test_zsl_and_gzsl_configs(zsl_root, tmp_path):
    zsl = avsets.load_dataset("audiosetzsl", "zsl", data_dir=zsl_root, cache_dir=str(tmp_path))
    gzsl = avsets.load_dataset("audiosetzsl", "gzsl", data_dir=zsl_root, cache_dir=str(tmp_path))
    names = zsl["train"].features["label"].names
    assert zsl["train"].features == gzsl["test"].features  # same schema everywhere, `seen` included
    for dd in (zsl, gzsl):
        for split in ("train", "validation"):
            assert all(col(dd[split], "seen"))
            assert not {names[i] for i in set(col(dd[split], "label"))} & UNSEEN
    assert not any(col(zsl["test"], "seen")) and {names[i] for i in set(col(zsl["test"], "label"))} == UNSEEN
    assert zsl["test"].num_rows == 4_687
    assert gzsl["test"].num_rows == COUNTS["test"] and 0 < sum(col(gzsl["test"], "seen")) < COUNTS["test"]
    assert avsets.get_dataset_config_names("audiosetzsl") == ["default", "zsl", "gzsl"]


def test_streaming_shards(mini_root):
    ids = avsets.load_dataset("audiosetzsl", data_dir=mini_root, streaming=True, rows_per_shard=20)
    assert ids["train"].num_shards == 5  # 99 rows / 20
    rows = list(ids["test"])
    assert len(rows) == 99 and {r["seen"] for r in rows} == {True, False}
    assert isinstance(rows[0]["audioset_labels"], list)


def test_media_from_media_dir_in_several_namings(mini_root, tmp_path):
    dd = avsets.load_dataset("audiosetzsl", data_dir=mini_root, split="test", cache_dir=str(tmp_path / "c"))
    rows = dd.select(range(4)).to_list()
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    r0, r1, r2, r3 = rows
    write_audio(media / f"{r0['youtube_id']}_{int(r0['start'] * 1000)}_{int(r0['end'] * 1000)}.flac", seconds=10)
    write_audio(media / "sub" / f"Y{r1['youtube_id']}_{r1['start']:.3f}_{r1['end']:.3f}.wav", seconds=10)
    write_video(media / f"{r2['youtube_id']}.mp4", seconds=r2["end"] + 1, fps=10, size=(32, 24))
    ds = avsets.load_dataset("audiosetzsl", data_dir=mini_root, split="test", media_dir=str(media),
                             cache_dir=str(tmp_path / "c"), modalities=("audio",))
    assert ds.num_rows == 3 and r3["id"] not in ds["id"]  # on_missing="skip" dropped the clip without media
    got = {r["id"]: r for r in ds}
    assert got[r0["id"]]["audio"]["array"].shape == (160_000,)
    assert got[r1["id"]]["audio"]["sampling_rate"] == 16_000
    whole = got[r2["id"]]
    assert whole["media_offset"] == r2["start"] and abs(len(whole["audio"]["array"]) - 160_000) < 2_000
    kept = avsets.load_dataset("audiosetzsl", data_dir=mini_root, split="test", media_dir=str(media),
                               cache_dir=str(tmp_path / "c"), on_missing="keep", decode=False)
    assert kept.num_rows == 99 and sum(r is not None for r in kept["audio"]) == 3


def _write_h5(path, ids, dim, *, urls=False, seed=0):
    h5py = pytest.importorskip("h5py")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = np.random.default_rng(seed).random((len(ids), dim), dtype=np.float32)
    vals = [f"https://www.youtube.com/watch?v={i}" if urls else i for i in ids]
    with h5py.File(path, "w") as hf:
        hf["data"] = data
        hf["video_urls"] = np.array([v.encode() for v in vals])
    return data


def test_h5_features_aligned_by_youtube_id(mini_root, tmp_path):
    feats = tmp_path / "features"
    dd = avsets.load_dataset("audiosetzsl", data_dir=mini_root, split="validation", cache_dir=str(tmp_path / "c"))
    expected = {}
    for name in class_names():
        with open(os.path.join(mini_root, "youtube-id", "val", f"{name}.txt")) as f:
            ids = [ln.split(", ")[1] for ln in f if ln.strip()][::-1]  # h5 order differs from the txt order
        a = _write_h5(feats / "audio" / "val" / f"{name}.h5", ids, 8)
        v = _write_h5(feats / "video" / "val" / f"{name}.h5", ids, 4, urls=True, seed=1)
        for k, yid in enumerate(ids):
            expected[yid] = (a[k], v[k])
    ds = avsets.load_dataset("audiosetzsl", data_dir=mini_root, split="validation", features_dir=str(feats),
                             cache_dir=str(tmp_path / "c"))
    assert ds.num_rows == dd.num_rows == 99
    for row in ds:
        a, v = expected[row["youtube_id"]]
        np.testing.assert_array_equal(np.asarray(row["audio_features"], np.float32), a)
        np.testing.assert_array_equal(np.asarray(row["video_features"], np.float32), v)


def test_h5_audio_video_disagreement_is_a_clear_error(mini_root, tmp_path):
    feats = tmp_path / "features"
    with open(os.path.join(mini_root, "youtube-id", "trn", "dog.txt")) as f:
        ids = [ln.split(", ")[1] for ln in f]
    _write_h5(feats / "audio" / "trn" / "dog.h5", ids, 8)
    _write_h5(feats / "video" / "trn" / "dog.h5", ids[::-1], 8)
    with pytest.raises(MetadataError, match=r"dog\.h5.*audio and video features disagree"):
        avsets.load_dataset("audiosetzsl", data_dir=mini_root, features_dir=str(feats), cache_dir=str(tmp_path / "c"))


def test_bad_row_names_file_and_line(mini_root, tmp_path, caplog):
    path = os.path.join(mini_root, "youtube-id", "trn", "cat.txt")
    with open(path) as f:
        lines = f.readlines()
    lines[1] = lines[1].replace(", ", ", bad id!, ", 1).replace(lines[1].split(", ")[1] + ", ", "", 1)
    with open(path, "w") as f:
        f.writelines(lines)
    with pytest.raises(MetadataError, match=r"cat\.txt, line 2, field 'youtube_id'.*bad id!"):
        avsets.load_dataset("audiosetzsl", data_dir=mini_root, cache_dir=str(tmp_path / "c1"))
    with caplog.at_level(logging.WARNING):
        dd = avsets.load_dataset("audiosetzsl", data_dir=mini_root, cache_dir=str(tmp_path / "c2"), errors="skip")
    assert dd["train"].num_rows == 98 and "skipped 1 malformed" in caplog.text


def test_unknown_mid_names_mid_and_line(mini_root, tmp_path):
    path = os.path.join(mini_root, "youtube-id", "tst", "fan.txt")
    with open(path) as f:
        lines = f.readlines()
    lines[2] = lines[2].rstrip("\n") + ", /m/notamid\n"
    with open(path, "w") as f:
        f.writelines(lines)
    with pytest.raises(MetadataError, match=r"fan\.txt, line 3.*'/m/notamid'"):
        avsets.load_dataset("audiosetzsl", data_dir=mini_root, cache_dir=str(tmp_path / "c1"))
    dd = avsets.load_dataset("audiosetzsl", data_dir=mini_root, cache_dir=str(tmp_path / "c2"), drop_unknown_labels=True)
    assert dd["test"].num_rows == 99
    skipped = avsets.load_dataset("audiosetzsl", data_dir=mini_root, cache_dir=str(tmp_path / "c3"), errors="skip")
    assert skipped["test"].num_rows == 98


@pytest.mark.slow
def test_without_data_dir_downloads_pinned_archive(monkeypatch, tmp_path, caplog):
    # The pinned URL cannot be reached here: point it at a local copy of the same archive.
    monkeypatch.setattr(zsl_meta, "ARCHIVE_URL", bundled_archive())
    b = avsets.load_dataset_builder("audiosetzsl", "zsl", cache_dir=str(tmp_path / "a"))
    b.download_and_prepare()
    assert b.info.splits["test"].num_examples == 4_687
    assert os.path.isdir(os.path.join(str(tmp_path / "a"), "downloads",
                                      f"AudioSetZSL-{zsl_meta.PINNED_COMMIT}", f"AudioSetZSL-{zsl_meta.PINNED_COMMIT}"))
    # offline: the download fails and the bundled copy of the same commit is used, loudly
    monkeypatch.setattr(zsl_meta, "ARCHIVE_URL", "https://codeload.github.com/krantiparida/AudioSetZSL/zip/"
                        + zsl_meta.PINNED_COMMIT)
    with caplog.at_level(logging.WARNING):
        b = avsets.load_dataset_builder("audiosetzsl", "default", cache_dir=str(tmp_path / "b"))
        b.download_and_prepare()
    assert b.info.splits["train"].num_examples == COUNTS["train"]
    assert "could not download https://codeload.github.com" in caplog.text and "bundled copy" in caplog.text
