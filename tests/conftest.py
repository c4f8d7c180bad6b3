"""Shared fixtures: the bundled real VGGSound sample, a private cache, and media made at test time."""

from __future__ import annotations

import importlib.resources
import os
import signal
import sys

import pytest
from fetch_server import SHARED_MEDIA_ENV
from helpers import writable_sample

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# A shell starts a background job (``pytest ... &``, nohup, a script loop) with SIGINT ignored, and every
# child inherits that: the CLI runs the Ctrl-C tests send SIGINT to then never see it and hang until the
# test's timeout (5 of 6 cases of test_hardening_interrupt failed so). A handled SIGINT here is reset to the
# default in each child at exec, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _fetch_media_made_once_per_run(tmp_path_factory) -> None:
    """The loopback mirror's synthetic videos (``fetch_server.synthetic_media``, about 8 s of CPU) go in
    one folder of this run: under pytest-xdist the workers' base temp folders share a parent, so the second
    worker finds them made (or waits for them) instead of encoding its own copy."""
    base = tmp_path_factory.getbasetemp()
    run_root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    os.environ.setdefault(SHARED_MEDIA_ENV, str(run_root / "fetch-media"))


@pytest.fixture(scope="session")
def vgg_sample_dir() -> str:
    """The real VGGSound metadata sample shipped in the package (see vggsound/sample/PROVENANCE.md)."""
    return str(importlib.resources.files("avsets.vggsound") / "sample")


@pytest.fixture
def vgg_meta(tmp_path) -> str:
    """A writable copy of the sample, for tests that edit metadata."""
    return str(writable_sample("vggsound", tmp_path / "meta"))


@pytest.fixture
def cache_dir(tmp_path) -> str:
    return str(tmp_path / "cache")


@pytest.fixture(autouse=True)
def _fresh_notices():
    """Each test starts with no notice said yet (``avsets.core.notices`` says each one once per process)."""
    from avsets.core.notices import forget

    forget()
    yield


@pytest.fixture(autouse=True)
def _no_ray_left_running():
    """Shut down a Ray instance that a test started in this process and left running.

    ``quality``'s Ray engine calls ``ray.init`` and never ``ray.shutdown`` (right for a CLI process, which
    exits), so in the one long-lived pytest process its raylet, dashboard and idle workers went on taking
    CPU from every later test (seen: 8 processes still up 9 minutes later). A Ray the test found running is
    left alone. Ray is never imported here: it takes seconds, and most tests never touch it."""
    ray = sys.modules.get("ray")
    running_before = bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())
    yield
    ray = sys.modules.get("ray")
    if not running_before and ray is not None and getattr(ray, "is_initialized", lambda: False)():
        ray.shutdown()
