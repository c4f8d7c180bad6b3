"""Pushing anywhere but the public Hub: ``--endpoint`` and ``HF_ENDPOINT`` reach the Hub they name, a bad
``--endpoint`` is a usage error, and ``push --dry-run`` needs no network at all.

Through the CLI (a subprocess, as users run it), the real ``huggingface_hub`` client, and the loopback Hub
``tests/hub_server.py``; an unreachable endpoint is a closed local port or a name that cannot resolve.
"""

from __future__ import annotations

import socket

import pytest
from hub_server import HubServer
from test_publish_support import as_dict, corpus_rows, make_dataset
from ux_support import cli_env, run_cli

from avsets.ops.publish.export import export_dataset

TOKEN = "hf_uxEndpointTokenNeverShown01234"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("endpoint")
    out = root / "hub"
    export_dataset(as_dict(train=make_dataset(corpus_rows(root / "media", 4))), "vggsound", "default", str(out))
    return out


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _env(tmp_path, **extra: str) -> dict[str, str]:
    return cli_env(HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf"), **extra)


def _files(out) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".avsets" not in p.parts)


UNREACHABLE = [  # (how the endpoint is given, endpoint)
    ("flag", "http://127.0.0.1:{port}"),
    ("flag", "http://no-such-hub.invalid"),
    ("env", "http://127.0.0.1:{port}"),
    ("env", "http://user:hunter2pw@127.0.0.1:{port}/"),
    ("offline", "http://127.0.0.1:{port}"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("how", "endpoint"), UNREACHABLE)
def test_dry_run_needs_no_network(export, tmp_path, how, endpoint):
    endpoint = endpoint.format(port=_closed_port())
    env = _env(tmp_path, HF_ENDPOINT=endpoint) if how != "flag" else _env(tmp_path)
    if how == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    args = ["push", "--from", str(export), "--repo-id", "org/dry", "--dry-run"]
    if how == "flag":
        args += ["--endpoint", endpoint]
    p = run_cli(*args, env=env, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "dry run: would push to org/dry on http" in p.stdout and "Hub not reached" in p.stdout
    for f in _files(export):
        assert f"add    {f}" in p.stdout
    assert "hunter2pw" not in p.stdout + p.stderr and TOKEN not in p.stdout + p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_dry_run_offline_sends_no_request_to_a_live_hub(export, tmp_path):
    with HubServer() as hub:
        env = _env(tmp_path, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1")
        p = run_cli("push", "--from", str(export), "--repo-id", "org/dry", "--dry-run", env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        assert hub.state.requests == []


@pytest.mark.slow
def test_dry_run_compares_with_the_hub_when_it_is_there(export, tmp_path):
    with HubServer() as hub:
        env = _env(tmp_path, HF_ENDPOINT=hub.url)
        assert run_cli("push", "--from", str(export), "--repo-id", "org/cmp", env=env).returncode == 0
        p = run_cli("push", "--from", str(export), "--repo-id", "org/cmp", "--dry-run", env=env)
    assert p.returncode == 0 and "Hub not reached" not in p.stdout
    assert "skip   data/default/train-00000-of-00001.parquet" in p.stdout
    assert "skip   README.md" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("env_endpoint", [None, "http://127.0.0.1:{port}"])
def test_endpoint_flag_reaches_that_hub(export, tmp_path, env_endpoint):
    """``--endpoint`` wins over ``HF_ENDPOINT`` (here pointing nowhere) and over the public default."""
    with HubServer() as hub:
        extra = {"HF_ENDPOINT": env_endpoint.format(port=_closed_port())} if env_endpoint else {}
        p = run_cli("push", "--from", str(export), "--repo-id", "org/ep", "--endpoint", hub.url,
                    env=_env(tmp_path, **extra))
        assert p.returncode == 0, p.stderr[-2000:]
        assert "data/default/train-00000-of-00001.parquet" in hub.files("org/ep")
        assert 'load_dataset("org/ep"' in hub.files("org/ep")["README.md"].decode()


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["ftp://hub.example.org", "hub.example.org", "http://", "file:///tmp/hub"])
def test_bad_endpoint_is_a_usage_error(export, tmp_path, bad):
    p = run_cli("push", "--from", str(export), "--repo-id", "org/x", "--endpoint", bad, env=_env(tmp_path))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "--endpoint must be an http(s) URL" in p.stderr
