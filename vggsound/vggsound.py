"""VGGSound builder: maps ``vggsound.csv`` / ``AStest.csv`` onto the shared core (parsing in ``metadata``)."""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from avsets.build.builder import AVBuilder
from avsets.build.config import AVConfig
from avsets.metadata.readers import RowErrors, log_row_errors
from avsets.vggsound.metadata import (
    URL,
    check_nonempty,
    label_list,
    read_astest_csv,
    read_categories,
    read_vggsound_csv,
    split_tables,
    upstream_relpath,
)


@dataclass
class VGGSoundConfig(AVConfig):
    """VGGSound options: the shared ones (see :class:`avsets.build.config.AVConfig`)."""


class VGGSound(AVBuilder):
    """VGGSound: ``default`` (310 labels), ``common`` (164 AudioSet-shared labels), ``astest`` (test only)."""

    CORPUS = "vggsound"
    BUILDER_CONFIG_CLASS = VGGSoundConfig
    BUILDER_CONFIGS = [
        VGGSoundConfig(name="default", description="All rows of vggsound.csv; 310 sorted labels."),
        VGGSoundConfig(name="common", description="Rows whose label is one of the 164 of Common.txt."),
        VGGSoundConfig(name="astest", description="The rows of AStest.csv as a test split; 164 labels."),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _label_names(self) -> tuple[str, ...]:
        return label_list("default" if self.config.name == "default" else "common")

    def _corpus_features(self) -> dict:
        return {
            "label": datasets.ClassLabel(names=list(self._label_names())),
            "category": datasets.Value("string"),
        }

    def _split_shards(self, dl_manager) -> dict[str, list]:
        names = self._label_names()
        row_errors = RowErrors()
        stat = self.metadata_file(dl_manager, "stat.csv", URL.format(name="stat.csv"))
        if self.config.name == "astest":
            path = self.metadata_file(dl_manager, "AStest.csv", URL.format(name="AStest.csv"))
            table = read_astest_csv(path, names, errors=self.config.errors, row_errors=row_errors)
        else:
            path = self.metadata_file(dl_manager, "vggsound.csv", URL.format(name="vggsound.csv"))
            only = names if self.config.name == "common" else None
            table = read_vggsound_csv(path, names, only=only, errors=self.config.errors, row_errors=row_errors)
        check_nonempty(table, path)
        log_row_errors(f"vggsound/{self.config.name} {path}", row_errors)
        return split_tables(table, read_categories(stat), self.config.rows_per_shard,
                            only_test=self.config.name == "astest")

    def metadata_file(self, dl_manager, relpath: str, url: str | None = None, *, required: bool = True,
                      how_to_get: str = "") -> str | None:
        """``data_dir`` is the ``data/`` folder of the upstream repository or the repository's root."""
        return super().metadata_file(
            dl_manager, upstream_relpath(self.config.data_dir, relpath), url, required=required,
            how_to_get=how_to_get or f"data_dir is the VGGSound repository's data/ folder or its root; get {relpath} "
            f"from {url or URL.format(name=relpath)}")

    def _read_shard(self, spec):
        return spec
