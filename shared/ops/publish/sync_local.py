"""Applying a takedown sync to a local export folder (``avsets export --prune``), atomically: the new files
are staged, a journal of renames is written, then the renames run; a process killed at any step is
finished by the next run (:func:`finish_interrupted`, which every export and push calls first).

The steps that decide what changes (which shards, the rewritten rows, the card) are :mod:`.sync`, shared
with the Hub path (:mod:`.sync_hub`, one commit); this module is only the local folder's way of applying
them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import filelock

from .shards import STATE_DIR
from .sync import (
    SYNC_DIR,
    LocalCopy,
    ShardChange,
    SyncError,
    SyncOutput,
    SyncPlan,
    build_outputs,
    kill_point,
    plan_sync,
)
from .takedowns import (
    Takedown,
)

logger = logging.getLogger(__name__)


def _state_updates(root: Path, plan: SyncPlan) -> dict[str, bytes]:
    """New progress files of the export (``.avsets/<config>/<split>/chunk-*.json``) with the shards' new row
    counts and sizes, so a later ``avsets export`` rerun into this folder writes a card that agrees."""
    out: dict[str, bytes] = {}
    by_split: dict[tuple[str, str], dict[str, ShardChange]] = {}
    for c in plan.changes:
        by_split.setdefault((c.config, c.split), {})[c.path.rsplit("/", 1)[1]] = c
    for (cfg, sp), changes in by_split.items():
        plan_file = root / STATE_DIR / cfg / "plan.json"
        if not plan_file.is_file():
            continue
        chunks = json.loads(plan_file.read_text())["splits"].get(sp, [])
        files = [root / STATE_DIR / cfg / sp / f"chunk-{i:05d}.json" for i in range(len(chunks))]
        if not all(f.is_file() for f in files):
            continue
        states = [json.loads(f.read_text()) for f in files]
        records = [r for s in states for r in s["shards"]]
        for i, rec in enumerate(records):
            name = f"{sp}-{i:05d}-of-{len(records):05d}.parquet"
            if name in changes:
                rec["num_rows"] = changes[name].rows_after
                rec["num_bytes"] = changes[name].bytes_after or 0
        for f, s in zip(files, states, strict=True):
            out[f.relative_to(root).as_posix()] = json.dumps(s, indent=1, sort_keys=True).encode()
    return out


#: files up to this size are fingerprinted by content (cards, manifests, takedowns.csv, progress files); larger
#: ones (shards) by size and modification time, which ``os.replace`` keeps and any rewrite changes
_HASH_LIMIT = 16 << 20


def _signature(path: Path) -> list | None:
    """What a journal remembers of one file: ``None`` when absent, else ``[size, mtime_ns, sha256 or None]``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    digest = None
    if st.st_size <= _HASH_LIMIT:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return [st.st_size, st.st_mtime_ns, digest]


def _same(path: Path, sig: list | None) -> bool:
    now = _signature(path)
    if now is None or sig is None:
        return now is None and sig is None
    if sig[2] is not None or now[2] is not None:
        return now[0] == sig[0] and now[2] == sig[2]
    return now[:2] == sig[:2]


def _journal_mismatch(root: Path, j: dict) -> str | None:
    """Why the journal no longer fits the folder (the file that changed since it was written), or ``None``.

    A move not yet made needs its destination as the journal found it (``before``); a move already made
    needs it as staged (``after``); a delete needs the file gone or unchanged. A journal of an older avsets
    (no fingerprints) cannot be checked and is never replayed.
    """
    before, after = j.get("before"), j.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "it was written by an older avsets and cannot be checked"
    for staged, dest in j["moves"]:
        if (root / staged).exists():
            if not _same(root / dest, before.get(dest)):
                return f"{dest} changed since the prune was interrupted"
        elif not _same(root / dest, after.get(dest)):
            return f"{dest} changed since the prune was interrupted"
    for dest in j["deletes"]:
        if (root / dest).exists() and not _same(root / dest, before.get(dest)):
            return f"{dest} changed since the prune was interrupted"
    return None


@dataclass
class JournalOutcome:
    """What ``finish_interrupted`` found: a journaled prune finished (``removed`` rows then), or discarded."""

    finished: bool = False
    discarded: str | None = None  # why a stale journal was dropped instead of replayed
    removed: int = 0


def _finish_journal(root: Path) -> JournalOutcome:
    """Roll a journaled sync forward (idempotent) if it still fits the files it was written for.

    A journal whose files changed since (an ``export`` of another config rewrote the card, a user edited
    ``takedowns.csv``) is stale: replaying it would bring back the old card and drop what changed, so it is
    discarded with its staged files, and the caller plans again from the folder as it is now.
    """
    journal = root / SYNC_DIR / "journal.json"
    if not journal.is_file():
        return JournalOutcome()
    try:
        j = json.loads(journal.read_text())
    except (OSError, ValueError):
        j = {}
    why = _journal_mismatch(root, j) if isinstance(j.get("moves"), list) else "it is unreadable"
    if why is not None:
        logger.warning("discarded the journal of an interrupted prune of %s: %s; pruning again from the folder "
                       "as it is", root, why)
        journal.unlink()
        shutil.rmtree(root / SYNC_DIR, ignore_errors=True)
        return JournalOutcome(discarded=why)
    for i, (staged, dest) in enumerate(j["moves"]):
        src, dst = root / staged, root / dest
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        if i == 0:
            kill_point("moved")
    for dest in j["deletes"]:
        (root / dest).unlink(missing_ok=True)
    journal.unlink()
    shutil.rmtree(root / SYNC_DIR, ignore_errors=True)
    return JournalOutcome(finished=True, removed=int(j.get("removed") or 0))


def finish_interrupted(folder: str | os.PathLike[str]) -> JournalOutcome:
    """Finish (or discard, when stale) a prune of ``folder`` that was killed after its journal was written.

    Every command that writes or publishes an export folder calls this first (``export``, ``push --from``),
    under the same lock as ``prune_export``, so none of them works on a half-applied prune.
    """
    root = Path(folder)
    if not (root / SYNC_DIR / "journal.json").is_file():
        return JournalOutcome()
    with filelock.FileLock(str(root / STATE_DIR / "sync.lock")):
        out = _finish_journal(root)
    if out.finished:
        logger.warning("finished the interrupted prune of %s (%d row(s) removed)", root, out.removed)
    return out


def apply_local(root: Path, out: SyncOutput, plan: SyncPlan) -> None:
    """Stage every new file under ``.avsets/sync/stage``, write the journal (the commit point), then rename.

    Killed before the journal exists: nothing changed, a rerun starts over. Killed after: a rerun (or any
    later command writing the folder) finishes the renames from the journal first, provided every file it
    names is still as the journal recorded it (size, time and, for all but shards, sha256).
    """
    stage = root / SYNC_DIR / "stage"
    writes = dict(out.writes) | _state_updates(root, plan)
    moves = []
    for rel, content in sorted(writes.items()):
        staged = stage / rel
        staged.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if content.resolve() != staged.resolve():
                shutil.copyfile(content, staged)
        else:
            tmp = staged.with_name(staged.name + ".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, staged)
        moves.append([staged.relative_to(root).as_posix(), rel])
    kill_point("staged")
    before = {dest: _signature(root / dest) for _, dest in moves} | {
        dest: _signature(root / dest) for dest in out.deletes}
    after = {dest: _signature(root / staged) for staged, dest in moves}
    journal = root / SYNC_DIR / "journal.json"
    tmp = journal.with_name("journal.json.tmp")
    tmp.write_text(json.dumps({"moves": moves, "deletes": sorted(out.deletes), "before": before, "after": after,
                               "removed": len(plan.removed)}, indent=1))
    os.replace(tmp, journal)
    kill_point("journal")
    _finish_journal(root)


def prune_export(folder: str | os.PathLike[str], takedowns: dict[str, Takedown], *, config: str | None = None,
                 split: str | None = None, dry_run: bool = False, day: str | None = None) -> SyncPlan:
    """Remove the listed clips from a local export folder (``avsets export --prune``); see the module doc."""
    from .takedowns import today

    root = Path(folder)
    if not (root / "README.md").is_file():
        raise SyncError(f"{root} has no README.md: is it the output of `avsets export`?")
    (root / STATE_DIR).mkdir(exist_ok=True)
    with filelock.FileLock(str(root / STATE_DIR / "sync.lock")):
        outcome = JournalOutcome()
        if not dry_run:
            outcome = _finish_journal(root)
            if not outcome.finished:
                shutil.rmtree(root / SYNC_DIR, ignore_errors=True)  # staged files of a run killed before its journal
        copy = LocalCopy(root)
        plan = plan_sync(copy, takedowns, config=config, split=split)
        plan.interrupted = dry_run and (root / SYNC_DIR / "journal.json").is_file()
        plan.finished_interrupted = outcome.removed if outcome.finished else None
        plan.discarded_journal = outcome.discarded
        if dry_run or not plan.changes:
            return plan
        out = build_outputs(copy, plan, root / SYNC_DIR / "stage", day=day or today())
        apply_local(root, out, plan)
        return plan
