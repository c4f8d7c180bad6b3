"""The AudioSet ontology and its 527-class label space, shared by AudioSetZSL, AVSET-10M and ASCC.

Nothing about MIDs lives in a corpus folder: corpora hand this module Arrow columns of MIDs (or names) and
get ClassLabel ids back, vectorized, so 10.9 million AVSET rows never go through a Python loop.  The two
files are shipped inside the package (``avsets/data/audioset/``, see its ``PROVENANCE.md``), so class ids
never depend on which rows a user happens to have.

    >>> onto = AudioSetOntology.load()
    >>> onto.name_of("/m/09x0r"), onto.index_of("/m/09x0r")
    ('Speech', 0)
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.core.errors import MetadataError

DATA_PACKAGE = "avsets"
DATA_DIR = ("data", "audioset")


@dataclass(frozen=True)
class OntologyEntry:
    """One node of ``ontology.json`` (632 of them; 527 are trainable classes)."""

    id: str
    name: str
    description: str = ""
    citation_uri: str = ""
    positive_examples: tuple[str, ...] = ()
    child_ids: tuple[str, ...] = ()
    restrictions: tuple[str, ...] = ()

    @property
    def abstract(self) -> bool:
        return "abstract" in self.restrictions

    @property
    def blacklisted(self) -> bool:
        return "blacklist" in self.restrictions


def _read_data(name: str) -> str:
    return (importlib.resources.files(DATA_PACKAGE).joinpath(*DATA_DIR, name)).read_text(encoding="utf-8")


@dataclass(frozen=True)
class AudioSetOntology:
    """MID <-> name, the parent/child graph, and the 527-class label space in ``class_labels_indices`` order."""

    entries: dict[str, OntologyEntry]
    mids_527: tuple[str, ...]
    names_527: tuple[str, ...]
    _parents: dict[str, tuple[str, ...]] = field(repr=False)
    _by_name: dict[str, str] = field(repr=False)
    _index: dict[str, int] = field(repr=False)

    @classmethod
    @functools.lru_cache(maxsize=1)
    def load(cls) -> AudioSetOntology:
        """The bundled ontology (parsed once per process)."""
        return cls.from_texts(_read_data("ontology.json"), _read_data("class_labels_indices.csv"))

    @classmethod
    def from_texts(cls, ontology_json: str, class_labels_csv: str) -> AudioSetOntology:
        """Build from the text of ``ontology.json`` and ``class_labels_indices.csv`` (e.g. a user's copies)."""
        entries: dict[str, OntologyEntry] = {}
        for raw in json.loads(ontology_json):
            e = OntologyEntry(
                id=raw["id"], name=raw["name"], description=raw.get("description", ""),
                citation_uri=raw.get("citation_uri", ""),
                positive_examples=tuple(raw.get("positive_examples", ())),
                child_ids=tuple(raw.get("child_ids", ())), restrictions=tuple(raw.get("restrictions", ())),
            )
            entries[e.id] = e
        parents: dict[str, list[str]] = {}
        for e in entries.values():
            for c in e.child_ids:
                parents.setdefault(c, []).append(e.id)
        rows = list(csv.reader(io.StringIO(class_labels_csv)))
        if rows and rows[0][:2] == ["index", "mid"]:
            rows = rows[1:]
        rows = [r for r in rows if r]
        rows.sort(key=lambda r: int(r[0]))
        if [int(r[0]) for r in rows] != list(range(len(rows))):
            raise ValueError("class_labels_indices.csv: indices are not 0..N-1")
        mids = tuple(r[1] for r in rows)
        names = tuple(r[2] for r in rows)
        if len(set(names)) != len(names) or len(set(mids)) != len(mids):
            raise ValueError("class_labels_indices.csv: duplicate MIDs or display names")
        by_name = {e.name: e.id for e in entries.values()}
        by_name.update(zip(names, mids, strict=True))  # the label-space spelling wins
        return cls(entries=entries, mids_527=mids, names_527=names,
                   _parents={k: tuple(v) for k, v in parents.items()}, _by_name=by_name,
                   _index={m: i for i, m in enumerate(mids)})

    # -- lookups ------------------------------------------------------------------------------------
    def __contains__(self, mid: object) -> bool:
        return mid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, mid: str) -> OntologyEntry:
        """The ontology node of a MID; ``KeyError`` naming it when unknown."""
        try:
            return self.entries[mid]
        except KeyError:
            raise KeyError(f"unknown AudioSet MID {mid!r}") from None

    def name_of(self, mid: str) -> str:
        """Display name of a MID (``/m/09x0r`` -> ``Speech``)."""
        return self.entry(mid).name

    def mid_of(self, name: str) -> str:
        """MID of a display name (``Speech`` -> ``/m/09x0r``)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown AudioSet class name {name!r}") from None

    def index_of(self, mid: str) -> int:
        """Position of a MID in the 527-class label space; ``KeyError`` if it is not one of the 527."""
        try:
            return self._index[mid]
        except KeyError:
            raise KeyError(f"MID {mid!r} is not one of the 527 AudioSet classes") from None

    def children(self, mid: str) -> tuple[str, ...]:
        return self.entry(mid).child_ids

    def parents(self, mid: str) -> tuple[str, ...]:
        self.entry(mid)
        return self._parents.get(mid, ())

    def ancestors(self, mid: str) -> set[str]:
        """Every node above ``mid`` (the graph is a DAG: a node may have several parents)."""
        out: set[str] = set()
        todo = list(self.parents(mid))
        while todo:
            m = todo.pop()
            if m not in out:
                out.add(m)
                todo.extend(self._parents.get(m, ()))
        return out

    def descendants(self, mid: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.children(mid))
        while todo:
            m = todo.pop()
            if m not in out:
                out.add(m)
                todo.extend(self.entries[m].child_ids if m in self.entries else ())
        return out

    def roots(self) -> tuple[str, ...]:
        return tuple(m for m in self.entries if m not in self._parents)

    # -- vectorized encoding ------------------------------------------------------------------------
    def mids_to_indices(self, values: pa.Array | pa.ChunkedArray, *, names: bool = False) -> EncodedLabels:
        """``list<string>`` of MIDs (or, with ``names=True``, MIDs or display names) -> ``list<int64>`` ids.

        Unknown entries are removed from the lists and reported in the result; callers decide whether
        that is an error (naming MID and row), a skipped row or a dropped label.
        """
        return encode_label_lists(values, self.mids_527, self.names_527 if names else None)


@dataclass
class EncodedLabels:
    """Lists of class ids plus where the unknown labels were."""

    indices: pa.ListArray
    unknown_rows: np.ndarray  # row positions holding at least one unknown label
    unknown_values: list[str]  # the first unknown label of each of those rows (same order)


def label_space_527() -> list[str]:
    """The 527 AudioSet display names in index order (the ``ClassLabel`` names)."""
    return list(AudioSetOntology.load().names_527)


def mids_527() -> list[str]:
    """The 527 AudioSet MIDs in index order."""
    return list(AudioSetOntology.load().mids_527)


def split_label_strings(values: pa.Array | pa.ChunkedArray, sep: str = ",") -> pa.ListArray:
    """``"/m/a,/m/b"`` strings (or lists of strings) -> ``list<string>``, trimmed, empty pieces dropped.

    A null or empty string becomes an empty list: AVSET-10M's ``Label`` may be empty for Panda rows.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    if pa.types.is_string(values.type):
        values = pc.split_pattern(pc.fill_null(values, ""), sep)
    elif pa.types.is_null(values.type):
        values = pa.array([[]] * len(values), pa.list_(pa.string()))
    elif not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        raise TypeError(f"expected strings or lists of strings, got {values.type}")
    values = values.cast(pa.list_(pa.string()))
    values = pc.fill_null(values, pa.scalar([], pa.list_(pa.string())))
    flat = pc.utf8_trim_whitespace(pc.list_flatten(values))
    keep = pc.and_(pc.is_valid(flat), pc.not_equal(flat, ""))
    return rebuild_lists(values, flat, pc.fill_null(keep, False))


def _parents_of(values: pa.ListArray) -> np.ndarray:
    return pc.list_parent_indices(values).to_numpy(zero_copy_only=False)


def rebuild_lists(values: pa.ListArray, flat: pa.Array, keep: pa.Array) -> pa.ListArray:
    """Lists of ``flat`` (aligned with ``values``' flattened items) keeping only the ``keep`` items.

    ``flat`` may be any array (ids, ``{label, score}`` structs...); nulls in ``values`` become empty lists.
    """
    n = len(values)
    keep_np = keep.to_numpy(zero_copy_only=False)
    parents = _parents_of(values)
    counts = np.bincount(parents[keep_np], minlength=n) if n else np.zeros(0, np.int64)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat.filter(keep))


def encode_flat(flat: pa.Array, mids: Sequence[str], names: Sequence[str] | None = None) -> pa.Array:
    """Strings (MIDs, or display names when ``names`` is given) or integer ids -> int64 ids; unknown -> null."""
    if pa.types.is_integer(flat.type):
        flat = flat.cast(pa.int64())
        return pc.if_else(pc.and_(pc.greater_equal(flat, 0), pc.less(flat, len(mids))), flat,
                          pa.scalar(None, pa.int64()))
    flat = pc.utf8_trim_whitespace(flat.cast(pa.string()))
    idx = pc.index_in(flat, value_set=pa.array(list(mids), pa.string()))
    if names is not None:
        idx = pc.coalesce(idx, pc.index_in(flat, value_set=pa.array(list(names), pa.string())))
    return idx.cast(pa.int64())


def encode_label_lists(values: pa.Array | pa.ChunkedArray, mids: Sequence[str],
                       names: Sequence[str] | None = None) -> EncodedLabels:
    """Lists of labels -> lists of positions in ``mids`` (or, failing that, in ``names``)."""
    lists = split_label_strings(values)
    flat = pc.list_flatten(lists)
    idx = encode_flat(flat, mids, names)
    known = pc.is_valid(idx)
    out = rebuild_lists(lists, idx, known)
    bad_np = np.logical_not(known.to_numpy(zero_copy_only=False))
    if not bad_np.any():
        return EncodedLabels(out, np.zeros(0, np.int64), [])
    parents = _parents_of(lists)
    bad_pos = np.flatnonzero(bad_np)
    rows, first = np.unique(parents[bad_pos], return_index=True)
    unknown = flat.take(pa.array(bad_pos[first])).to_pylist()
    return EncodedLabels(out, rows.astype(np.int64), unknown)


def check_unknown_labels(encoded: EncodedLabels, *, file: object, lines: Sequence[int] | np.ndarray | None,
                         field_name: str, errors: str, drop_unknown: bool) -> np.ndarray | None:
    """Apply the user's choice for labels outside the 527 classes; return a row keep-mask or None.

    * ``drop_unknown=True``: the unknown labels were already removed from the lists; keep every row.
    * ``errors="raise"`` (default): a :class:`MetadataError` naming the label, the file and the line.
    * ``errors="skip"``: drop the rows that hold one (the caller counts them).
    """
    if drop_unknown or encoded.unknown_rows.size == 0:
        return None
    row = int(encoded.unknown_rows[0])
    if errors != "skip":
        line = int(lines[row]) if lines is not None else None
        raise MetadataError(
            f"unknown AudioSet label {encoded.unknown_values[0]!r} (not one of the 527 classes of "
            "class_labels_indices.csv); pass drop_unknown_labels=True to drop such labels"
            + ("" if line is not None else f" (row {row})"),
            file=file, line=line, field=field_name)
    n = len(encoded.indices)
    keep = np.ones(n, dtype=bool)
    keep[encoded.unknown_rows] = False
    return keep


def unknown_label_messages(encoded: EncodedLabels, *, file: object, lines: Iterable[int] | None,
                           field_name: str, limit: int = 5) -> list[str]:
    """Human-readable lines for the first few rows skipped for an unknown label (for the skip report)."""
    line_list = list(lines) if lines is not None else None
    out = []
    for row, value in list(zip(encoded.unknown_rows.tolist(), encoded.unknown_values, strict=True))[:limit]:
        line = line_list[row] if line_list is not None else None
        out.append(str(MetadataError(f"unknown AudioSet label {value!r}", file=file, line=line, field=field_name)))
    return out
