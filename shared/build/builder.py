"""The builder base every corpus extends.

Kept thin on purpose: ``datasets`` monkey-patches ``open``/``os.path``/``pathlib`` in the module that defines
a builder and in its parents' modules, so the real work lives in :mod:`avsets.build.tables`,
:mod:`avsets.media.resolve` and :mod:`avsets.media.media_index`.

A corpus subclass sets ``CORPUS``, ``BUILDER_CONFIG_CLASS``, ``BUILDER_CONFIGS`` and implements three hooks:

* ``_corpus_features()``: its own columns (labels as ``ClassLabel``...);
* ``_split_shards(dl_manager)``: ``{split: [shard spec, ...]}`` - picklable specs of ~1,000-2,000 rows
  (table slices) or one metadata file each, so streaming, ``num_proc`` and DataLoader workers shard;
* ``_read_shard(spec)``: a ``pyarrow.Table`` with ``youtube_id``, ``start``, ``end`` (optionally ``id`` and
  ``_media_paths``), plus the corpus columns, labels already as ClassLabel ids.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.builder import Key

from avsets.core.errors import ManualDownloadRequired, StreamingOnlySourceError
from avsets.core.notices import MISSING_MEDIA, warn_once
from avsets.core.secrets import redact_url
from avsets.media.media_index import MediaIndex, SourcePlan, check_pattern, plan_sources
from avsets.media.resolve import ResolveOptions, ResolveStats
from avsets.media.sources.base import archive_order_sources
from avsets.media.sources.clip_or_video import stated
from avsets.media.sources.stream import StreamSpec, stream_archive
from avsets.metadata.card import read_card
from avsets.metadata.quality.table import QUALITY_FLAGS

from .config import AVConfig
from .filters import (
    FilterCounts,
    FilterError,
    FilterPlan,
    apply_filters,
    id_kind,
    log_counts,
    quality_columns,
    quality_features,
    warn_no_match,
    write_counts,
)
from .overlays import OverlayFile, bind, overlay_features, overlay_flags, overlay_names
from .tables import batch_tables, common_features, conform, finalize_shard, label_names_of
from .transform import DECODE_STATS

logger = logging.getLogger("avsets")


def _schema_of(path: str) -> pa.Schema:
    return pq.read_schema(path)


def _noted(tables: Iterator[pa.Table], passed: list[tuple]) -> Iterator[pa.Table]:
    """Pass ``tables`` through, noting each one's size and first/last key cell in ``passed`` (cheap: two
    cells), so a notice about this pass can tell another shard with the same counts from a later epoch."""
    for t in tables:
        if t.num_rows and t.num_columns:
            col = t.column(0)
            passed.append((t.num_rows, str(col[0].as_py()), str(col[t.num_rows - 1].as_py())))
        else:
            passed.append((t.num_rows,))
        yield t


def _stop_if_orphaned(owner: int | None) -> None:
    """In a ``num_proc`` worker whose preparing process died (kill -9), exit instead of writing on into the
    ``.incomplete`` folder that the rerun is using.  Found by the fault tests: such orphans lived on."""
    if owner and os.getpid() != owner and os.getppid() != owner:
        logger.warning("avsets: the process preparing this dataset (pid %d) is gone; worker %d stops", owner,
                       os.getpid())
        os._exit(1)


class AVBuilder(datasets.ArrowBasedBuilder):
    """Shared builder: sharded ``gen_kwargs``, media resolution, ``on_missing``, schema."""

    BUILDER_CONFIG_CLASS = AVConfig
    CORPUS: str = ""
    VERSION = datasets.Version("1.0.0")
    # The cache holds paths, not media bytes, so big record batches are safe; the default (10 rows for
    # Video) made 600k tiny writes for 200k rows.
    DEFAULT_WRITER_BATCH_SIZE = 10_000

    def __init__(self, *args: Any, plan: SourcePlan | None = None, **kwargs: Any) -> None:
        # where the media come from, decided by avsets.load_dataset (None: planned on first use, see media_index)
        self.plan = plan
        try:
            super().__init__(*args, **kwargs)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            # datasets reads dataset_info.json of a finished cache here: damaged after it was written, it
            # would fail every later load, streaming included.  Drop that cache and start again.
            damaged = getattr(self, "_cache_dir", None)
            if not damaged or "://" in str(damaged) or not os.path.exists(os.path.join(damaged, "dataset_info.json")):
                raise
            logger.warning("%s: the cached dataset in %s is damaged (%s: %s); preparing it again", self.CORPUS,
                           damaged, type(exc).__name__, exc)
            shutil.rmtree(damaged, ignore_errors=True)
            super().__init__(*args, **kwargs)
        if self.config.media_pattern:
            features = getattr(self.info, "features", None)  # the row's columns: unknown names fail here, once
            check_pattern(self.config.media_pattern, set(features) if features else None)
        self._check_drop()
        self.stats: dict[str, ResolveStats] = {}
        #: what the filters removed per split in this process (map-style counts also sit beside the cache)
        self.filter_counts: dict[str, FilterCounts] = {}

    def media_index(self) -> MediaIndex | None:
        """The random-access index of this load's media: the plan's (one scan per load), or one scan now for a
        builder made without a plan.  Corpora's ``_read_shard`` may call it too."""
        if not self.config.media_dir:
            return None
        if self.plan is None or self.plan.index is None:
            self.plan = plan_sources(self.config.media_dir, id_named=self.config.id_named,
                                     key_column=self.config.media_key_column, on_missing=self.config.on_missing,
                                     quiet=self.plan.quiet if self.plan is not None else False)
        return self.plan.index

    @property
    def _quiet_missing(self) -> bool:
        return self.plan is not None and self.plan.quiet

    # -- hooks for corpora ------------------------------------------------------------------------
    def _corpus_features(self) -> dict:
        raise NotImplementedError

    def _split_shards(self, dl_manager: Any) -> dict[str, list]:
        raise NotImplementedError

    def _read_shard(self, spec: Any) -> pa.Table:
        raise NotImplementedError

    # -- filters (avsets.build.filters) -----------------------------------------------------------------
    def _filtered_features(self) -> dict:
        """The corpus' columns, plus the quality table's and the overlays' when asked for."""
        feats = dict(self._corpus_features())
        names = overlay_names(self.config.overlays, self.CORPUS)
        feats.update({k: v for k, v in overlay_features(names).items() if k not in feats})
        if self.config.quality:
            feats.update(quality_features(self.config.quality, taken=feats))
        return feats

    def _check_drop(self) -> None:
        """``drop`` names only flags this load has: unknown names fail here, listing the known ones."""
        if not self.config.drop:
            return
        features = self.info.features
        known = [n for n, f in features.items() if isinstance(f, datasets.Value) and f.dtype == "bool"]
        bad = [d for d in self.config.drop if d not in known]
        if bad:
            hint = ""
            if any(b in QUALITY_FLAGS for b in bad) and not self.config.quality:
                hint = " (quality flags need quality='q.parquet')"
            elif any(b in overlay_flags(("vggsounder", "audioset_qa")) for b in bad):
                hint = " (overlay flags need overlays=[...])"
            raise FilterError(f"{self.CORPUS}: drop={list(self.config.drop)!r}: unknown flag(s) {', '.join(bad)}"
                              f"{hint}; known here: {', '.join(known) or 'none'}; quality flags: "
                              f"{', '.join(QUALITY_FLAGS)}")

    def filter_plan(self, dl_manager: Any) -> FilterPlan:
        """The picklable plan of this load's filters; overlay files are found (or downloaded) here."""
        names = overlay_names(self.config.overlays, self.CORPUS)

        def find(f: OverlayFile) -> str | None:
            return self.metadata_file(dl_manager, f.relpath, f.url, required=f.required)

        quality_fields: tuple[str, ...] = ()
        if self.config.quality:
            corpus = set(self._corpus_features()) | set(overlay_features(names))
            quality_fields = tuple(f.name for f in quality_columns(_schema_of(self.config.quality), corpus))
        return FilterPlan(only_ids=self.config.only_ids, exclude=self.config.exclude, quality=self.config.quality,
                          quality_fields=quality_fields, overlays=bind(names, find, self.info.features),
                          drop=self.config.drop)

    def _filters_done(self, split: str, plan: FilterPlan, counts: FilterCounts, key: Any = None) -> None:
        """Log the counts of one pass, say when an id list matched nothing, keep the counts."""
        where = f"{self.CORPUS}/{self.config.name}"
        log_counts(where, split, counts, plan, key)
        for what, given, matched in (("only_ids", plan.only_ids, counts.rows - counts.only_ids),
                                     ("exclude", plan.exclude.ids if plan.exclude else None, counts.exclude)):
            # a split may hold none of the ids (test ids, train split): only a different kind of id is
            # certain to be a mistake here; a load that matches nothing at all is told by load_dataset
            sample = counts.sample
            if given and counts.rows and not matched and sample and id_kind(given[0]) != id_kind(sample[0]):
                warn_no_match(what, given, sample, where)
        self.filter_counts.setdefault(split, FilterCounts()).add(counts)
        if getattr(self, "_prepare_owner", None):
            write_counts(self._output_dir, split, counts)

    # -- datasets hooks ---------------------------------------------------------------------------
    def _info(self) -> datasets.DatasetInfo:
        card = read_card(self.CORPUS)
        return datasets.DatasetInfo(
            description=card.get("description", ""),
            features=common_features(self._filtered_features()),
            homepage=card.get("homepage", ""),
            license=card.get("license", ""),
            citation=card.get("citation", ""),
        )

    def _download_and_prepare(self, *args: Any, **kwargs: Any) -> Any:
        # num_proc workers get a pickled copy: they compare it with their parent (see _stop_if_orphaned)
        self._prepare_owner = os.getpid()
        index = self.media_index()  # map-style only: a .tar.gz source cannot serve random access
        only = self.plan.streaming_only if self.plan is not None else []
        if index is not None and only:
            if len(index) == 0:  # nothing to serve at random: say how to read it at all
                raise StreamingOnlySourceError(
                    "a .tar.gz cannot be read at random (map-style). Load with streaming=True, or extract the "
                    "clips your rows need once with `avsets unpack`", source=redact_url(only[0].url))
            # serve what random access can; the rows only those archives hold are named as missing below
            warn_once(logger, ("stream-only", self.CORPUS, tuple(s.url for s in only)),
                      "%s: %s can only be read in archive order; the other sources serve the rows they hold, "
                      "rows held only there count as missing (`avsets verify` lists them). Load with "
                      "streaming=True, or extract those clips once with `avsets unpack`", self.CORPUS,
                      ", ".join(redact_url(s.url) for s in only))
        try:
            return super()._download_and_prepare(*args, **kwargs)
        finally:
            self._prepare_owner = None

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        shards = self._split_shards(dl_manager)
        plan = self.filter_plan(dl_manager)
        archives: list = []
        if isinstance(dl_manager, datasets.StreamingDownloadManager) and self.config.media_dir:
            found = self.plan.archives if self.plan is not None else None
            archives = list(found) if found is not None else archive_order_sources(self.config.media_dir)
        if archives:
            # Archive-order streaming (avsets.media.sources.stream): each archive is a shard; every shard joins its
            # members against all rows of the split (a tuple, so datasets does not shard it).
            return [
                datasets.SplitGenerator(name=split, gen_kwargs={"shards": list(archives), "split": split,
                                                                "row_specs": tuple(specs),
                                                                "all_archives": tuple(archives), "plan": plan})
                for split, specs in shards.items()
            ]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"shards": list(specs), "split": split, "plan": plan})
            for split, specs in shards.items()
        ]

    def _generate_tables(self, shards: list, split: str, row_specs: tuple | None = None,
                         all_archives: tuple = (), plan: FilterPlan | None = None):
        plan = plan if plan is not None else FilterPlan(only_ids=self.config.only_ids)
        if row_specs is not None:
            yield from self._generate_archive_tables(shards, split, row_specs, all_archives, plan)
            return
        index = self.media_index()
        opts = ResolveOptions(
            modalities=self.config.modalities,
            media_pattern=self.config.media_pattern,
            on_missing=self.config.on_missing,
            label_names=label_names_of(self.info.features),
        )
        schema = self.info.features.arrow_schema
        # counts of this pass only (streaming runs one pass per shard and epoch): the log line is exact
        total = self.stats[split] = ResolveStats()
        owner = getattr(self, "_prepare_owner", None)
        counts = FilterCounts()
        passed: list[tuple] = []  # which rows this pass read: the notice below is said once per shard, not per epoch
        for i, table in enumerate(batch_tables(_noted((self._read_shard(spec) for spec in shards), passed))):
            table = apply_filters(table, plan, counts)
            table, stats = finalize_shard(table, index, opts, schema, verify_media=self.config.verify_media)
            total.add(stats)
            counts.on_missing += stats.missing if self.config.on_missing == "skip" and index is not None else 0
            counts.kept += table.num_rows
            self._count_dropped(stats.missing)
            _stop_if_orphaned(owner)
            yield Key(i, 0), table
        _stop_if_orphaned(owner)
        if plan.active and shards:
            self._filters_done(split, plan, counts, key=tuple(passed))
        if index is not None and total.missing and shards and not self._quiet_missing:
            warn_once(
                logger, (self.CORPUS, self.config.name, split, total.missing, total.rows, self.config.on_missing,
                         tuple(passed)),
                "%s/%s %s: %d of %d rows have no media (on_missing=%r)%s; `avsets verify` lists them",
                self.CORPUS, self.config.name, split, total.missing, total.rows, self.config.on_missing,
                ", dropped" if self.config.on_missing == "skip" else "", kind=MISSING_MEDIA,
            )

    def _generate_archive_tables(self, archives: list, split: str, row_specs: tuple, all_archives: tuple,
                                 plan: FilterPlan):
        spec = StreamSpec(
            corpus=self.CORPUS, config_name=self.config.name, split=split, archives=all_archives,
            modalities=tuple(self.config.modalities), media_pattern=self.config.media_pattern,
            on_missing=self.config.on_missing, label_names=label_names_of(self.info.features),
            assume_trimmed=stated(self.config.id_named),
            key_column=self.config.media_key_column,
            scope=f"{self.config_id}|{getattr(self, 'hash', '')}",
            quiet=self._quiet_missing,
        )
        schema = self.info.features.arrow_schema
        stats = self.stats.setdefault(split, ResolveStats())

        def read_rows() -> pa.Table:
            tables = [self._read_shard(s) for s in row_specs]
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
            counts = FilterCounts()
            table = apply_filters(table, plan, counts)
            if plan.active:
                self._filters_done(split, plan, counts)
            return table

        n = 0
        for archive in archives:
            for table in stream_archive(spec, archive, read_rows, schema, conform, stats):
                yield Key(n, 0), table
                n += 1

    def _count_dropped(self, missing: int) -> None:
        """Streaming rows left out for want of media (``on_missing="skip"``) count in ``DECODE_STATS.dropped``,
        like rows whose media fails to decode: what a training loop did not get, in one number."""
        if missing > 0 and self.plan is not None and self.plan.streaming and self.config.on_missing == "skip":
            DECODE_STATS.add("dropped", missing)

    # -- helpers for corpora ----------------------------------------------------------------------
    def metadata_file(self, dl_manager: Any, relpath: str, url: str | None = None, *, required: bool = True,
                      how_to_get: str = "") -> str | None:
        """The local path of an upstream metadata file: under ``data_dir``, else downloaded from ``url``.

        Without either, raise :class:`ManualDownloadRequired` saying which file to put where.
        """
        data_dir = self.config.data_dir
        if data_dir:
            path = os.path.join(os.path.abspath(os.path.expanduser(data_dir)), *relpath.split("/"))
            if os.path.exists(path):
                return path
            if not required:
                return None
            raise ManualDownloadRequired(
                f"{self.CORPUS}: {relpath!r} not found in data_dir {data_dir!r} (looked for {path}). "
                + (how_to_get or (f"Download it from {url}" if url else ""))
            )
        if url is None:
            if not required:
                return None
            raise ManualDownloadRequired(
                f"{self.CORPUS}: {relpath!r} cannot be downloaded automatically. {how_to_get} "
                "Put it under a folder and pass data_dir=<that folder>."
            )
        try:
            path = dl_manager.download(url)
            if "://" in str(path):
                # A streaming download manager hands back the URL and fails later, deep in a reader, with
                # "No such file or directory: 'https://...'"; metadata files are small: fetch them once here.
                from datasets.utils.file_utils import cached_path

                path = cached_path(str(path))
            return path
        except OSError as exc:  # offline, DNS, 404: datasets says "No such file or directory: 'https://...'"
            raise ManualDownloadRequired(
                f"{self.CORPUS}: could not download {relpath!r} from {url} ({type(exc).__name__}: {exc}). "
                f"Download it yourself, put it under a folder and pass data_dir=<that folder> "
                f"(--data-dir on the command line). {how_to_get}".rstrip()
            ) from exc
