"""AVSET-10M builder: one streaming shard per JSON part file (parsing in :mod:`avsets.avset10m.metadata`).

Kept thin: ``datasets`` monkey-patches ``open``/``os.path`` in this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import datasets
import pyarrow as pa

from avsets.avset10m.keys import read_shard_keys
from avsets.avset10m.metadata import (
    CONFIG_PARTS,
    HUB_REVISION,
    PARTS,
    ReadOptions,
    hub_files,
    local_files,
    read_file,
)
from avsets.build.builder import AVBuilder
from avsets.build.config import AVConfig
from avsets.core.errors import ManualDownloadRequired, MetadataError
from avsets.metadata.ontology import label_space_527
from avsets.metadata.readers import RowErrors, log_row_errors

logger = logging.getLogger("avsets")

EMPTY = pa.schema([("id", pa.string()), ("youtube_id", pa.string()), ("start", pa.float64()),
                   ("end", pa.float64())])


@dataclass
class AVSET10MConfig(AVConfig):
    """AVSET-10M options on top of the shared ones (:class:`avsets.build.config.AVConfig`).

    Attributes:
        min_avc: keep rows whose audio-visual correspondence ``avc >= min_avc`` (None keeps all).
        sound_separation: None keeps all rows; True / False keep rows with that sound-separation flag.
        drop_unknown_labels: drop labels outside the 527 AudioSet classes instead of an error (or, under
            ``errors="skip"``, instead of skipping the row).
        hub_revision: the ``avset10m/avset10m`` revision read through ``hf://`` when no ``data_dir`` is given.
    """

    min_avc: float | None = None
    sound_separation: bool | None = None
    drop_unknown_labels: bool = False
    hub_revision: str = HUB_REVISION


class AVSET10M(AVBuilder):
    """AVSET-10M: ``700k`` (AudioSet part), ``10m`` (Panda-70M part, with caption and pseudo labels),
    ``all`` (both; caption and pseudo_labels are null for 700k rows).  One split, ``train``."""

    CORPUS = "avset10m"
    BUILDER_CONFIG_CLASS = AVSET10MConfig
    BUILDER_CONFIGS = [
        AVSET10MConfig(name="700k", description="AVSET-700K: 727,530 AudioSet segments (41 files)."),
        AVSET10MConfig(name="10m", description="AVSET-10M without 700K: 9,877,475 Panda-70M clips (400 files)."),
        AVSET10MConfig(name="all", description="Both parts: 10.9M rows in 441 files."),
    ]
    DEFAULT_CONFIG_NAME = "700k"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_files: list[str] = []

    def _with_text(self) -> bool:
        return self.config.name in ("10m", "all")

    def _corpus_features(self) -> dict:
        names = label_space_527()
        out = {
            "avc": datasets.Value("float32"),
            "sound_separation": datasets.Value("bool"),
            "labels": datasets.List(datasets.ClassLabel(names=names)),
        }
        if self._with_text():
            out["caption"] = datasets.Value("string")
            out["pseudo_labels"] = datasets.List({"label": datasets.ClassLabel(names=names),
                                                  "score": datasets.Value("float32")})
        return out

    def _files(self, part: str) -> list[str]:
        if not self.config.data_dir:
            return hub_files(part, self.config.hub_revision)
        data_dir = os.path.abspath(os.path.expanduser(self.config.data_dir))
        files = local_files(data_dir, part)
        if not files:
            folder, pattern, expected = PARTS[part]
            raise ManualDownloadRequired(
                f"avset10m/{self.config.name}: no {folder}/{pattern} in data_dir {data_dir!r}. Put the {expected} "
                f"files of https://huggingface.co/datasets/avset10m/avset10m folder '{folder}/' there.")
        return files

    def _split_shards(self, dl_manager) -> dict[str, list]:
        shards = [(path, part) for part in CONFIG_PARTS[self.config.name] for path in self._files(part)]
        return {"train": shards}

    def _read_shard(self, spec: tuple[str, str], text: bool = True) -> pa.Table:
        path, part = spec
        c = self.config
        opts = ReadOptions(with_text=text and part == "10m", errors=c.errors, drop_unknown_labels=c.drop_unknown_labels,
                           min_avc=c.min_avc, sound_separation=c.sound_separation)
        row_errors = RowErrors()
        try:
            table = read_file(path, opts, row_errors)
        except MetadataError as exc:
            if c.errors != "skip":
                raise
            logger.warning("avset10m: skipped file %s (errors='skip'): %s", path, exc)
            self.skipped_files.append(str(exc))
            return EMPTY.empty_table()
        log_row_errors(f"avset10m {path}", row_errors)
        return table

    def _read_shard_keys(self, spec: tuple[str, str]) -> pa.Table:
        """The rows without the 10M part's captions and pseudo labels (``avsets overlap`` needs ids and
        segments only; the text is 40% of the parse)."""
        return self._read_shard(spec, text=False)

    def _key_reader(self) -> Callable[[tuple[str, str]], pa.Table] | None:
        """A picklable ``shard -> id, youtube_id, start, end`` reader that skips the other fields
        (:mod:`avsets.avset10m.keys`), or None when the config needs them: ``errors="skip"`` (a row bad in
        any field is dropped) or a ``min_avc``/``sound_separation`` filter."""
        c = self.config
        if c.errors != "raise" or c.min_avc is not None or c.sound_separation is not None:
            return None
        return read_shard_keys

    def _generate_tables(self, shards: list, split: str, **kwargs):
        self.skipped_files = []
        yield from super()._generate_tables(shards, split, **kwargs)
        if self.skipped_files:
            logger.warning("avset10m/%s: %d of %d files skipped (errors='skip'): %s", self.config.name,
                           len(self.skipped_files), len(shards), "; ".join(self.skipped_files[:5]))
