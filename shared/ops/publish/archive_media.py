"""``export`` from archive-order sources (``.tar.gz``): read them in one pass, then export as from a folder.

A ``.tar.gz`` cannot be read at random, so the map-style load ``export`` makes refused it ("load with
streaming=True", which export cannot do). Here export streams such a mirror itself: when any source of
``media_dir`` must be read in archive order, the members the rows use are copied out in ONE pass through
every source (``avsets.ops.unpack``: canonical names, whole videos cut to the segment, a corrupt member
costing only its clip), into a staging folder, and the export loads that folder instead. Mirrors that can be
read at random (folders, zip, tar, Parquet) are left alone: nothing is staged for them.

The staging folder is ``<out>/.avsets/archive-media`` for a local export (``push`` never uploads
``.avsets``; a rerun reuses what is there and reads only the missing clips), else a temporary folder
removed when the process ends.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from typing import Any

from avsets.media.sources.base import media_sources
from avsets.media.sources.clip_or_video import stated
from avsets.ops.unpack import corpus_table, unpack_rows

from .shards import STATE_DIR

logger = logging.getLogger(__name__)

STAGING = "archive-media"


def needs_staging(media_dir: str | list[str] | None) -> bool:
    """Whether some source of ``media_dir`` can only be read in archive order (a ``.tar.gz``)."""
    return bool(media_dir) and any(not s.random_access for s in media_sources(media_dir))


def _staging_folder(out: str) -> str:
    if "://" not in out or out.startswith("file://"):
        root = out[len("file://"):] if out.startswith("file://") else out
        return os.path.join(os.path.abspath(os.path.expanduser(root)), STATE_DIR, STAGING)
    tmp = tempfile.mkdtemp(prefix="avsets-export-media-")
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


def stage_archive_sources(corpus: str, config: str, out: str, *, split: str | None, video: bool,
                          load_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``load_kwargs`` with ``media_dir`` replaced by a folder of the clips the rows use, copied out of the
    sources in one archive-order pass, when some source is a ``.tar.gz``; unchanged otherwise."""
    media_dir = load_kwargs.get("media_dir")
    if not needs_staging(media_dir):
        return load_kwargs
    config_kwargs = {k: v for k, v in load_kwargs.items() if k not in ("data_dir", "media_dir", "on_missing")}
    table = corpus_table(corpus, config, data_dir=load_kwargs.get("data_dir"), split=split, **config_kwargs)
    folder = _staging_folder(out)
    logger.warning("export: %s is read in archive order (a .tar.gz); copying the %d clips the rows use into %s "
                   "in one pass", media_dir, table.num_rows, folder)
    report = unpack_rows(table, media_dir, folder, modalities=("audio", "video") if video else ("audio",),
                         media_pattern=config_kwargs.get("media_pattern"),
                         assume_trimmed=stated(config_kwargs.get("id_named")),
                         key_column=config_kwargs.get("media_key_column"), quiet=True)
    logger.warning("export: %s", report.summary().replace("\n", "; "))
    return {**load_kwargs, "media_dir": folder}


__all__ = ["needs_staging", "stage_archive_sources"]
