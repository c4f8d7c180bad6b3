"""AudioSetZSL's metadata quirks, mapped onto shared tables (the builder module stays thin).

``youtube-id/{trn,val,tst}/<class>.txt``: no header, fields separated by ``", "``:
``<audioset index>, <youtube id>, <start>, <end>, <MID 1>[, <MID 2> ...]`` (1-9 MIDs).  The class of a row
is the file name, not its MIDs.  ``class-split/*.txt``: one ``'name',`` per line, the last entry of the
seen/unseen files without comma or newline.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import shutil
import uuid
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.coerce import clip_ids, to_seconds
from avsets.core.errors import ManualDownloadRequired, MetadataError
from avsets.metadata.ontology import AudioSetOntology, check_unknown_labels, unknown_label_messages
from avsets.metadata.readers import RowErrors, bad_youtube_id, read_text, validate_rows

logger = logging.getLogger(__name__)

PINNED_COMMIT = "1c7ea1dd336e2a1a44e10c96879f026151f2d964"
REPO_URL = "https://github.com/krantiparida/AudioSetZSL"
ARCHIVE_URL = f"https://codeload.github.com/krantiparida/AudioSetZSL/zip/{PINNED_COMMIT}"
BUNDLED_ARCHIVE = "AudioSetZSL-1c7ea1d.zip"
SPLIT_DIRS = {"train": "trn", "validation": "val", "test": "tst"}
FIELD_SEP = ", "


@functools.cache
def class_names() -> tuple[str, ...]:
    """The 33 class names, sorted (class id = position, as the AVCA-GZSL reference code indexes them)."""
    text = (importlib.resources.files("avsets.audiosetzsl") / "labels.txt").read_text(encoding="utf-8")
    return tuple(ln for ln in text.splitlines() if ln and not ln.startswith("#"))


def read_class_split(path: str) -> list[str]:
    """Names from a ``class-split`` file: ``'dog',`` lines; the last may lack comma and newline."""
    names = []
    for line in read_text(path).splitlines():
        name = line.strip().rstrip(",").strip().strip("'\"")
        if name:
            names.append(name)
    known = set(class_names())
    for i, name in enumerate(names):
        if name not in known:
            raise MetadataError(f"class {name!r} is not one of the 33 AudioSetZSL classes", file=path, line=i + 1)
    return names


def find_root(folder: str) -> str | None:
    """The folder holding ``class-split/`` and ``youtube-id/``: ``folder`` itself or one level below
    (GitHub's archive wraps the repository in ``AudioSetZSL-<commit>/``)."""
    if os.path.isdir(os.path.join(folder, "youtube-id")):
        return folder
    try:
        subs = sorted(os.listdir(folder))
    except OSError:
        return None
    for sub in subs:
        cand = os.path.join(folder, sub)
        if os.path.isdir(os.path.join(cand, "youtube-id")):
            return cand
    return None


def bundled_archive() -> str:
    """Path of the byte-identical copy of the pinned commit's files shipped with avsets."""
    return str(importlib.resources.files("avsets.audiosetzsl") / "data" / BUNDLED_ARCHIVE)


def extract_archive(archive: str, dest: str) -> str:
    """Extract a repository zip (downloaded or bundled) once; return the repository root inside it.

    Extracted into a private folder and renamed to ``dest`` whole, so a concurrent load (another config shares
    the downloads folder but not the datasets lock) or a killed one never leaves or reads a half-written file.
    """
    marker = os.path.join(dest, ".complete")
    if not os.path.exists(marker):
        tmp = f"{dest}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    if member.startswith("/") or ".." in member.split("/"):
                        raise MetadataError(f"unsafe member {member!r} in archive", file=archive)
                zf.extractall(tmp)
            with open(os.path.join(tmp, ".complete"), "w") as f:
                f.write(PINNED_COMMIT)
            if os.path.isdir(dest) and not os.path.exists(marker):
                shutil.rmtree(dest, ignore_errors=True)  # a half extraction left by an older avsets
            try:
                os.rename(tmp, dest)
            except OSError:  # another process renamed its complete copy first
                if not os.path.exists(marker):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    root = find_root(dest)
    if root is None:
        raise MetadataError("archive holds no youtube-id/ folder", file=archive)
    return root


def fetch_pinned(cache_dir: str) -> str:
    """The pinned commit's files: GitHub's archive, downloaded into the ``datasets`` cache and extracted.

    Without network (or with ``HF_DATASETS_OFFLINE=1``) the byte-identical bundled copy is used instead,
    with a warning that names the URL and the reason.
    """
    from datasets import DownloadConfig
    from datasets.utils.file_utils import cached_path

    try:
        archive = cached_path(ARCHIVE_URL, download_config=DownloadConfig(cache_dir=cache_dir))
        return extract_archive(archive, os.path.join(cache_dir, f"AudioSetZSL-{PINNED_COMMIT}"))
    except Exception as exc:  # noqa: BLE001 - any network/IO failure -> the bundled copy, loudly
        bundled = bundled_archive()
        if not os.path.exists(bundled):
            raise ManualDownloadRequired(
                f"audiosetzsl: could not download the pinned archive {ARCHIVE_URL} ({type(exc).__name__}: "
                f"{exc}). Clone {REPO_URL} at commit {PINNED_COMMIT} and pass data_dir=<the clone>."
            ) from exc
        logger.warning("audiosetzsl: could not download %s (%s: %s); using the bundled copy of commit %s",
                       ARCHIVE_URL, type(exc).__name__, exc, PINNED_COMMIT[:7])
        return extract_archive(bundled, os.path.join(cache_dir, f"AudioSetZSL-{PINNED_COMMIT}-bundled"))


def read_id_file(path: str, label: int, *, errors: str, row_errors: RowErrors,
                 drop_unknown: bool) -> pa.Table:
    """One ``youtube-id/<split>/<class>.txt`` as ``audioset_index, youtube_id, start, end, audioset_labels,
    label, id`` (vectorized; a bad row names file and line)."""
    raw_lines = read_text(path).split("\n")
    nonblank = [i for i, ln in enumerate(raw_lines) if ln.strip()]
    lines = np.asarray(nonblank, dtype=np.int64) + 1
    text = pa.array([raw_lines[i].rstrip("\r") for i in nonblank], pa.string())
    fields = pc.split_pattern(text, FIELD_SEP)
    nfields = pc.list_value_length(fields)
    table = pa.table({"row": text, "_n": nfields})
    table, lines = validate_rows(table, lines, path, [
        ("row", lambda t: pc.less(t.column("_n"), 5),
         "expected '<index>, <youtube id>, <start>, <end>, <MID>[, <MID>...]' separated by ', '"),
    ], errors=errors, row_errors=row_errors)
    fields = pc.split_pattern(table.column("row"), FIELD_SEP)
    part = {name: pc.utf8_trim_whitespace(pc.list_element(fields, i))
            for i, name in enumerate(("audioset_index", "youtube_id", "start", "end"))}
    table = pa.table({**part, "_mids": pc.list_slice(fields, 4)})
    start, bad_start = to_seconds(table.column("start"))
    end, bad_end = to_seconds(table.column("end"))
    table = table.append_column("_bad_start", bad_start).append_column("_bad_end", bad_end)
    table = table.append_column("_end_f", end).append_column("_start_f", start)
    table, lines = validate_rows(table, lines, path, [
        ("audioset_index", lambda t: pc.invert(pc.match_substring_regex(t.column("audioset_index"), r"^\d+$")),
         "the leading AudioSet index is not an integer"),
        ("youtube_id", bad_youtube_id(), "invalid YouTube id (expected 11 characters of [A-Za-z0-9_-])"),
        ("start", lambda t: t.column("_bad_start"), "start is not a time in seconds"),
        ("end", lambda t: t.column("_bad_end"), "end is not a time in seconds"),
        ("end", lambda t: pc.less_equal(t.column("_end_f"), t.column("_start_f")), "end is not after start"),
    ], errors=errors, row_errors=row_errors)
    encoded = AudioSetOntology.load().mids_to_indices(table.column("_mids"))
    keep = check_unknown_labels(encoded, file=path, lines=lines, field_name="MID", errors=errors,
                                drop_unknown=drop_unknown)
    labels = encoded.indices
    if keep is not None:
        row_errors.count += int((~keep).sum())
        row_errors.examples.extend(unknown_label_messages(encoded, file=path, lines=lines, field_name="MID"))
        mask = pa.array(keep)
        table, labels, lines = table.filter(mask), labels.filter(mask), lines[keep]
    start_f, end_f = table.column("_start_f"), table.column("_end_f")
    ytid = table.column("youtube_id")
    return pa.table({
        "id": clip_ids(ytid, start_f, end_f),
        "youtube_id": ytid,
        "start": start_f,
        "end": end_f,
        "label": pa.array(np.full(table.num_rows, label, dtype=np.int64)),
        "audioset_labels": labels,
        "audioset_index": table.column("audioset_index").cast(pa.int64()),
    })


def read_split(root: str, split_dir: str, *, errors: str, row_errors: RowErrors,
               drop_unknown: bool) -> pa.Table:
    """Every class file of one split directory, in sorted class order."""
    folder = os.path.join(root, "youtube-id", split_dir)
    if not os.path.isdir(folder):
        raise ManualDownloadRequired(f"audiosetzsl: folder youtube-id/{split_dir}/ not found under {root}")
    names = class_names()
    stems = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt"))
    unknown = [s for s in stems if s not in names]
    if unknown:
        raise MetadataError(f"class file(s) {unknown} name no AudioSetZSL class", file=folder)
    tables = [read_id_file(os.path.join(folder, f"{stem}.txt"), names.index(stem), errors=errors,
                           row_errors=row_errors, drop_unknown=drop_unknown) for stem in stems]
    if not tables:
        raise MetadataError("no <class>.txt files", file=folder)
    return pa.concat_tables(tables)


def add_seen(table: pa.Table, seen: list[str]) -> pa.Table:
    """The boolean ``seen`` column: the row's class is one of ``class-split/seen_class.txt``."""
    names = class_names()
    seen_ids = pa.array([names.index(s) for s in seen], pa.int64())
    return table.append_column("seen", pc.is_in(table.column("label"), value_set=seen_ids))


def select_rows(table: pa.Table, config: str, split: str) -> pa.Table:
    """``default``: every row; ``zsl``: seen classes in train/validation, unseen in test; ``gzsl``: seen
    classes in train/validation, every test row."""
    if config == "default" or (config == "gzsl" and split == "test"):
        return table
    want_seen = not (config == "zsl" and split == "test")
    return table.filter(pc.equal(table.column("seen"), want_seen))
