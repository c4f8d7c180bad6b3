"""Each notice once, and only where it helps: the "rows have no media; `avsets verify` lists them" notice
after a user's load (not inside `avsets verify`, `avsets export` or the demo, which print those counts
themselves, and not again per streaming epoch), ASCC's missing-``big_data.csv`` notice once per data folder
(not once per config).

Through the CLI where users meet the notice, and through the Python API for loads; media is made at test
time for a few rows of the bundled samples, so most rows lack media.
"""

from __future__ import annotations

import textwrap

import pytest
from ux_support import demo_media, run_cli, run_python

from avsets.ops.demo import sample_data_dir

HINT = "`avsets verify` lists them"
BIG_DATA = "big_data.csv not in data_dir"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return demo_media(tmp_path_factory.mktemp("noise"), n_train=4, n_test=2)


@pytest.mark.parametrize("args", [
    ["verify", "vggsound", "--data-dir", "{data}", "--media-dir", "{media}", "--no-probe"],
    ["verify", "vggsound", "--data-dir", "{data}", "--media-dir", "{media}"],
    ["verify", "vggsound", "--data-dir", "{data}", "--media-dir", "{media}", "--missing-csv", "{tmp}/m.csv"],
    ["export", "vggsound", "default", "--data-dir", "{data}", "--media-dir", "{media}", "--out", "{tmp}/hub"],
    ["demo", "--out", "{tmp}/demo"],
])
@pytest.mark.slow
def test_commands_that_print_the_counts_do_not_repeat_the_hint(media, tmp_path, args):
    args = [a.format(data=sample_data_dir(), media=media, tmp=tmp_path) for a in args]
    p = run_cli(*args)
    assert p.returncode in (0, 1), p.stderr[-2000:]
    assert HINT not in p.stderr and HINT not in p.stdout
    if args[0] == "demo":
        assert "Generating" not in p.stderr  # datasets' per-split bars: the summary gives these counts
        assert "map-style with media" in p.stdout
    if args[0] == "verify":
        assert "missing" in p.stdout  # the counts are there, in the table


LOADS = textwrap.dedent("""
    import logging, sys, avsets
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    kw = dict(data_dir=sys.argv[1], media_dir=sys.argv[2], cache_dir=sys.argv[3])
    mode = sys.argv[4]
    if mode == "map":
        avsets.load_dataset("vggsound", **kw)
        avsets.load_dataset("vggsound", **kw)                    # cached: nothing to say again
    elif mode == "stream-epochs":
        ds = avsets.load_dataset("vggsound", split="train", streaming=True, decode=False, **kw)
        for epoch in range(3):
            ds.set_epoch(epoch)
            sum(1 for _ in ds)
    elif mode == "keep-then-skip":
        avsets.load_dataset("vggsound", split="train", on_missing="keep", **kw)
        avsets.load_dataset("vggsound", split="train", on_missing="skip", **kw)
    print("done")
""")


@pytest.mark.parametrize(("mode", "expected"), [
    ("map", {"train": 1, "test": 1}),
    ("stream-epochs", {"train": 1, "test": 0}),
    ("keep-then-skip", {"train": 2, "test": 2}),  # two facts (kept, then dropped); prepare does both splits
])
@pytest.mark.slow
def test_a_load_says_it_once_per_fact(media, tmp_path, mode, expected):
    p = run_python(LOADS, sample_data_dir(), str(media), str(tmp_path / "cache"), mode)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if HINT in ln]
    for split, n in expected.items():
        assert sum(f"default {split}:" in ln for ln in lines) == n, (split, lines)


ASCC = textwrap.dedent("""
    import logging, sys, avsets
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for config in sys.argv[3].split(","):
        avsets.load_dataset("ascc", config, data_dir=sys.argv[1], cache_dir=sys.argv[2])
        avsets.load_dataset("ascc", config, data_dir=sys.argv[1], cache_dir=sys.argv[2], streaming=True)
    print("done")
""")


@pytest.mark.slow
@pytest.mark.parametrize("configs", ["default", "default,single_label", "single_label,default,single_label"])
def test_ascc_big_data_notice_once_per_data_dir(tmp_path, configs):
    import importlib.resources

    data = str(importlib.resources.files("avsets.ascc") / "sample")
    p = run_python(ASCC, data, str(tmp_path / "cache"), configs)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr.count(BIG_DATA) == 1, p.stderr[-3000:]


@pytest.mark.slow
def test_ascc_verify_says_it_once(tmp_path):
    import importlib.resources

    data = str(importlib.resources.files("avsets.ascc") / "sample")
    p = run_cli("verify", "ascc", "--data-dir", data)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr.count(BIG_DATA) == 1
