"""The exported card says what the copy holds: only the exported configs and columns, media tags that match
(no ``video`` for an audio-only export), and a loading example naming the real place to load from (the
folder locally, the repo id once pushed), never a ``<repo_id>`` placeholder.

Exports are made with the real CLI from the bundled VGGSound sample and synthetic media; the card is read
with ``huggingface_hub``'s parser and stock ``datasets``.
"""

from __future__ import annotations

import re

import datasets
import pytest
from hub_server import HubServer
from huggingface_hub import DatasetCard
from ux_support import cli_env, demo_media, run_cli

from avsets.ops.demo import sample_data_dir
from avsets.ops.publish.card import build_card, load_corpus_card
from avsets.ops.publish.card_body import CONFIGS_END, CONFIGS_START, config_descriptions

CONFIGS = ("default", "common", "astest")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return demo_media(tmp_path_factory.mktemp("card"), n_train=8, n_test=6)


def _export(out, media, config: str, *extra: str) -> str:
    p = run_cli("export", "vggsound", config, "--data-dir", sample_data_dir(), "--media-dir", str(media),
                "--out", str(out), *extra)
    assert p.returncode == 0, p.stderr[-2000:]
    return (out / "README.md").read_text()


def _configs_region(card: str) -> str:
    return card.split(CONFIGS_START, 1)[1].split(CONFIGS_END, 1)[0]


def _check(card: str, out, exported: dict[str, bool]) -> None:
    """``exported``: config -> whether it was exported with --video."""
    data = DatasetCard(card).data
    tags, tasks = data.tags or [], data.task_categories or []
    any_video = any(exported.values())
    assert ("video" in tags) == any_video and "audio" in tags
    assert any(str(t).startswith("video") for t in tasks) == any_video
    assert "<repo_id>" not in card
    region = _configs_region(card)
    for config in CONFIGS:
        block = re.search(rf"<!-- avsets:config:{config}:start -->(.*?)<!-- avsets:config:{config}:end -->",
                          region, re.S)
        assert (block is not None) == (config in exported), config
        if block is not None:
            assert ("| `video` |" in block.group(1)) == exported[config], config
            assert "| `audio` |" in block.group(1)
    assert "## Usage" not in card and "Options:" not in card  # avsets-loader text stays in the corpus card
    first = "default" if "default" in exported else next(iter(exported))
    for config, video in exported.items():
        assert ("video" in datasets.load_dataset_builder(str(out), config).info.features) == video
    assert f'load_dataset("{out}", "{first}", split=' in card


@pytest.mark.parametrize("steps", [
    [("default", False)],
    [("default", True)],
    [("astest", False)],
    [("default", False), ("astest", False)],
    [("common", False), ("default", True)],
    [("default", True), ("default", False)],  # re-exporting without video drops the video column and tag
])
@pytest.mark.slow
def test_exported_card_describes_what_was_exported(media, tmp_path, steps):
    out = tmp_path / "hub"
    exported: dict[str, bool] = {}
    for config, video in steps:
        extra = ["--video"] if video else []
        if config in exported:
            extra.append("--overwrite")
        card = _export(out, media, config, *extra)
        exported[config] = video
        _check(card, out, dict(exported))


@pytest.mark.slow
def test_pushed_card_names_the_repo_and_merges_configs(media, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _export(a, media, "default")
    _export(b, media, "astest", "--video")
    with HubServer() as hub:
        env = cli_env(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_x", HF_HOME=str(tmp_path / "hf"))
        for folder in (a, b):
            p = run_cli("push", "--from", str(folder), "--repo-id", "org/card", env=env)
            assert p.returncode == 0, p.stderr[-2000:]
        card = hub.files("org/card")["README.md"].decode()
    assert 'load_dataset("org/card", "default", split="train"' in card
    assert str(tmp_path) not in card and "<repo_id>" not in card
    region = _configs_region(card)
    assert "<!-- avsets:config:default:start -->" in region and "<!-- avsets:config:astest:start -->" in region
    assert "<!-- avsets:config:common:start -->" not in region
    assert "video" in (DatasetCard(card).data.tags or [])  # astest holds video
    assert "| default | train |" in card and "| astest | test |" in card


@pytest.mark.parametrize("corpus", ["vggsound", "audiosetzsl", "avset10m", "avmit", "ascc"])
def test_every_corpus_card_keeps_only_the_exported_config(corpus):
    """build_card on each shipped corpus card: one config exported, the others' descriptions left out."""
    from datasets import Audio, Features, Value

    from avsets.ops.publish.card import SplitStats

    described = config_descriptions(DatasetCard(load_corpus_card(corpus)).text)
    assert len(described) >= 2, corpus  # the corpus card describes several configs
    config, others = next(iter(described)), list(described)[1:]
    feats = Features({"id": Value("string"), "audio": Audio(), "media_offset": Value("float64")})
    card = build_card(corpus=corpus, config=config, features=feats, splits={"train": SplitStats(3, 100, 4)},
                      load_target="some/folder")
    region = _configs_region(card)
    assert f"### `{config}`" in region and described[config][1:20] in region
    for other in others:
        assert f"### `{other}`" not in region and described[other][1:30] not in region, (corpus, other)
    assert "## Usage" not in card and "## Columns" not in card and "## Media" not in card
    assert "## Licence" in card or "## License" in card
    assert "video" not in (DatasetCard(card).data.tags or [])
    assert 'load_dataset("some/folder"' in card
