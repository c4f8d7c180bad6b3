"""The builder config every corpus extends: the shared options of DESIGN.md's contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import datasets

from .filters import Exclusion

OnMissing = Literal["skip", "keep", "error"]
OnError = Literal["raise", "skip"]


@dataclass
class AVConfig(datasets.BuilderConfig):
    """Options shared by every corpus.

    Attributes:
        media_dir: a folder, a tuple of folders, or fsspec URLs holding media; None = metadata only.
        media_pattern: a user template tried before the built-in names, e.g. ``"{label}/{youtube_id}.mp4"``.
        on_missing: ``"skip"`` drops rows without media (and reports how many), ``"keep"`` keeps them with
            None media, ``"error"`` raises naming the first missing clips.
        errors: ``"raise"`` stops at the first malformed metadata row (naming file and line); ``"skip"``
            skips and counts such rows.
        modalities: which media columns to resolve: ``("audio", "video")`` by default.
        verify_media: probe every resolved file with a full open while preparing (opt-in: costs minutes
            for 200k videos).
        rows_per_shard: rows per streaming shard (1,000-2,000 keeps DataLoader workers and resume useful).
        id_named: what a file named by the YouTube id alone holds: ``"segment"`` (AudioSet mirrors:
            ``media_offset`` 0), ``"video"`` (downloads: cut at ``start``) or ``"auto"`` (decided per source
            from probed durations; see :mod:`avsets.media.sources.clip_or_video`).
        media_key_column: for Parquet media sources, the column that names each row's clip (default: the
            first of ``video_id``, ``youtube_id``, ``ytid``, ``id``, plus the stem of the media ``path``).
        only_ids: keep just these clip ids (sorted; ``load_dataset(only_ids=FILE)`` reads them from a
            manifest or CSV), so two labs evaluate on exactly the same clips; part of the cache key.
        exclude: clip ids to leave out (read by :func:`avsets.build.filters.read_exclude`: a dups/overlap CSV of
            the leakage audit, a CSV of ids, a manifest, a text file or the ids); runs after ``only_ids``.
        quality: path of a quality table (``avsets quality``): its measures and flags become columns, joined
            by ``id``; rows without a result get ``quality_missing=True``.  Its content is part of the cache key.
        overlays: names of overlays to join (:mod:`avsets.build.overlays`: ``"vggsounder"``, ``"audioset_qa"``).
        drop: flags whose true rows are removed (quality flags, overlay flags, boolean corpus columns),
            counted per flag and split; runs after ``exclude`` and before ``on_missing``.
    """

    media_dir: str | tuple[str, ...] | None = None
    media_pattern: str | None = None
    on_missing: OnMissing = "skip"
    errors: OnError = "raise"
    modalities: tuple[str, ...] = ("audio", "video")
    verify_media: bool = False
    rows_per_shard: int = 1000
    id_named: str = "auto"
    media_key_column: str | None = None
    only_ids: tuple[str, ...] | None = None
    exclude: Exclusion | None = None
    quality: str | None = None
    overlays: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.on_missing not in ("skip", "keep", "error"):
            raise ValueError(f"on_missing must be 'skip', 'keep' or 'error', not {self.on_missing!r}")
        if self.errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', not {self.errors!r}")
        if isinstance(self.modalities, str):
            self.modalities = (self.modalities,)
        self.modalities = tuple(self.modalities)
        bad = set(self.modalities) - {"audio", "video"}
        if bad or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of ('audio', 'video'), not {self.modalities!r}")
        if isinstance(self.media_dir, list):
            self.media_dir = tuple(self.media_dir)
        if self.id_named not in ("auto", "segment", "video"):
            raise ValueError(f"id_named must be 'auto', 'segment' or 'video', not {self.id_named!r}")
        if self.only_ids is not None:
            self.only_ids = tuple(sorted(set(self.only_ids)))
        if isinstance(self.drop, str):
            self.drop = tuple(x.strip() for x in self.drop.split(",") if x.strip())
        self.drop = tuple(dict.fromkeys(self.drop))
        if isinstance(self.overlays, str):
            self.overlays = (self.overlays,)
        self.overlays = tuple(self.overlays)
        if self.rows_per_shard < 1:
            raise ValueError("rows_per_shard must be >= 1")
