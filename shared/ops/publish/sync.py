"""Make takedowns reach a published copy: ``avsets export --prune`` (a local export) and ``avsets push --sync``.

Both run the same steps on a *copy* (a local export folder, or a Hub repo at one commit):

1. find the shards holding a listed clip by reading only the ``id`` / ``youtube_id`` columns of each shard
   (a few ranged reads on the Hub, never the media);
2. rewrite just those shards, row group by row group, keeping every other row's values (media bytes
   included) as they were; untouched shards are not rewritten at all (same bytes, same sha256);
3. update the card (``dataset_info`` split sizes, ``size_categories``, the availability table, a short
   takedowns note) and append the removed rows to ``takedowns.csv``, published beside the data.

Shard names stay as they are: a rewritten shard keeps its ``<split>-XXXXX-of-NNNNN.parquet`` name (so
every other file keeps its name and hash, and a sync uploads only what changed), and a shard left with no
row is *deleted* rather than kept empty, because stock ``datasets`` fails on a zero-row Parquet file
("BatchSize must be greater than 0"). The card's ``data_files`` glob (``data/<config>/<split>-*``) does
not care about the gap in the numbering; a split left with no row at all is dropped from the card.

How the changes are applied atomically is the caller's part: :mod:`.sync_local` (``apply_local``, a journal
of renames finished by a rerun) and ``sync_hub.sync_hub`` (one Hub commit).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard

from avsets.core.errors import AvsetsError
from avsets.metadata.manifest import MANIFEST_DIR, Manifest, manifest_hash

from .card import (
    AVAIL_END,
    AVAIL_START,
    MANIFEST_END,
    MANIFEST_START,
    TAKEDOWNS_END,
    TAKEDOWNS_START,
    _avail_rows,
    _avail_table,
    _manifest_rows,
    _manifest_table,
    size_category,
)
from .shards import STATE_DIR, parquet_writer_options
from .takedowns import (
    TAKEDOWNS_FILE,
    Removed,
    Takedown,
    read_takedowns_csv,
    write_takedowns_csv,
)

logger = logging.getLogger(__name__)

TD_START, TD_END = TAKEDOWNS_START, TAKEDOWNS_END
#: set to a step name (``staged``, ``journal``, ``moved``, ``uploaded``) to SIGKILL the process there: the
#: tests' way of proving a killed sync is finished by a rerun
KILL_ENV = "AVSETS_SYNC_KILL_AT"
SYNC_DIR = f"{STATE_DIR}/sync"


def kill_point(step: str) -> None:
    if os.environ.get(KILL_ENV) == step:
        logger.warning("%s=%s: killing this process", KILL_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)


class SyncError(AvsetsError):
    """The copy cannot be synced (not an avsets export, a shard without an ``id`` column...)."""


@dataclass
class ShardChange:
    """One shard that holds listed clips: what it held, what goes."""

    path: str  # relative: data/<config>/<split>-XXXXX-of-NNNNN.parquet
    config: str
    split: str
    rows_before: int
    bytes_before: int
    removed: list[Removed]
    bytes_after: int | None = None  # set once rewritten (0: deleted)

    @property
    def rows_after(self) -> int:
        return self.rows_before - len(self.removed)


@dataclass
class SyncPlan:
    """What a sync changes: shards to rewrite, rows removed, and the listed keys found nowhere."""

    changes: list[ShardChange] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    already_removed: int = 0  # listed clips that takedowns.csv already records (a rerun)
    shards_scanned: int = 0
    interrupted: bool = False  # a dry run found a journaled sync that the next real run finishes first
    files: dict[str, int] = field(default_factory=dict)  # every file of the copy: path -> size
    finished_interrupted: int | None = None  # rows an interrupted prune removed, finished by this run first
    discarded_journal: str | None = None  # why the journal of an interrupted prune was stale and dropped

    @property
    def removed(self) -> list[Removed]:
        return [r for c in self.changes for r in c.removed]


class Copy:
    """A published copy, read-only: a local folder here, a Hub repo at one commit in ``sync_hub``."""

    def files(self) -> dict[str, int]:
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes | None:
        raise NotImplementedError

    def read_columns(self, path: str, columns: list[str]) -> pa.Table:
        """Those of ``columns`` the shard has (only their column chunks are read)."""
        raise NotImplementedError

    def local_path(self, path: str) -> Path:
        raise NotImplementedError


class LocalCopy(Copy):
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def files(self) -> dict[str, int]:
        out = {}
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                out[rel.as_posix()] = p.stat().st_size
        return out

    def read_bytes(self, path: str) -> bytes | None:
        p = self.root / path
        return p.read_bytes() if p.is_file() else None

    def read_columns(self, path: str, columns: list[str]) -> pa.Table:
        return read_present_columns(pq.ParquetFile(self.root / path), columns)

    def local_path(self, path: str) -> Path:
        return self.root / path


def read_present_columns(pf: pq.ParquetFile, columns: list[str]) -> pa.Table:
    names = pf.schema_arrow.names
    return pf.read(columns=[c for c in columns if c in names])


def shard_key(path: str) -> tuple[str, str] | None:
    """``data/<config>/<split>-....parquet`` -> ``(config, split)``; ``None`` for any other file."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "data" or not parts[2].endswith(".parquet") or "-" not in parts[2]:
        return None
    return parts[1], parts[2].split("-", 1)[0]


def plan_sync(copy: Copy, takedowns: dict[str, Takedown], *, config: str | None = None,
              split: str | None = None) -> SyncPlan:
    """Find the shards of ``copy`` holding a clip (by id) or a video (by YouTube id) listed in ``takedowns``."""
    plan = SyncPlan(files=copy.files())
    already = {k for r in read_takedowns_csv(copy.read_bytes(TAKEDOWNS_FILE)) for k in (r.id, r.youtube_id) if k}
    found: set[str] = set()
    keys = pa.array(sorted(takedowns), pa.string())
    for path, size in plan.files.items():
        key = shard_key(path)
        if key is None or (config and key[0] != config) or (split and key[1] != split):
            continue
        plan.shards_scanned += 1
        try:
            table = copy.read_columns(path, ["id", "youtube_id"])
        except (pa.ArrowException, OSError) as e:
            raise SyncError(f"{path}: cannot read its id column ({e})") from None
        if "id" not in table.column_names:
            raise SyncError(f"{path} has no id column: is it an avsets export?")
        ids = table["id"]
        hit = pc.is_in(ids, value_set=keys)
        ytids = table["youtube_id"] if "youtube_id" in table.column_names else None
        if ytids is not None:
            hit = pc.or_(pc.fill_null(hit, False), pc.fill_null(pc.is_in(ytids, value_set=keys), False))
        idx = pc.indices_nonzero(pc.fill_null(hit, False)).to_pylist()
        if not idx:
            continue
        removed = []
        for i in idx:
            cid = ids[i].as_py()
            yt = ytids[i].as_py() if ytids is not None else None
            # a listed video wins over a listed clip of it: takedowns.csv then records the whole video as gone
            td = takedowns[yt] if yt and yt in takedowns else takedowns[cid]
            found.update(k for k in (cid, yt) if k in takedowns)
            removed.append(Removed(cid, yt or "", key[0], key[1], td.date, td.reason, td.key))
        plan.changes.append(ShardChange(path, key[0], key[1], table.num_rows, size, removed))
    plan.not_found = sorted(k for k in takedowns if k not in found and k not in already)
    plan.already_removed = sum(1 for k in takedowns if k in already and k not in found)
    return plan


def media_columns_of(schema: pa.Schema) -> list[str]:
    """Columns the export stored as ``Audio``/``Video`` (from the features JSON in the Parquet metadata)."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return []
    feats = json.loads(meta).get("info", {}).get("features", {})
    return [k for k, v in feats.items() if isinstance(v, dict) and v.get("_type") in ("Audio", "Video")]


def rewrite_shard(src: Path, dst: Path, drop_ids: Iterable[str]) -> int:
    """Write ``src`` without the rows whose ``id`` is in ``drop_ids`` to ``dst`` (via ``dst.tmp``); returns
    the rows kept. Row group by row group, so memory holds one row group; rows keep their values and order,
    and the writer options are the export's (media uncompressed, small columns zstd)."""
    drop = pa.array(sorted(set(drop_ids)), pa.string())
    pf = pq.ParquetFile(src)
    schema = pf.schema_arrow
    tmp = dst.with_name(dst.name + ".tmp")
    dst.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    writer = None
    try:
        for i in range(pf.num_row_groups):
            t = pf.read_row_group(i)
            t = t.filter(pc.invert(pc.fill_null(pc.is_in(t["id"], value_set=drop), False)))
            if not t.num_rows:
                continue
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema, **parquet_writer_options(schema, media_columns_of(schema)))
            writer.write_table(t.replace_schema_metadata(schema.metadata), row_group_size=t.num_rows)
            kept += t.num_rows
    finally:
        if writer is not None:
            writer.close()
    if kept:
        os.replace(tmp, dst)
    return kept


# -- the card -----------------------------------------------------------------------------------------------

def _as_list(value: Any) -> list[dict]:
    if value is None:
        return []
    return [value] if isinstance(value, dict) else list(value)


def update_card(text: str, plan: SyncPlan, *, total_removed: int, day: str,
                manifest_rows: dict[tuple[str, str], tuple[int, str]] | None = None) -> str:
    """The card after ``plan``: split sizes, sizes of the config, size category, availability, manifest
    hashes (``manifest_rows``: the new ``(clips, hash)`` of each split of the configs whose manifest changed),
    and the takedowns note."""
    card = DatasetCard(text)
    data = card.data
    per_split = _removed_per_split(plan)
    emptied = _emptied_splits(plan, per_split)
    gone_configs = _update_infos(data, per_split, emptied)
    if emptied:
        _update_configs(data, emptied, gone_configs)
    body = _update_body(card.text.strip(), per_split, manifest_rows, total_removed=total_removed, day=day)
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"


def _removed_per_split(plan: SyncPlan) -> dict[tuple[str, str], tuple[int, int]]:
    """``(config, split) -> (rows removed, bytes delta)`` of the plan's shard changes."""
    per_split: dict[tuple[str, str], tuple[int, int]] = {}
    for c in plan.changes:
        n, b = per_split.get((c.config, c.split), (0, 0))
        per_split[(c.config, c.split)] = (n + len(c.removed), b + (c.bytes_after or 0) - c.bytes_before)
    return per_split


def _emptied_splits(plan: SyncPlan, per_split: dict[tuple[str, str], tuple[int, int]]) -> set[tuple[str, str]]:
    """Splits whose every shard is deleted: their glob would match nothing and stock `datasets` would fail,
    so they leave the card (and a config left with no split leaves it too)."""
    deleted = {c.path for c in plan.changes if not c.bytes_after}
    remaining = {shard_key(p) for p in plan.files if shard_key(p) and p not in deleted}
    return {k for k in per_split if k not in remaining}


def _update_infos(data: Any, per_split: dict[tuple[str, str], tuple[int, int]],
                  emptied: set[tuple[str, str]]) -> set[str]:
    """``dataset_info``: split sizes, config sizes and the size category after the removals; returns the
    configs left with no split."""
    infos = data.get("dataset_info")
    single = isinstance(infos, dict)
    infos = _as_list(infos)
    for info in infos:
        cfg = info.get("config_name", "default")
        if "splits" not in info:
            continue
        kept = []
        for sp in info["splits"]:
            n, b = per_split.get((cfg, sp["name"]), (0, 0))
            sp["num_examples"] = max(0, int(sp.get("num_examples") or 0) - n)
            sp["num_bytes"] = max(0, int(sp.get("num_bytes") or 0) + b)
            if (cfg, sp["name"]) not in emptied:
                kept.append(sp)
        info["splits"] = kept
        delta = sum(b for (c2, _), (_, b) in per_split.items() if c2 == cfg)
        for k in ("download_size", "dataset_size"):
            if k in info:
                info[k] = max(0, int(info[k]) + delta)
    gone_configs = {info.get("config_name", "default") for info in infos if "splits" in info and not info["splits"]}
    infos = [i for i in infos if i.get("config_name", "default") not in gone_configs]
    if not infos and data.get("dataset_info") is not None:
        data.pop("dataset_info")  # every clip of every config was taken down
    if infos:
        data["dataset_info"] = infos[0] if single else infos
        largest = max(sum(int(s.get("num_examples") or 0) for s in i.get("splits") or []) for i in infos)
        data["size_categories"] = [size_category(largest)]
    return gone_configs


def _update_configs(data: Any, emptied: set[tuple[str, str]], gone_configs: set[str]) -> None:
    """``configs``: the data files of emptied splits and the configs left with none go."""
    configs = []
    for cfg in _as_list(data.get("configs")):
        files = cfg.get("data_files")
        if isinstance(files, list):
            cfg["data_files"] = [f for f in files
                                 if not (isinstance(f, dict) and (cfg.get("config_name"), f.get("split")) in emptied)]
        if cfg.get("config_name") not in gone_configs:
            configs.append(cfg)
    data["configs"] = configs


def _update_body(body: str, per_split: dict[tuple[str, str], tuple[int, int]],
                 manifest_rows: dict[tuple[str, str], tuple[int, str]] | None, *, total_removed: int,
                 day: str) -> str:
    """The card's text: availability rows, manifest hashes and the takedowns note after the removals."""
    rows = _avail_rows(body)
    for (cfg, sp), (n, _) in per_split.items():
        if (cfg, sp) in rows:
            meta, exported = rows[(cfg, sp)]
            rows[(cfg, sp)] = (meta, max(0, exported - n))
    if AVAIL_START in body and AVAIL_END in body:
        head, rest = body.split(AVAIL_START, 1)
        body = head + _avail_table(rows) + rest.split(AVAIL_END, 1)[1]
    if manifest_rows is not None and MANIFEST_START in body and MANIFEST_END in body:
        changed = {cfg for cfg, _ in manifest_rows}
        mrows = {k: v for k, v in _manifest_rows(body).items() if k[0] not in changed} | manifest_rows
        head, rest = body.split(MANIFEST_START, 1)
        body = head + _manifest_table(mrows) + rest.split(MANIFEST_END, 1)[1]
    note = (f"{TD_START}\n## Takedowns\n\n{total_removed} clip(s) were removed from this copy after publication "
            "because their videos were taken down, made private or became unavailable, or their owners asked. "
            f"`{TAKEDOWNS_FILE}` lists each one (id, YouTube id, config, split, date, reason). Last updated "
            f"{day} with [avsets](https://pypi.org/project/avsets/).\n{TD_END}")
    if TD_START in body and TD_END in body:
        head, rest = body.split(TD_START, 1)
        return head + note + rest.split(TD_END, 1)[1]
    return body + "\n\n" + note


def _update_manifests(copy: Copy, plan: SyncPlan, day: str) -> dict[str, Manifest]:
    """``manifests/<config>.json`` of the changed configs without the removed ids (a split left empty goes).

    ``created`` stays the export's; ``extra.updated`` says when the set last changed, so two syncs of the
    same copy on the same day write the same bytes (a killed and rerun sync equals a clean one)."""
    out: dict[str, Manifest] = {}
    for cfg in sorted({c.config for c in plan.changes}):
        path = f"{MANIFEST_DIR}/{cfg}.json"
        data = copy.read_bytes(path)
        if data is None:
            continue
        m = Manifest.from_dict(json.loads(data), where=path)
        gone: dict[str, set[str]] = {}
        for r in plan.removed:
            if r.config == cfg:
                gone.setdefault(r.split, set()).add(r.id)
        splits = {sp: [i for i in ids if i not in gone.get(sp, ())] for sp, ids in m.splits.items()}
        m.splits = {sp: ids for sp, ids in splits.items() if ids}
        m.extra = {**m.extra, "updated": day}
        out[path] = m
    return out


# -- building the new files ------------------------------------------------------------------------------------

@dataclass
class SyncOutput:
    """The files a sync writes (relative path -> local file or bytes) and deletes."""

    writes: dict[str, Path | bytes] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)


def build_outputs(copy: Copy, plan: SyncPlan, work: Path, *, day: str) -> SyncOutput:
    """Rewrite the changed shards into ``work`` and produce the new card, manifests and ``takedowns.csv``."""
    out = SyncOutput()
    for c in plan.changes:
        dst = work / c.path
        kept = rewrite_shard(copy.local_path(c.path), dst, (r.id for r in c.removed))
        if kept != c.rows_after:
            raise SyncError(f"{c.path}: expected {c.rows_after} rows after removing {len(c.removed)}, got {kept}")
        if kept:
            c.bytes_after = dst.stat().st_size
            out.writes[c.path] = dst
        else:
            c.bytes_after = 0
            out.deletes.append(c.path)
    manifests = _update_manifests(copy, plan, day)
    out.writes.update({path: m.dumps().encode("utf-8") for path, m in manifests.items()})
    previous = read_takedowns_csv(copy.read_bytes(TAKEDOWNS_FILE))
    seen = {(r.config, r.split, r.id) for r in previous}
    new = sorted((r for r in plan.removed if (r.config, r.split, r.id) not in seen),
                 key=lambda r: (r.config, r.split, r.id))
    out.writes[TAKEDOWNS_FILE] = write_takedowns_csv([*previous, *new])
    card = copy.read_bytes("README.md")
    if card is None:
        raise SyncError("the copy has no README.md: is it an avsets export?")
    hashes = {(m.config or path.rsplit("/", 1)[-1][:-5], sp): (len(ids), manifest_hash(ids))
              for path, m in manifests.items() for sp, ids in m.splits.items()}
    out.writes["README.md"] = update_card(card.decode("utf-8"), plan, total_removed=len(previous) + len(new),
                                          day=day, manifest_rows=hashes).encode("utf-8")
    return out
