"""ASCC's metadata quirks, mapped onto shared tables (the builder module stays thin).

* ``all_cc_df.csv``: ``,Unnamed: 0,id,license`` (CRLF) - the 11,912 Creative-Commons YouTube ids.
* ``all_cc_qual_0_false.csv``: ``,id,class_id`` - one row per (id, MID) pair; 11,844 ids have labels.
* ``suitable_classes.npy``: (447, 2) ``[mid, display_name]`` - the release's class list (shipped here).
* ``label_df.csv``: ``,id,num_id,<420 MID columns>`` - ``num_id`` names the release's audio file,
  ``Raw Samples/<num_id>.wav``.  ``download_cc.py`` sets ``num_id`` to the position of the id among the
  unique ids of ``all_cc_qual_0_false.csv``, so without the file we derive the same numbers.
* ``big_data.csv`` (Google Drive only): AudioSet's segment lists saved by pandas, ``,0,1,2,3,...`` with the
  YouTube id, start and end in columns ``0``, ``1``, ``2``; the only source of the 10-s window.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.media.resolve import CANDIDATES_COLUMN, TRIMMED_COLUMN
from avsets.metadata.header_csv import read_csv_columns
from avsets.metadata.ontology import AudioSetOntology
from avsets.metadata.readers import (
    RowErrors,
    bad_number,
    bad_whole_number,
    bad_youtube_id,
    not_in,
    validate_rows,
    whole_numbers,
)

logger = logging.getLogger("avsets")

PINNED_COMMIT = "12d031c80ff003512d03b8ac1e0a87d36eb92c6b"
URL = f"https://raw.githubusercontent.com/CHeggan/AudioSet-Creative-Commons-ASCC/{PINNED_COMMIT}/{{name}}"
DRIVE = "https://drive.google.com/drive/folders/1f2Rw4o36FbMi5YOijz3JKoumhPW7slyd"
RAW_SAMPLES = "Raw Samples"


@functools.cache
def label_space() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(mids, names)`` of the 447 classes of ``suitable_classes.npy``, in the file's order.

    Names are the AudioSet ontology's (:mod:`avsets.metadata.ontology`), the one place MIDs are named.
    """
    with importlib.resources.as_file(importlib.resources.files("avsets.ascc") / "suitable_classes.npy") as p:
        array = np.load(p, allow_pickle=False)
    mids = tuple(str(m) for m in array[:, 0])
    onto = AudioSetOntology.load()
    return mids, tuple(onto.name_of(m) for m in mids)


def read_cc_ids(path: str | os.PathLike, *, errors: str, row_errors: RowErrors) -> pa.Table:
    """``youtube_id, license`` of ``all_cc_df.csv`` in file order (a repeated id keeps its first row)."""
    table, lines = read_csv_columns(path, {"youtube_id": ("id",), "license": ()}, errors=errors,
                                    row_errors=row_errors)
    table = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in table.column_names})
    table, lines = validate_rows(table, lines, path, [
        ("youtube_id", bad_youtube_id(), "invalid YouTube id (expected 11 characters of [A-Za-z0-9_-])"),
    ], errors=errors, row_errors=row_errors)
    return _first_of_each(table, "youtube_id")


def _first_of_each(table: pa.Table, column: str) -> pa.Table:
    values = table.column(column).to_pylist()
    seen: set = set()
    keep = [not (v in seen or seen.add(v)) for v in values]
    return table if all(keep) else table.filter(pa.array(keep, pa.bool_()))


def read_pairs(path: str | os.PathLike, mids: tuple[str, ...], *, errors: str,
               row_errors: RowErrors) -> tuple[dict[str, list[int]], list[str]]:
    """``({youtube_id: [class index, ...]}, unique ids in file order)`` from ``all_cc_qual_0_false.csv``.

    A MID outside the 447 classes is a metadata error naming file and line (``errors="skip"``: the pair is
    skipped and counted).  Labels keep file order; a repeated pair counts once.
    """
    table, lines = read_csv_columns(path, {"youtube_id": ("id",), "mid": ("class_id",)}, errors=errors,
                                    row_errors=row_errors)
    table = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in table.column_names})
    order = pc.unique(table.column("youtube_id")).to_pylist()  # download_cc.py numbers clips in this order
    table, lines = validate_rows(table, lines, path, [
        ("youtube_id", bad_youtube_id(), "invalid YouTube id (expected 11 characters of [A-Za-z0-9_-])"),
        ("mid", not_in("mid", mids), "MID outside the 447 classes of suitable_classes.npy"),
    ], errors=errors, row_errors=row_errors)
    index = pc.index_in(table.column("mid"), value_set=pa.array(list(mids), pa.string())).to_pylist()
    labels: dict[str, list[int]] = {}
    for ytid, idx in zip(table.column("youtube_id").to_pylist(), index, strict=True):
        got = labels.setdefault(ytid, [])
        if idx not in got:
            got.append(idx)
    return labels, order


def read_num_ids(path: str | os.PathLike, *, errors: str, row_errors: RowErrors) -> dict[str, int]:
    """``{youtube_id: num_id}`` from ``label_df.csv`` (only its ``id`` and ``num_id`` columns are read)."""
    table, lines = read_csv_columns(path, {"youtube_id": ("id",), "num_id": ()}, errors=errors,
                                    row_errors=row_errors)
    table = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in table.column_names})
    table, lines = validate_rows(table, lines, path, [
        ("num_id", bad_whole_number("num_id"), "num_id is not a whole number"),
    ], errors=errors, row_errors=row_errors)
    nums = whole_numbers(table.column("num_id")).to_pylist()
    return dict(zip(table.column("youtube_id").to_pylist(), nums, strict=True))


def derived_num_ids(order: list[str]) -> dict[str, int]:
    """``download_cc.py``'s numbering: ``enumerate(all_cc_qual_0_false['id'].unique())``."""
    return {ytid: i for i, ytid in enumerate(order)}


def read_segments(path: str | os.PathLike, wanted_ids: set[str], *, errors: str,
                  row_errors: RowErrors) -> dict[str, tuple[float, float]]:
    """``{youtube_id: (start, end)}`` from ``big_data.csv`` for the ids we need (first row of an id wins,
    as ``download_cc.py``'s ``iloc[0]``)."""
    table, lines = read_csv_columns(path, {"youtube_id": ("0", "YTID", "#YTID"), "start": ("1", "start_seconds"),
                                           "end": ("2", "end_seconds")}, errors=errors, row_errors=row_errors)
    table = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in table.column_names})
    mask = pc.is_in(table.column("youtube_id"), value_set=pa.array(sorted(wanted_ids), pa.string()))
    table, lines = table.filter(mask), lines[mask.to_numpy(zero_copy_only=False)]
    table, lines = validate_rows(table, lines, path, [
        ("start", bad_number("start"), "start seconds is not a number"),
        ("end", bad_number("end"), "end seconds is not a number"),
    ], errors=errors, row_errors=row_errors)
    out: dict[str, tuple[float, float]] = {}
    starts = pc.cast(table.column("start"), pa.float64()).to_pylist()
    ends = pc.cast(table.column("end"), pa.float64()).to_pylist()
    for ytid, s, e in zip(table.column("youtube_id").to_pylist(), starts, ends, strict=True):
        out.setdefault(ytid, (s, e))
    return out


def build_table(cc: pa.Table, labels: dict[str, list[int]], num_ids: dict[str, int],
                segments: dict[str, tuple[float, float]] | None, *, single_label: bool) -> pa.Table:
    """The builder's rows: ``id`` (= YouTube id), segment (None when unknown), ``license``, labels, media
    candidates in the release's naming (``Raw Samples/<num_id>.wav``, or ``<num_id>.wav`` when the user
    points at that folder itself)."""
    ytids = cc.column("youtube_id").to_pylist()
    label_lists = [labels.get(y, []) for y in ytids]
    if single_label:
        keep = [len(ls) == 1 for ls in label_lists]
        cc = cc.filter(pa.array(keep, pa.bool_()))
        ytids = [y for y, k in zip(ytids, keep, strict=True) if k]
        label_lists = [ls for ls, k in zip(label_lists, keep, strict=True) if k]
    segments = segments or {}
    starts = [segments[y][0] if y in segments else None for y in ytids]
    ends = [segments[y][1] if y in segments else None for y in ytids]
    candidates = [[f"{RAW_SAMPLES}/{num_ids[y]}.wav", f"{num_ids[y]}.wav"] if y in num_ids else [] for y in ytids]
    out = {
        "id": pa.array(ytids, pa.string()),
        "youtube_id": pa.array(ytids, pa.string()),
        "start": pa.array(starts, pa.float64()),
        "end": pa.array(ends, pa.float64()),
        "license": cc.column("license"),
    }
    if single_label:
        out["label"] = pa.array([ls[0] for ls in label_lists], pa.int64())
    else:
        out["labels"] = pa.array(label_lists, pa.list_(pa.int64()))
    out[CANDIDATES_COLUMN] = pa.array(candidates, pa.list_(pa.string()))
    out[TRIMMED_COLUMN] = pa.array([True] * len(ytids), pa.bool_())  # the release cut every file to its window
    return pa.table(out)
