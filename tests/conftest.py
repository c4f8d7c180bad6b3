"""Shared fixtures: the bundled real VGGSound sample, a private cache, and media made at test time."""

from __future__ import annotations

import importlib.resources
import os
import shutil

import pytest

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def vgg_sample_dir() -> str:
    """The real VGGSound metadata sample shipped in the package (see vggsound/sample/PROVENANCE.md)."""
    return str(importlib.resources.files("avsets.vggsound") / "sample")


@pytest.fixture
def vgg_meta(tmp_path, vgg_sample_dir) -> str:
    """A writable copy of the sample, for tests that edit metadata."""
    dst = tmp_path / "meta"
    shutil.copytree(vgg_sample_dir, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return str(dst)


@pytest.fixture
def cache_dir(tmp_path) -> str:
    return str(tmp_path / "cache")
