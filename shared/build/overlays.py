"""Overlays: other projects' per-clip or per-class judgements, joined onto a corpus' rows by id.

An overlay is a pinned upstream file like corpus metadata: looked for under ``data_dir`` first (offline),
else downloaded from a URL at a fixed commit.  Its columns join onto every row; the rows it does not cover
get nulls (``drop`` treats a null flag as false), and its boolean columns are flags ``drop=`` accepts.

* ``vggsounder`` (VGGSound): VGGSounder (ICCV 2025, ``pip install vggsounder``) re-annotated VGGSound's test
  clips: per label whether it is audible (``A``), visible (``V``) or both (``AV``), and three meta-labels per
  clip.  Adds ``vggsounder_labels`` (list of label names), ``vggsounder_modality`` (``A``/``V``/``AV``,
  aligned with the labels), and flags ``static_image``, ``voice_over``, ``background_music``.  Joined by
  ``{youtube_id}_{start_seconds:06d}``, VGGSounder's ``video_id``.
* ``audioset_qa`` (AudioSet-based corpora): Google's quality assessment of AudioSet labels
  (``qa/qa_true_counts.csv``: per class, how many sampled positives were rated and how many were true;
  ``qa/rerated_video_ids.txt``: videos whose labels were rated again).  Adds ``label_quality`` (the lowest
  share rated true among the row's labels, 0-1; null when none of its classes was rated) and the flag
  ``rerated``.
* AVSET-10M ships its own audio-visual consistency (``avc``, 0-1) and sound-separation flag
  (``sound_separation``) in its metadata; they are ordinary columns, and ``drop=["sound_separation"]``
  works on them like on any boolean column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.metadata.ontology import AudioSetOntology

from .filters import FilterError, join_by_id

VGGSOUNDER_COMMIT = "b54eb3abc2450d39e4bf9b37ad05f0aa1e0f44f2"
VGGSOUNDER_FILE = "vggsounder+background-music.csv"
VGGSOUNDER_URL = (f"https://raw.githubusercontent.com/Bizilizi/VGGSounder/{VGGSOUNDER_COMMIT}/vggsounder/data/"
                  f"{VGGSOUNDER_FILE}")
AUDIOSET_QA_URL = "https://storage.googleapis.com/us_audioset/youtube_corpus/v1/qa/{name}"
VGGSOUNDER_FLAGS = ("static_image", "voice_over", "background_music")


@dataclass(frozen=True)
class OverlayFile:
    """One upstream file of an overlay: where it sits under ``data_dir`` and where it is downloaded from."""

    relpath: str
    url: str
    required: bool = True


@dataclass(frozen=True)
class BoundOverlay:
    """An overlay with its files found, ready to join (picklable: it travels to workers in ``gen_kwargs``)."""

    name: str
    paths: tuple[tuple[str, str | None], ...]  # (relpath, local path or None)
    label_column: str | None = None
    label_names: tuple[str, ...] = ()

    def path(self, relpath: str) -> str | None:
        return dict(self.paths).get(relpath)

    def join(self, table: pa.Table) -> pa.Table:
        return OVERLAYS[self.name].joiner(self, table)


@dataclass(frozen=True)
class Overlay:
    """What an overlay needs and adds."""

    name: str
    corpora: tuple[str, ...]
    files: tuple[OverlayFile, ...]
    flags: tuple[str, ...]
    features: Callable[[], dict[str, Any]]
    joiner: Callable[[BoundOverlay, pa.Table], pa.Table]
    label_columns: tuple[str, ...] = ()


# --- VGGSounder --------------------------------------------------------------------------------------------


def _vggsounder_features() -> dict[str, Any]:
    return {
        "vggsounder_labels": datasets.List(datasets.Value("string")),
        "vggsounder_modality": datasets.List(datasets.Value("string")),
        **{f: datasets.Value("bool") for f in VGGSOUNDER_FLAGS},
    }


_TABLES: dict[tuple[str, str, float], Any] = {}


def _cached(kind: str, path: str, read: Callable[[str], Any]) -> Any:
    key = (kind, path, os.stat(path).st_mtime)
    if key not in _TABLES:
        _TABLES[key] = read(path)
    return _TABLES[key]


def read_vggsounder(path: str) -> pa.Table:
    """VGGSounder's CSV (one row per clip and label) as one row per clip: ``video_id``, the labels, their
    modalities and the three meta-labels."""
    by_clip: dict[str, list] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"video_id", "label", "modality", *VGGSOUNDER_FLAGS}
        if not need <= set(reader.fieldnames or []):
            raise FilterError(f"{path}: not VGGSounder's CSV (needs columns {', '.join(sorted(need))}; has "
                              f"{', '.join(reader.fieldnames or [])})")
        for row in reader:
            entry = by_clip.setdefault(row["video_id"], [[], [], *(row[m].strip().lower() == "true"
                                                                  for m in VGGSOUNDER_FLAGS)])
            entry[0].append(row["label"])
            entry[1].append(row["modality"])
    ids = list(by_clip)
    cols: dict[str, Any] = {"video_id": pa.array(ids, pa.string()),
                            "vggsounder_labels": pa.array([by_clip[i][0] for i in ids], pa.list_(pa.string())),
                            "vggsounder_modality": pa.array([by_clip[i][1] for i in ids], pa.list_(pa.string()))}
    for k, m in enumerate(VGGSOUNDER_FLAGS):
        cols[m] = pa.array([by_clip[i][2 + k] for i in ids], pa.bool_())
    return pa.table(cols)


def vggsounder_keys(table: pa.Table) -> pa.ChunkedArray:
    """``{youtube_id}_{start_seconds:06d}`` per row: VGGSounder's ``video_id`` (VGGSound's file stem)."""
    start = pc.cast(pc.floor(table.column("start").cast(pa.float64())), pa.int64())
    return pc.binary_join_element_wise(table.column("youtube_id"),
                                       pc.utf8_lpad(start.cast(pa.string()), width=6, padding="0"), "_")


def _join_vggsounder(bound: BoundOverlay, table: pa.Table) -> pa.Table:
    path = bound.path(VGGSOUNDER_FILE)
    cols = list(_vggsounder_features())
    if path is None:
        other = pa.table({"video_id": pa.array([], pa.string()), **{
            c: pa.array([], pa.list_(pa.string()) if c.startswith("vggsounder_") else pa.bool_()) for c in cols}})
    else:
        other = _cached("vggsounder", path, read_vggsounder)
    keyed = table.append_column("_vggsounder_key", vggsounder_keys(table))
    joined, _ = join_by_id(keyed, other.rename_columns(["_vggsounder_key", *other.column_names[1:]]), cols,
                           key="_vggsounder_key")
    return joined.drop_columns(["_vggsounder_key"])


# --- AudioSet QA ------------------------------------------------------------------------------------------


def read_qa_counts(path: str) -> dict[str, float]:
    """``qa_true_counts.csv`` (``label_id,num_rated,num_true``; the label as a MID or a 0-based index of the
    527 classes) as ``{mid: share rated true}``."""
    mids = AudioSetOntology.load().mids_527
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [x.strip() for x in reader.fieldnames or []]
        if not {"label_id", "num_rated", "num_true"} <= set(fields):
            raise FilterError(f"{path}: not AudioSet's qa_true_counts.csv (needs label_id,num_rated,num_true; "
                              f"has {','.join(fields)})")
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                label, rated, true = row["label_id"], int(row["num_rated"]), int(row["num_true"])
            except ValueError:
                raise FilterError(f"{path} line {line}: num_rated/num_true are not integers") from None
            if label.isdigit():
                label = mids[int(label)] if int(label) < len(mids) else label
            if rated > 0:
                out[label] = true / rated
    return out


def read_rerated(path: str) -> pa.Array:
    """``rerated_video_ids.txt``: one YouTube id per line."""
    with open(path, encoding="utf-8") as f:
        return pa.array(sorted({x.strip() for x in f if x.strip()}), pa.string())


def _qa_features() -> dict[str, Any]:
    return {"label_quality": datasets.Value("float32"), "rerated": datasets.Value("bool")}


def _class_quality(bound: BoundOverlay, path: str) -> np.ndarray:
    """Share rated true per class index of the row's label column (NaN: not rated)."""
    shares = _cached("qa", path, read_qa_counts)
    onto = AudioSetOntology.load()
    by_name = dict(zip(onto.names_527, onto.mids_527, strict=True))
    return np.array([shares.get(by_name.get(n, n), np.nan) for n in bound.label_names], dtype=np.float64)


def _join_audioset_qa(bound: BoundOverlay, table: pa.Table) -> pa.Table:
    n = table.num_rows
    counts_path = bound.path("qa_true_counts.csv")
    quality = pa.nulls(n, pa.float32())
    if counts_path is not None and bound.label_column and bound.label_column in table.column_names:
        per_class = _class_quality(bound, counts_path)
        col = table.column(bound.label_column).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
            parents = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
        else:
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            flat = col.fill_null(0).to_numpy(zero_copy_only=False)[valid]
            parents = np.flatnonzero(valid)
        values = per_class[flat.astype(np.int64)] if len(flat) else np.zeros(0)
        lowest = np.full(n, np.inf)
        ok = ~np.isnan(values)
        np.minimum.at(lowest, parents[ok], values[ok])
        quality = pa.array(np.where(np.isinf(lowest), np.nan, lowest), pa.float32(), from_pandas=True)
    rerated_path = bound.path("rerated_video_ids.txt")
    if rerated_path is not None:
        rerated = pc.is_in(table.column("youtube_id"), value_set=_cached("rerated", rerated_path, read_rerated))
    else:
        rerated = pa.nulls(n, pa.bool_())
    for name, arr in (("label_quality", quality), ("rerated", rerated)):
        table = table.append_column(name, arr) if name not in table.column_names else table.set_column(
            table.column_names.index(name), name, arr)
    return table


OVERLAYS: dict[str, Overlay] = {
    "vggsounder": Overlay(
        name="vggsounder", corpora=("vggsound",),
        files=(OverlayFile(VGGSOUNDER_FILE, VGGSOUNDER_URL),),
        flags=VGGSOUNDER_FLAGS, features=_vggsounder_features, joiner=_join_vggsounder),
    "audioset_qa": Overlay(
        name="audioset_qa", corpora=("audiosetzsl", "avset10m", "ascc"),
        files=(OverlayFile("qa_true_counts.csv", AUDIOSET_QA_URL.format(name="qa_true_counts.csv")),
               OverlayFile("rerated_video_ids.txt", AUDIOSET_QA_URL.format(name="rerated_video_ids.txt"),
                           required=False)),
        flags=("rerated",), features=_qa_features, joiner=_join_audioset_qa,
        label_columns=("labels", "audioset_labels", "label")),
}


def overlay_names(value: str | Sequence[str] | None, corpus: str) -> tuple[str, ...]:
    """``overlays=`` checked against what exists and what applies to ``corpus``."""
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str) or name not in OVERLAYS:
            raise FilterError(f"unknown overlay {name!r}; known: {', '.join(OVERLAYS)}")
        if corpus not in OVERLAYS[name].corpora:
            raise FilterError(f"overlay {name!r} applies to {', '.join(OVERLAYS[name].corpora)}, not {corpus}")
    return tuple(dict.fromkeys(names))


def overlay_features(names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        out.update(OVERLAYS[name].features())
    return out


def overlay_flags(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(f for name in names for f in OVERLAYS[name].flags)


def label_column_of(overlay: Overlay, features: datasets.Features) -> tuple[str | None, tuple[str, ...]]:
    """The first label column of ``features`` the overlay knows, with its class names."""
    for col in overlay.label_columns:
        feat = features.get(col)
        inner = getattr(feat, "feature", feat)
        if isinstance(inner, datasets.ClassLabel):
            return col, tuple(inner.names)
    return None, ()


def bind(names: Sequence[str], find: Callable[[OverlayFile], str | None],
         features: datasets.Features) -> tuple[BoundOverlay, ...]:
    """Find each overlay's files (``find``: the builder's ``metadata_file``) and bind its label column."""
    out = []
    for name in names:
        ov = OVERLAYS[name]
        paths = tuple((f.relpath, find(f)) for f in ov.files)
        col, labels = label_column_of(ov, features)
        out.append(BoundOverlay(name, paths, col, labels))
    return tuple(out)
