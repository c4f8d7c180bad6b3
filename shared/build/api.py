"""Public entry points with the call shape and return types of ``datasets.load_dataset``.

``datasets`` 5 cannot reach a custom builder by name (no loading scripts, and its packaged-module registry is
private and fragile), so avsets keeps its own registry and instantiates the builders itself, always with
``dataset_name=`` and ``hash=``, never forwarding ``None`` kwargs (they change the cache id).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow as pa

from avsets.core.errors import AvsetsError
from avsets.core.version import __version__
from avsets.media.media_index import SourcePlan, normalize_roots, plan_sources
from avsets.metadata.manifest import read_ids

from .filters import FilterError, cached_counts, check_ids, file_digest, read_exclude, warn_no_match
from .transform import decode as decode_step

logger = logging.getLogger("avsets")

CORPORA: dict[str, str] = {
    "audiosetzsl": "avsets.audiosetzsl.audiosetzsl:AudioSetZSL",
    "avset10m": "avsets.avset10m.avset10m:AVSET10M",
    "vggsound": "avsets.vggsound.vggsound:VGGSound",
    "avmit": "avsets.avmit.avmit:AVMIT",
    "ascc": "avsets.ascc.ascc:ASCC",
}

DECODE_OPTIONS = ("sampling_rate", "mono", "num_frames", "fps", "size")


def list_corpora() -> list[str]:
    """Names of the corpora whose builders are installed."""
    out = []
    for name in CORPORA:
        try:
            builder_class(name)
        except (ImportError, AttributeError):
            continue
        out.append(name)
    return out


def builder_class(name: str) -> type:
    """The builder class registered for a corpus name."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    module_name, cls_name = CORPORA[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def get_dataset_config_names(name: str) -> list[str]:
    """Config names of a corpus, default first."""
    cls = builder_class(name)
    names = [c.name for c in cls.BUILDER_CONFIGS]
    default = getattr(cls, "DEFAULT_CONFIG_NAME", None)
    if default in names:
        names.remove(default)
        names.insert(0, default)
    return names


def _source_hash(cls: type) -> str:
    """Hash of the code that shapes the cache: every module of the corpus package and of the core.

    Whole folder trees rather than a module list, so a parser edit in a sibling module (``metadata.py``,
    ``embeddings.py``...) or in a subpackage (``sources/keys.py`` decides the names cached paths are matched
    by) can never leave a stale cache behind. Paths are hashed relative to their root, in sorted order.
    """
    h = hashlib.sha256(__version__.encode())
    corpus_pkg = importlib.import_module(cls.__module__.rsplit(".", 1)[0])
    # the whole avsets package (this file sits in its build/ folder) and the corpus' own folder
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders = {package_root, os.path.dirname(os.path.abspath(corpus_pkg.__file__))}
    for folder in sorted(folders):
        for sub, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(sub, name)
                    rel = os.path.relpath(path, folder).replace(os.sep, "/")
                    with open(path, "rb") as f:
                        h.update(rel.encode() + b"\0" + f.read())
    return h.hexdigest()


def metadata_fingerprint(data_dir: str | None) -> str:
    """Names, sizes and mtimes of the metadata files (never their contents): edits invalidate the cache."""
    if not data_dir:
        return "pinned-download"
    h = hashlib.sha256()
    root = os.path.abspath(os.path.expanduser(data_dir))
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(folder, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def load_dataset_builder(
    name: str,
    config: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    media_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    cache_dir: str | os.PathLike | None = None,
    on_missing: str | None = None,
    only_ids: Any = None,
    exclude: Any = None,
    quality: str | os.PathLike | None = None,
    drop: str | Sequence[str] | None = None,
    overlays: str | Sequence[str] | None = None,
    plan: SourcePlan | None = None,
    quiet_missing: bool = False,
    **config_kwargs: Any,
) -> datasets.DatasetBuilder:
    """A ready builder whose cache key covers the code, the metadata files, the media index and the filters.

    ``only_ids``, ``exclude``, ``quality``, ``drop`` and ``overlays`` are the filters of
    :func:`load_dataset`; the quality file's *content* is part of the cache key.  ``plan``: where the media
    come from (:func:`avsets.media.media_index.plan_sources`), handed to the builder as an argument; made here (one
    index scan) when the caller has none.  ``quiet_missing``: the caller (``avsets verify``/``report``) prints
    the missing-media counts itself.
    """
    cls = builder_class(name)
    kwargs: dict[str, Any] = {k: v for k, v in config_kwargs.items() if v is not None}
    if media_dir is not None:
        roots = normalize_roots(media_dir)
        if plan is None:
            plan = plan_sources(roots, id_named=kwargs.get("id_named", "auto"),
                                key_column=kwargs.get("media_key_column"), on_missing=on_missing or "skip",
                                quiet=quiet_missing)
        kwargs["media_dir"] = tuple(roots)
    elif plan is None:
        plan = SourcePlan(quiet=quiet_missing)
    if data_dir is not None:
        kwargs["data_dir"] = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if on_missing is not None:
        kwargs["on_missing"] = on_missing
    if only_ids is not None:
        kwargs["only_ids"] = _only_ids(only_ids)
    if exclude is not None:
        kwargs["exclude"] = read_exclude(exclude)
    quality_key = "no-quality"
    if quality is not None:
        kwargs["quality"] = os.path.abspath(os.path.expanduser(os.fspath(quality)))
        if not os.path.isfile(kwargs["quality"]):
            raise FilterError(f"quality={os.fspath(quality)!r}: no such file (make one with `avsets quality`)")
        quality_key = file_digest(kwargs["quality"])
    if drop is not None:
        kwargs["drop"] = (tuple(x.strip() for x in drop.split(",") if x.strip()) if isinstance(drop, str)
                          else tuple(check_ids(drop, "drop")))
    if overlays is not None:
        kwargs["overlays"] = (overlays,) if isinstance(overlays, str) else tuple(overlays)
    if isinstance(kwargs.get("modalities"), list):
        kwargs["modalities"] = tuple(kwargs["modalities"])
    fingerprint = hashlib.sha256(
        "\0".join([_source_hash(cls), metadata_fingerprint(kwargs.get("data_dir")),
                   plan.fingerprint, quality_key]).encode()
    ).hexdigest()[:16]
    return cls(
        config_name=config,
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        hash=fingerprint,
        dataset_name=name,
        plan=plan,
        **kwargs,
    )


def _only_ids(value: Any) -> tuple[str, ...]:
    """``only_ids``: a manifest / CSV of ids / ``--segments`` CSV / ledger path, or the ids themselves (a
    non-string element is an error naming it, never a ``TypeError`` from sorting)."""
    if isinstance(value, (str, os.PathLike)):
        return tuple(sorted(read_ids(value)))
    return check_ids(value, "only_ids")


def load_dataset(
    name: str,
    config: str | None = None,
    split: str | datasets.Split | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    media_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    streaming: bool = False,
    decode: bool = True,
    on_missing: str = "skip",
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    download_mode: datasets.DownloadMode | str | None = None,
    verification_mode: datasets.VerificationMode | str | None = None,
    keep_in_memory: bool | None = None,
    storage_options: dict | None = None,
    **config_kwargs: Any,
) -> datasets.DatasetDict | datasets.Dataset | datasets.IterableDatasetDict | datasets.IterableDataset:
    """Load a corpus: ``DatasetDict``/``Dataset`` (map-style) or their iterable twins (``streaming=True``).

    Decode options (``sampling_rate``, ``mono``, ``num_frames``, ``fps``, ``size``) shape the decoded
    arrays and never the cache.  With ``decode=False`` media columns hold ``{bytes, path}`` and rows carry
    ``media_offset`` so callers can cut themselves.

    Filters (:mod:`avsets.build.filters`; they run in this order, each counted per split and logged):

    * ``only_ids``: keep just these clip ids (a manifest, a CSV of ids, a text file, or the ids);
    * ``exclude``: drop these clip ids (a dups/overlap CSV of ``avsets duplicates`` / ``avsets overlap``,
      whose ``id_a``/``id_b`` both go, or the same kinds as ``only_ids``);
    * ``quality="q.parquet"`` (``avsets quality``) adds its measures and flags as columns, joined by ``id``
      (``quality_missing=True`` on rows it has no result for); ``overlays=["vggsounder"]`` /
      ``["audioset_qa"]`` join other projects' judgements the same way (:mod:`avsets.build.overlays`);
    * ``drop=["silent", "still", ...]``: remove rows whose flag is true (quality, overlay or boolean corpus
      flags; an unknown name is an error listing the known ones);
    * ``on_missing``: what happens to rows without media, last.
    """
    return load_with_builder(
        name, config, split, data_dir=data_dir, media_dir=media_dir, streaming=streaming, decode=decode,
        on_missing=on_missing, cache_dir=cache_dir, num_proc=num_proc, download_mode=download_mode,
        verification_mode=verification_mode, keep_in_memory=keep_in_memory, storage_options=storage_options,
        **config_kwargs)[0]


def load_with_builder(
    name: str,
    config: str | None = None,
    split: str | datasets.Split | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    media_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    streaming: bool = False,
    decode: bool = True,
    on_missing: str = "skip",
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    download_mode: datasets.DownloadMode | str | None = None,
    verification_mode: datasets.VerificationMode | str | None = None,
    keep_in_memory: bool | None = None,
    storage_options: dict | None = None,
    **config_kwargs: Any,
) -> tuple[Any, datasets.DatasetBuilder]:
    """:func:`load_dataset` that also returns the builder (its ``cache_dir`` holds the filter counts that
    ``avsets export`` writes on the card)."""
    decode_opts = {k: config_kwargs.pop(k) for k in DECODE_OPTIONS if k in config_kwargs}
    if streaming and num_proc is not None:
        raise NotImplementedError("loading a dataset in streaming mode with num_proc is not supported; "
                                  "use DataLoader workers")
    # one plan a load: streaming over archives reads them in archive order (no index scan), else one scan
    plan = plan_sources(media_dir, streaming=streaming, id_named=config_kwargs.get("id_named") or "auto",
                        key_column=config_kwargs.get("media_key_column"), on_missing=on_missing) \
        if media_dir is not None else None
    builder = load_dataset_builder(name, config, data_dir=data_dir, media_dir=media_dir, cache_dir=cache_dir,
                                   on_missing=on_missing, plan=plan, **config_kwargs)
    if streaming:
        ds = builder.as_streaming_dataset(split=split)
    else:
        try:
            builder.download_and_prepare(download_mode=download_mode, verification_mode=verification_mode,
                                         num_proc=num_proc, storage_options=storage_options)
        except datasets.exceptions.DatasetGenerationError as exc:
            _reraise_own(exc)
            raise
        try:
            ds = _as_dataset(builder, split, keep_in_memory)
        except (OSError, pa.ArrowInvalid) as exc:  # a cached Arrow file damaged after it was written
            logger.warning("%s: the cached dataset in %s is damaged (%s: %s); preparing it again", name,
                           builder.cache_dir, type(exc).__name__, exc)
            builder.download_and_prepare(download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD,
                                         verification_mode=verification_mode, num_proc=num_proc,
                                         storage_options=storage_options)
            ds = _as_dataset(builder, split, keep_in_memory)
        _check_matches(builder)
    if decode and media_dir is not None:
        ds = decode_step(ds, on_error=on_missing, **decode_opts)
    return ds, builder


def _check_matches(builder: datasets.DatasetBuilder) -> None:
    """Warn when ``only_ids`` or ``exclude`` matched no row of any split (DESIGN "No silent miss")."""
    cfg = builder.config
    if getattr(cfg, "only_ids", None) is None and getattr(cfg, "exclude", None) is None:
        return
    counts = cached_counts(builder.cache_dir)
    if not counts:
        return
    rows = sum(c.rows for c in counts.values())
    sample = [i for c in counts.values() for i in c.sample][:3]
    where = f"{builder.name}/{cfg.name}"
    if cfg.only_ids is not None and rows and rows == sum(c.only_ids for c in counts.values()):
        warn_no_match("only_ids", cfg.only_ids, sample, where)
    if cfg.exclude is not None and cfg.exclude.ids and not sum(c.exclude for c in counts.values()):
        warn_no_match("exclude", cfg.exclude.ids, sample, where)


def _reraise_own(exc: BaseException) -> None:
    """Surface our own error (file and line) instead of "An error occurred while generating the dataset"."""
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, AvsetsError):
        cause = cause.__cause__
    if isinstance(cause, AvsetsError):
        own = copy.copy(cause)
        raise own.with_traceback(None) from cause


def _empty_dataset(builder: datasets.DatasetBuilder, split: str) -> datasets.Dataset:
    schema = builder.info.features.arrow_schema
    table = pa.Table.from_batches([], schema=schema)
    info = builder.info.copy()
    return datasets.Dataset(datasets.table.InMemoryTable(table), info=info, split=datasets.Split(split))


def _as_dataset(builder: datasets.DatasetBuilder, split: Any, keep_in_memory: bool | None) -> Any:
    """``as_dataset`` that returns an empty split instead of raising "corresponds to no data"."""
    splits = builder.info.splits or {}
    empty = {name for name, info in splits.items() if info.num_examples == 0}
    if split is None:
        out = {}
        for name in splits:
            out[name] = (_empty_dataset(builder, name) if name in empty
                         else builder.as_dataset(split=name, in_memory=bool(keep_in_memory)))
        return datasets.DatasetDict(out)
    if str(split) in empty:
        return _empty_dataset(builder, str(split))
    return builder.as_dataset(split=split, in_memory=bool(keep_in_memory))
