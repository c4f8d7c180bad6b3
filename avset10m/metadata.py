"""AVSET-10M's metadata quirks, mapped onto shared tables (the builder module stays thin).

Files: ``AVSET-700K/unbalanced_train_segments_part00..40.json`` and
``AVSET-10M(excluding-700K)/split_000..399.json``.  Keys as the Hub viewer shows them (``"Youtube ID"``,
``"Start Time"``, ``"End Time"``, ``"AVC"`` (a string), ``"Flag (Sound Separation)"`` (0/1), ``"Label"``
(comma-joined MIDs)); the 10M part adds a caption and PANNs pseudo-labels whose exact keys are not
documented, so keys match tolerantly (:func:`avsets.metadata.jsonmeta.normalize_key`).  One file is read at a time:
memory follows the largest file, never the corpus.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.avset10m.pseudo import pseudo_labels_column
from avsets.core.coerce import clip_ids, to_bool, to_float32, to_seconds
from avsets.core.errors import ManualDownloadRequired, MetadataError, scrub_secrets
from avsets.core.segments import YOUTUBE_ID_RE
from avsets.metadata.jsonmeta import KEY_COLUMN, Records, check_rows, match_keys, read_records
from avsets.metadata.ontology import AudioSetOntology, unknown_label_messages
from avsets.metadata.readers import RowErrors

logger = logging.getLogger(__name__)

HUB_REPO = "avset10m/avset10m"
# The Hub repository's commit could not be looked up from here (no Hub access): "main" until it is pinned.
HUB_REVISION = "main"
PARTS = {
    "700k": ("AVSET-700K", "unbalanced_train_segments_part*.json", 41),
    "10m": ("AVSET-10M(excluding-700K)", "split_*.json", 400),
}
CONFIG_PARTS = {"700k": ("700k",), "10m": ("10m",), "all": ("700k", "10m")}

ALIASES: dict[str, tuple[str, ...]] = {
    "youtube_id": ("youtubeid", "ytid", "videoid", "youtube"),
    "start": ("starttime", "start", "startseconds", "startsec", "starttimestamp"),
    "end": ("endtime", "end", "endseconds", "endsec", "endtimestamp"),
    "timestamp": ("timestamp", "timestamps"),
    "avc": ("avc", "avcscore", "audiovisualcorrespondence"),
    "sound_separation": ("flagsoundseparation", "soundseparation", "soundseparationflag", "flag"),
    "labels": ("label", "labels"),
    "caption": ("caption", "captions", "text", "description", "textdescription"),
    "pseudo_labels": ("pseudolabel", "pseudolabels"),
}
FIELD_NAMES = {alias for names in ALIASES.values() for alias in names}


@dataclass(frozen=True)
class ReadOptions:
    """What one file read needs from the config (picklable: it travels with the shard)."""

    with_text: bool
    errors: str = "raise"
    drop_unknown_labels: bool = False
    min_avc: float | None = None
    sound_separation: bool | None = None


# -- locating files -------------------------------------------------------------------------------------
def local_files(data_dir: str, part: str) -> list[str]:
    """The part's JSON files under ``data_dir`` (or ``data_dir/AVSET-10M``), sorted by name."""
    folder, pattern, expected = PARTS[part]
    for base in (data_dir, os.path.join(data_dir, "AVSET-10M")):
        sub = os.path.join(base, folder)
        if os.path.isdir(sub):
            files = sorted(glob.glob(os.path.join(glob.escape(sub), pattern)))
            if files and len(files) != expected:
                logger.warning("avset10m: %d of the %d files of %s/ found in %s", len(files), expected, folder, base)
            return files
    return []


def hub_files(part: str, revision: str = HUB_REVISION) -> list[str]:
    """``hf://`` URLs of a part's files at a pinned revision (one listing call; files are read one by one)."""
    from huggingface_hub import HfFileSystem

    folder, pattern, _ = PARTS[part]
    fs = HfFileSystem()
    root = f"datasets/{HUB_REPO}@{revision}"
    try:
        found = fs.glob(f"{root}/**/{glob.escape(folder)}/{pattern}")
        failure = None
    except Exception as exc:  # noqa: BLE001 - offline, gated, renamed: say what to do instead
        failure = scrub_secrets(f"{type(exc).__name__}: {exc}")  # an error body may echo the auth header
    if failure is not None:  # raised outside the except block: no chained original that could hold the token
        raise ManualDownloadRequired(
            f"avset10m: could not list hf://{root} ({failure}). Download the JSON files "
            f"from https://huggingface.co/datasets/{HUB_REPO} (folders 'AVSET-700K/' and "
            "'AVSET-10M(excluding-700K)/') and pass data_dir=<the folder holding them> (if the Hub asks you to "
            "accept the dataset's terms, accept them there and log in with `hf auth login`)."
        )
    if not found:
        raise ManualDownloadRequired(f"avset10m: no {folder}/{pattern} in hf://{root}; pass data_dir=")
    return [f"hf://{p}" for p in sorted(found)]


def read_bytes(path: str) -> bytes:
    """A whole file (local or fsspec URL): the unit of memory is one file."""
    if "://" in path:
        import fsspec

        with fsspec.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


# -- one file -> table ----------------------------------------------------------------------------------
def _string_column(col: pa.Array, name: str, path: str) -> pa.Array:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.cast(pa.string())
    if pa.types.is_null(col.type):
        return col.cast(pa.string())
    raise MetadataError(f"expected text, found {col.type}", file=path, field=name)


def _times(records: Records, keys: dict[str, str], path: str) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    t = records.table
    if "start" in keys and "end" in keys:
        start, end = t.column(keys["start"]), t.column(keys["end"])
    elif "timestamp" in keys:  # Panda-70M style ["0:00:01.000", "0:00:11.000"]
        ts = t.column(keys["timestamp"]).combine_chunks()
        if pa.types.is_list(ts.type) and pa.types.is_list(ts.type.value_type):
            ts = pc.list_element(ts, 0)
        if not pa.types.is_list(ts.type):
            raise MetadataError(f"timestamp must be [start, end], found {ts.type}", file=path, field=keys["timestamp"])
        start, end = pc.list_element(ts, 0), pc.list_element(ts, 1)
    else:
        missing = "Start Time" if "start" not in keys else "End Time"
        raise MetadataError("no start/end time field (expected keys like 'Start Time' and 'End Time')", file=path,
                            field=missing)
    s, bad_s = to_seconds(start)
    e, bad_e = to_seconds(end)
    return s, bad_s, e, bad_e


def read_file(path: str, opts: ReadOptions, row_errors: RowErrors) -> pa.Table:
    """One AVSET JSON file -> ``id, youtube_id, start, end, avc, sound_separation, labels[, caption,
    pseudo_labels]`` (labels as 527-class ids).  Bad rows name file, line and field."""
    records = read_records(read_bytes(path), file=path, field_names=FIELD_NAMES)
    t = records.table
    n = t.num_rows
    keys = match_keys(t.column_names, ALIASES, file=path)
    if "youtube_id" in keys:
        ytid = _string_column(t.column(keys["youtube_id"]).combine_chunks(), keys["youtube_id"], path)
    elif KEY_COLUMN in t.column_names:
        ytid = t.column(KEY_COLUMN).combine_chunks()
    elif n == 0:
        ytid = pa.array([], pa.string())
    else:
        raise MetadataError("no YouTube id field (expected a key like 'Youtube ID')", file=path, field="Youtube ID")
    start, bad_start, end, bad_end = _times(records, keys, path) if n else (pa.array([], pa.float64()),) * 4

    def col(name: str) -> pa.Array:
        return t.column(keys[name]).combine_chunks() if name in keys else pa.nulls(n)

    avc, bad_avc = to_float32(col("avc"))
    flag, bad_flag = to_bool(col("sound_separation"))
    onto = AudioSetOntology.load()
    encoded = onto.mids_to_indices(col("labels") if "labels" in keys else pa.nulls(n, pa.string()), names=True)
    bad_label = np.zeros(n, dtype=bool)
    if not opts.drop_unknown_labels and encoded.unknown_rows.size:
        bad_label[encoded.unknown_rows] = True
    label_values = pa.array([None] * n, pa.string())
    if encoded.unknown_rows.size:
        label_values = pa.array(_unknown_per_row(n, encoded.unknown_rows, encoded.unknown_values), pa.string())

    def field(name: str, default: str) -> str:
        return keys.get(name, default)

    checks = [
        (field("youtube_id", "Youtube ID"), pc.invert(pc.fill_null(pc.match_substring_regex(
            ytid, YOUTUBE_ID_RE.pattern), False)), "invalid YouTube id (expected 11 characters of [A-Za-z0-9_-])",
         ytid),
        (field("start", "Start Time"), bad_start, "start is not a time (seconds or H:MM:SS.mmm)",
         col("start") if "start" in keys else None),
        (field("end", "End Time"), bad_end, "end is not a time (seconds or H:MM:SS.mmm)",
         col("end") if "end" in keys else None),
        (field("end", "End Time"), pc.fill_null(pc.less_equal(end, start), False), "end is not after start",
         col("end") if "end" in keys else None),
        (field("avc", "AVC"), bad_avc, "AVC is not a number", col("avc")),
        (field("sound_separation", "Flag (Sound Separation)"), bad_flag, "sound-separation flag is not 0/1",
         col("sound_separation")),
        (field("labels", "Label"), bad_label,
         "unknown AudioSet label (not one of the 527 classes; pass drop_unknown_labels=True to drop such labels)",
         label_values),
    ]
    columns = {"youtube_id": ytid, "start": start, "end": end, "avc": avc, "sound_separation": flag,
               "labels": encoded.indices}
    if opts.with_text:
        columns["caption"] = _string_column(col("caption"), field("caption", "caption"), path)
        pseudo, bad_pseudo, shown = pseudo_labels_column(col("pseudo_labels"), onto,
                                                         drop_unknown=opts.drop_unknown_labels)
        checks.append((field("pseudo_labels", "pseudo-label"), bad_pseudo,
                       "pseudo label is not {label: one of the 527 classes, score: number}", shown))
        columns["pseudo_labels"] = pseudo
    keep = check_rows(checks, n, file=path, locate=_locator(records), errors=opts.errors, row_errors=row_errors)
    table = pa.table(columns)
    if keep is not None:
        table = table.filter(pa.array(keep))
    if encoded.unknown_rows.size and opts.drop_unknown_labels:
        logger.debug("%s", unknown_label_messages(encoded, file=path, lines=None, field_name="Label"))
    table = _apply_filters(table, opts)
    ids = clip_ids(table.column("youtube_id"), table.column("start"), table.column("end"))
    return table.add_column(0, "id", ids)


def _unknown_per_row(n: int, rows: np.ndarray, values: list[str]) -> list[str | None]:
    out: list[str | None] = [None] * n
    for r, v in zip(rows.tolist(), values, strict=True):
        out[r] = v
    return out


def _locator(records: Records):
    def locate(row: int) -> int | None:
        lines = records.lines()
        return int(lines[row]) if lines is not None and row < len(lines) else None

    return locate


def _apply_filters(table: pa.Table, opts: ReadOptions) -> pa.Table:
    """``min_avc``: keep ``avc >= min_avc`` (rows without AVC go); ``sound_separation``: keep that flag."""
    if opts.min_avc is not None:
        table = table.filter(pc.fill_null(pc.greater_equal(table.column("avc"), np.float32(opts.min_avc)), False))
    if opts.sound_separation is not None:
        table = table.filter(pc.fill_null(pc.equal(table.column("sound_separation"), opts.sound_separation), False))
    return table
