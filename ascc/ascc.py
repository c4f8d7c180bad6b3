"""ASCC builder: maps the release's id/label lists onto the shared core (parsing in ``metadata``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import datasets
import pyarrow as pa

from avsets.ascc.metadata import (
    DRIVE,
    URL,
    build_table,
    derived_num_ids,
    label_space,
    read_cc_ids,
    read_num_ids,
    read_pairs,
    read_segments,
)
from avsets.build.builder import AVBuilder
from avsets.build.config import AVConfig
from avsets.build.shards import table_slices
from avsets.core.notices import warn_once
from avsets.media.unsegmented import add_trimmed_candidates
from avsets.metadata.readers import RowErrors, log_row_errors

logger = logging.getLogger("avsets")


@dataclass
class ASCCConfig(AVConfig):
    """ASCC options: the shared ones plus where the 10-s windows come from.

    Attributes:
        segments: ``None`` (default) reads ``big_data.csv`` from ``data_dir`` when it is there and otherwise
            leaves ``start``/``end`` None with a warning; ``True`` requires it (an error says where to get it);
            ``False`` never reads it (it is the full AudioSet list, ~2M rows).
    """

    segments: bool | None = None


class ASCC(AVBuilder):
    """ASCC: ``default`` (11,912 CC clips, multi-label) and ``single_label`` (the clips with one label)."""

    CORPUS = "ascc"
    BUILDER_CONFIG_CLASS = ASCCConfig
    BUILDER_CONFIGS = [
        ASCCConfig(name="default", description="Every id of all_cc_df.csv; labels over the 447 suitable classes."),
        ASCCConfig(name="single_label", description="The ids with exactly one label, as a ClassLabel."),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _corpus_features(self) -> dict:
        names = list(label_space()[1])
        label = datasets.ClassLabel(names=names)
        feats = {"license": datasets.Value("string")}
        if self.config.name == "single_label":
            feats["label"] = label
        else:
            feats["labels"] = datasets.List(label)
        return feats

    def _split_shards(self, dl_manager) -> dict[str, list]:
        cfg = self.config
        row_errors = RowErrors()
        mids = label_space()[0]
        cc_path = self.metadata_file(dl_manager, "all_cc_df.csv", URL.format(name="all_cc_df.csv"))
        pairs_path = self.metadata_file(dl_manager, "all_cc_qual_0_false.csv",
                                        URL.format(name="all_cc_qual_0_false.csv"))
        cc = read_cc_ids(cc_path, errors=cfg.errors, row_errors=row_errors)
        labels, order = read_pairs(pairs_path, mids, errors=cfg.errors, row_errors=row_errors)
        label_df = self.metadata_file(dl_manager, "label_df.csv", URL.format(name="label_df.csv"), required=False)
        if label_df is not None:
            num_ids = read_num_ids(label_df, errors=cfg.errors, row_errors=row_errors)
        else:
            logger.info("ascc: no label_df.csv in data_dir; numbering 'Raw Samples/<num_id>.wav' as download_cc.py "
                        "does (order of the ids in all_cc_qual_0_false.csv)")
            num_ids = derived_num_ids(order)
        segments = None
        if cfg.segments is not False:
            big = self.metadata_file(
                dl_manager, "big_data.csv", None, required=bool(cfg.segments),
                how_to_get=f"big_data.csv is distributed on Google Drive only ({DRIVE}); download it into data_dir.")
            if big is not None:
                segments = read_segments(big, set(cc.column("youtube_id").to_pylist()), errors=cfg.errors,
                                         row_errors=row_errors)
            else:
                warn_once(  # one notice per data_dir, not one per config
                    logger, ("ascc-no-big-data", self.config.data_dir),
                    "ascc: big_data.csv not in data_dir, so start/end are None (the 10-s windows are unknown); whole "
                    "videos and trimmed clips still resolve. big_data.csv is on Google Drive only: %s", DRIVE)
        log_row_errors(f"ascc/{cfg.name}", row_errors)
        table = build_table(cc, labels, num_ids, segments, single_label=cfg.name == "single_label")
        return {"train": table_slices(table, cfg.rows_per_shard)}

    def _read_shard(self, spec: pa.Table) -> pa.Table:
        index = self.media_index()
        return add_trimmed_candidates(spec, index)
