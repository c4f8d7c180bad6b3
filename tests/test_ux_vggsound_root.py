"""VGGSound's ``data_dir`` is the upstream repository's ``data/`` folder or the repository's root (as for
AVMIT and AudioSetZSL): both give the same rows for every config; a folder holding neither is a set-up
error naming both choices.

Layouts are built from the bundled real sample (``vggsound.csv``, ``stat.csv``, ``Common.txt``,
``AStest.csv``) in the shapes a user has on disk after a clone.
"""

from __future__ import annotations

import shutil

import pytest
from ux_support import run_cli

import avsets
from avsets.ops.demo import sample_data_dir

FILES = ("vggsound.csv", "stat.csv", "Common.txt", "AStest.csv")


def _layout(root, kind: str):
    """A folder laid out as ``kind``; returns what to pass as data_dir."""
    root.mkdir()
    if kind == "data folder":
        dest = {f: root for f in FILES}
    elif kind == "repo root":
        dest = {f: root / "data" for f in FILES}
        (root / "README.md").write_text("# VGGSound\n")
        (root / "models").mkdir()
    elif kind == "repo root, stat.csv copied up":  # a file at the top wins, the rest come from data/
        dest = {f: root / "data" for f in FILES} | {"stat.csv": root}
    else:
        raise ValueError(kind)
    for name, folder in dest.items():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{sample_data_dir()}/{name}", folder / name)
    return root


LAYOUTS = ["data folder", "repo root", "repo root, stat.csv copied up"]


@pytest.mark.parametrize("config", ["default", "common", "astest"])
@pytest.mark.parametrize("kind", LAYOUTS)
def test_every_layout_loads_the_same_rows(tmp_path, kind, config):
    data_dir = _layout(tmp_path / "vgg", kind)
    got = avsets.load_dataset("vggsound", config, data_dir=str(data_dir), cache_dir=str(tmp_path / "c"))
    want = avsets.load_dataset("vggsound", config, data_dir=sample_data_dir(), cache_dir=str(tmp_path / "c0"))
    assert {s: d["id"] for s, d in got.items()} == {s: d["id"] for s, d in want.items()}
    assert {s: d["label"] for s, d in got.items()} == {s: d["label"] for s, d in want.items()}


@pytest.mark.slow
@pytest.mark.parametrize("kind", LAYOUTS)
def test_cli_accepts_the_repo_root(tmp_path, kind):
    p = run_cli("verify", "vggsound", "--data-dir", str(_layout(tmp_path / "vgg", kind)))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "train   868" in p.stdout and "test    102" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("present", [(), ("README.md",), ("data/Common.txt",), ("data/stat.csv",)])
def test_neither_layout_is_a_setup_error(tmp_path, present):
    root = tmp_path / "vgg"
    root.mkdir()
    for rel in present:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith("data/"):
            shutil.copy(f"{sample_data_dir()}/{rel[5:]}", root / rel)
        else:
            (root / rel).write_text("x")
    p = run_cli("verify", "vggsound", "--data-dir", str(root))
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert "data/ folder or its root" in p.stderr and "not found in data_dir" in p.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/{name}", "http://127.0.0.1:9/missing/{name}"])
def test_unreachable_upstream_is_a_manual_download_error_naming_the_file(tmp_path, monkeypatch, url):
    """No data_dir and no network: our error names the file, the URL and what to do (not datasets' errno 2)."""
    import avsets.vggsound.vggsound as vbuilder
    from avsets.core.errors import ManualDownloadRequired

    monkeypatch.setattr(vbuilder, "URL", url)  # the builder module's own binding of the upstream URL
    with pytest.raises(ManualDownloadRequired) as err:
        avsets.load_dataset("vggsound", split="train", cache_dir=str(tmp_path))
    text = str(err.value)
    assert "could not download" in text and "127.0.0.1:9" in text and "data_dir" in text


def test_unreachable_upstream_when_streaming_is_the_same_error(tmp_path, monkeypatch):
    """Streaming hands metadata URLs to the readers; the failure must still be ours, named, up front."""
    import avsets.vggsound.vggsound as vbuilder
    from avsets.core.errors import ManualDownloadRequired

    monkeypatch.setattr(vbuilder, "URL", "http://127.0.0.1:9/{name}")
    with pytest.raises(ManualDownloadRequired, match="could not download 'stat.csv'"):
        next(iter(avsets.load_dataset("vggsound", split="train", streaming=True, cache_dir=str(tmp_path))))
