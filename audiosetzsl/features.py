"""AudioSetZSL's pre-extracted features: ``{features_dir}/{audio,video}/{trn,val,tst}/<class>.h5``.

Each h5 holds ``data`` (N x D floats) and ``video_urls`` (N byte strings); the reference code (AVCA-GZSL)
asserts that the audio and video files of a class list the same videos in the same order, and so do we.
Rows are aligned by YouTube id (``video_urls`` may hold bare ids or YouTube URLs).  Only the ids are read
while preparing; the float rows are read per shard, so memory follows the shard, not the corpus.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.errors import MetadataError

logger = logging.getLogger(__name__)

MODALITIES = ("audio", "video")
ROW_COLUMN = "_h5_row"
_URL_ID = re.compile(r"(?:^|[?&]v=|youtu\.be/|/embed/|/shorts/)([A-Za-z0-9_-]{11})(?=$|[?&#/])")


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is in the `embeddings` extra
        raise ImportError("features_dir= needs h5py: pip install 'avsets[embeddings]'") from exc
    return h5py


def youtube_id_of(value: str, *, file: str) -> str:
    """A bare id or a YouTube URL -> the 11-character id; anything else names the file and value."""
    value = value.strip()
    if re.fullmatch(r"[A-Za-z0-9_-]{11}", value):
        return value
    m = _URL_ID.search(value)
    if m is None:
        raise MetadataError(f"video_urls entry {value!r} is neither a YouTube id nor a YouTube URL", file=file,
                            field="video_urls")
    return m.group(1)


def h5_path(features_dir: str, modality: str, split_dir: str, class_name: str) -> str:
    return os.path.join(features_dir, modality, split_dir, f"{class_name}.h5")


@contextlib.contextmanager
def _open_h5(path: str):
    """``h5py.File`` whose damage (bad signature, truncation, wrong shapes) is a MetadataError naming the file."""
    try:
        with _h5py().File(path, "r") as hf:
            yield hf
    except MetadataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise MetadataError(f"unreadable HDF5 features file ({type(exc).__name__}: {exc}); download it again",
                            file=path) from None


def read_ids(path: str) -> list[str]:
    """The YouTube ids of an h5 file's ``video_urls``, in file order."""
    with _open_h5(path) as hf:
        if "data" not in hf or "video_urls" not in hf:
            raise MetadataError("expected datasets 'data' and 'video_urls'", file=path)
        if len(hf["data"].shape) != 2 or len(hf["video_urls"].shape) != 1:
            raise MetadataError(f"expected 'data' (rows, dim) and 'video_urls' (rows,), found shapes "
                                f"{hf['data'].shape} and {hf['video_urls'].shape}", file=path)
        urls = hf["video_urls"][()]
        n = hf["data"].shape[0]
    ids = [youtube_id_of(u.decode("utf-8") if isinstance(u, bytes) else str(u), file=path) for u in urls]
    if len(ids) != n:
        raise MetadataError(f"'data' has {n} rows but 'video_urls' {len(ids)}", file=path)
    return ids


def attach_rows(table: pa.Table, features_dir: str, split_dir: str, class_names: tuple[str, ...]) -> pa.Table:
    """Add ``_h5_row`` (row of the class' h5 file, -1 when absent) after checking audio/video agreement."""
    labels = table.column("label").to_numpy()
    ytids = table.column("youtube_id").to_pylist()
    rows = np.full(table.num_rows, -1, dtype=np.int64)
    missing_files: list[str] = []
    for label in np.unique(labels):
        name = class_names[int(label)]
        paths = {m: h5_path(features_dir, m, split_dir, name) for m in MODALITIES}
        present = {m: p for m, p in paths.items() if os.path.exists(p)}
        missing_files += [p for m, p in paths.items() if m not in present]
        if not present:
            continue
        id_lists = {m: read_ids(p) for m, p in present.items()}
        if len(id_lists) == 2 and id_lists["audio"] != id_lists["video"]:
            a, v = id_lists["audio"], id_lists["video"]
            first = next((i for i, (x, y) in enumerate(zip(a, v, strict=False)) if x != y), min(len(a), len(v)))
            raise MetadataError(
                f"audio and video features disagree on their videos ({len(a)} vs {len(v)} rows; first "
                f"difference at row {first}: {a[first] if first < len(a) else None!r} vs "
                f"{v[first] if first < len(v) else None!r}); the other file is {present['video']}",
                file=present["audio"], field="video_urls")
        pos = {yid: i for i, yid in enumerate(next(iter(id_lists.values())))}
        for i in np.flatnonzero(labels == label):
            rows[i] = pos.get(ytids[i], -1)
    if missing_files:
        logger.warning("audiosetzsl features: %d h5 file(s) missing (e.g. %s); their rows get None features",
                       len(missing_files), missing_files[0])
    absent = int((rows < 0).sum())
    if absent:
        logger.warning("audiosetzsl features: %d of %d rows of %s have no feature row", absent, len(rows), split_dir)
    return table.append_column(ROW_COLUMN, pa.array(rows))


def read_features(table: pa.Table, features_dir: str, split_dir: str,
                  class_names: tuple[str, ...]) -> dict[str, pa.Array]:
    """``audio_features`` / ``video_features`` (list<float32>) for the rows of one shard."""
    labels = table.column("label").to_numpy()
    rows = table.column(ROW_COLUMN).to_numpy()
    out: dict[str, pa.Array] = {}
    for modality in MODALITIES:
        vectors: list[np.ndarray | None] = [None] * table.num_rows
        for label in np.unique(labels):
            path = h5_path(features_dir, modality, split_dir, class_names[int(label)])
            sel = np.flatnonzero((labels == label) & (rows >= 0))
            if not sel.size or not os.path.exists(path):
                continue
            want = rows[sel]
            order = np.argsort(want, kind="stable")
            uniq, inverse = np.unique(want[order], return_inverse=True)
            with _open_h5(path) as hf:
                block = np.asarray(hf["data"][uniq], dtype=np.float32)  # h5py wants increasing indices
            for k, i in enumerate(sel[order]):
                vectors[i] = block[inverse[k]].reshape(-1)
        out[f"{modality}_features"] = _list_array(vectors)
    return out


def _list_array(vectors: list[np.ndarray | None]) -> pa.Array:
    lengths = np.array([0 if v is None else v.size for v in vectors], dtype=np.int64)
    offsets = np.zeros(len(vectors) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [v for v in vectors if v is not None]
    values = np.concatenate(present).astype(np.float32) if present else np.zeros(0, np.float32)
    mask = pa.array([v is None for v in vectors])
    arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), mask=mask)
    return pc.cast(arr, pa.list_(pa.float32()))
