"""VGGSound's metadata quirks, mapped onto shared tables (the builder module stays thin).

``vggsound.csv``: no header, ``youtube_id,start_seconds,label,split``, labels with commas double-quoted,
CRLF.  ``AStest.csv``: ``{ytid}_{start:06d}.mp4,label``.  ``stat.csv``: ``label,count,category``.
"""

from __future__ import annotations

import functools
import importlib.resources
import os

import pyarrow as pa
import pyarrow.compute as pc

from avsets.build.shards import table_slices
from avsets.core.errors import MetadataError
from avsets.metadata.readers import (
    RowErrors,
    bad_number,
    bad_youtube_id,
    encode_labels,
    not_in,
    read_headerless_csv,
    validate_rows,
)

CLIP_SECONDS = 10.0
PINNED_COMMIT = "9bbc7491c054a203e53584c0065df336e1322bb7"
URL = f"https://raw.githubusercontent.com/hche11/VGGSound/{PINNED_COMMIT}/data/{{name}}"
#: the upstream repository keeps its files in ``data/``; a clone's root is accepted as data_dir too
REPO_SUBDIR = "data"


def upstream_relpath(data_dir: str | None, name: str) -> str:
    """Where ``name`` lies under ``data_dir``: the repository's ``data/`` folder itself (``name``), or the
    repository's root (``data/name``) when the file is only there."""
    if data_dir:
        root = os.path.abspath(os.path.expanduser(data_dir))
        if not os.path.exists(os.path.join(root, name)) and os.path.exists(os.path.join(root, REPO_SUBDIR, name)):
            return f"{REPO_SUBDIR}/{name}"
    return name


@functools.cache
def label_list(name: str) -> tuple[str, ...]:
    """The fixed, shipped label space (``default``: 310 names; ``common``: 164), never derived from rows."""
    text = (importlib.resources.files("avsets.vggsound") / f"labels_{name}.txt").read_text(encoding="utf-8")
    return tuple(ln for ln in text.splitlines() if ln and not ln.startswith("#"))


def read_categories(path: str) -> dict[str, str]:
    """``label -> category`` from ``stat.csv`` (no trailing newline after the last row is fine)."""
    table, _ = read_headerless_csv(path, ["label", "count", "category"])
    return dict(zip(table.column("label").to_pylist(), table.column("category").to_pylist(), strict=True))


def _with_category(table: pa.Table, categories: dict[str, str]) -> pa.Table:
    keys = pa.array(list(categories), pa.string())
    values = pa.array(list(categories.values()), pa.string())
    idx = pc.index_in(table.column("label_name"), value_set=keys)
    return table.append_column("category", pc.take(values, idx))


def read_vggsound_csv(path: str, names: tuple[str, ...], *, only: tuple[str, ...] | None, errors: str,
                      row_errors: RowErrors) -> pa.Table:
    """All rows of ``vggsound.csv`` as a table with ``youtube_id, start, end, label_name, split``.

    ``only``: keep only rows whose label is in this list (the ``common`` config); a label outside the
    config's fixed list is otherwise a metadata error naming file and line.
    """
    table, lines = read_headerless_csv(path, ["youtube_id", "start", "label_name", "split"], errors=errors,
                                       row_errors=row_errors)
    all_names = label_list("default")
    checks = [
        ("youtube_id", bad_youtube_id(), "invalid YouTube id (expected 11 characters of [A-Za-z0-9_-])"),
        ("start", bad_number("start"), "start seconds is not a number"),
        ("label_name", not_in("label_name", all_names), "label outside the fixed VGGSound label list"),
        ("split", not_in("split", ("train", "test")), "split must be 'train' or 'test'"),
    ]
    table, lines = validate_rows(table, lines, path, checks, errors=errors, row_errors=row_errors)
    if only is not None:
        keep = pc.is_in(table.column("label_name"), value_set=pa.array(list(only), pa.string()))
        table = table.filter(keep)
    start = pc.cast(pc.utf8_trim_whitespace(table.column("start")), pa.float64())
    table = table.set_column(table.column_names.index("start"), "start", start)
    table = table.append_column("end", pc.add(start, CLIP_SECONDS))
    return table.append_column("label", encode_labels(table.column("label_name"), names))


def read_astest_csv(path: str, names: tuple[str, ...], *, errors: str, row_errors: RowErrors) -> pa.Table:
    """``AStest.csv`` rows (``{ytid}_{start:06d}.mp4,label``) as the same table shape (split ``test``)."""
    table, lines = read_headerless_csv(path, ["filename", "label_name"], errors=errors, row_errors=row_errors)
    pattern = r"^(?P<youtube_id>[A-Za-z0-9_-]{11})_(?P<start>\d+)\.mp4$"
    checks = [
        ("filename", lambda t: pc.invert(pc.match_substring_regex(t.column("filename"), pattern)),
         "file name is not {youtube_id}_{start:06d}.mp4"),
        ("label_name", not_in("label_name", names), "label outside the 164 Common.txt labels"),
    ]
    table, lines = validate_rows(table, lines, path, checks, errors=errors, row_errors=row_errors)
    parts = pc.extract_regex(table.column("filename"), pattern)
    start = pc.cast(pc.struct_field(parts, "start"), pa.float64())
    out = pa.table({
        "youtube_id": pc.struct_field(parts, "youtube_id"),
        "start": start,
        "end": pc.add(start, CLIP_SECONDS),
        "label_name": table.column("label_name"),
        "split": pa.array(["test"] * table.num_rows, pa.string()),
    })
    return out.append_column("label", encode_labels(out.column("label_name"), names))


def split_tables(table: pa.Table, categories: dict[str, str], rows_per_shard: int, *,
                 only_test: bool = False) -> dict[str, list[pa.Table]]:
    """``{split: [table slice, ...]}`` in file order, ~``rows_per_shard`` rows a slice.

    A split with no rows keeps one empty slice, so it comes back empty instead of missing.
    """
    table = _with_category(table, categories)
    out: dict[str, list[pa.Table]] = {}
    splits = table.column("split")
    for split in ("train", "test"):
        part = table.filter(pc.equal(splits, split)).drop_columns(["split", "label_name"])
        if part.num_rows == 0 and split == "train" and only_test:
            continue
        out[split] = table_slices(part, rows_per_shard)
    return out


def check_nonempty(table: pa.Table, path: str) -> None:
    """An empty metadata file is an error, not an empty corpus."""
    if table.num_rows == 0:
        raise MetadataError("no rows", file=path)

