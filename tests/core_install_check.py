"""A plain ``pip install avsets`` (no extras) reads a remote mirror: ``.ci/run`` runs this script in a venv
that has only the core install (no pytest, no test extra), so a client library that only an extra brought
(``aiohttp``/``requests`` came with ``ray[default]``) shows up as a failure here.

What it does, with the core dependencies only: writes a small VGGSound metadata folder and a zip of FLAC
clips (soundfile), serves the zip from a loopback HTTP server with Range support (``range_server.py``, standard
library only), loads the corpus map-style and streaming with ``media_dir`` = the zip's URL, decodes every row,
and lists which optional features are importable (for the log). Exit 0 when every row was served.

    python tests/core_install_check.py
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from range_server import serve_folder  # noqa: E402

IDS = ["coreAAAAAA0", "core-BBBBB1", "core_CCCCC2"]
LABELS = ["dog barking", "playing tennis", "waterfall burbling"]


def _corpus(root: Path) -> tuple[Path, Path]:
    """Metadata (3 rows) and ``clips.zip`` of their 10-s FLACs."""
    import importlib.resources

    meta = root / "meta"
    meta.mkdir()
    sample = importlib.resources.files("avsets.vggsound") / "sample"
    (meta / "stat.csv").write_bytes((sample / "stat.csv").read_bytes())
    (meta / "vggsound.csv").write_text("".join(f'{y},{10 * i},"{LABELS[i]}",train\n' for i, y in enumerate(IDS)))
    site = root / "site"
    site.mkdir()
    with zipfile.ZipFile(site / "clips.zip", "w") as zf:
        for i, y in enumerate(IDS):
            path = root / f"{i}.flac"
            t = np.arange(8000 * 10) / 8000
            sf.write(str(path), (0.2 * np.sin(2 * np.pi * (220 + 40 * i) * t)).astype(np.float32), 8000)
            zf.write(path, f"clips/{y}_{10 * i * 1000}_{(10 * i + 10) * 1000}.flac")
    return meta, site


def main() -> int:
    import avsets

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    for module in ("aiohttp", "requests", "matplotlib", "torch", "yt_dlp", "ray", "pytest"):
        print(f"  {module:<12} {'installed' if importlib.util.find_spec(module) else 'not installed'}")
    with tempfile.TemporaryDirectory(prefix="avsets-core-") as tmp:
        meta, site = _corpus(Path(tmp))
        with serve_folder(site) as srv:
            url = srv.url("clips.zip")
            ds = avsets.load_dataset("vggsound", split="train", data_dir=str(meta), media_dir=url,
                                     cache_dir=os.path.join(tmp, "cache"))
            got = [r["audio"]["array"].shape[0] for r in ds]
            stream = avsets.load_dataset("vggsound", split="train", data_dir=str(meta), media_dir=url,
                                         streaming=True)
            streamed = sum(1 for r in stream if r["audio"] is not None)
    print(f"map-style: {len(got)} rows decoded {got}; streaming: {streamed} rows")
    ok = got == [80000] * len(IDS) and streamed == len(IDS)
    print("core install reads a remote mirror: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
