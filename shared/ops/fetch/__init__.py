"""``avsets fetch``: fill a local media mirror with segment-only clips, resumably, with a ledger.

    >>> from avsets.ops.fetch import fetch
    >>> report = fetch("vggsound", data_dir="meta/", out="media/", audio=True, workers=8)
    >>> report.exit_code

The pieces: ``runner`` (plan, threads or Ray, record), ``clip`` (one clip end to end), ``ffmpeg`` (the one
ffmpeg run), ``origins`` (yt-dlp, mirrors, local paths, fsspec), ``politeness``; the ledger (SQLite) is
:mod:`avsets.metadata.ledger`, shared with ``unpack``, ``report`` and the manifests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from avsets.core.segments import Segment
from avsets.metadata.ledger import LEDGER_NAME, Ledger, LedgerRow, diff_ledgers, ledger_summary, read_ledger

from .clip import ClipRequest, FetchOptions, WholeVideo
from .corpus import corpus_requests
from .runner import FetchReport, FetchSetupError, Progress, parse_shard, run_fetch, shard_of

_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(FetchOptions))


def make_options(**options: Any) -> FetchOptions:
    """``FetchOptions`` from keyword arguments.  Neither ``audio`` nor ``video`` given: video (an mp4 with
    both streams serves both modalities); ``audio=True`` alone: audio only."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"unknown fetch option(s): {', '.join(sorted(unknown))}")
    if options.get("video") is None:
        options["video"] = not options.get("audio", False)
    if options.get("audio") is None:
        options["audio"] = False
    if isinstance(options.get("shard"), str):
        options["shard"] = parse_shard(options["shard"])
    return FetchOptions(**options)


def fetch(source: str | Iterable[Segment | ClipRequest], config: str | None = None, *, out: str,
          data_dir: str | None = None, split: str | Sequence[str] | None = None,
          config_kwargs: dict[str, Any] | None = None, whole_videos: bool = False,
          progress: Progress | None = None, **options: Any) -> FetchReport:
    """Fetch a corpus (by name, read through its builder) or any iterable of segments into ``out``.

    ``options`` are ``FetchOptions`` fields (``audio``, ``video``, ``workers``, ``shard="0/4"``,
    ``source_url_template``, ``retry_failed``, ``engine="ray"``, ...).  Returns the run's report; its
    ``exit_code`` follows the CLI's (0 all ok or skipped, 1 some clip failed).  ``whole_videos``: rows
    that name a YouTube video but no segment fetch the whole video (``{youtube_id}.{ext}``).
    """
    opts = make_options(**options)
    if isinstance(source, str):
        items: Iterable[Segment | ClipRequest] = corpus_requests(source, config, data_dir=data_dir, split=split,
                                                                 whole_videos=whole_videos, **(config_kwargs or {}))
    else:
        items = source
    return run_fetch(items, out, opts, progress=progress)


__all__ = [
    "fetch", "make_options", "run_fetch", "FetchOptions", "FetchReport", "FetchSetupError", "ClipRequest", "WholeVideo",
    "Ledger", "LedgerRow", "LEDGER_NAME", "read_ledger", "ledger_summary", "diff_ledgers", "parse_shard",
    "shard_of",
]
