"""Corpus/split units named on the command line: ``corpus[:config][/split]`` and per-corpus folders.

A *unit* is one split of one corpus config, the thing leakage is measured between ("VGGSound test",
"AudioSetZSL train").  Its rows come from the builder's own tables (``avsets.ops.verify.split_tables``, no cache
written), so ids, segments and media are exactly what ``load_dataset`` gives.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import pyarrow as pa
from datasets import DownloadManager

from avsets.build.api import get_dataset_config_names, list_corpora, load_dataset_builder
from avsets.media.resolve import ensure_ids

from ..verify import split_tables
from .errors import LeakageUsageError

logger = logging.getLogger("avsets")

#: the columns the id overlap needs (metadata only)
KEY_COLUMNS = ("id", "youtube_id", "start", "end")


@dataclass(frozen=True)
class Spec:
    """``corpus[:config][/split]`` as parsed; ``split=None`` means every split of the config."""

    corpus: str
    config: str | None = None
    split: str | None = None

    @property
    def text(self) -> str:
        return self.corpus + (f":{self.config}" if self.config else "") + (f"/{self.split}" if self.split else "")


@dataclass
class Unit:
    """One split of one corpus config and its rows (at least ``KEY_COLUMNS``)."""

    corpus: str
    config: str | None
    split: str
    table: pa.Table

    @property
    def label(self) -> str:
        return f"{self.corpus}{':' + self.config if self.config else ''}/{self.split}"


def parse_spec(text: str) -> Spec:
    """``vggsound``, ``vggsound:common``, ``vggsound/test``, ``avset10m:700k/train``."""
    rest, _, split = text.partition("/")
    corpus, _, config = rest.partition(":")
    corpus = corpus.strip().lower()
    if corpus not in list_corpora():
        raise LeakageUsageError(f"unknown corpus {corpus!r} in {text!r}; corpora: {', '.join(list_corpora())}")
    if config and config not in get_dataset_config_names(corpus):
        raise LeakageUsageError(f"{corpus} has no config {config!r} (in {text!r}); configs: "
                                f"{', '.join(get_dataset_config_names(corpus))}")
    if "/" in text and not split:
        raise LeakageUsageError(f"{text!r}: nothing after '/'; write corpus[:config][/split]")
    return Spec(corpus, config or None, split or None)


def parse_folder_options(values: Sequence[str] | None, flag: str = "--data-dir") -> tuple[str | None, dict[str, str]]:
    """Repeated ``--data-dir CORPUS=DIR`` plus at most one plain ``--data-dir DIR`` (the default).

    ``CORPUS=`` is read as a mapping only when CORPUS is a corpus name, so a folder whose name holds ``=`` still
    works as a plain default.
    """
    default: str | None = None
    per: dict[str, str] = {}
    corpora = set(list_corpora())
    for value in values or []:
        head, sep, tail = value.partition("=")
        if sep and head.strip().lower() in corpora:
            if not tail:
                raise LeakageUsageError(f"{flag} {value}: no folder after '='")
            per[head.strip().lower()] = os.path.expanduser(tail)
        elif default is None:
            default = os.path.expanduser(value)
        else:
            raise LeakageUsageError(f"{flag} given twice without a corpus ({default!r}, {value!r}); write "
                                    f"{flag} CORPUS=DIR for each corpus")
    return default, per


def folder_for(corpus: str, default: str | None, per: Mapping[str, str]) -> str | None:
    """The folder for ``corpus``: its own mapping, else the plain default, else None."""
    return per.get(corpus, default)


def iter_units(spec: Spec, *, data_dir: str | None, media_dir: str | Sequence[str] | None = None,
               columns: Sequence[str] | None = KEY_COLUMNS, jobs: int = 1, **config_kwargs) -> Iterator[Unit]:
    """The units of one spec (every split, or the one named), each with its rows as one Arrow table.

    Without ``media_dir`` only the key columns are read, straight from the corpus' own parser
    (``builder._read_shard``, the builder protocol's one parsing step, or the builder's key-only reader; see
    :func:`_key_tables`, which ``jobs`` worker processes may share), with no media resolution, no conforming
    to the features and no Arrow cache written: AVSET-10M's 10.9M rows cost about 60 bytes a row.  With
    ``media_dir`` the rows are the builder's full tables (``avsets.ops.verify.split_tables``).
    """
    found = []
    if media_dir is None and columns is not None:
        gens = _key_tables(spec, data_dir=data_dir, columns=columns, jobs=jobs, **config_kwargs)
    else:
        gens = ((split, _concat([t if columns is None else t.select(list(columns)) for t in tables], columns))
                for split, tables in split_tables(spec.corpus, spec.config, data_dir=data_dir, media_dir=media_dir,
                                                  **config_kwargs))
    for split, table in gens:
        found.append(split)
        if spec.split is not None and split != spec.split:
            continue
        yield Unit(spec.corpus, spec.config, split, table)
    if spec.split is not None and spec.split not in found:
        raise LeakageUsageError(f"{spec.text}: no split {spec.split!r}; splits: {', '.join(found) or '(none)'}")


def _concat(parts: list[pa.Table], columns: Sequence[str] | None) -> pa.Table:
    if parts:
        return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    return pa.table({c: pa.array([], pa.float64() if c in ("start", "end") else pa.string())
                     for c in (columns or KEY_COLUMNS)})


def _keys_of(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """The key columns of a parsed shard (``id`` made as the builder makes it; absent columns null)."""
    table = ensure_ids(table) if "youtube_id" in table.column_names else table
    n = table.num_rows
    cols = {}
    for c in columns:
        typ = pa.float64() if c in ("start", "end") else pa.string()
        cols[c] = table.column(c).cast(typ) if c in table.column_names else pa.nulls(n, typ)
    return pa.table(cols)


_BUILDERS: dict = {}  # (corpus, config, data_dir, options) -> builder


def _builder(corpus: str, config: str | None, data_dir: str | None, options: tuple):
    key = (corpus, config, data_dir, options)
    if key not in _BUILDERS:
        _BUILDERS[key] = load_dataset_builder(corpus, config, data_dir=data_dir, **dict(options))
    return _BUILDERS[key]


#: a process pool only pays for its start (about 1.5 s a worker: importing ``datasets``) from this many shards
MIN_POOL_SHARDS = 8


def _key_tables(spec: Spec, *, data_dir: str | None, columns: Sequence[str], jobs: int = 1, **config_kwargs
                ) -> Iterator[tuple[str, pa.Table]]:
    """Each split's key columns, parsed shard by shard by the corpus' own key reader or ``_read_shard``.

    A builder may offer ``_key_reader()``: a picklable ``shard -> key columns`` function that skips the fields
    the overlap does not need (AVSET-10M: :mod:`avsets.avset10m.keys`, 0.4x the CPU of its full parser).
    With ``jobs > 1`` and at least ``MIN_POOL_SHARDS`` shards, that reader runs in a pool of ``jobs`` worker
    processes, started by ``spawn`` (forking after Arrow's threads started is unsafe), shard order kept.
    Otherwise one process, one shard at a time (the parsers hold the GIL: threads measured no faster).
    """
    builder = _builder(spec.corpus, spec.config, data_dir, tuple(sorted(config_kwargs.items())))
    dl_manager = DownloadManager(base_path=None, download_config=None, dataset_name=spec.corpus,
                                 data_dir=builder.config.data_dir)
    key_reader = getattr(builder, "_key_reader", lambda: None)()
    for gen in builder._split_generators(dl_manager):
        if spec.split is not None and gen.name != spec.split:
            yield gen.name, _concat([], columns)
            continue
        shards = gen.gen_kwargs["shards"]
        tables = None
        if key_reader is not None and jobs > 1 and len(shards) >= MIN_POOL_SHARDS:
            tables = _pool_map(key_reader, shards, jobs)
        if tables is None:
            # no key reader (AVSET-10M under errors="skip" or a row filter): the rows the build keeps
            read = key_reader or getattr(builder, "_read_shard_keys", builder._read_shard)
            tables = [read(shard) for shard in shards]
        yield gen.name, _concat([_keys_of(t, columns) for t in tables], columns)


def _pool_map(reader: Callable, shards: Sequence, jobs: int) -> list[pa.Table] | None:
    """``reader`` over ``shards`` in ``jobs`` spawned processes, in order; None if the pool could not run.

    A worker re-imports the caller's ``__main__``; a script without an ``if __name__ == "__main__":`` guard
    makes it die, which is no reason to fail the audit: the shards are then read here, one by one.
    """
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(shards)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(reader, shards))
    except BrokenProcessPool as exc:
        logger.warning("overlap: the metadata reader processes stopped (%s); reading in this process", exc)
        return None
