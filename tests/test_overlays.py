"""Overlays joined by id (``overlays=``) and ``drop=`` on their flags: VGGSounder on the real VGGSound sample
(a real excerpt of VGGSounder's CSV), AudioSet QA on the real ASCC sample, AVSET-10M's own flag."""

from __future__ import annotations

import csv
import importlib.resources
import os
import shutil
from pathlib import Path

import pytest
from helpers import writable_sample
from test_avset10m import dump, make_dir, viewer_records

import avsets
from avsets.build.filters import cached_counts
from avsets.core.errors import AvsetsError

DATA = Path(__file__).parent / "data"
VGGSOUNDER = DATA / "vggsounder" / "vggsounder+background-music.csv"


@pytest.fixture(scope="module")
def vgg_with_overlay(tmp_path_factory) -> str:
    meta = writable_sample("vggsound", tmp_path_factory.mktemp("v") / "meta")
    shutil.copy(VGGSOUNDER, meta / VGGSOUNDER.name)
    return str(meta)


def vggsounder_truth() -> dict[str, dict]:
    """VGGSounder's rows grouped by clip, read with the csv module (independent of the overlay code)."""
    out: dict[str, dict] = {}
    with open(VGGSOUNDER, newline="") as f:
        for r in csv.DictReader(f):
            d = out.setdefault(r["video_id"], {"labels": [], "modality": [], "static_image": r["static_image"] == "True",
                                                "voice_over": r["voice_over"] == "True",
                                                "background_music": r["background_music"] == "True"})
            d["labels"].append(r["label"])
            d["modality"].append(r["modality"])
    return out


def test_vggsounder_joins_tags_and_meta_labels(vgg_with_overlay, tmp_path):
    truth = vggsounder_truth()
    ds = avsets.load_dataset("vggsound", data_dir=vgg_with_overlay, cache_dir=tmp_path / "c", overlays="vggsounder")
    covered = 0
    for split in ("train", "test"):
        for r in ds[split]:
            key = f"{r['youtube_id']}_{int(r['start']):06d}"
            t = truth.get(key)
            if t is None:
                assert r["vggsounder_labels"] is None and r["static_image"] is None
                continue
            covered += 1
            assert split == "test"
            assert r["vggsounder_labels"] == t["labels"] and r["vggsounder_modality"] == t["modality"]
            assert (r["static_image"], r["voice_over"], r["background_music"]) == (
                t["static_image"], t["voice_over"], t["background_music"])
    assert covered == 99  # of the sample's 102 test clips, VGGSounder annotates 99
    first = next(r for r in ds["test"] if r["youtube_id"] == "---g-f_I2yQ")
    assert first["vggsounder_labels"][:4] == ["male singing", "people battle cry", "people crowd", "people marching"]
    assert first["vggsounder_modality"][:4] == ["A", "A", "AV", "AV"] and first["background_music"] is True


def test_drop_on_overlay_flags_counts_and_streams_the_same(vgg_with_overlay, tmp_path):
    truth = vggsounder_truth()
    static = {k for k, v in truth.items() if v["static_image"]}
    voice = {k for k, v in truth.items() if v["voice_over"] and not v["static_image"]}
    assert static and voice
    kw = dict(data_dir=vgg_with_overlay, overlays=["vggsounder"], drop=["static_image", "voice_over"], split="test")
    ds = avsets.load_dataset("vggsound", cache_dir=tmp_path / "c", **kw)
    keys = {f"{r['youtube_id']}_{int(r['start']):06d}" for r in ds}
    assert not keys & (static | voice) and len(ds) == 102 - len(static) - len(voice)
    counts = cached_counts(avsets.load_dataset_builder("vggsound", cache_dir=tmp_path / "c", on_missing="skip",
                                                       **{k: v for k, v in kw.items() if k != "split"}).cache_dir)
    assert dict(counts["test"].drop) == {"static_image": len(static), "voice_over": len(voice)}
    streamed = list(avsets.load_dataset("vggsound", streaming=True, **kw))
    assert sorted(r["id"] for r in streamed) == sorted(ds["id"])


def test_missing_overlay_file_offline_says_which_file(vgg_sample_dir, tmp_path):
    meta = writable_sample("vggsound", tmp_path / "meta")
    with pytest.raises(AvsetsError, match=r"vggsounder\+background-music.csv"):
        avsets.load_dataset("vggsound", data_dir=str(meta), cache_dir=tmp_path / "c", overlays="vggsounder")


def test_overlay_names_are_checked(vgg_sample_dir):
    with pytest.raises(AvsetsError, match="unknown overlay 'vggsoundr'; known: vggsounder, audioset_qa"):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, overlays="vggsoundr")
    with pytest.raises(AvsetsError, match="applies to audiosetzsl, avset10m, ascc, not vggsound"):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, overlays="audioset_qa")
    with pytest.raises(AvsetsError, match=r"overlay flags need overlays="):
        avsets.load_dataset_builder("vggsound", data_dir=vgg_sample_dir, drop="static_image")


@pytest.mark.slow
def test_audioset_qa_on_ascc(tmp_path):
    meta = writable_sample("ascc", tmp_path / "meta")
    for name in ("qa_true_counts.csv", "rerated_video_ids.txt"):
        shutil.copy(DATA / "audioset_qa" / name, meta / name)
    ds = avsets.load_dataset("ascc", split="train", data_dir=str(meta), cache_dir=tmp_path / "c",
                             overlays="audioset_qa")
    names = ds.features["labels"].feature.names
    shares = {"Speech": 0.98, "Male speech, man speaking": 0.91, "Knock": 0.2, "Inside, small room": 0.75, "Music": 0.95,
              "Vehicle": 0.5}
    rows = {r["id"]: r for r in ds}
    first = rows["-0O3e95y4gE"]  # Knock (12/60) and Inside, small room (30/40): the lowest share is Knock's
    assert [names[i] for i in first["labels"]] == ["Knock", "Inside, small room"]
    assert first["label_quality"] == pytest.approx(0.2) and first["rerated"] is True
    checked = 0
    for r in ds:
        rated = [shares[names[i]] for i in r["labels"] if names[i] in shares]
        if rated:
            assert r["label_quality"] == pytest.approx(min(rated))
            checked += 1
        else:
            assert r["label_quality"] is None
    assert checked > 100
    kept = avsets.load_dataset("ascc", split="train", data_dir=str(meta), cache_dir=tmp_path / "c",
                               overlays="audioset_qa", drop="rerated")
    assert len(kept) == len(ds) - 1 and "-0O3e95y4gE" not in kept["id"]


def test_avset10m_sound_separation_is_a_flag(tmp_path):
    root = make_dir(tmp_path / "d", [dump(viewer_records(), "array")])
    kw = dict(split="train", data_dir=root, cache_dir=os.path.join(root, "..", "cache"))
    full = avsets.load_dataset("avset10m", "700k", **kw)
    flagged = {r["id"] for r in full if r["sound_separation"]}
    assert flagged and len(flagged) < len(full)
    kept = avsets.load_dataset("avset10m", "700k", drop=["sound_separation"], **kw)
    assert sorted(kept["id"]) == sorted(set(full["id"]) - flagged)


def test_sample_package_data_is_untouched():
    """The overlay fixtures live in tests/data; the package's VGGSound sample holds no overlay file."""
    sample = importlib.resources.files("avsets.vggsound") / "sample"
    assert not (sample / VGGSOUNDER.name).is_file()


def test_audioset_qa_on_avset10m_labels(tmp_path):
    root = make_dir(tmp_path / "d", [dump(viewer_records(), "array")])
    shutil.copy(DATA / "audioset_qa" / "qa_true_counts.csv", os.path.join(root, "qa_true_counts.csv"))
    ds = avsets.load_dataset("avset10m", "700k", split="train", data_dir=root, overlays="audioset_qa",
                             cache_dir=os.path.join(root, "..", "cache"))
    names = ds.features["labels"].feature.names
    shares = {"Speech": 0.98, "Male speech, man speaking": 0.91, "Music": 0.95, "Vehicle": 0.5}
    seen = 0
    for r in ds:
        rated = [shares[names[i]] for i in r["labels"] if names[i] in shares]
        assert r["label_quality"] == (pytest.approx(min(rated)) if rated else None)
        assert r["rerated"] is None  # rerated_video_ids.txt is optional and absent here
        seen += bool(rated)
    assert seen >= 5
