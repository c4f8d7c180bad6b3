"""Manifests: which clips a copy of a corpus holds, per split, and a short hash that names that set.

Two labs that evaluate on "the VGGSound test set" rarely hold the same clips: every YouTube-built corpus
decays.  A manifest lists the sorted clip ids of each split of an export or a coverage report, with a
short hash per split (the first 12 hex digits of the sha256 of the sorted, de-duplicated ids joined by
newlines), so a paper can say "test split, manifest ``3f2a9c0d1e7b``" and a reader can check it.

``read_id_sets`` accepts anything that names a set of clips: a manifest file, a CSV of ids (an ``id``
column of clip keys, or ``youtube_id,start,end``), a fetch ledger (its ``ok`` clips), an export folder
(its ``manifests/<config>.json``, or the ``id`` column of its Parquet shards), or a Hub dataset repo
(``hf://datasets/org/name``).  ``compare`` intersects two of them and ``write_segments_csv`` writes the
intersection in the CSV format ``avsets fetch --segments`` reads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import fsspec

from avsets.core.csvsafe import csv_writer
from avsets.core.errors import AvsetsError
from avsets.core.segments import Segment, segment_of_key

from .ledger import LEDGER_NAME, Ledger, _local_ledger_file

FORMAT = "avsets-manifest/1"
#: folder of an export that holds one manifest per config (``manifests/<config>.json``)
MANIFEST_DIR = "manifests"
#: the split name used for sets that carry no split (a ledger, a plain list of ids)
ALL = "*"
_HASH_LEN = 12
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ManifestError(AvsetsError, ValueError):
    """A file or folder that holds no readable set of clip ids (the message names it)."""


def manifest_hash(ids: Iterable[str]) -> str:
    """Short hash of a set of clip ids: sha256 of the sorted unique ids joined by ``\\n``, first 12 hex.

    Independent of order and duplicates, so two copies holding the same clips get the same hash.
    """
    h = hashlib.sha256("\n".join(sorted(set(ids))).encode("utf-8"))
    return h.hexdigest()[:_HASH_LEN]


@dataclass
class Manifest:
    """Sorted unique clip ids per split of one corpus config, plus where they came from."""

    splits: dict[str, list[str]]
    corpus: str | None = None
    config: str | None = None
    source: str | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.splits = {str(s): sorted(set(ids)) for s, ids in self.splits.items()}

    @property
    def hashes(self) -> dict[str, str]:
        """``{split: short hash}``."""
        return {s: manifest_hash(ids) for s, ids in self.splits.items()}

    @property
    def hash(self) -> str:
        """The short hash of every id of every split together (comparable with a split-less set)."""
        return manifest_hash(self.all_ids())

    def all_ids(self) -> set[str]:
        return {i for ids in self.splits.values() for i in ids}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "corpus": self.corpus,
            "config": self.config,
            "source": self.source,
            "created": self.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hash": self.hash,
            "count": len(self.all_ids()),
            **({"extra": self.extra} if self.extra else {}),
            "splits": {s: {"count": len(ids), "hash": manifest_hash(ids), "ids": ids}
                       for s, ids in sorted(self.splits.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "manifest") -> Manifest:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT or not isinstance(data.get("splits"), Mapping):
            raise ManifestError(f"{where}: not an avsets manifest (expected \"format\": \"{FORMAT}\" and \"splits\")")
        splits: dict[str, list[str]] = {}
        for s, entry in data["splits"].items():
            ids = entry.get("ids") if isinstance(entry, Mapping) else None
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ManifestError(f"{where}: split {s!r} has no list of string ids")
            splits[s] = ids
            if isinstance(entry, Mapping) and entry.get("hash") not in (None, manifest_hash(ids)):
                raise ManifestError(f"{where}: split {s!r} ids do not match its hash {entry.get('hash')} "
                                    "(the file was edited by hand?)")
        return cls(splits, corpus=data.get("corpus"), config=data.get("config"), source=data.get("source"),
                   created=data.get("created"), extra=dict(data.get("extra") or {}))

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    def write(self, path: str | os.PathLike[str], *, storage_options: dict | None = None) -> str:
        """Write atomically (temporary name, then rename) to a local path or fsspec URL; return the path."""
        fs, p = fsspec.core.url_to_fs(os.fspath(path), **(storage_options or {}))
        write_text_atomic(fs, p, self.dumps())
        return os.fspath(path)


def write_text_atomic(fs: fsspec.AbstractFileSystem, path: str, text: str) -> None:
    """Write ``text`` to ``path`` on ``fs`` under a temporary name, then rename it (no partial file)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with fs.open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    fs.mv(tmp, path)


def export_manifest_path(root: str, config: str) -> str:
    """Where an export keeps the manifest of one config."""
    return f"{root.rstrip('/')}/{MANIFEST_DIR}/{config}.json"


# --- reading sets of ids from anything -------------------------------------------------------------------


def _ledger_ok_ids(path: str) -> list[str]:
    try:
        p, tmp = _local_ledger_file(path)
    except FileNotFoundError as e:
        raise ManifestError(str(e)) from None
    try:
        with Ledger(p, readonly=True) as led:
            return [r[0] for r in led._conn().execute("SELECT id FROM clips WHERE status = 'ok'")]
    except Exception as e:  # noqa: BLE001 - sqlite3.DatabaseError and friends: say which file
        raise ManifestError(f"{path}: not a readable fetch ledger ({e})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _ids_from_csv_text(text: str, where: str) -> dict[str, list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    if "id" not in fields and not {"youtube_id", "start", "end"} <= fields:
        raise ManifestError(f"{where}: a CSV of clips needs an 'id' column or 'youtube_id,start,end' columns "
                            f"(found {sorted(fields)})")
    out: dict[str, list[str]] = {}
    for line, row in enumerate(reader, start=2):
        clip = (row.get("id") or "").strip()
        if not clip:
            try:
                clip = Segment(row["youtube_id"].strip(), float(row["start"]), float(row["end"])).key
            except (ValueError, TypeError, AttributeError):
                raise ManifestError(f"{where} line {line}: no id and no valid youtube_id,start,end") from None
        out.setdefault((row.get("split") or "").strip() or ALL, []).append(clip)
    return out


def _read_text(fs: fsspec.AbstractFileSystem, path: str) -> str:
    with fs.open(path, "r", encoding="utf-8") as f:
        return f.read()


def _manifest_from_file(fs: fsspec.AbstractFileSystem, path: str, where: str) -> Manifest:
    try:
        data = json.loads(_read_text(fs, path))
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e})") from None
    return Manifest.from_dict(data, where=where)


def _pick_config(names: list[str], config: str | None, where: str) -> str:
    if config is not None:
        if config not in names:
            raise ManifestError(f"{where}: no config {config!r} (has {', '.join(sorted(names)) or 'none'})")
        return config
    if len(names) != 1:
        raise ManifestError(f"{where}: holds configs {', '.join(sorted(names))}; name one with --config")
    return names[0]


def _folder_manifest(fs: fsspec.AbstractFileSystem, root: str, config: str | None, where: str) -> Manifest:
    """The manifest of an export folder or repo; made from its Parquet ``id`` columns when it has none."""
    mdir = f"{root}/{MANIFEST_DIR}"
    if fs.isdir(mdir):
        names = [p.rsplit("/", 1)[-1][:-5] for p in fs.ls(mdir, detail=False) if p.endswith(".json")]
        if names:
            cfg = _pick_config(names, config, where)
            return _manifest_from_file(fs, f"{mdir}/{cfg}.json", f"{where}/{MANIFEST_DIR}/{cfg}.json")
    data = f"{root}/data"
    if not fs.isdir(data):
        raise ManifestError(f"{where}: neither a manifest ({MANIFEST_DIR}/<config>.json), an export (data/), "
                            "nor a fetch ledger")
    configs = [p.rsplit("/", 1)[-1] for p in fs.ls(data, detail=False) if fs.isdir(p)]
    cfg = _pick_config(configs, config, where)
    import pyarrow.parquet as pq

    splits: dict[str, list[str]] = {}
    for p in sorted(fs.glob(f"{data}/{cfg}/*.parquet")):
        split = p.rsplit("/", 1)[-1].split("-", 1)[0]
        with fs.open(p, "rb") as f:
            ids = pq.read_table(f, columns=["id"]).column("id").to_pylist()
        splits.setdefault(split, []).extend(ids)
    return Manifest(splits, config=cfg, source=where)


#: names that are files, never Hub repos (``results/both.csv`` is a path with a typo, not ``org/name``)
_FILE_SUFFIXES = (".json", ".csv", ".txt", ".tsv", ".sqlite", ".sqlite3", ".db", ".parquet")


def _is_hub_repo(text: str) -> bool:
    """``hf://...``, or ``org/name`` that is no local path: not a file name (``results/both.csv``), and its
    first part is no local folder (``results/typo`` when ``results/`` exists)."""
    if text.startswith("hf://"):
        return True
    if _REPO_ID.match(text) is None or os.path.exists(text) or text.lower().endswith(_FILE_SUFFIXES):
        return False
    return not os.path.isdir(text.split("/", 1)[0])


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _unreadable(text: str, exc: BaseException, given: str) -> ManifestError:
    """A named error for a source that cannot be opened: a missing local path, an offline or unknown Hub repo."""
    if text.startswith("hf://") and not given.startswith("hf://"):
        lead = f"{given}: no such local file or folder, and not readable as the Hub dataset repo {given}"
    else:
        lead = f"{given}: cannot be read"
    if _offline() and text.startswith("hf://"):
        return ManifestError(f"{lead} (offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set)")
    return ManifestError(f"{lead} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")


def read_id_sets(source: str | os.PathLike[str], *, config: str | None = None) -> Manifest:
    """Read the clips ``source`` names as a ``Manifest`` (split ``"*"`` when the source has no splits).

    ``source``: a manifest ``.json``, a CSV of ids, a ``.txt`` of one id per line, a ledger (file or
    fetched folder: its ``ok`` clips), an export folder, or a Hub dataset repo (``hf://datasets/org/name``
    or ``org/name``).  ``config`` picks one config of an export or repo that holds several.
    """
    given = text = os.fspath(source)
    if _is_hub_repo(text) and not text.startswith("hf://"):
        text = f"hf://datasets/{text}"
    try:
        fs, path = fsspec.core.url_to_fs(text)
        is_dir = fs.isdir(path)
        is_file = not is_dir and fs.isfile(path)
    except Exception as e:  # noqa: BLE001 - the Hub client's network and offline errors are no OSError
        raise _unreadable(text, e, given) from None
    if not is_dir and not is_file:
        if text.startswith("hf://") and _offline():
            raise ManifestError(f"{given}: not found: the Hub is not asked offline (HF_HUB_OFFLINE or "
                                "HF_DATASETS_OFFLINE is set)" + ("; no such local file or folder either"
                                                                 if text != given else ""))
        if text != given:
            raise ManifestError(f"{given}: no such local file or folder, nor a Hub dataset repo of that name")
        raise ManifestError(f"{given}: no such file or folder")
    if is_dir:
        if fs.isfile(f"{path.rstrip('/')}/{LEDGER_NAME}") and not fs.isdir(f"{path.rstrip('/')}/data"):
            return Manifest({ALL: _ledger_ok_ids(text)}, source=text, extra={"kind": "ledger"})
        m = _folder_manifest(fs, path.rstrip("/"), config, text)
        m.source = m.source or text
        return m
    # a presigned URL's query (``a.json?X-Amz-Signature=...``) is no part of the file's name
    lower = (path.split("?", 1)[0] if "://" in text else path).lower()
    if lower.endswith(".json"):
        m = _manifest_from_file(fs, path, text)
        if config is not None and m.config is not None and m.config != config:
            raise ManifestError(f"{given} is a manifest of config {m.config!r}, not {config!r}")
        return m
    if lower.endswith((".sqlite", ".sqlite3", ".db")):
        return Manifest({ALL: _ledger_ok_ids(text)}, source=text, extra={"kind": "ledger"})
    if lower.endswith(".txt"):
        ids = [line.strip() for line in _read_text(fs, path).splitlines() if line.strip()]
        return Manifest({ALL: ids}, source=text)
    if lower.endswith(".csv"):
        return Manifest(_ids_from_csv_text(_read_text(fs, path), text), source=text)
    with fs.open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"SQLite format 3"):
        return Manifest({ALL: _ledger_ok_ids(text)}, source=text, extra={"kind": "ledger"})
    raise ManifestError(f"{text}: not a manifest (.json), a CSV/.txt of ids, a ledger or an export folder")


def read_ids(source: str | os.PathLike[str], *, config: str | None = None) -> frozenset[str]:
    """Every clip id ``source`` names, all splits together (what ``load_dataset(only_ids=...)`` keeps)."""
    return frozenset(read_id_sets(source, config=config).all_ids())


# --- comparing two sets ----------------------------------------------------------------------------------


@dataclass
class SplitComparison:
    """One line of ``avsets compare``: sizes, the intersection and what each side lacks."""

    split: str
    a: int
    b: int
    both: list[str]
    only_a: list[str]
    only_b: list[str]


@dataclass
class Comparison:
    """Two sets of clips compared split by split (or as wholes when either side has no splits)."""

    a: Manifest
    b: Manifest
    splits: list[SplitComparison]

    @property
    def intersection(self) -> dict[str, list[str]]:
        return {c.split: c.both for c in self.splits}

    def warnings(self) -> list[str]:
        """Why the two sets may not be comparable: other corpora, other configs."""
        out = []
        for what in ("corpus", "config"):
            x, y = getattr(self.a, what), getattr(self.b, what)
            if x and y and x != y:
                out.append(f"A is of {what} {x!r}, B of {what} {y!r}: their clips rarely overlap")
        return out

    def lines(self, names: tuple[str, str] | None = None) -> list[str]:
        """The table; ``names`` label A and B (the paths a user gave; default: each set's source)."""
        labels = []
        for m, name in zip((self.a, self.b), names or (None, None), strict=True):
            label = name or m.source or "?"
            what = "/".join(x for x in (m.corpus, m.config) if x)
            labels.append(f"{label} [{what}]" if what else label)
        out = [f"A: {labels[0]}  ({len(self.a.all_ids())} clips, hash {self.a.hash})",
               f"B: {labels[1]}  ({len(self.b.all_ids())} clips, hash {self.b.hash})",
               f"{'split':<12} {'A':>9} {'B':>9} {'both':>9} {'only A':>9} {'only B':>9}  both-hash"]
        for c in self.splits:
            out.append(f"{c.split:<12} {c.a:>9} {c.b:>9} {len(c.both):>9} {len(c.only_a):>9} {len(c.only_b):>9}"
                       f"  {manifest_hash(c.both)}")
        return out


def compare(a: Manifest, b: Manifest) -> Comparison:
    """Intersect ``a`` and ``b`` per shared split; as wholes when either has no splits."""
    if ALL in a.splits or ALL in b.splits or not set(a.splits) & set(b.splits):
        pairs = {ALL: (a.all_ids(), b.all_ids())}
    else:
        names = sorted(set(a.splits) | set(b.splits))
        pairs = {s: (set(a.splits.get(s, ())), set(b.splits.get(s, ()))) for s in names}
    rows = [SplitComparison(s, len(x), len(y), sorted(x & y), sorted(x - y), sorted(y - x))
            for s, (x, y) in pairs.items()]
    return Comparison(a, b, rows)



def exact_seconds(ms: int) -> str:
    """Integer milliseconds as the shortest exact decimal seconds (``1234567`` -> ``1234.567``,
    ``100000250`` -> ``100000.25``, ``10000`` -> ``10``): a reader gets the clip key's times back to the
    millisecond, whatever the magnitude (``%g`` kept 6 significant digits and named other segments)."""
    whole, frac = divmod(int(ms), 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".")


def write_segments_csv(splits: Mapping[str, Iterable[str]], path: str | os.PathLike[str]) -> int:
    """Write ``id,youtube_id,start,end,split`` rows (the CSV ``avsets fetch --segments`` reads); return rows.

    ``youtube_id,start,end`` are filled in when the id is a clip key ``{youtube_id}_{start_ms}_{end_ms}``,
    with the times exact to the millisecond (``exact_seconds``), so they always name the id's segment.
    """
    n = 0
    buf = io.StringIO()
    w = csv_writer(buf, lineterminator="\n")
    w.writerow(["id", "youtube_id", "start", "end", "split"])
    for split, ids in splits.items():
        for clip in sorted(ids):
            seg = segment_of_key(clip)
            w.writerow([clip, seg.youtube_id if seg else "", exact_seconds(seg.start_ms) if seg else "",
                        exact_seconds(seg.end_ms) if seg else "", "" if split == ALL else split])
            n += 1
    fs, p = fsspec.core.url_to_fs(os.fspath(path))
    write_text_atomic(fs, p, buf.getvalue())
    return n
