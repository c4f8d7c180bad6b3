"""AVMIT on the real lists (bundled sample), files shaped per the upstream README, MIT media, TFRecord embeddings."""

from __future__ import annotations

import csv
import importlib.resources
import logging
import os

import numpy as np
import pytest
import yaml
from helpers import writable_sample
from tfrecord_writer import encode_sequence_example, write_records

from avsets import load_dataset, load_dataset_builder
from avsets.core.errors import MissingMediaError
from avsets.metadata.tfrecord import TFRecordError

LABELS16 = ["barking", "diving", "drumming", "frying", "giggling", "howling", "inflating", "mowing", "pouring",
            "raining", "sanding", "shredding", "sneezing", "tapping", "vacuuming", "whistling"]


@pytest.fixture(scope="module")
def sample() -> str:
    return str(importlib.resources.files("avsets.avmit") / "sample")


@pytest.fixture
def meta(tmp_path, sample) -> str:
    """A writable copy of the bundled lists."""
    return str(writable_sample("avmit", tmp_path / "meta"))


def read_rows(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- counts on the real files ------------------------------------------------------------------------


def test_avmit16_counts_and_label_order(sample, cache_dir):
    dd = load_dataset("avmit", "avmit16", data_dir=sample, cache_dir=cache_dir)
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 6560, "validation": 736, "test": 960}
    with open(os.path.join(sample, "audiovisual_action_recognition", "train.yaml")) as f:
        label_to_int = yaml.safe_load(f)["label_to_int"]
    names = dd["train"].features["label"].names
    assert {n: i for i, n in enumerate(names)} == label_to_int
    assert names == LABELS16
    for split in dd.values():
        assert set(split["label"]) == set(range(16))
    train = dd["train"]
    assert np.bincount(train["label"]).tolist() == [410] * 16


def test_test_config_960_rows_16_classes_and_columns(sample, cache_dir):
    ds = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir)
    assert ds.num_rows == 960
    assert np.bincount(ds["label"]).tolist() == [60] * 16
    row = ds[0]
    assert row["id"] == row["filename"] == "inflating/yt-vRmldM5Wcs4_37.mp4"
    assert (row["youtube_id"], row["start"], row["end"]) == (None, None, None)
    assert row["mit_label"] == "inflating" and row["new_filename"] == "inflating/inflating_1.mp4"
    assert row["tfrecord_filename"] == "inflating/yt-vRmldM5Wcs4_37.tfrecord"
    locs = ds["video_location"]
    assert locs.count("training") == 957 and locs.count("validation") == 3
    assert len(set(ds["mit_label"])) == 24


@pytest.mark.slow
def test_avmit_lists_map_mit_folder_vocabulary_and_keep_tfrecord_names_verbatim(sample, cache_dir):
    train = load_dataset("avmit", "avmit16", split="train", data_dir=sample, cache_dir=cache_dir)
    assert set(train["video_location"]) == {"training", "validation"}  # MIT_training / MIT_validation upstream
    raw = read_rows(os.path.join(sample, "audiovisual_action_recognition", "AVMIT_train.csv"))
    assert train["tfrecord_filename"] == [r["tfrecord_filename"] for r in raw]
    quirks = [r for r in raw if r["tfrecord_filename"].split("/")[0] != r["label"]]
    assert len(quirks) >= 1
    assert sum(r["r1"] + r["r2"] + r["r3"] > 3 for r in train.select_columns(["r1", "r2", "r3"])) > 0


def test_mit16_counts_and_no_location(sample, cache_dir):
    dd = load_dataset("avmit", "mit16", data_dir=sample, cache_dir=cache_dir)
    # MIT16_train.csv is a 499-row sample of the 20,240 rows (sample/PROVENANCE.md); validation is complete.
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 499, "validation": 2256}
    assert "video_location" not in dd["train"].features
    assert np.bincount(dd["validation"]["label"]).tolist() == [141] * 16


# -- video_ratings.csv / raw_video_ratings.csv, shaped per the upstream README --------------------------


def write_ratings_files(meta: str) -> None:
    """Columns as the README documents them, deliberately in another order (parsing is by name)."""
    videos = [
        # filename, r1, r2, r3, AVMIT_label, MIT_label, video_location, tfrecord_filename
        ("barking/yt-aaaaaaaaaaa_1.mp4", 0, 1, 2, "barking", "barking", "training", "barking/yt-aaaaaaaaaaa_1.tfrecord"),
        ("laughing/yt-bbbbbbbbbbb_2.mp4", 1, 1, 1, "giggling", "laughing", "validation",
         "giggling/yt-bbbbbbbbbbb_2.tfrecord"),
        ("clapping/flickr-3-3.mp4", 3, 0, 0, "clapping", "clapping", "training", "clapping/flickr-3-3.tfrecord"),
    ]
    with open(os.path.join(meta, "video_ratings.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["AVMIT_label", "filename", "r3", "r2", "r1", "MIT_label", "tfrecord_filename", "video_location"])
        for fn, r1, r2, r3, lab, mit, loc, tf in videos:
            w.writerow([lab, fn, r3, r2, r1, mit, tf, loc])
    with open(os.path.join(meta, "raw_video_ratings.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "AVMIT_label", "MIT_label", "video_location", "rating"])
        for k in range(3):
            for fn, _, _, _, lab, mit, loc, _ in videos:
                w.writerow([fn, lab, mit, loc, f"{1 + k}.0" if k == 2 else 1 + k])  # pandas writes 3.0 next to NaN


def test_videos_and_ratings_take_labels_from_the_file(meta, cache_dir):
    write_ratings_files(meta)
    dd = load_dataset("avmit", "videos", data_dir=meta, cache_dir=cache_dir)
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 2, "validation": 1}
    assert dd["train"].features["label"].names == ["barking", "clapping", "giggling"]
    row = dd["validation"][0]
    assert (row["r1"], row["r2"], row["r3"], row["mit_label"]) == (1, 1, 1, "laughing")
    assert row["tfrecord_filename"] == "giggling/yt-bbbbbbbbbbb_2.tfrecord"
    rd = load_dataset("avmit", "ratings", data_dir=meta, cache_dir=cache_dir)
    assert {k: v.num_rows for k, v in rd.items()} == {"train": 6, "validation": 3}
    assert sorted(rd["validation"]["rating"]) == [1, 2, 3]


def test_missing_column_names_file_and_header(meta, cache_dir):
    with open(os.path.join(meta, "video_ratings.csv"), "w") as f:
        f.write("filename,r1,r2,AVMIT_label,MIT_label,video_location,tfrecord_filename\n"
                "a/b.mp4,1,1,x,x,training,x/b.tfrecord\n")
    with pytest.raises(ValueError, match=r"video_ratings\.csv.*'r3'"):
        load_dataset("avmit", "videos", data_dir=meta, cache_dir=cache_dir)


def test_label_outside_the_16_classes_names_file_and_line(meta, cache_dir):
    path = os.path.join(meta, "test_set.csv")
    with open(path, "a") as f:
        f.write("x/yt-zzz_1.mp4,coughing,coughing,training,x/x_1.mp4,x/yt-zzz_1.tfrecord\n")
    with pytest.raises(ValueError, match=r"test_set\.csv, line 962.*coughing"):
        load_dataset("avmit", "test", data_dir=meta, cache_dir=cache_dir)
    ds = load_dataset("avmit", "test", split="test", data_dir=meta, cache_dir=cache_dir, errors="skip")
    assert ds.num_rows == 960


# -- hostile file names -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../etc/passwd.mp4", "/etc/passwd.mp4", "barking/../../../x.mp4",
                                 "C:\\\\Windows\\\\x.mp4", "..\\\\..\\\\x.mp4"])
def test_unsafe_file_names_are_dropped_counted_and_never_joined(meta, cache_dir, tmp_path, caplog, bad):
    path = os.path.join(meta, "test_set.csv")
    with open(path, "a") as f:
        f.write(f"{bad},barking,barking,training,barking/barking_61.mp4,barking/x.tfrecord\n")
        f.write(f"barking/ok_1.mp4,barking,barking,training,barking/barking_62.mp4,{bad.replace('.mp4', '.tfrecord')}\n")
    media = tmp_path / "mit"
    (media / "training" / "barking").mkdir(parents=True)
    (media / "training" / "barking" / "ok_1.mp4").write_bytes(b"x" * 10)
    with caplog.at_level(logging.WARNING, logger="avsets"):
        builder = load_dataset_builder("avmit", "test", data_dir=meta, media_dir=str(media), cache_dir=cache_dir,
                                       on_missing="keep")
        builder.download_and_prepare()
        ds = builder.as_dataset(split="test")
    assert ds.num_rows == 960  # both hostile rows dropped, every real row kept
    assert builder.unsafe_rows["test_set.csv"] == 2
    assert "dropped 2 rows whose file name is unsafe" in caplog.text
    assert "ok_1" not in "".join(ds["id"])


# -- media in the Moments-in-Time layout --------------------------------------------------------------


def test_media_resolves_in_the_mit_layout(sample, cache_dir, tmp_path):
    from avsets.media.synth import write_video

    ds_meta = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir)
    rows = ds_meta.select(range(3)).to_list()
    val = [r for r in ds_meta.to_list() if r["video_location"] == "validation"][0]
    media = tmp_path / "Moments_in_Time_Raw"
    for r in (*rows, val):
        p = media / r["video_location"] / r["filename"]
        p.parent.mkdir(parents=True, exist_ok=True)
        if r is rows[0]:
            write_video(p, seconds=3.0, fps=10, size=(32, 24))
        else:
            p.write_bytes(b"not decoded here")
    # the same file name under the *other* folder must not be picked
    wrong = media / "validation" / rows[1]["filename"]
    wrong.parent.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("avmit", "test", split="test", data_dir=sample, media_dir=str(media), cache_dir=cache_dir,
                      decode=False)
    assert ds.num_rows == 4
    got = {r["id"]: r for r in ds}
    for r in (*rows, val):
        v = got[r["filename"]]["video"]
        assert v["path"] == os.path.join(str(media), r["video_location"], *r["filename"].split("/"))
        assert got[r["filename"]]["media_offset"] == 0.0
    decoded = load_dataset("avmit", "test", split="test", data_dir=sample, media_dir=str(media),
                           cache_dir=cache_dir, num_frames=4)
    first = [r for r in decoded.select([0])][0]
    assert first["id"] == rows[0]["filename"] and first["video"]["frames"].shape == (4, 24, 32, 3)
    assert first["audio"]["array"].shape[0] == pytest.approx(3 * 16000, abs=1024)


def test_mit16_looks_in_both_mit_folders(sample, cache_dir, tmp_path):
    meta = load_dataset("avmit", "mit16", split="validation", data_dir=sample, cache_dir=cache_dir)
    a, b = meta[0]["filename"], meta[1]["filename"]
    media = tmp_path / "mit"
    for folder, name in (("training", a), ("validation", b)):
        p = media / folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 10)
    ds = load_dataset("avmit", "mit16", split="validation", data_dir=sample, media_dir=str(media),
                      cache_dir=cache_dir, decode=False)
    assert {r["id"]: r["video"]["path"] for r in ds} == {
        a: os.path.join(str(media), "training", *a.split("/")),
        b: os.path.join(str(media), "validation", *b.split("/")),
    }


# -- embeddings -----------------------------------------------------------------------------------------


def write_tfrecord(path, filename: str, label: str, audio: np.ndarray, visual: np.ndarray) -> None:
    """One record exactly as feature_extractor/extract_features.py writes it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    payload = encode_sequence_example(
        {"filename": filename.encode("utf-8"), "label": label.encode("utf-8"),
         "audio_timesteps": int(audio.shape[0]), "visual_timesteps": int(visual.shape[0])},
        {"audio": list(audio), "visual_object": list(visual)})
    write_records(path, [payload], compression="gzip")


def make_embeddings(root, rows: list[dict], dims=(128, 512), seed=0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for i, r in enumerate(rows):
        audio = rng.standard_normal((3 + i % 4, dims[0])).astype(np.float32)
        visual = rng.standard_normal((7 - i % 2, dims[1])).astype(np.float32)
        write_tfrecord(os.path.join(root, *r["tfrecord_filename"].split("/")), r["filename"],
                       LABELS16[r["label"]], audio, visual)
        out[r["filename"]] = (audio, visual)
    # the extractor's junk: a throw-away copy and a text file (the copy is corrupt on purpose: never read)
    with open(os.path.join(root, "delete_this.tfrecord"), "wb") as f:
        f.write(b"\x1f\x8bgarbage")
    with open(os.path.join(root, "videos_not_included.txt"), "w") as f:
        f.write("x.mp4")
    return out


@pytest.fixture(scope="module")
def test_rows(sample, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache).to_list()


def test_embeddings_round_trip_exact_float32(sample, cache_dir, tmp_path, test_rows):
    emb_dir = tmp_path / "AVMIT_VGGish_VGG16"
    want = make_embeddings(emb_dir, test_rows[:5])
    ds = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir,
                      embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))
    assert ds.num_rows == 5  # on_missing="skip": rows without a TFRecord are dropped
    assert ds.features["audio_embeddings"].feature.length == 128
    for row in ds.with_format("numpy"):
        audio, visual = want[row["id"]]
        assert row["audio_embeddings"].dtype == np.float32 and row["audio_embeddings"].shape == audio.shape
        assert np.array_equal(row["audio_embeddings"], audio)
        assert np.array_equal(row["visual_embeddings"], visual)
    kept = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir, on_missing="keep",
                        embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))
    assert kept.num_rows == 960 and sum(r is None for r in kept["audio_embeddings"]) == 955
    with pytest.raises(MissingMediaError, match="no TFRecord"):
        load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir, on_missing="error",
                     embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))


def test_yamnet_effnet_dimensions_and_split_folders(sample, cache_dir, tmp_path):
    train = load_dataset("avmit", "avmit16", split="train", data_dir=sample, cache_dir=cache_dir).select(range(2))
    emb_dir = tmp_path / "MIT16_YamNet_EffNetB0"
    want = make_embeddings(emb_dir / "train", train.to_list(), dims=(1024, 1280), seed=1)
    ds = load_dataset("avmit", "avmit16", split="train", data_dir=sample, cache_dir=cache_dir,
                      embeddings="yamnet_effnetb0", embeddings_dir=str(emb_dir))
    assert ds.num_rows == 2
    for row in ds.with_format("numpy"):
        assert np.array_equal(row["audio_embeddings"], want[row["id"]][0])
        assert row["visual_embeddings"].shape[1] == 1280
    # the other set's folder: dimensions disagree -> reported like corrupt media
    with pytest.raises(TFRecordError, match="128"):
        load_dataset("avmit", "avmit16", split="train", data_dir=sample, cache_dir=cache_dir, on_missing="error",
                     embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))


def test_corrupt_tfrecord_is_reported_like_corrupt_media(sample, cache_dir, tmp_path, test_rows, caplog):
    emb_dir = tmp_path / "emb"
    make_embeddings(emb_dir, test_rows[:3])
    victim = os.path.join(emb_dir, *test_rows[1]["tfrecord_filename"].split("/"))
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(data[: len(data) - 9])  # truncated
    with caplog.at_level(logging.WARNING, logger="avsets"):
        ds = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir,
                          embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))
    assert ds.num_rows == 2 and test_rows[1]["filename"] not in ds["id"]
    assert test_rows[1]["filename"] in caplog.text and "1 a damaged one" in caplog.text
    kept = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir, on_missing="keep",
                        embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))
    assert kept.num_rows == 960
    with pytest.raises(TFRecordError, match=r"clip .*yt-"):
        load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir, on_missing="error",
                     embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))


def test_new_tfrecords_invalidate_the_cache(sample, cache_dir, tmp_path, test_rows):
    emb_dir = tmp_path / "emb"
    make_embeddings(emb_dir, test_rows[:2])
    kw = dict(split="test", data_dir=sample, cache_dir=cache_dir, embeddings="vggish_vgg16",
              embeddings_dir=str(emb_dir))
    assert load_dataset("avmit", "test", **kw).num_rows == 2
    make_embeddings(emb_dir, test_rows[:4])
    assert load_dataset("avmit", "test", **kw).num_rows == 4


def test_embeddings_options_are_checked(sample, cache_dir, tmp_path):
    with pytest.raises(ValueError, match="embeddings must be one of"):
        load_dataset_builder("avmit", "test", data_dir=sample, cache_dir=cache_dir, embeddings="vgg",
                             embeddings_dir=str(tmp_path))
    with pytest.raises(ValueError, match="together"):
        load_dataset_builder("avmit", "test", data_dir=sample, cache_dir=cache_dir, embeddings="vggish_vgg16")


# -- streaming ------------------------------------------------------------------------------------------


def test_streaming_with_embeddings_and_shards(sample, cache_dir, tmp_path, test_rows):
    emb_dir = tmp_path / "emb"
    want = make_embeddings(emb_dir, test_rows[:3])
    ids = load_dataset("avmit", "avmit16", split="test", data_dir=sample, cache_dir=cache_dir, streaming=True,
                       rows_per_shard=200)
    assert ids.num_shards == 5
    assert sum(1 for _ in ids) == 960
    ids = load_dataset("avmit", "test", split="test", data_dir=sample, cache_dir=cache_dir, streaming=True,
                       embeddings="vggish_vgg16", embeddings_dir=str(emb_dir))
    rows = list(ids)
    assert len(rows) == 3
    for r in rows:
        assert np.array_equal(np.asarray(r["audio_embeddings"], np.float32), want[r["id"]][0])
