"""VGGSound end to end on the real upstream sample: parsing, label spaces, media, decoding, streaming."""

from __future__ import annotations

import csv
import os
import warnings

import datasets
import numpy as np
import pytest
import soundfile as sf
from datasets.distributed import split_dataset_by_node

import avsets
from avsets import MediaWarning, MetadataError, MissingMediaError
from avsets.media.synth import frame_band, tone, write_audio, write_video


def sample_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_default_config_on_real_sample(vgg_sample_dir, cache_dir):
    rows = sample_rows(os.path.join(vgg_sample_dir, "vggsound.csv"))
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=cache_dir)
    assert isinstance(ds, datasets.DatasetDict) and set(ds) == {"train", "test"}
    assert len(ds["train"]) == sum(r[3] == "train" for r in rows) == 868
    assert len(ds["test"]) == sum(r[3] == "test" for r in rows) == 102
    names = ds["train"].features["label"].names
    assert len(names) == 310 and names == sorted(names) and "extending ladders" in names
    by_id = {r["id"]: r for split in ds.values() for r in split}
    # quoted labels with commas, ids starting with '-', the label stat.csv lacks
    r = by_id["--9O4XZOge4_30000_40000"]
    assert names[r["label"]] == "female speech, woman speaking" and r["category"] == "people"
    assert by_id["--Lj4Y_96f0_120000_130000"]["youtube_id"] == "--Lj4Y_96f0"
    r = by_id["zxRfVeKqQW4_348000_358000"]
    assert names[r["label"]] == "extending ladders" and r["category"] is None
    r = by_id["zzwbG0dHLhI_150000_160000"]  # last line of the file
    assert (r["start"], r["end"], names[r["label"]]) == (150.0, 160.0, "lawn mowing")
    assert r["audio"] is None and r["video"] is None and r["media_offset"] is None
    # every row, in file order
    train_rows = [r for r in rows if r[3] == "train"]
    assert ds["train"]["youtube_id"] == [r[0] for r in train_rows]


def test_common_and_astest_configs(vgg_sample_dir, cache_dir):
    assert avsets.get_dataset_config_names("vggsound") == ["default", "common", "astest"]
    common = avsets.load_dataset("vggsound", "common", data_dir=vgg_sample_dir, cache_dir=cache_dir)
    common_names = [ln.strip() for ln in open(os.path.join(vgg_sample_dir, "Common.txt")) if ln.strip()]
    names = common["train"].features["label"].names
    assert len(names) == 164 and set(names) == set(common_names)
    rows = sample_rows(os.path.join(vgg_sample_dir, "vggsound.csv"))
    assert len(common["train"]) + len(common["test"]) == sum(r[2] in common_names for r in rows)
    astest = avsets.load_dataset("vggsound", "astest", split="test", data_dir=vgg_sample_dir, cache_dir=cache_dir)
    assert len(astest) == 6927 and astest.features["label"].names == names
    first = astest[0]
    assert (first["youtube_id"], first["start"], first["end"]) == ("glLQrEijrKg", 300.0, 310.0)
    assert names[first["label"]] == "playing hammond organ"


def _write(meta, text):
    path = os.path.join(meta, "vggsound.csv")
    with open(path, "w", newline="") as f:
        f.write(text)
    return path


GOOD = "---g-f_I2yQ,1,people marching,test\r\n--0PQM4-hqg,30,waterfall burbling,train\r\n"


@pytest.mark.parametrize(
    "bad_line, field, message",
    [
        ("--9O4XZOge4,30,female speech, woman speaking,train", None, "expected 4 fields"),
        ("--9O4XZOge4,thirty,lawn mowing,train", "start", "not a number"),
        ("bad id!,30,lawn mowing,train", "youtube_id", "invalid YouTube id"),
        ("--9O4XZOge4,30,singing kettle,train", "label_name", "outside the fixed"),
        ("--9O4XZOge4,30,lawn mowing,validation", "split", "split must be"),
    ],
)
def test_malformed_rows_name_file_and_line(vgg_meta, cache_dir, bad_line, field, message):
    path = _write(vgg_meta, GOOD + bad_line + "\r\n" + "zzwbG0dHLhI,150,lawn mowing,train")
    with pytest.raises(MetadataError) as err:
        avsets.load_dataset("vggsound", data_dir=vgg_meta, cache_dir=cache_dir)
    assert err.value.file == path and err.value.line == 3 and message in str(err.value)
    assert f"{path}, line 3" in str(err.value)
    # errors="skip": the bad row is skipped and counted, the rest loads
    ds = avsets.load_dataset("vggsound", data_dir=vgg_meta, cache_dir=cache_dir, errors="skip")
    assert len(ds["train"]) + len(ds["test"]) == 3


def test_blank_lines_bom_and_lf_keep_line_numbers(vgg_meta, cache_dir):
    path = _write(vgg_meta, "\ufeff" + GOOD.replace("\r\n", "\n") + "\n\n--9O4XZOge4,x,lawn mowing,train\n")
    with pytest.raises(MetadataError) as err:
        avsets.load_dataset("vggsound", data_dir=vgg_meta, cache_dir=cache_dir)
    assert err.value.file == path and err.value.line == 5


def test_missing_metadata_file_says_what_to_do(tmp_path, cache_dir):
    (tmp_path / "meta").mkdir()
    with pytest.raises(FileNotFoundError, match="vggsound.csv|stat.csv"):
        avsets.load_dataset("vggsound", data_dir=str(tmp_path / "meta"), cache_dir=cache_dir)


@pytest.fixture
def media(tmp_path):
    """Media for six sample rows, one per naming convention plus a corrupt file."""
    root = tmp_path / "media"
    (root / "a" / "b").mkdir(parents=True)
    (root / "videos").mkdir()
    write_audio(root / "--0PQM4-hqg_000030.flac", seconds=10.0, start=30.0)  # authors' name
    write_audio(root / "a" / "b" / "--9O4XZOge4_30000_40000.wav", seconds=10.0, start=30.0)  # canonical
    write_audio(root / "--Lj4Y_96f0_120.000_130.000.ogg", seconds=10.0, start=120.0)  # tagging style
    write_video(root / "videos" / "---g-f_I2yQ.mp4", seconds=12.0)  # whole video, test split
    write_video(root / "videos" / "--HuBNHXu9I.mp4", seconds=41.0, fps=10)  # whole video cut at 30 s
    (root / "--Q8wkZvDZE_000150.flac").write_bytes(b"not flac at all")  # corrupt
    return str(root)


def test_media_resolves_and_decodes_exactly(vgg_sample_dir, cache_dir, media):
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, media_dir=media, cache_dir=cache_dir)
    assert len(ds["train"]) == 5 and len(ds["test"]) == 1
    assert isinstance(ds["train"].features["audio"], datasets.Audio)  # storage type kept in features
    rows = {r["id"]: r for r in ds["train"]}
    a = rows["--0PQM4-hqg_30000_40000"]["audio"]
    np.testing.assert_array_equal(a["array"], sf.read(os.path.join(media, "--0PQM4-hqg_000030.flac"),
                                                      dtype="float32")[0])
    assert a["sampling_rate"] == 16000 and a["array"].shape == (160000,)
    whole = rows["--HuBNHXu9I_30000_40000"]
    assert whole["media_offset"] == 30.0
    v = whole["video"]
    assert v["frames"].shape[0] == 100 and v["fps"] == 10.0
    assert [frame_band(f) for f in v["frames"][:3]] == [300 % 256, 301 % 256, 302 % 256]
    assert v["timestamps"][0] == pytest.approx(0.0)
    ref = tone(10.0, 16000, start=30.0)[:, 0]
    assert whole["audio"]["array"].shape == (160000,)
    assert np.corrcoef(whole["audio"]["array"], ref)[0, 1] > 0.99
    # the corrupt clip: map-style keeps the row with None media and a warning naming it
    with pytest.warns(MediaWarning, match="--Q8wkZvDZE_150000_160000"):
        bad = rows_with_warning(ds["train"], "--Q8wkZvDZE_150000_160000")
    assert bad["audio"] is None


def rows_with_warning(ds, clip_id):
    idx = ds["id"].index(clip_id)
    return ds[idx]


def test_streaming_decodes_and_drops_corrupt(vgg_sample_dir, cache_dir, media):
    stream = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, media_dir=media,
                                 cache_dir=cache_dir, streaming=True, sampling_rate=8000, num_frames=4)
    assert isinstance(stream, datasets.IterableDataset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = list(stream)
    assert len(rows) == 4  # the corrupt clip is dropped under on_missing="skip"
    assert any("--Q8wkZvDZE" in str(w.message) for w in caught)
    for r in rows:
        assert r["audio"]["sampling_rate"] == 8000 and r["audio"]["array"].shape == (80000,)
    video_rows = [r for r in rows if r["video"] is not None]
    assert video_rows and all(r["video"]["frames"].shape[0] == 4 for r in video_rows)
    keep = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, media_dir=media,
                               cache_dir=cache_dir, streaming=True, on_missing="keep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = list(keep)
    assert len(kept) == 868 and sum(r["audio"] is None for r in kept) == 868 - 4


def test_decode_false_gives_storage_and_offset(vgg_sample_dir, cache_dir, media):
    ds = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, media_dir=media,
                             cache_dir=cache_dir, decode=False)
    r = ds[ds["id"].index("--HuBNHXu9I_30000_40000")]
    assert r["video"] == {"bytes": None, "path": os.path.join(media, "videos", "--HuBNHXu9I.mp4")}
    assert r["media_offset"] == 30.0
    # the public decode step works on data that was loaded without it
    decoded = avsets.decode(ds.select([ds["id"].index("--HuBNHXu9I_30000_40000")]), num_frames=2, size=16)
    assert decoded[0]["video"]["frames"].shape == (2, 16, 21, 3)  # shorter side to 16


def test_on_missing_error_and_keep(vgg_sample_dir, cache_dir, media):
    with pytest.raises(MissingMediaError, match="avsets fetch"):
        avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, media_dir=media, cache_dir=cache_dir,
                            on_missing="error")
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, media_dir=media, cache_dir=cache_dir,
                             on_missing="keep", decode=False)
    assert len(ds["train"]) == 868


def test_empty_split_comes_back_empty(vgg_sample_dir, cache_dir, tmp_path):
    root = tmp_path / "only_train"
    root.mkdir()
    write_audio(root / "--0PQM4-hqg_000030.flac", seconds=1.0)
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, media_dir=str(root), cache_dir=cache_dir)
    assert len(ds["train"]) == 1 and len(ds["test"]) == 0
    assert ds["test"].features == ds["train"].features
    stream = avsets.load_dataset("vggsound", split="test", data_dir=vgg_sample_dir, media_dir=str(root),
                                 cache_dir=cache_dir, streaming=True)
    assert list(stream) == []


def test_cache_sees_new_media_and_edited_metadata(vgg_meta, cache_dir, tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    write_audio(root / "--0PQM4-hqg_000030.flac", seconds=1.0)
    kw = dict(data_dir=vgg_meta, media_dir=str(root), cache_dir=cache_dir, decode=False)
    assert len(avsets.load_dataset("vggsound", split="train", **kw)) == 1
    write_audio(root / "--9O4XZOge4_000030.flac", seconds=1.0)
    assert len(avsets.load_dataset("vggsound", split="train", **kw)) == 2
    _write(vgg_meta, GOOD)
    assert len(avsets.load_dataset("vggsound", split="train", **kw)) == 1


def test_streaming_shards_workers_and_resume(vgg_sample_dir, cache_dir):
    stream = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, cache_dir=cache_dir,
                                 streaming=True, rows_per_shard=100)
    assert stream.num_shards == 9
    all_ids = [r["id"] for r in stream]
    assert len(all_ids) == 868 and len(set(all_ids)) == 868
    parts = [[r["id"] for r in split_dataset_by_node(stream, rank=i, world_size=3)] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(all_ids)
    it = iter(stream)
    head = [next(it)["id"] for _ in range(250)]
    state = stream.state_dict()
    fresh = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, cache_dir=cache_dir,
                                streaming=True, rows_per_shard=100)
    fresh.load_state_dict(state)
    assert head + [r["id"] for r in fresh] == all_ids


def test_num_proc_prepare_matches(vgg_sample_dir, tmp_path):
    one = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, cache_dir=str(tmp_path / "a"),
                              rows_per_shard=200)
    two = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, cache_dir=str(tmp_path / "b"),
                              rows_per_shard=200, num_proc=2)
    assert one["id"] == two["id"]


def test_verify_media_probes_while_preparing(vgg_sample_dir, cache_dir, media):
    """With verify_media=True a corrupt file is found at prepare time and handled by on_missing."""
    ds = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, media_dir=media,
                             cache_dir=cache_dir, verify_media=True, decode=False)
    assert "--Q8wkZvDZE_150000_160000" not in ds["id"] and len(ds) == 4
    kept = avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, media_dir=media,
                               cache_dir=cache_dir, verify_media=True, decode=False, on_missing="keep")
    row = kept[kept["id"].index("--Q8wkZvDZE_150000_160000")]
    assert row["audio"] is None and row["media_offset"] is None
    with pytest.raises(MissingMediaError):
        avsets.load_dataset("vggsound", split="train", data_dir=vgg_sample_dir, media_dir=media,
                            cache_dir=cache_dir, verify_media=True, on_missing="error")
