"""AVMIT's metadata quirks, mapped onto shared tables (the builder module stays thin).

Five list shapes, all with a header row, read by column name (``video_ratings.csv`` / ``raw_video_ratings.csv``
are documented by name only, see ``sample/UPSTREAM_README.md``):

* ``video_ratings.csv``: ``filename, r1, r2, r3, AVMIT_label, MIT_label, video_location, tfrecord_filename``
* ``raw_video_ratings.csv``: ``filename, AVMIT_label, MIT_label, video_location, rating``
* ``test_set.csv``: ``filename, AVMIT_label, MIT_label, video_location, new_filename, tfrecord_filename``
* ``AVMIT_{train,validation}.csv``: ``filename, actual_label, r1, r2, r3, label, video_location, tfrecord_filename``
  (``video_location`` is ``MIT_training`` / ``MIT_validation`` here, ``training`` / ``validation`` elsewhere)
* ``MIT16_{train,validation}.csv``: ``,filename, MIT label, AVMIT label, tfrecord_filename`` (no location)

``filename`` is the Moments-in-Time relative path (``<MIT class>/<video>.mp4``), the row's ``id``, and is
looked up under ``<video_location>/`` of the MIT root (both folders when the list has no location).
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.errors import MetadataError, UnsafePathError
from avsets.core.paths import safe_relpath
from avsets.media.resolve import CANDIDATES_COLUMN, TRIMMED_COLUMN
from avsets.metadata.header_csv import read_csv_columns
from avsets.metadata.readers import (
    RowErrors,
    bad_whole_number,
    encode_labels,
    not_in,
    validate_rows,
    whole_numbers,
)

logger = logging.getLogger("avsets")

PINNED_COMMIT = "e3c06ec0e215b1934d141f86008e92e567366d6c"
URL = f"https://raw.githubusercontent.com/mjoannou/audiovisual-moments-in-time/{PINNED_COMMIT}/{{name}}"
AAR = "audiovisual_action_recognition"

# The MIT folder each vocabulary means; the output column uses MIT's own folder names.
LOCATIONS = {"training": "training", "validation": "validation",
             "MIT_training": "training", "MIT_validation": "validation"}
SPLIT_OF_LOCATION = {"training": "train", "validation": "validation"}
MIT_FOLDERS = ("training", "validation")

COLUMNS = {  # canonical column -> header aliases (matched ignoring case, spaces, "_" and "-")
    "filename": (),
    "label": ("AVMIT_label", "AVMIT label"),
    "mit_label": ("MIT_label", "MIT label", "actual_label"),
    "video_location": (),
    "r1": (), "r2": (), "r3": (),
    "rating": (),
    "new_filename": (),
    "tfrecord_filename": (),
}


@dataclass(frozen=True)
class ListKind:
    """Which columns a list file has (required) and may have (optional)."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


VIDEO_RATINGS = ListKind(("filename", "r1", "r2", "r3", "label", "mit_label", "video_location", "tfrecord_filename"))
RAW_RATINGS = ListKind(("filename", "label", "mit_label", "video_location", "rating"), ("tfrecord_filename",))
TEST_SET = ListKind(("filename", "label", "mit_label", "video_location", "new_filename", "tfrecord_filename"))
AVMIT_LIST = ListKind(("filename", "mit_label", "r1", "r2", "r3", "label", "video_location", "tfrecord_filename"))
MIT16_LIST = ListKind(("filename", "mit_label", "label", "tfrecord_filename"))

INT_COLUMNS = ("r1", "r2", "r3", "rating")


@functools.cache
def labels_avmit16() -> tuple[str, ...]:
    """The 16 classes in ``train.yaml``'s ``label_to_int`` order (shipped; never derived from rows)."""
    text = (importlib.resources.files("avsets.avmit") / "labels_avmit16.txt").read_text(encoding="utf-8")
    return tuple(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))


def labels_from_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Sorted AVMIT labels of a ratings file: ``videos``/``ratings`` have no published class list."""
    table, _ = read_csv_columns(path, {"label": COLUMNS["label"]})
    names = pc.unique(pc.utf8_trim_whitespace(table.column("label"))).to_pylist()
    return tuple(sorted(n for n in names if n))


@dataclass
class UnsafeNames:
    """Rows dropped because a file name from metadata would leave its root (never joined, only counted)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def warn(self, where: str) -> None:
        if self.count:
            logger.warning("%s: dropped %d rows whose file name is unsafe (absolute, '..' or NUL; never opened); "
                           "first: %s", where, self.count, "; ".join(self.examples[:3]))


def _drop_unsafe(table: pa.Table, lines, path, unsafe: UnsafeNames) -> tuple[pa.Table, object]:
    """Normalise ``filename`` / ``tfrecord_filename`` with :func:`safe_relpath`; drop and count refused rows."""
    cols = [c for c in ("filename", "tfrecord_filename") if c in table.column_names]
    values = {c: table.column(c).to_pylist() for c in cols}
    safe_values: dict[str, list[str]] = {c: [] for c in cols}
    keep = []
    for i in range(table.num_rows):
        current = cols[0]
        try:
            row = []
            for current in cols:
                row.append(safe_relpath(values[current][i], what=current))
        except UnsafePathError as exc:
            keep.append(False)
            unsafe.count += 1
            if len(unsafe.examples) < 5:
                unsafe.examples.append(str(MetadataError(str(exc), file=path, line=int(lines[i]), field=current)))
            continue
        keep.append(True)
        for c, v in zip(cols, row, strict=True):
            safe_values[c].append(v)
    mask = pa.array(keep, pa.bool_())
    table = table.filter(mask)
    for c in cols:
        table = table.set_column(table.column_names.index(c), c, pa.array(safe_values[c], pa.string()))
    return table, lines[mask.to_numpy(zero_copy_only=False)]


def read_list(path: str | os.PathLike, kind: ListKind, names: tuple[str, ...], *, errors: str,
              row_errors: RowErrors, unsafe: UnsafeNames) -> pa.Table:
    """One AVMIT list as a table of the builder's columns plus ``split`` and the media candidates.

    Labels outside ``names``, non-numeric ratings and unknown ``video_location`` values are metadata errors
    naming file and line (``errors="skip"``: skipped and counted); unsafe file names are dropped and counted.
    """
    wanted = {c: COLUMNS[c] for c in (*kind.required, *kind.optional)}
    table, lines = read_csv_columns(path, wanted, optional=kind.optional, errors=errors, row_errors=row_errors)
    table = pa.table({c: pc.utf8_trim_whitespace(table.column(c)) for c in table.column_names})
    checks = [("label", not_in("label", names), f"label outside the {len(names)} classes of this config")]
    checks += [(c, bad_whole_number(c), f"{c} is not a whole number") for c in INT_COLUMNS if c in table.column_names]
    if "video_location" in table.column_names:
        checks.append(("video_location", not_in("video_location", tuple(LOCATIONS)),
                       f"video_location is not one of {sorted(LOCATIONS)}"))
    table, lines = validate_rows(table, lines, path, checks, errors=errors, row_errors=row_errors)
    table, lines = _drop_unsafe(table, lines, path, unsafe)
    for c in INT_COLUMNS:
        if c in table.column_names:
            table = table.set_column(table.column_names.index(c), c, whole_numbers(table.column(c), pa.int32()))
    table = table.set_column(table.column_names.index("label"), "label", encode_labels(table.column("label"), names))
    return _with_media_candidates(table)


def _with_media_candidates(table: pa.Table) -> pa.Table:
    """``video_location`` in MIT's folder names, and ``<folder>/<filename>`` candidates (both folders if unknown)."""
    files = table.column("filename").to_pylist()
    if "video_location" in table.column_names:
        locs = [LOCATIONS[v] for v in table.column("video_location").to_pylist()]
        table = table.set_column(table.column_names.index("video_location"), "video_location",
                                 pa.array(locs, pa.string()))
        candidates = [[f"{loc}/{f}"] for loc, f in zip(locs, files, strict=True)]
    else:
        candidates = [[f"{folder}/{f}" for folder in MIT_FOLDERS] for f in files]
    n = table.num_rows
    table = table.append_column("id", table.column("filename"))
    table = table.append_column(CANDIDATES_COLUMN, pa.array(candidates, pa.list_(pa.string())))
    table = table.append_column(TRIMMED_COLUMN, pa.array([True] * n, pa.bool_()))
    for name in ("youtube_id", "start", "end"):  # MIT clips are not YouTube segments
        table = table.append_column(name, pa.nulls(n, pa.string() if name == "youtube_id" else pa.float64()))
    return table


def split_by_location(table: pa.Table) -> dict[str, pa.Table]:
    """``train`` / ``validation`` from the MIT folder a video lives in (an absent split keeps no rows)."""
    locs = table.column("video_location")
    return {SPLIT_OF_LOCATION[loc]: table.filter(pc.equal(locs, loc)) for loc in MIT_FOLDERS}
