"""AVMIT's pre-extracted embeddings: one GZIP TFRecord ``SequenceExample`` per video, read without TensorFlow.

Layout (``feature_extractor/extract_features.py``): ``{tfrecord_dir}/{AVMIT_label}/{video stem}.tfrecord``,
which is the lists' ``tfrecord_filename``; context ``filename``, ``label``, ``audio_timesteps``,
``visual_timesteps``; feature lists ``audio`` and ``visual_object``, one raw float32 vector per step.  The
extraction folder also holds junk (``delete_this.tfrecord``, a throw-away copy written after every file,
and ``videos_not_included.txt``), which the scan skips.

Like media, the folder is scanned once (never a stat or a join per row): a row's ``tfrecord_filename`` is
looked up in the scan, so a name from metadata can never reach outside ``embeddings_dir``.  The scan's
names, sizes and mtimes make the fingerprint that keys the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from avsets.core.errors import MissingMediaError
from avsets.metadata.tfrecord import TFRecordError, iter_records, parse_sequence_example

logger = logging.getLogger("avsets")

JUNK = frozenset({"delete_this.tfrecord"})
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("validation", "val"), "test": ("test",)}


@dataclass(frozen=True)
class EmbeddingSet:
    """One of the two published embedding sets: its dimensions and how its folders are usually named."""

    name: str
    audio_dim: int
    visual_dim: int
    marker: str  # lower-case piece of the Zenodo folder names (AVMIT_VGGish_VGG16/, MIT16_YamNet_EffNetB0/)


SETS = {
    "vggish_vgg16": EmbeddingSet("vggish_vgg16", 128, 512, "vggish"),
    "yamnet_effnetb0": EmbeddingSet("yamnet_effnetb0", 1024, 1280, "yamnet"),
}


def embedding_set(name: str) -> EmbeddingSet:
    """The set named by the ``embeddings=`` option (a clear error for anything else)."""
    try:
        return SETS[name]
    except KeyError:
        raise ValueError(f"embeddings must be one of {sorted(SETS)}, not {name!r}") from None


@dataclass
class TFRecordIndex:
    """The ``.tfrecord`` files under one folder: by relative path and by ``<label>/<stem>.tfrecord`` tail."""

    root: str
    by_rel: dict[str, str] = field(default_factory=dict)
    by_tail: dict[str, list[str]] = field(default_factory=dict)
    fingerprint: str = ""

    @classmethod
    def scan(cls, root: str) -> TFRecordIndex:
        root = os.path.abspath(os.path.expanduser(root))
        if not os.path.isdir(root):
            raise FileNotFoundError(f"embeddings_dir {root!r} is not a folder")
        index = cls(root=root)
        digest = hashlib.sha256(root.encode("utf-8", "surrogatepass"))
        entries = []
        for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
            dirs.sort()
            for name in files:
                if not name.endswith(".tfrecord") or name in JUNK or name.startswith("."):
                    continue
                full = os.path.join(folder, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                entries.append((rel, full, st.st_size, st.st_mtime_ns))
        for rel, full, size, mtime in sorted(entries):
            digest.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogatepass"))
            index.by_rel[rel] = full
            index.by_tail.setdefault("/".join(rel.split("/")[-2:]), []).append(rel)
        index.fingerprint = digest.hexdigest()[:16]
        return index

    def find(self, relname: str, split: str, marker: str) -> str | None:
        """The file for a row's ``tfrecord_filename``: exact, under a split folder, or by its unique tail.

        Zenodo's sets nest differently (``AVMIT_VGGish_VGG16/<label>/...``, ``MIT16_*/train/<label>/...``), so
        a user may point at any of these folders or their parent; among several matches the one under this
        split's folder and this set's folder name wins.
        """
        hit = self.by_rel.get(relname)
        if hit is not None:
            return hit
        for folder in SPLIT_FOLDERS.get(split, ()):
            hit = self.by_rel.get(f"{folder}/{relname}")
            if hit is not None:
                return hit
        tail = "/".join(relname.split("/")[-2:])
        matches = [m for m in self.by_tail.get(tail, ()) if m.endswith("/" + relname) or m == relname]
        if len(matches) > 1:
            matches = sorted(matches, key=lambda m: (marker not in m.lower(),
                                                     not any(f in m.split("/") for f in SPLIT_FOLDERS.get(split, ()))))
        return self.by_rel[matches[0]] if matches else None


_INDEXES: dict[str, TFRecordIndex] = {}


def get_tfrecord_index(root: str, *, rescan: bool = False) -> TFRecordIndex:
    """One scan per folder and process (forked DataLoader workers inherit it)."""
    key = os.path.abspath(os.path.expanduser(root))
    if rescan or key not in _INDEXES:
        _INDEXES[key] = TFRecordIndex.scan(key)
    return _INDEXES[key]


def read_embeddings(path: str, emb: EmbeddingSet, *, clip_id: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(audio (T_a, D_a), visual (T_v, D_v))`` float32 from one AVMIT TFRecord.

    Raises :class:`TFRecordError` for a damaged file, a missing feature list, step counts that disagree with
    the context's ``audio_timesteps``/``visual_timesteps``, or dimensions of the other embedding set.
    """
    try:
        records = list(iter_records(path))
    except TFRecordError as exc:
        raise TFRecordError(exc.reason, clip_id=clip_id, path=path) from exc
    if not records:
        raise TFRecordError("TFRecord holds no record", clip_id=clip_id, path=path)
    try:
        ex = parse_sequence_example(records[0], path=path)
    except TFRecordError as exc:
        raise TFRecordError(exc.reason, clip_id=clip_id, path=path) from exc
    out = []
    for key, steps_key, dim in (("audio", "audio_timesteps", emb.audio_dim),
                                ("visual_object", "visual_timesteps", emb.visual_dim)):
        steps = ex.feature_lists.get(key)
        width = len(steps[0][0]) // 4 if steps and steps[0] and isinstance(steps[0][0], bytes) else None
        if width is not None and width != dim:
            raise TFRecordError(f"{key} vectors have {width} values; embeddings={emb.name!r} has {dim} "
                                "(is embeddings_dir the other set?)", clip_id=clip_id, path=path)
        try:
            matrix = ex.float32_matrix(key, dim, path=path)
        except TFRecordError as exc:
            raise TFRecordError(exc.reason, clip_id=clip_id, path=path) from exc
        declared = ex.context.get(steps_key)
        if declared and (not isinstance(declared[0], int) or declared[0] != matrix.shape[0]):  # bytes/float: damaged
            raise TFRecordError(f"{steps_key} says {declared[0]} but {key} has {matrix.shape[0]} steps",
                                clip_id=clip_id, path=path)
        out.append(matrix)
    return out[0], out[1]


@dataclass
class EmbeddingStats:
    """Rows without a TFRecord and rows whose TFRecord is damaged, with the first few named."""

    rows: int = 0
    missing: int = 0
    corrupt: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: EmbeddingStats) -> None:
        self.rows += other.rows
        self.missing += other.missing
        self.corrupt += other.corrupt
        self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])


def _matrix_column(mats: list[np.ndarray | None], dim: int) -> pa.Array:
    """``list<fixed_size_list<float32, dim>>`` built from numpy without a Python loop over values."""
    lengths = np.array([0 if m is None else m.shape[0] for m in mats], dtype=np.int64)
    offsets = np.zeros(len(mats) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [m.reshape(-1) for m in mats if m is not None and m.size]
    flat = np.concatenate(present).astype(np.float32, copy=False) if present else np.zeros(0, np.float32)
    values = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    mask = pa.array([m is None for m in mats], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=mask)


def attach_embeddings(table: pa.Table, split: str, index: TFRecordIndex, emb: EmbeddingSet,
                      on_missing: str) -> tuple[pa.Table, EmbeddingStats]:
    """Add ``audio_embeddings`` / ``visual_embeddings`` and apply ``on_missing`` to absent or damaged files.

    ``skip`` drops such rows, ``keep`` keeps them with None, ``error`` raises (:class:`MissingMediaError` /
    :class:`TFRecordError`).  A damaged file is named in a warning, as corrupt media is.
    """
    names = table.column("tfrecord_filename").to_pylist()
    ids = table.column("id").to_pylist()
    stats = EmbeddingStats(rows=table.num_rows)
    audio: list[np.ndarray | None] = []
    visual: list[np.ndarray | None] = []
    keep = []
    missing_ids: list[str] = []
    for relname, clip_id in zip(names, ids, strict=True):
        path = index.find(relname, split, emb.marker) if relname else None
        pair = None
        if path is None:
            stats.missing += 1
            missing_ids.append(clip_id)
        else:
            try:
                pair = read_embeddings(path, emb, clip_id=clip_id)
            except TFRecordError as exc:
                if on_missing == "error":
                    raise
                stats.corrupt += 1
                if len(stats.examples) < 5:
                    stats.examples.append(str(exc))
                logger.warning("avsets: %s (embeddings %s)", exc, "dropped" if on_missing == "skip" else "set to None")
        audio.append(None if pair is None else pair[0])
        visual.append(None if pair is None else pair[1])
        keep.append(pair is not None or on_missing == "keep")
    if missing_ids and on_missing == "error":
        raise MissingMediaError(
            f"{len(missing_ids)} of {table.num_rows} rows have no TFRecord under {index.root} "
            f"(first: {', '.join(missing_ids[:5])}); pass on_missing='skip' (drop) or 'keep' (None embeddings)")
    table = table.append_column("audio_embeddings", _matrix_column(audio, emb.audio_dim))
    table = table.append_column("visual_embeddings", _matrix_column(visual, emb.visual_dim))
    if not all(keep):
        table = table.filter(pa.array(keep, pa.bool_()))
    return table, stats


def report_embeddings(where: str, stats: EmbeddingStats | None, on_missing: str) -> None:
    """One log line per split: how many rows had no TFRecord or a damaged one, and what happened to them."""
    if stats is None or not (stats.missing or stats.corrupt):
        return
    fate = {"skip": "dropped", "keep": "kept with None embeddings"}.get(on_missing, "")
    logger.warning("%s: %d of %d rows have no TFRecord and %d a damaged one (%s)%s", where, stats.missing,
                   stats.rows, stats.corrupt, fate, f"; first: {stats.examples[0]}" if stats.examples else "")
