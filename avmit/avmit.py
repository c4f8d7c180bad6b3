"""AVMIT builder: maps AVMIT's lists and TFRecord embeddings onto the shared core (parsing in ``metadata``,
embeddings in ``embeddings``; this module stays thin because ``datasets`` patches it)."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import pyarrow as pa

from avsets.avmit.embeddings import (
    EmbeddingStats,
    attach_embeddings,
    embedding_set,
    get_tfrecord_index,
    report_embeddings,
)
from avsets.avmit.metadata import (
    AAR,
    AVMIT_LIST,
    MIT16_LIST,
    RAW_RATINGS,
    TEST_SET,
    URL,
    VIDEO_RATINGS,
    UnsafeNames,
    labels_avmit16,
    labels_from_file,
    read_list,
    split_by_location,
)
from avsets.build.builder import AVBuilder
from avsets.build.config import AVConfig
from avsets.build.shards import table_slices
from avsets.core.errors import ManualDownloadRequired
from avsets.metadata.readers import RowErrors, log_row_errors

# config -> [(split or None = by video_location, list file, its shape)]
LISTS = {
    "videos": [(None, "video_ratings.csv", VIDEO_RATINGS)],
    "ratings": [(None, "raw_video_ratings.csv", RAW_RATINGS)],
    "test": [("test", "test_set.csv", TEST_SET)],
    "avmit16": [("train", f"{AAR}/AVMIT_train.csv", AVMIT_LIST), ("validation", f"{AAR}/AVMIT_validation.csv", AVMIT_LIST),
                ("test", "test_set.csv", TEST_SET)],
    "mit16": [("train", f"{AAR}/MIT16_train.csv", MIT16_LIST), ("validation", f"{AAR}/MIT16_validation.csv", MIT16_LIST)],
}
COLUMNS = {
    "videos": ("r1", "r2", "r3", "video_location", "tfrecord_filename"),
    "ratings": ("video_location", "rating"),
    "test": ("video_location", "new_filename", "tfrecord_filename"),
    "avmit16": ("r1", "r2", "r3", "video_location", "new_filename", "tfrecord_filename"),
    "mit16": ("tfrecord_filename",),
}


@dataclass
class AVMITConfig(AVConfig):
    """AVMIT options: the shared ones plus the pre-extracted embeddings.

    Attributes:
        embeddings: ``"vggish_vgg16"`` (audio 128, visual 512) or ``"yamnet_effnetb0"`` (1024, 1280): add
            ``audio_embeddings`` / ``visual_embeddings`` read from the TFRecords named by ``tfrecord_filename``.
        embeddings_dir: the folder holding that set's TFRecords (``on_missing`` applies to absent files).
        embeddings_fingerprint: set by the builder from the folder scan, so new files never hit a stale cache.
    """

    embeddings: str | None = None
    embeddings_dir: str | None = None
    embeddings_fingerprint: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embeddings is not None:
            embedding_set(self.embeddings)


class AVMIT(AVBuilder):
    """AVMIT: ``videos``, ``ratings`` (labels from the file), ``test``, ``avmit16``, ``mit16`` (16 classes)."""

    CORPUS = "avmit"
    BUILDER_CONFIG_CLASS = AVMITConfig
    BUILDER_CONFIGS = [
        AVMITConfig(name="avmit16", description="The paper's 16-class experiment: AVMIT_train/validation + test_set."),
        AVMITConfig(name="test", description="test_set.csv: the controlled 960-video test set (16 classes)."),
        AVMITConfig(name="mit16", description="MIT16_train/validation: the 16 classes' Moments-in-Time videos."),
        AVMITConfig(name="videos", description="video_ratings.csv: one row per rated video (labels from the file)."),
        AVMITConfig(name="ratings", description="raw_video_ratings.csv: one row per participant rating."),
    ]
    DEFAULT_CONFIG_NAME = "avmit16"

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get("embeddings_dir"):
            kwargs["embeddings_fingerprint"] = get_tfrecord_index(str(kwargs["embeddings_dir"]), rescan=True).fingerprint
        super().__init__(*args, **kwargs)
        cfg = self.config
        if (cfg.embeddings is None) != (cfg.embeddings_dir is None):
            raise ValueError("avmit: pass embeddings= ('vggish_vgg16' or 'yamnet_effnetb0') and embeddings_dir= together")
        if cfg.embeddings is not None and "tfrecord_filename" not in COLUMNS[cfg.name]:
            raise ValueError(f"avmit/{cfg.name} lists name no TFRecords; embeddings need another config")
        self.embedding_stats: dict[str, EmbeddingStats] = {}
        self.unsafe_rows: dict[str, int] = {}  # list file -> rows dropped for an unsafe file name

    def _path(self, dl_manager, relpath: str) -> str:
        return self.metadata_file(dl_manager or datasets.DownloadManager(dataset_name="avmit"), relpath,
                                  URL.format(name=relpath))

    def _label_names(self) -> tuple[str, ...]:
        if self.config.name not in ("videos", "ratings"):
            return labels_avmit16()
        relpath = LISTS[self.config.name][0][1]
        try:  # needed already for the features: AVMIT publishes no class list, the file is the list
            return labels_from_file(self._path(None, relpath))
        except ManualDownloadRequired:
            raise
        except OSError as exc:  # offline, HTTP errors (ConnectionError and requests' errors are OSErrors)
            raise ManualDownloadRequired(
                f"avmit/{self.config.name} takes its label list from {relpath} (AVMIT publishes no class list), "
                f"which could not be downloaded from {URL.format(name=relpath)} ({exc}). Put it in a folder and "
                "pass data_dir=<that folder>.") from exc

    def _corpus_features(self) -> dict:
        feats = {"filename": datasets.Value("string"),
                 "label": datasets.ClassLabel(names=list(self._label_names())),
                 "mit_label": datasets.Value("string")}
        for col in COLUMNS[self.config.name]:
            feats[col] = datasets.Value("int32" if col in ("r1", "r2", "r3", "rating") else "string")
        if self.config.embeddings:
            emb = embedding_set(self.config.embeddings)
            for col, dim in (("audio_embeddings", emb.audio_dim), ("visual_embeddings", emb.visual_dim)):
                feats[col] = datasets.List(datasets.List(datasets.Value("float32"), length=dim))
        return feats

    def _split_shards(self, dl_manager) -> dict[str, list]:
        names = tuple(self.info.features["label"].names)
        out: dict[str, list] = {}
        for split, relpath, kind in LISTS[self.config.name]:
            path = self._path(dl_manager, relpath)
            row_errors, unsafe = RowErrors(), UnsafeNames()
            table = read_list(path, kind, names, errors=self.config.errors, row_errors=row_errors, unsafe=unsafe)
            where = f"avmit/{self.config.name} {path}"
            log_row_errors(where, row_errors)
            unsafe.warn(where)
            self.unsafe_rows[relpath] = unsafe.count
            parts = split_by_location(table) if split is None else {split: table}
            for name, part in parts.items():
                out[name] = [(name, piece) for piece in table_slices(part, self.config.rows_per_shard)]
        return out

    def _read_shard(self, spec: tuple[str, pa.Table]) -> pa.Table:
        split, table = spec
        if not self.config.embeddings:
            return table
        index = get_tfrecord_index(self.config.embeddings_dir)
        table, stats = attach_embeddings(table, split, index, embedding_set(self.config.embeddings),
                                         self.config.on_missing)
        self.embedding_stats.setdefault(split, EmbeddingStats()).add(stats)
        return table

    def _generate_tables(self, shards: list, split: str, **kwargs):
        self.embedding_stats[split] = EmbeddingStats()
        yield from super()._generate_tables(shards, split, **kwargs)
        report_embeddings(f"avmit/{self.config.name} {split}", self.embedding_stats.get(split), self.config.on_missing)
