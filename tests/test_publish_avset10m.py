"""AVSET-10M end to end: 700k metadata (viewer-shaped records) -> export -> stock `datasets`.

Checks the ``Sequence(ClassLabel)`` label column (527 AudioSet names) survives the round trip, audio is
bit-exact, and a push to the loopback Hub loads back with stock ``datasets`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest
from datasets import Audio
from hub_server import HubServer

import avsets
from avsets.media.decoding import decode_audio
from avsets.media.synth import write_audio
from avsets.ops.publish.export import export
from avsets.ops.publish.push import push_folder

ROWS = [
    ("---1_cCGK4M", "0.000", "10.000", "0.4426622688770294", 0, "/m/01g50p,/m/0284vy3,/m/06d_3,/m/07jdr,/m/07rwm0c"),
    ("---2_BBVHAA", "30.000", "40.000", "0.29814767837524414", 0, "/m/09x0r"),
    ("---g9OGAhwc", "30.000", "40.000", "0.27037277817726135", 1, "/m/04rlf,/m/0c1dj"),
    ("--0PQM4-hqg", "30.000", "40.000", "0.31", 0, "/m/0838f"),
    ("--0w1YA1Hm4", "30.000", "40.000", "0.25", 1, "/m/04rlf"),
    ("--5OkAjCI7g", "40.000", "50.000", "0.5", 0, "/m/01j3sz,/m/09x0r"),
]


@pytest.fixture(scope="module")
def avset(tmp_path_factory) -> dict:
    """One 700K part file (records as the viewer shows them) and trimmed FLACs for all rows but one."""
    root = tmp_path_factory.mktemp("avset10m")
    meta = root / "meta" / "AVSET-700K"
    meta.mkdir(parents=True)
    keys = ("Youtube ID", "Start Time", "End Time", "AVC", "Flag (Sound Separation)", "Label")
    rows = [dict(zip(keys, r, strict=True)) for r in ROWS]
    for r in rows:
        r["Flag (Sound Separation)"] = int(r["Flag (Sound Separation)"])
    (meta / "unbalanced_train_segments_part00.json").write_text(json.dumps(rows))
    media = root / "media"
    media.mkdir()
    for r in rows[:-1]:
        s, e = float(r["Start Time"]), float(r["End Time"])
        write_audio(media / f"{r['Youtube ID']}_{int(s * 1000)}_{int(e * 1000)}.flac", seconds=e - s, start=s)
    return {"data_dir": str(root / "meta"), "media": str(media), "cache": str(root / "cache"), "n": len(rows)}


@pytest.mark.slow
def test_export_700k_matches_avsets_load(avset, tmp_path):
    out = tmp_path / "hub"
    res = export("avset10m", "700k", data_dir=avset["data_dir"], media_dir=avset["media"], out=str(out),
                 cache_dir=avset["cache"])
    assert res.splits["train"].metadata_rows == avset["n"] and res.splits["train"].num_rows == avset["n"] - 1
    src = avsets.load_dataset("avset10m", "700k", split="train", data_dir=avset["data_dir"],
                              media_dir=avset["media"], cache_dir=avset["cache"])
    stock = datasets.load_dataset(str(out), "700k", split="train", cache_dir=str(tmp_path / "c"))
    names = stock.features["labels"].feature.names
    assert len(names) == 527 and names == src.features["labels"].feature.names
    stock = stock.cast_column("audio", Audio(decode=False))
    assert stock["id"] == src["id"] and stock["labels"] == src["labels"]
    np.testing.assert_allclose(stock["avc"], src["avc"])
    for w, g in zip(src, stock, strict=True):
        arr, _ = decode_audio(path=g["audio"]["path"], data=g["audio"]["bytes"])
        np.testing.assert_array_equal(arr, w["audio"]["array"])
    card = (out / "README.md").read_text()
    assert "config_name: 700k" in card and f"| 700k | train | {avset['n']} | {avset['n'] - 1} |" in card


LOAD = textwrap.dedent("""
    import json, sys, datasets
    from datasets import Audio
    datasets.config.USE_PARQUET_EXPORT = False
    ds = datasets.load_dataset("org/avset10m", "700k", split="train", cache_dir=sys.argv[1])
    ids = datasets.load_dataset("org/avset10m", "700k", split="train", streaming=True).decode(False)
    print(json.dumps({"n_names": len(ds.features["labels"].feature.names),
                      "rows": [[r["id"], r["labels"]] for r in ds.cast_column("audio", Audio(decode=False))],
                      "streamed": [r["id"] for r in ids]}))
""")


@pytest.mark.slow
def test_push_700k_and_stock_load_from_hub(avset, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    out = tmp_path / "hub"
    export("avset10m", "700k", data_dir=avset["data_dir"], media_dir=avset["media"], out=str(out),
           cache_dir=avset["cache"], max_shard_size="300KB")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # conftest makes the suite offline; this is loopback
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_XET", True)
    with HubServer() as hub:
        res = push_folder(out, "org/avset10m", token="hf_avsetTestToken", endpoint=hub.url)
        assert res.commits == 2
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_avsetTestToken",
                   HF_HOME=str(tmp_path / "hf"))
        p = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "cache")], capture_output=True, text=True,
                           env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    src = avsets.load_dataset("avset10m", "700k", split="train", data_dir=avset["data_dir"],
                              media_dir=avset["media"], cache_dir=avset["cache"], decode=False)
    assert got["n_names"] == 527
    assert got["rows"] == [[r["id"], r["labels"]] for r in src]
    assert got["streamed"] == src["id"]
