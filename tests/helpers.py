"""Small helpers several test modules share (fixtures stay in conftest.py)."""

from __future__ import annotations

import importlib.resources
import os
import shutil
from pathlib import Path


def writable_sample(corpus: str, dst: str | os.PathLike) -> Path:
    """A writable copy of a corpus' bundled ``sample/`` folder (the installed files are read-only)."""
    dst = Path(dst)
    shutil.copytree(str(importlib.resources.files(f"avsets.{corpus}") / "sample"), dst)
    for folder, _, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)
    return dst


def mini_audiosetzsl(src_root: str, dst: str | os.PathLike, rows: int) -> Path:
    """An AudioSetZSL tree with the real class-split files and the first ``rows`` rows of each real class file."""
    from avsets.audiosetzsl.metadata import class_names

    dst = Path(dst)
    shutil.copytree(os.path.join(src_root, "class-split"), dst / "class-split")
    for split in ("trn", "val", "tst"):
        (dst / "youtube-id" / split).mkdir(parents=True)
        for name in class_names():
            with open(os.path.join(src_root, "youtube-id", split, f"{name}.txt")) as f:
                head = [next(f) for _ in range(rows)]
            (dst / "youtube-id" / split / f"{name}.txt").write_text("".join(head))
    return dst
