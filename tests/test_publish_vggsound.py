"""VGGSound end to end: the real bundled metadata sample + synthetic media -> export -> stock `datasets`.

What `avsets.load_dataset` decodes from the source must be what stock `datasets` returns from the export:
same rows, same 310 ClassLabel names, same audio samples (bit-exact for 16-bit FLAC/WAV sources; within
24-bit quantisation for AAC decoded from whole videos), and with ``--video`` the same frames.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import datasets
import numpy as np
import pytest
from datasets import Audio, Video
from hub_server import HubServer
from test_publish_push import LOAD

import avsets
from avsets.media.decoding import decode_audio
from avsets.media.synth import frame_band
from avsets.ops.demo import make_demo_media, sample_data_dir
from avsets.ops.publish.export import export

TOKEN = "hf_vggsoundSecretTokenXYZ"


@pytest.fixture(scope="module")
def vgg(tmp_path_factory) -> dict:
    """The sample with media for 12 train and 3 test rows: 16-bit FLAC, 16-bit WAV and whole mp4 videos."""
    root = tmp_path_factory.mktemp("vgg")
    data_dir, cache = sample_data_dir(), str(root / "cache")
    meta = avsets.load_dataset("vggsound", data_dir=data_dir, cache_dir=cache)
    rows = [r for r in meta["train"] if r["start"] <= 30][:12] + [meta["test"][i] for i in range(3)]
    make_demo_media(str(root / "media"), rows)
    return {"root": root, "data_dir": data_dir, "media": str(root / "media"), "cache": cache,
            "meta_rows": {s: len(d) for s, d in meta.items()}}


def _source(vgg: dict, **kw) -> datasets.DatasetDict:
    return avsets.load_dataset("vggsound", "default", data_dir=vgg["data_dir"], media_dir=vgg["media"],
                               cache_dir=vgg["cache"], **kw)


@pytest.mark.slow
def test_export_matches_avsets_load(vgg, tmp_path):
    out = tmp_path / "hub"
    res = export("vggsound", "default", data_dir=vgg["data_dir"], media_dir=vgg["media"], out=str(out),
                 cache_dir=vgg["cache"])
    assert {s: r.metadata_rows for s, r in res.splits.items()} == vgg["meta_rows"]
    assert res.splits["train"].num_rows == 12 and res.splits["test"].num_rows == 3
    card = (out / "README.md").read_text()
    assert f"| default | train | {vgg['meta_rows']['train']} | 12 |" in card

    src = _source(vgg)
    stock = datasets.load_dataset(str(out), "default", cache_dir=str(tmp_path / "c"))
    assert stock["train"].features["label"].names == src["train"].features["label"].names
    assert len(stock["train"].features["label"].names) == 310
    for split in ("train", "test"):
        want = src[split]
        got = stock[split].cast_column("audio", Audio(decode=False))
        assert got["id"] == want["id"] and got["label"] == want["label"]
        assert got["category"] == want["category"]
        for w, g in zip(want, got, strict=True):
            arr, sr = decode_audio(path=g["audio"]["path"], data=g["audio"]["bytes"])
            assert sr == w["audio"]["sampling_rate"]
            if w["audio"]["path"].endswith(".mp4"):  # AAC -> float -> 24-bit FLAC
                np.testing.assert_allclose(arr, w["audio"]["array"], atol=2.0**-22)
            else:
                np.testing.assert_array_equal(arr, w["audio"]["array"])

    streamed = list(datasets.load_dataset(str(out), "default", split="train", streaming=True).decode(False))
    assert [r["id"] for r in streamed] == src["train"]["id"]


@pytest.mark.slow
def test_export_with_video_matches_frames(vgg, tmp_path):
    out = tmp_path / "hub"
    export("vggsound", "default", data_dir=vgg["data_dir"], media_dir=vgg["media"], out=str(out),
           cache_dir=vgg["cache"], video=True, split="train")
    src = _source(vgg, split="train")
    stock = datasets.load_dataset(str(out), "default", split="train", cache_dir=str(tmp_path / "c"))
    assert stock.features["video"] == Video()
    stock = stock.cast_column("video", Video(decode=False)).cast_column("audio", Audio(decode=False))
    n_video = 0
    for w, g in zip(src, stock, strict=True):
        if w["video"] is None:
            assert g["video"] is None
            continue
        n_video += 1
        with av.open(io.BytesIO(g["video"]["bytes"])) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == len(w["video"]["frames"])
        assert [frame_band(f) for f in frames] == [frame_band(f) for f in w["video"]["frames"]]
    assert n_video >= 3


def _env(hub: HubServer, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(tmp / "hf_home"),
               HF_DATASETS_CACHE=str(tmp / "ds_cache"), HF_HUB_DISABLE_TELEMETRY="1")
    return env


@pytest.mark.slow
def test_cli_export_and_push_then_stock_load_from_hub(vgg, tmp_path):
    media_b = tmp_path / "more_media"
    media_b.mkdir()
    with HubServer() as hub:
        env = _env(hub, tmp_path)
        args = ["vggsound", "default", "--data-dir", vgg["data_dir"], "--media-dir", vgg["media"],
                "--media-dir", str(media_b), "--max-shard-size", "200KB"]
        p = subprocess.run([sys.executable, "-m", "avsets.cli.app", "export", *args, "--out", str(tmp_path / "exp")],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        assert "train: 12 of" in p.stdout
        p = subprocess.run([sys.executable, "-m", "avsets.cli.app", "-v", "push", *args, "--repo-id", "org/vggsound"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        assert TOKEN not in p.stdout + p.stderr
        local = sorted(x.relative_to(tmp_path / "exp").as_posix() for x in (tmp_path / "exp/data").rglob("*"))
        assert sorted(f for f in hub.files("org/vggsound") if f.startswith("data/")) == [
            f for f in local if f.endswith(".parquet")]
        p = subprocess.run([sys.executable, "-c", LOAD, json.dumps([["org/vggsound", "default"]]),
                            str(tmp_path / "cache")], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])["default"]
    src = _source(vgg)
    assert [r[0] for r in got["splits"]["train"]] == src["train"]["id"]
    assert got["label_names"] == src["train"].features["label"].names
    assert got["num_shards"] > 1
