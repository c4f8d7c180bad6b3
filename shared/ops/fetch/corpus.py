"""A corpus' segments, read through its builder: the thin adapter between ``load_dataset`` and the runner.

Reading through the builder (streaming, metadata only) means every corpus, config, split and config
filter works unchanged, and a 10.9M-row corpus is never materialized.  Rows with no YouTube segment
(AVMIT, ASCC without ``big_data.csv``) are skipped and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avsets.build.api import load_dataset
from avsets.core.segments import Segment, segment_of_key

from .clip import ClipRequest, WholeVideo

logger = logging.getLogger(__name__)


@dataclass
class CorpusStats:
    rows: int = 0
    without_segment: int = 0
    invalid: int = 0


def _label_text(feature: Any, value: Any) -> Any:
    """ClassLabel ints as names (``{label}`` in a URL template means the name), lists joined by commas."""
    import datasets

    if isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
        return feature.int2str(value)
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel) and isinstance(value, list):
        return ",".join(inner.int2str(v) if isinstance(v, int) else str(v) for v in value)
    if isinstance(feature, list) and feature and isinstance(feature[0], datasets.ClassLabel) and isinstance(value, list):
        return ",".join(feature[0].int2str(v) if isinstance(v, int) else str(v) for v in value)
    return value


def _scalar_fields(row: Mapping[str, Any], features: Mapping[str, Any] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in row.items():
        if k in ("audio", "video"):
            continue
        if features is not None and k in features:
            v = _label_text(features[k], v)
        if v is None or isinstance(v, (str, int, float, bool)):
            out[k] = v
        elif isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v):
            out[k] = ",".join(str(x) for x in v)  # a list column is a template field too (comma-joined)
    return out


def corpus_requests(corpus: str, config: str | None = None, *, data_dir: str | None = None,
                    split: str | Sequence[str] | None = None, stats: CorpusStats | None = None,
                    whole_videos: bool = False, **config_kwargs: Any) -> Iterator[ClipRequest]:
    """Yield a ``ClipRequest`` for every row of ``corpus`` that names a YouTube segment; with
    ``whole_videos``, rows that name a YouTube video but no segment fetch the whole video."""
    stats = stats if stats is not None else CorpusStats()
    kwargs = {k: v for k, v in config_kwargs.items() if v is not None}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    splits = [split] if isinstance(split, str) else list(split) if split else [None]
    for sp in splits:
        ds = load_dataset(corpus, config, split=sp, streaming=True, on_missing="keep", **kwargs)
        parts = ds.items() if hasattr(ds, "items") else [(sp, ds)]
        for _, part in parts:
            features = getattr(part, "features", None)
            for row in part:
                stats.rows += 1
                ytid, start, end = row.get("youtube_id"), row.get("start"), row.get("end")
                if ytid is not None and (start is None or end is None) and whole_videos:
                    try:
                        yield ClipRequest(WholeVideo(ytid), _scalar_fields(row, features))
                    except ValueError as e:
                        stats.invalid += 1
                        logger.warning("skipping row %s: %s", row.get("id"), e)
                    continue
                if ytid is None or start is None or end is None:
                    stats.without_segment += 1
                    continue
                try:
                    seg = Segment(ytid, float(start), float(end))
                except ValueError as e:
                    stats.invalid += 1
                    logger.warning("skipping row %s: %s", row.get("id"), e)
                    continue
                yield ClipRequest(seg, _scalar_fields(row, features))
    if stats.without_segment:
        logger.info("%d rows have no YouTube segment and were skipped", stats.without_segment)



def _row_segment(row: dict[str, str], path: str, line: int) -> Segment | None:
    """The segment one CSV row names. A clip-key ``id`` (``{youtube_id}_{start_ms}_{end_ms}``) is exact and
    wins, as it does for ``read_id_sets`` (``only_ids``, ``compare``); ``youtube_id,start,end`` serve rows
    without one. Columns that disagree with the id by a millisecond or more are named in a warning (a CSV
    written with rounded times once fetched other segments than its ids)."""
    from_key = segment_of_key((row.get("id") or "").strip())
    from_cols = None
    if row.get("youtube_id") and row.get("start") and row.get("end"):
        try:
            from_cols = Segment(row["youtube_id"].strip(), float(row["start"]), float(row["end"]))
        except ValueError:
            from_cols = None
    if from_key is not None:
        if from_cols is not None and from_cols.key != from_key.key:
            logger.warning("%s line %d: youtube_id,start,end name %s but the id is %s; fetching the id's segment",
                           path, line, from_cols.key, from_key.key)
        return from_key
    return from_cols


def file_requests(path: str, *, stats: CorpusStats | None = None) -> Iterator[ClipRequest]:
    """Segments from a CSV file: columns ``youtube_id,start,end`` (plus any others, as template fields), or
    an ``id`` column of clip keys (what ``avsets verify --missing-csv`` writes), with a header row."""
    import csv

    stats = stats if stats is not None else CorpusStats()
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            stats.rows += 1
            seg = _row_segment(row, path, line)
            if seg is None:
                stats.invalid += 1
                logger.warning("%s line %d: no youtube_id,start,end or clip-key id; skipped", path, line)
                continue
            yield ClipRequest(seg, {k: v for k, v in row.items() if k is not None})
