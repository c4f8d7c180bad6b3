"""``avsets export --quality --drop --exclude``: the measure columns are published, the card states the
filters, their counts per split, the leaks, the thresholds and the manifest hash; stock ``datasets`` loads
the copy back with the quality columns."""

from __future__ import annotations

import datasets
import pytest
from source_fixtures import make_flac
from test_filters_load import write_dups, write_quality

import avsets
from avsets.cli.app import main
from avsets.metadata.manifest import manifest_hash
from avsets.ops.publish.card import merge_cards


@pytest.fixture(scope="module")
def exported(vgg_sample_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    ds = avsets.load_dataset("vggsound", data_dir=vgg_sample_dir, cache_dir=root / "c0")
    train, test = list(ds["train"]["id"]), list(ds["test"]["id"])
    media = root / "media"
    media.mkdir()
    with_media = train[:10] + test[:4]
    for k, clip in enumerate(with_media):
        make_flac(media / f"{clip}.flac", 0.3, seed=k)
    q = write_quality(root / "q.parquet", train[:8] + test[:4], silent={train[0], test[0]}, still={train[1]},
                      threshold=-55.0)
    dups = write_dups(root / "dups.csv", [("train", train[2], "eval", "AAAAAAAAAAA_0_10000"),
                                          ("test", test[1], "eval", "BBBBBBBBBBB_0_10000")])
    out = root / "hub"
    code = main(["export", "vggsound", "--data-dir", vgg_sample_dir, "--media-dir", str(media), "--out", str(out),
                 "--quality", q, "--drop", "silent,still", "--exclude", dups, "-q"])
    assert code == 0
    kept = {"train": sorted(set(train[:10]) - {train[0], train[1], train[2]}),
            "test": sorted(set(test[:4]) - {test[0], test[1]})}
    return out, kept, root


def test_card_states_filters_counts_leaks_thresholds_and_hash(exported):
    out, kept, _ = exported
    card = (out / "README.md").read_text()
    assert "## Filters" in card
    assert "`exclude` (4 ids from `dups.csv`), then `drop` (`silent`, `still`), then `on_missing`" in card
    assert "| split | rows in metadata | removed by exclude | removed by drop `silent` | removed by drop `still` |" in card
    assert f"| train | 868 | 1 | 1 | 1 | 7 | `{manifest_hash(kept['train'])}` |" in card
    assert f"| test | 102 | 1 | 1 | 0 | 2 | `{manifest_hash(kept['test'])}` |" in card
    assert "- train: 1 leaking into audioset/eval" in card and "- test: 1 leaking into audioset/eval" in card
    assert "- `thresholds.silence_dbfs`: -55.0" in card and "- `thresholds.still_fraction`: 0.9" in card
    assert "Quality measures and flags come from `q.parquet`" in card
    # the availability table counts rows before the filters
    assert "| default | train | 868 | 7 |" in card


def test_stock_datasets_loads_the_quality_columns(exported, tmp_path):
    out, kept, _ = exported
    ds = datasets.load_dataset(str(out), "default", cache_dir=str(tmp_path / "c")).cast_column(
        "audio", datasets.Audio(decode=False))
    assert sorted(ds["train"]["id"]) == kept["train"] and sorted(ds["test"]["id"]) == kept["test"]
    for col in ("rms_dbfs", "silent_fraction", "still_fraction", "silent", "still", "quality_missing"):
        assert col in ds["train"].column_names
    assert ds["train"].features["silent"] == datasets.Value("bool")
    rows = {r["id"]: r for r in ds["train"]}
    assert not any(r["silent"] or r["still"] for r in rows.values())
    # train[8], train[9] have media but no quality result: kept, and the card's reader can tell
    assert sum(r["quality_missing"] for r in rows.values()) == 2


def test_merging_cards_keeps_each_configs_filters(exported):
    out, _, _ = exported
    card = (out / "README.md").read_text()
    other = card.replace("avsets:filter:default:", "avsets:filter:other:").replace("### default", "### other")
    merged = merge_cards(other, card)
    assert merged.count("## Filters") == 1 and "### default" in merged
