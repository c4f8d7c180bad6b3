"""ASCC on the real lists (bundled sample), big_data.csv / label_df.csv shaped as the release writes them,
and media in the release's naming and every YouTube naming."""

from __future__ import annotations

import csv
import importlib.resources
import logging
import os
import shutil

import numpy as np
import pytest
from helpers import writable_sample

from avsets import load_dataset
from avsets.core.errors import ManualDownloadRequired
from avsets.metadata.ontology import AudioSetOntology

CC = "Creative Commons Attribution license (reuse allowed)"
FIRST, SECOND = "-0O3e95y4gE", "-elf_5HUVuc"  # the first two ids of all_cc_qual_0_false.csv


@pytest.fixture(scope="module")
def sample() -> str:
    return str(importlib.resources.files("avsets.ascc") / "sample")


@pytest.fixture
def meta(tmp_path, sample) -> str:
    return str(writable_sample("ascc", tmp_path / "meta"))


@pytest.fixture(scope="module")
def default_ds(sample, tmp_path_factory):
    return load_dataset("ascc", split="train", data_dir=sample, cache_dir=str(tmp_path_factory.mktemp("c")))


def test_default_counts_labels_and_licence(default_ds, sample):
    ds = default_ds
    assert ds.num_rows == 11912 and len(set(ds["id"])) == 11912
    labels = ds["labels"]
    assert sum(1 for x in labels if x) == 11844
    assert sum(1 for x in labels if not x) == 68
    assert set(ds["license"]) == {CC}
    assert ds["id"] == ds["youtube_id"]
    names = ds.features["labels"].feature.names
    suitable = np.load(importlib.resources.files("avsets.ascc") / "suitable_classes.npy")
    onto = AudioSetOntology.load()
    assert len(names) == 447 and names[0] == "Speech" and names[-1] == "Radio"
    assert names == [onto.name_of(m) for m in suitable[:, 0]]
    # the first id's pairs, in file order: /m/07r4wb8, /t/dd00125
    first = ds[0]
    assert first["id"] == FIRST and (first["start"], first["end"]) == (None, None)
    mids = [str(suitable[i, 0]) for i in first["labels"]]
    assert mids == ["/m/07r4wb8", "/t/dd00125"]
    # 20,475 pairs in the file, one per (id, MID)
    assert sum(len(x) for x in labels) == 20475


def test_single_label_config(sample, cache_dir):
    ds = load_dataset("ascc", "single_label", split="train", data_dir=sample, cache_dir=cache_dir)
    assert ds.num_rows == 6581
    assert ds.features["label"].num_classes == 447
    with open(os.path.join(sample, "all_cc_qual_0_false.csv"), newline="") as f:
        pairs = list(csv.DictReader(f))
    counts: dict[str, list[str]] = {}
    for p in pairs:
        counts.setdefault(p["id"], []).append(p["class_id"])
    singles = {k: v[0] for k, v in counts.items() if len(v) == 1}
    names = ds.features["label"].names
    onto = AudioSetOntology.load()
    got = dict(zip(ds["id"], ds["label"], strict=True))
    assert set(got) == set(singles)
    assert all(names[got[k]] == onto.name_of(m) for k, m in list(singles.items())[:200])


def test_without_big_data_warns_and_segments_true_says_google_drive(sample, cache_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="avsets"):
        load_dataset("ascc", "single_label", split="train", data_dir=sample, cache_dir=cache_dir)
    assert "big_data.csv" in caplog.text and "Google Drive" in caplog.text
    with pytest.raises(ManualDownloadRequired, match=r"big_data\.csv.*Google Drive.*drive\.google\.com"):
        load_dataset("ascc", split="train", data_dir=sample, cache_dir=cache_dir, segments=True)


def write_big_data(meta: str, rows: list[tuple[str, float, float, list[str]]]) -> None:
    """As pandas saved it: unnamed index, integer column names, label MIDs padded with NaN (empty)."""
    width = max(len(r[3]) for r in rows)
    with open(os.path.join(meta, "big_data.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + [str(i) for i in range(3 + width)])
        for i, (ytid, start, end, mids) in enumerate(rows):
            w.writerow([i, ytid, f"{start:.1f}", f"{end:.1f}", *mids, *[""] * (width - len(mids))])


def write_label_df(meta: str, mapping: dict[str, int]) -> None:
    mids = ["/m/07r4wb8", "/t/dd00125", "/m/04rlf"]
    with open(os.path.join(meta, "label_df.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "id", "num_id", *mids])
        for i, (ytid, num) in enumerate(mapping.items()):
            w.writerow([i, ytid, num, 1, 0, 0])


def test_big_data_gives_start_and_end_and_keeps_the_id(meta, cache_dir):
    write_big_data(meta, [("zzzzzzzzzzz", 1.0, 11.0, ["/m/09x0r"]), (FIRST, 30.0, 40.0, ["/m/07r4wb8", "/t/dd00125"]),
                          (SECOND, 70.0, 80.0, ["/m/04rlf"]), (FIRST, 99.0, 109.0, ["/m/09x0r"])])
    ds = load_dataset("ascc", split="train", data_dir=meta, cache_dir=cache_dir)
    rows = {r["id"]: r for r in ds.select(range(3))}
    assert (rows[FIRST]["start"], rows[FIRST]["end"]) == (30.0, 40.0)  # first row of an id wins
    assert (rows[SECOND]["start"], rows[SECOND]["end"]) == (70.0, 80.0)
    assert ds.num_rows == 11912 and sum(s is not None for s in ds["start"]) == 2


def test_bad_metadata_names_file_and_line(meta, cache_dir, sample):
    path = os.path.join(meta, "all_cc_df.csv")
    with open(path, "a", newline="") as f:
        f.write("99999,99999,../../etc/passwd,x\r\n")
    with pytest.raises(ValueError, match=r"all_cc_df\.csv, line 11914.*invalid YouTube id.*etc/passwd"):
        load_dataset("ascc", split="train", data_dir=meta, cache_dir=cache_dir)
    ds = load_dataset("ascc", split="train", data_dir=meta, cache_dir=cache_dir, errors="skip")
    assert ds.num_rows == 11912
    shutil.copyfile(os.path.join(sample, "all_cc_df.csv"), path)
    with open(os.path.join(meta, "all_cc_qual_0_false.csv"), "a", newline="") as f:
        f.write(f"20475,{FIRST},/m/not_a_class\r\n")
    with pytest.raises(ValueError, match=r"all_cc_qual_0_false\.csv, line 20477.*/m/not_a_class"):
        load_dataset("ascc", split="train", data_dir=meta, cache_dir=cache_dir, errors="raise")


# -- media ------------------------------------------------------------------------------------------------


def _media(tmp_path, ids: list[str]):
    from avsets.media.synth import write_audio

    root = tmp_path / "ascc_media"
    (root / "Raw Samples").mkdir(parents=True)
    write_audio(root / "Raw Samples" / "0.wav", seconds=10.0, sr=16000)  # num_id 0 = FIRST (download_cc.py order)
    (root / "yt").mkdir()
    (root / "yt" / f"{ids[0]}.mp4").write_bytes(b"x" * 10)               # a whole video
    (root / "clips").mkdir()
    (root / "clips" / f"{ids[1]}_30000_40000.flac").write_bytes(b"x" * 10)  # a trimmed clip
    return root


def test_media_in_release_and_youtube_namings_without_big_data(sample, cache_dir, tmp_path, default_ds):
    others = default_ds["id"][5:7]
    root = _media(tmp_path, others)
    ds = load_dataset("ascc", split="train", data_dir=sample, media_dir=str(root), cache_dir=cache_dir, decode=False)
    got = {r["id"]: r for r in ds}
    assert set(got) == {FIRST, *others}
    assert got[FIRST]["audio"]["path"] == os.path.join(str(root), "Raw Samples", "0.wav")
    assert got[FIRST]["video"] is None and got[FIRST]["media_offset"] == 0.0
    assert got[others[0]]["video"]["path"].endswith(f"{others[0]}.mp4") and got[others[0]]["media_offset"] == 0.0
    assert got[others[1]]["audio"]["path"].endswith(f"{others[1]}_30000_40000.flac")
    # decode: no segment known, so the whole file is the clip
    dec = load_dataset("ascc", split="train", data_dir=sample, media_dir=str(root / "Raw Samples"),
                       cache_dir=cache_dir)
    assert dec.num_rows == 1
    row = dec[0]
    assert row["id"] == FIRST and row["audio"]["sampling_rate"] == 16000
    assert row["audio"]["array"].shape == (160000,)


def test_label_df_num_ids_win_and_big_data_segments_cut_whole_videos(meta, cache_dir, tmp_path, default_ds):
    others = default_ds["id"][5:7]
    root = _media(tmp_path, others)
    os.rename(root / "Raw Samples" / "0.wav", root / "Raw Samples" / "7.wav")
    write_label_df(meta, {FIRST: 7, SECOND: 0})
    write_big_data(meta, [(others[0], 12.5, 22.5, ["/m/09x0r"]), (others[1], 30.0, 40.0, ["/m/09x0r"])])
    ds = load_dataset("ascc", split="train", data_dir=meta, media_dir=str(root), cache_dir=cache_dir, decode=False)
    got = {r["id"]: r for r in ds}
    assert set(got) == {FIRST, *others}  # SECOND's number 0 has no file any more
    assert got[FIRST]["audio"]["path"].endswith("7.wav")
    assert got[others[0]]["media_offset"] == 12.5 and got[others[0]]["start"] == 12.5  # whole video, cut at 12.5
    assert got[others[1]]["media_offset"] == 0.0  # the trimmed clip, now by its {ytid}_{start_ms}_{end_ms} key


def test_streaming_with_media(sample, cache_dir, tmp_path, default_ds):
    root = _media(tmp_path, default_ds["id"][5:7])
    ids = load_dataset("ascc", split="train", data_dir=sample, media_dir=str(root), cache_dir=cache_dir,
                       streaming=True, decode=False)
    assert ids.num_shards == 12
    assert sorted(r["id"] for r in ids) == sorted([FIRST, *default_ds["id"][5:7]])
    meta_only = load_dataset("ascc", "single_label", split="train", data_dir=sample, cache_dir=cache_dir,
                             streaming=True)
    assert sum(1 for _ in meta_only) == 6581


def test_trimmed_clips_by_id_only_when_one_segment(tmp_path):
    from avsets.media.media_index import MediaIndex
    from avsets.media.unsegmented import trimmed_by_youtube_id

    for name in (f"{FIRST}_30000_40000.flac", f"{FIRST}_30000_40000.mp4", f"{SECOND}_000010.flac",
                 f"{SECOND}_20000_30000.flac", "abcdefghijk.mp4"):
        (tmp_path / name).write_bytes(b"x" * 10)
    found = trimmed_by_youtube_id(MediaIndex.scan(str(tmp_path)))
    assert found == {FIRST: [f"{FIRST}_30000_40000.flac", f"{FIRST}_30000_40000.mp4"]}  # SECOND: two segments
