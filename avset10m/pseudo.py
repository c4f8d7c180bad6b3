"""AVSET-10M's PANNs pseudo-labels -> ``list<struct<label: int64 (527 classes), score: float32>>``.

The release documents them only as "audio categories with confidence scores", so the shapes a JSON writer
would produce are all accepted: a list of ``{label, score}`` objects (keys matched tolerantly), a dict
``{label: score}``, a list of ``[label, score]`` pairs, or any of these JSON-encoded inside a string.  A label
is a MID (``/m/09x0r``), a display name (``Speech``) or a class index; the output label is the index into
the 527 classes (a ``ClassLabel``), like every other AudioSet label column in avsets.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.coerce import to_float32
from avsets.metadata.jsonmeta import normalize_key
from avsets.metadata.ontology import AudioSetOntology, encode_flat, rebuild_lists

PSEUDO_TYPE = pa.list_(pa.struct([pa.field("label", pa.int64()), pa.field("score", pa.float32())]))
LABEL_KEYS = ("label", "name", "class", "classname", "mid", "category", "tag", "labelname", "displayname")
SCORE_KEYS = ("score", "confidence", "conf", "prob", "probability", "value")


def pseudo_labels_column(col: pa.Array, onto: AudioSetOntology, *,
                         drop_unknown: bool) -> tuple[pa.Array, np.ndarray, pa.Array]:
    """``(pseudo_labels, bad-row mask, the raw column to show in errors)`` for one file's column."""
    n = len(col)
    if pa.types.is_null(col.type):
        return pa.nulls(n, PSEUDO_TYPE), np.zeros(n, dtype=bool), col
    shape = _arrow_shape(col)
    if shape is not None:
        lists, labels, scores = shape
        bad_shape = np.zeros(n, dtype=bool)
    else:
        lists, labels, scores, bad_shape = _python_shape(col)
    idx = encode_flat(labels, onto.mids_527, onto.names_527)
    scores_f, bad_score = _scores(scores)
    known = pc.and_(pc.is_valid(idx), pc.invert(pa.array(bad_score)))
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    unknown = ~known.to_numpy(zero_copy_only=False)
    bad = bad_shape.copy()
    if not drop_unknown and unknown.any():
        bad[parents[unknown]] = True
    structs = pa.StructArray.from_arrays([idx, scores_f], fields=list(PSEUDO_TYPE.value_type))
    out = rebuild_lists(lists, structs, known)
    out = pa.ListArray.from_arrays(out.offsets, out.values, mask=pc.is_null(lists)).cast(PSEUDO_TYPE)
    return out, bad, col


def _field(names: list[str], wanted: tuple[str, ...]) -> str | None:
    for name in names:
        if normalize_key(name) in wanted:
            return name
    return None


def _arrow_shape(col: pa.Array) -> tuple[pa.ListArray, pa.Array, pa.Array] | None:
    """The shapes ``pyarrow.json`` types cleanly: list of structs, struct of scores, list of string pairs."""
    t = col.type
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type):
        names = [f.name for f in t.value_type]
        lab, sco = _field(names, LABEL_KEYS), _field(names, SCORE_KEYS)
        if lab is None or sco is None:
            return None
        flat = pc.list_flatten(col)
        return col, pc.struct_field(flat, lab), pc.struct_field(flat, sco)
    if pa.types.is_struct(t):  # {"Speech": 0.9, "Music": 0.2}: one struct field per label
        n = len(col)
        names = [f.name for f in t]
        if not names:
            return pa.array([[]] * n, pa.list_(pa.int64())), pa.array([], pa.string()), pa.array([], pa.float64())
        fields = [pc.struct_field(col, i) for i in range(len(names))]
        try:
            matrix = np.column_stack([f.cast(pa.float64()).to_numpy(zero_copy_only=False) for f in fields])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        present = ~np.isnan(matrix)
        rows, cols = np.nonzero(present)  # row-major: grouped by row, in field order
        counts = np.bincount(rows, minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.zeros(rows.size, np.int64)),
                                         mask=pc.is_null(col))
        return lists, pa.array(np.asarray(names, dtype=object)[cols].tolist(), pa.string()), \
            pa.array(matrix[rows, cols])
    if (pa.types.is_list(t) and pa.types.is_list(t.value_type)
            and not pa.types.is_struct(t.value_type.value_type)):
        flat = pc.list_flatten(col)
        return col, pc.list_element(flat, 0), pc.list_element(flat, 1)
    return None


def _pairs(value: object) -> list[tuple[object, object]] | None:
    """One row's pseudo labels as ``(label, score)`` pairs, or None when the shape is not one we know."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except ValueError:
            return None
    if isinstance(value, dict):
        names = list(value)
        lab, sco = _field(names, LABEL_KEYS), _field(names, SCORE_KEYS)
        if lab is not None and sco is not None:
            return [(value[lab], value[sco])]
        return list(value.items())
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                out.append((item[0], item[1]))
            elif isinstance(item, dict):
                sub = _pairs(item)
                if sub is None or len(sub) != 1:
                    return None
                out.extend(sub)
            else:
                return None
        return out
    return None


def _python_shape(col: pa.Array) -> tuple[pa.ListArray, pa.Array, pa.Array, np.ndarray]:
    """Anything else, row by row (only files whose pseudo labels pyarrow could not type)."""
    values = col.to_pylist()
    bad = np.zeros(len(values), dtype=bool)
    labels: list[str] = []
    scores: list[str] = []
    offsets = [0]
    for i, v in enumerate(values):
        pairs = _pairs(v)
        if pairs is None:
            bad[i] = True
            pairs = []
        for lab, sco in pairs:
            labels.append(str(lab))
            scores.append(None if sco is None else str(sco))
        offsets.append(len(labels))
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(np.zeros(len(labels), np.int64)))
    label_arr = pa.array(labels, pa.string())
    as_int = pc.match_substring_regex(label_arr, r"^\d+$")
    if len(labels) and pc.all(as_int).as_py():
        label_arr = label_arr.cast(pa.int64())
    return lists, label_arr, pa.array(scores, pa.string()), bad


def _scores(scores: pa.Array) -> tuple[pa.Array, np.ndarray]:
    out, bad = to_float32(scores, allow_null=False)
    return out, np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool)
