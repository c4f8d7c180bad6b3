"""Upload an export to the Hugging Face Hub with ``huggingface_hub.HfApi``, resumably and without leaking the token.

Why not ``upload_folder`` as is: a corpus export can be hundreds of shards. We send them in commits of
bounded size (files and bytes), and before each run we list what the Hub already holds and skip every file
whose LFS sha256 (or git blob id, for small files) and size already match, so a push that failed half-way
resumes where it stopped. The card already on the Hub is merged with the new one (``card.merge_cards``)
and committed last, together with the deletion of stale shards of the configs being pushed, so readers
never see a card that names files which are not there yet.

The token comes from ``token=``, ``HF_TOKEN`` or the standard ``hf auth login`` store (``get_token``). It is
never printed or logged, and any exception leaving this module has it replaced by ``***``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils.sha import git_hash

from avsets.core.errors import AvsetsError

from .card import merge_cards, set_load_target
from .shards import STATE_DIR
from .sync_local import finish_interrupted, prune_export
from .takedowns import TAKEDOWNS_FILE, Takedown, read_takedowns_csv, today, write_takedowns_csv

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"


class PushError(AvsetsError, RuntimeError):
    """A push failed; the message names the step and never contains the token."""


@dataclass
class PlannedFile:
    path: str  # in the repo
    size: int
    action: str  # "add" | "skip" | "delete"


@dataclass
class PushResult:
    """What a push sent (or, with ``dry_run``, would send)."""

    repo_id: str
    revision: str | None
    dry_run: bool
    files: list[PlannedFile] = field(default_factory=list)
    commits: int = 0
    #: set when a dry run could not reach the Hub (the plan then lists every local file as sent)
    hub_error: str | None = None
    #: clips the Hub's ``takedowns.csv`` lists that the folder still held: pruned before the upload (a dry
    #: run only lists them)
    taken_down: list[str] = field(default_factory=list)

    @property
    def added(self) -> list[str]:
        return [f.path for f in self.files if f.action == "add"]

    @property
    def skipped(self) -> list[str]:
        return [f.path for f in self.files if f.action == "skip"]

    @property
    def deleted(self) -> list[str]:
        return [f.path for f in self.files if f.action == "delete"]


def scrub(text: str, token: str | None) -> str:
    """``text`` with every occurrence of the token replaced (exceptions may echo request headers)."""
    if token:
        text = text.replace(token, "***")
    return text


def _local_files(folder: Path) -> dict[str, Path]:
    """Files of an export to publish: everything but avsets' progress state and hidden files."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts) and rel.parts[0] != STATE_DIR:
            out[rel.as_posix()] = p
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _same(remote: Any, local: Path | bytes) -> bool:
    """Is the remote file (a ``RepoFile``) byte-identical to the local one? Compares sizes, then hashes."""
    size = len(local) if isinstance(local, bytes) else local.stat().st_size
    if remote.size != size:
        return False
    if remote.lfs is not None:
        digest = hashlib.sha256(local).hexdigest() if isinstance(local, bytes) else _sha256(local)
        return remote.lfs.sha256 == digest
    data = local if isinstance(local, bytes) else local.read_bytes()
    return remote.blob_id == git_hash(data)


def _batches(items: list[tuple[str, Path]], max_files: int, max_bytes: int) -> Iterator[list[tuple[str, Path]]]:
    batch: list[tuple[str, Path]] = []
    size = 0
    for path, local in items:
        n = local.stat().st_size
        if batch and (len(batch) >= max_files or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append((path, local))
        size += n
    if batch:
        yield batch


def _configs_of(paths: list[str]) -> set[str]:
    return {p.split("/")[1] for p in paths if p.startswith("data/") and p.count("/") >= 2}


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    commit_message: str | None = None,
    commit_max_files: int = 50,
    commit_max_bytes: int | str = "5GB",
    endpoint: str | None = None,
) -> PushResult:
    """Upload an export folder (``export``'s output) to the dataset repo ``repo_id``; see the module doc."""
    token = token or get_token()
    try:
        result = _push_folder(Path(folder), repo_id, private=private, revision=revision, token=token,
                            dry_run=dry_run, commit_message=commit_message, commit_max_files=commit_max_files,
                            commit_max_bytes=convert_file_size_to_int(commit_max_bytes), endpoint=endpoint)
    except PushError:
        raise
    except Exception as e:  # re-raise without the chained original: its args may hold the token
        failure = PushError(scrub(f"push to {repo_id} failed: {type(e).__name__}: {e}", token))
    else:
        if result.hub_error:
            result.hub_error = scrub(result.hub_error, token)
        return result
    # raised outside the except block, so not even the suppressed __context__ keeps the original
    raise failure


def _remote_state(api: HfApi, repo_id: str, revision: str | None, *, private: bool | None,
                  dry_run: bool) -> tuple[dict[str, Any], str | None]:
    """What the Hub holds (``{path: RepoFile}``) and its card; creates the repo and branch unless ``dry_run``."""
    remote: dict[str, Any] = {}
    exists: bool | None = True
    try:
        api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision)
    except RepositoryNotFoundError:
        exists = False
    except RevisionNotFoundError:
        exists = None  # the repo is there, the branch is not
    if not dry_run:
        if exists is False:
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        if revision and exists is not True:
            api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True)
        exists = True
    if exists:
        remote = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True, revision=revision,
                                                           repo_type=REPO_TYPE) if hasattr(f, "blob_id")}
    remote_card = _remote_text(api, repo_id, revision, "README.md") if "README.md" in remote else None
    return remote, remote_card


def _remote_text(api: HfApi, repo_id: str, revision: str | None, path: str) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = api.hf_hub_download(repo_id, path, repo_type=REPO_TYPE, revision=revision, cache_dir=tmp)
            return Path(local).read_text(encoding="utf-8")
        except EntryNotFoundError:
            return None


def _honour_hub_takedowns(folder: Path, hub_csv: str, *, dry_run: bool) -> list[str]:
    """Clips of ``folder`` that the Hub's ``takedowns.csv`` lists: pruned from the folder (unless ``dry_run``)
    with the Hub's rows merged into the folder's ``takedowns.csv``, so a push of an export that was never
    pruned does not publish again what was taken down, and does not replace the Hub's record with a shorter
    one. Returns the clip ids concerned."""
    hub_rows = read_takedowns_csv(hub_csv.encode("utf-8"))
    if not hub_rows:
        return []
    takedowns = {}
    for r in hub_rows:
        key = r.youtube_id if r.whole_video else r.id
        if key:
            takedowns[key] = Takedown(key, r.date or today(), r.reason or "listed in the Hub's takedowns.csv")
    plan = prune_export(folder, takedowns, dry_run=True)
    ids = sorted({r.id for r in plan.removed})
    if dry_run:
        return ids
    local_file = folder / TAKEDOWNS_FILE
    local_rows = read_takedowns_csv(local_file.read_bytes()) if local_file.is_file() else []
    seen = {(r.config, r.split, r.id) for r in local_rows}
    merged = local_rows + [r for r in hub_rows if (r.config, r.split, r.id) not in seen]
    if len(merged) != len(local_rows):
        tmp = local_file.with_name(f"{TAKEDOWNS_FILE}.tmp-{os.getpid()}")
        tmp.write_bytes(write_takedowns_csv(merged))
        os.replace(tmp, local_file)
    if ids:
        logger.warning("%d clip(s) of %s are listed in the Hub's takedowns.csv: pruning them before the push",
                       len(ids), folder)
        prune_export(folder, takedowns)
    return ids


def _push_folder(folder: Path, repo_id: str, *, private: bool | None, revision: str | None, token: str | None,
                 dry_run: bool, commit_message: str | None, commit_max_files: int, commit_max_bytes: int,
                 endpoint: str | None) -> PushResult:
    if not dry_run:
        finish_interrupted(folder)  # never publish a half-applied prune
    local = _local_files(folder)
    if "README.md" not in local:
        raise PushError(f"{folder} has no README.md: is it the output of `avsets export`?")
    api = HfApi(endpoint=endpoint, token=token)
    result = PushResult(repo_id, revision, dry_run)

    try:
        remote, remote_card = _remote_state(api, repo_id, revision, private=private, dry_run=dry_run)
    except Exception as e:
        if not dry_run:
            raise
        # a dry run needs no network: without the Hub, every local file is listed as sent
        result.hub_error = f"{type(e).__name__}: {e}"
        remote, remote_card = {}, None
    if TAKEDOWNS_FILE in remote:
        hub_csv = _remote_text(api, repo_id, revision, TAKEDOWNS_FILE)
        if hub_csv:
            result.taken_down = _honour_hub_takedowns(folder, hub_csv, dry_run=dry_run)
            if not dry_run:
                local = _local_files(folder)  # the pruned shards, card and merged takedowns.csv
    card_text = merge_cards(remote_card, local["README.md"].read_text(encoding="utf-8"))
    card = set_load_target(card_text, repo_id).encode("utf-8")

    uploads: list[tuple[str, Path]] = []
    for path, p in local.items():
        if path == "README.md":
            continue
        same = path in remote and _same(remote[path], p)
        result.files.append(PlannedFile(path, p.stat().st_size, "skip" if same else "add"))
        if not same:
            uploads.append((path, p))
    mine = _configs_of(list(local))
    stale = sorted(p for p in remote if p not in local and p.startswith("data/") and _configs_of([p]) & mine)
    result.files += [PlannedFile(p, remote[p].size, "delete") for p in stale]
    card_same = "README.md" in remote and _same(remote["README.md"], card)
    result.files.append(PlannedFile("README.md", len(card), "skip" if card_same else "add"))
    if dry_run:
        return result

    message = commit_message or f"Upload {', '.join(sorted(mine)) or 'dataset'} with avsets"
    batches = list(_batches(uploads, commit_max_files, commit_max_bytes))
    for i, batch in enumerate(batches):
        ops = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(p)) for path, p in batch]
        logger.info("push %s: commit %d/%d (%d files)", repo_id, i + 1, len(batches) + 1, len(ops))
        api.create_commit(repo_id, ops, commit_message=f"{message} ({i + 1}/{len(batches)})",
                          repo_type=REPO_TYPE, revision=revision)
        result.commits += 1
    final: list[Any] = [CommitOperationDelete(path_in_repo=p) for p in stale]
    if not card_same:
        final.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    if final:
        api.create_commit(repo_id, final, commit_message=f"{message}: dataset card", repo_type=REPO_TYPE,
                          revision=revision)
        result.commits += 1
    return result


def push(
    corpus: str,
    config: str | None = None,
    *,
    repo_id: str,
    from_dir: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    commit_max_files: int = 50,
    commit_max_bytes: int | str = "5GB",
    endpoint: str | None = None,
    **export_kwargs: Any,
) -> PushResult:
    """Export ``corpus``/``config`` (to ``work_dir`` or a temporary folder) and upload it; ``from_dir`` uploads
    an earlier export instead. Export arguments (``data_dir``, ``media_dir``, ``video``...) pass through.

    With ``work_dir`` a failed push is cheap to repeat: the export resumes and the upload skips what the Hub
    already holds; with a temporary folder the export is redone (its bytes are deterministic, so the upload
    still skips finished files).
    """
    kw = dict(private=private, revision=revision, token=token, dry_run=dry_run, commit_max_files=commit_max_files,
              commit_max_bytes=commit_max_bytes, endpoint=endpoint)
    if from_dir is not None:
        return push_folder(from_dir, repo_id, **kw)
    from .export import export

    if work_dir is not None:
        export(corpus, config, out=os.fspath(work_dir), **export_kwargs)
        return push_folder(work_dir, repo_id, **kw)
    with tempfile.TemporaryDirectory(prefix="avsets-push-") as tmp:
        export(corpus, config, out=tmp, **export_kwargs)
        return push_folder(tmp, repo_id, **kw)
