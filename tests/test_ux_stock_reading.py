"""A published copy read back with stock ``datasets``, locally and from a (loopback) Hub: what works without
torch, and ``avsets.decode`` giving the same arrays as ``avsets.load_dataset`` on the source media.

The export is made with the real CLI; the reader is a fresh subprocess that imports only ``datasets`` (and
``avsets`` for the decode step), from the export folder or through the real ``huggingface_hub`` client
against ``tests/hub_server.py`` with ``HF_ENDPOINT``. The code the card prints is run as it stands.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hub_server import HubServer
from ux_support import cli_env, demo_media, run_cli, run_python

import avsets
from avsets.ops.demo import sample_data_dir

TOKEN = "hf_uxStockReadingTokenNeverShown0"

READ = r"""
import importlib.util, json, sys
import numpy as np, datasets, avsets
datasets.config.USE_PARQUET_EXPORT = False
target, config, streaming, opts = sys.argv[1], sys.argv[2], sys.argv[3] == "1", json.loads(sys.argv[4])
out = {}
ds = datasets.load_dataset(target, config, split="train", streaming=streaming, cache_dir=sys.argv[5])
if not streaming:
    try:
        ds[0]
        out["stock_row"] = "decoded"
    except ImportError as e:
        out["stock_row"] = "ImportError: " + str(e)
out["torchcodec"] = importlib.util.find_spec("torchcodec") is not None
rows = {}
for r in avsets.decode(ds, **opts):
    a, v = r["audio"], r.get("video")
    rows[r["id"]] = {"audio": [a["array"].shape, a["sampling_rate"], float(np.abs(a["array"]).sum())],
                     "video": None if v is None else [list(v["frames"].shape), float(v["frames"].mean())]}
out["rows"] = rows
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("stock")
    media = demo_media(root)
    outs = {}
    for name, extra in (("audio", []), ("video", ["--video"])):
        out = root / f"hub-{name}"
        p = run_cli("export", "vggsound", "default", "--data-dir", sample_data_dir(), "--media-dir", str(media),
                    "--out", str(out), *extra)
        assert p.returncode == 0, p.stderr[-2000:]
        outs[name] = out
    return root, media, outs


def _reference(root, media, opts: dict) -> dict:
    """What avsets.load_dataset decodes from the source media, per clip id (the ground truth)."""
    ds = avsets.load_dataset("vggsound", "default", split="train", data_dir=sample_data_dir(), media_dir=str(media),
                             cache_dir=str(root / "ref-cache"), **opts)
    out = {}
    for r in ds:
        a, v = r["audio"], r["video"]
        out[r["id"]] = {"audio": [list(a["array"].shape), a["sampling_rate"], float(np.abs(a["array"]).sum())],
                        "video": None if v is None else [list(v["frames"].shape), float(v["frames"].mean())]}
    return out


def _read(target: str, streaming: bool, opts: dict, tmp_path, env=None) -> dict:
    p = run_python(READ, target, "default", "1" if streaming else "0", json.dumps(opts), str(tmp_path / "c"),
                   env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _check(got: dict, ref: dict, with_video: bool) -> None:
    assert set(got["rows"]) == set(ref)
    for clip, want in ref.items():
        a = got["rows"][clip]["audio"]
        assert list(a[0]) == want["audio"][0] and a[1] == want["audio"][1], clip
        assert a[2] == pytest.approx(want["audio"][2], rel=2e-3), clip
        v = got["rows"][clip]["video"]
        if with_video and want["video"] is not None:
            assert v[0] == want["video"][0], clip
            assert v[1] == pytest.approx(want["video"][1], abs=3.0), clip  # re-encoded H.264
        else:
            assert v is None, clip


CASES = [  # (export, streaming, decode options)
    ("audio", False, {}),
    ("audio", True, {}),
    ("audio", False, {"sampling_rate": 8000}),
    ("video", False, {"num_frames": 4}),
    ("video", True, {"num_frames": 4, "size": 32}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "streaming", "opts"), CASES)
def test_local_copy_stock_load_then_avsets_decode(exported, tmp_path, kind, streaming, opts):
    root, media, outs = exported
    got = _read(str(outs[kind]), streaming, opts, tmp_path)
    if not streaming and not got["torchcodec"]:
        assert got["stock_row"].startswith("ImportError") and "torchcodec" in got["stock_row"]
    _check(got, _reference(root, media, opts), kind == "video")


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "streaming", "opts"), [CASES[0], CASES[1], CASES[4]])
def test_hub_copy_stock_load_then_avsets_decode(exported, tmp_path, kind, streaming, opts):
    root, media, outs = exported
    with HubServer() as hub:
        env = cli_env(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf"))
        p = run_cli("push", "--from", str(outs[kind]), "--repo-id", "org/stock", env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        card = hub.files("org/stock")["README.md"].decode()
        assert 'load_dataset("org/stock", "default"' in card
        got = _read("org/stock", streaming, opts, tmp_path, env=env)
    _check(got, _reference(root, media, opts), kind == "video")


def _code_blocks(card: str) -> list[str]:
    loading = card.split("<!-- avsets:loading:start -->", 1)[1].split("<!-- avsets:loading:end -->", 1)[0]
    return re.findall(r"```python\n(.*?)```", loading, re.S)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["audio", "video"])
def test_card_loading_example_runs_as_printed(exported, tmp_path, kind):
    """The two snippets of the local card's Loading section, run unchanged one after the other."""
    _, _, outs = exported
    card = (outs[kind] / "README.md").read_text()
    load, no_torch = _code_blocks(card)
    assert f'load_dataset("{outs[kind]}", "default", split="train", streaming=True)' in load
    code = load + "\n" + no_torch + "\nr = max(ds, key=lambda r: r.get('video') is not None)\n" \
        "print(type(r['audio']['array']).__name__, r['audio']['sampling_rate'], " \
        "r.get('video') and r['video']['frames'].shape)\n"
    p = run_python(code)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout.strip().splitlines()[-1]
    assert out.startswith("ndarray 16000")
    if kind == "video":
        assert re.search(r"\(\d+, 48, 64, 3\)$", out), out
    else:
        assert out.endswith("None"), out
