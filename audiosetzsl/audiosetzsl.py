"""AudioSetZSL builder: maps ``youtube-id/{trn,val,tst}/<class>.txt`` onto the shared core.

Parsing lives in :mod:`avsets.audiosetzsl.metadata` and :mod:`avsets.audiosetzsl.features` (``datasets``
monkey-patches this module's ``open``/``os.path``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import datasets
import pyarrow as pa

from avsets.audiosetzsl import features as feats
from avsets.audiosetzsl.metadata import (
    SPLIT_DIRS,
    add_seen,
    class_names,
    fetch_pinned,
    find_root,
    read_class_split,
    read_split,
    select_rows,
)
from avsets.build.builder import AVBuilder
from avsets.build.config import AVConfig
from avsets.build.shards import table_slices
from avsets.core.errors import ManualDownloadRequired
from avsets.metadata.ontology import label_space_527
from avsets.metadata.readers import RowErrors, log_row_errors


@dataclass
class AudioSetZSLConfig(AVConfig):
    """AudioSetZSL options on top of the shared ones (:class:`avsets.build.config.AVConfig`).

    Attributes:
        features_dir: folder with ``{audio,video}/{trn,val,tst}/<class>.h5`` (the authors' pre-extracted
            features); adds ``audio_features`` / ``video_features`` float32 columns.
        drop_unknown_labels: drop MIDs outside the 527 AudioSet classes from ``audioset_labels`` instead of
            raising (``errors="raise"``) or skipping the row (``errors="skip"``).
    """

    features_dir: str | None = None
    drop_unknown_labels: bool = False


class AudioSetZSL(AVBuilder):
    """AudioSetZSL: ``default`` (33 classes), ``zsl`` (seen train/val, unseen test), ``gzsl`` (seen
    train/val, every test row); ``label`` over the 33 sorted class names in every config."""

    CORPUS = "audiosetzsl"
    BUILDER_CONFIG_CLASS = AudioSetZSLConfig
    BUILDER_CONFIGS = [
        AudioSetZSLConfig(name="default", description="All 33 classes in train/validation/test."),
        AudioSetZSLConfig(name="zsl", description="Train/validation: 23 seen classes; test: 10 unseen classes."),
        AudioSetZSLConfig(name="gzsl", description="Train/validation: seen classes; test: seen and unseen."),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _corpus_features(self) -> dict:
        out = {
            "label": datasets.ClassLabel(names=list(class_names())),
            "audioset_labels": datasets.List(datasets.ClassLabel(names=label_space_527())),
            "audioset_index": datasets.Value("int64"),
            "seen": datasets.Value("bool"),
        }
        if self.config.features_dir:
            out["audio_features"] = datasets.List(datasets.Value("float32"))
            out["video_features"] = datasets.List(datasets.Value("float32"))
        return out

    def _root(self) -> str:
        if self.config.data_dir:
            data_dir = os.path.abspath(os.path.expanduser(self.config.data_dir))
            root = find_root(data_dir)
            if root is None:
                raise ManualDownloadRequired(
                    f"audiosetzsl: no youtube-id/ folder in data_dir {data_dir!r}; pass a clone of "
                    "https://github.com/krantiparida/AudioSetZSL (class-split/ and youtube-id/{trn,val,tst}/).")
            return root
        return fetch_pinned(self._cache_downloaded_dir)

    def _split_shards(self, dl_manager) -> dict[str, list]:
        root = self._root()
        seen = read_class_split(os.path.join(root, "class-split", "seen_class.txt"))
        row_errors = RowErrors()
        features_dir = self.config.features_dir
        out: dict[str, list] = {}
        for split, split_dir in SPLIT_DIRS.items():
            table = read_split(root, split_dir, errors=self.config.errors, row_errors=row_errors,
                               drop_unknown=self.config.drop_unknown_labels)
            table = select_rows(add_seen(table, seen), self.config.name, split)
            if features_dir:
                table = feats.attach_rows(table, os.path.abspath(os.path.expanduser(features_dir)), split_dir,
                                          class_names())
            out[split] = [(split_dir, part) for part in table_slices(table, self.config.rows_per_shard)]
        log_row_errors(f"audiosetzsl/{self.config.name} {root}", row_errors)
        return out

    def _read_shard(self, spec: tuple[str, pa.Table]) -> pa.Table:
        split_dir, table = spec
        if self.config.features_dir and table.num_rows:
            columns = feats.read_features(table, os.path.abspath(os.path.expanduser(self.config.features_dir)),
                                          split_dir, class_names())
            for name, column in columns.items():
                table = table.append_column(name, column)
        return table
