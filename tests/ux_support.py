"""Shared by the ``test_ux_*`` modules (no tests of its own): run the real CLI, make a real export.

Every CLI run is a subprocess of ``python -m avsets.cli.app``, as a user runs it; the environment is this one's
minus any ``HF_*`` setting, plus what the caller passes (the suite is offline by default, see conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import avsets
from avsets.ops.demo import make_demo_media, sample_data_dir


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1", NO_COLOR="1")
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """``avsets <args>`` in a subprocess; stdout/stderr as text."""
    return subprocess.run([sys.executable, "-m", "avsets.cli.app", *args], capture_output=True, text=True,
                          env=env or cli_env(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"), timeout=timeout,
                          cwd=cwd)


def run_python(code: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 300
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env or cli_env(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"), timeout=timeout)


def demo_media(root: Path, n_train: int = 6, n_test: int = 3) -> Path:
    """Synthetic media (FLAC, WAV and whole mp4 videos, as ``avsets demo`` makes) for a few rows of the
    bundled VGGSound sample; returns the media folder."""
    meta = avsets.load_dataset("vggsound", data_dir=sample_data_dir(), cache_dir=str(root / "meta-cache"))
    rows = [meta["train"][i] for i in range(0, 7 * n_train, 7)] + [meta["test"][i] for i in range(n_test)]
    media = root / "media"
    make_demo_media(str(media), rows)
    return media


def run_in_a_terminal(argv: list[str], timeout: float = 240, env: dict[str, str] | None = None
                      ) -> tuple[int, str]:
    """``avsets <argv>`` with stdin/stdout/stderr on a pseudo-terminal of 40x160 (what a user's shell gives)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "avsets.cli.app", *argv], stdin=slave, stdout=slave, stderr=slave,
                            env=env or cli_env(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", COLUMNS="160"),
                            close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")
