"""``avsets push --sync``: make takedowns reach a dataset repo on the Hugging Face Hub in one commit.

The repo is read at one commit (its head when the sync starts) and only as far as needed: the file
listing, the card, ``takedowns.csv``, and the ``id`` / ``youtube_id`` columns of each shard through
``HfFileSystem`` (ranged reads of the Parquet footer and those column chunks, never the media). Only
the shards that hold a listed clip are downloaded, rewritten (``sync.py``) and uploaded.

Every change (rewritten and deleted shards, card, ``takedowns.csv``) goes in ONE ``create_commit`` whose
``parent_commit`` is the commit that was read, so the Hub moves from the old state to the new one at once:
a sync killed at any point leaves the repo as it was (LFS objects uploaded before the kill are not part of
any commit, and a rerun finds them already on the Hub and does not send them again), and a sync racing
another push fails instead of overwriting it. A rerun after a finished sync finds nothing left to do.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem, get_token
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from .push import REPO_TYPE, PushError, scrub
from .sync import Copy, SyncError, SyncPlan, build_outputs, kill_point, plan_sync, read_present_columns
from .takedowns import Takedown, today

logger = logging.getLogger(__name__)


class HubCopy(Copy):
    """A dataset repo at one commit ``sha``; downloads go to ``work`` (a temporary folder)."""

    def __init__(self, api: HfApi, repo_id: str, sha: str, work: Path, token: str | None):
        self.api, self.repo_id, self.sha, self.work = api, repo_id, sha, work
        self.fs = HfFileSystem(endpoint=api.endpoint, token=token)
        self._files: dict[str, int] | None = None

    def files(self) -> dict[str, int]:
        if self._files is None:
            tree = self.api.list_repo_tree(self.repo_id, recursive=True, revision=self.sha, repo_type=REPO_TYPE)
            self._files = {f.path: f.size for f in tree if hasattr(f, "blob_id")}
        return self._files

    def _download(self, path: str) -> Path:
        return Path(self.api.hf_hub_download(self.repo_id, path, repo_type=REPO_TYPE, revision=self.sha,
                                             cache_dir=self.work / "cache"))

    def read_bytes(self, path: str) -> bytes | None:
        if path not in self.files():
            return None
        try:
            return self._download(path).read_bytes()
        except EntryNotFoundError:
            return None

    def read_columns(self, path: str, columns: list[str]) -> pa.Table:
        # no read-ahead cache: each read pyarrow makes (the 64 KiB footer tail, then the id / youtube_id
        # column chunks) is one ranged GET of exactly that size; a block cache read 2-3 blocks per shard
        with self.fs.open(f"datasets/{self.repo_id}@{self.sha}/{path}", "rb", cache_type="none") as f:
            return read_present_columns(pq.ParquetFile(f), columns)

    def local_path(self, path: str) -> Path:
        return self._download(path)


@dataclass
class SyncResult:
    """What ``sync_hub`` changed (or, with ``dry_run``, would change)."""

    repo_id: str
    revision: str | None
    dry_run: bool
    plan: SyncPlan
    uploaded: dict[str, int] = field(default_factory=dict)  # path -> bytes
    deleted: list[str] = field(default_factory=list)
    commit: str | None = None


def sync_hub(
    repo_id: str,
    takedowns: dict[str, Takedown],
    *,
    config: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
    work_dir: str | os.PathLike[str] | None = None,
    day: str | None = None,
) -> SyncResult:
    """Remove the clips listed in ``takedowns`` from the dataset repo ``repo_id`` (see the module doc)."""
    token = token or get_token()
    try:
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            return _sync(repo_id, takedowns, Path(work_dir), config=config, split=split, revision=revision,
                         token=token, endpoint=endpoint, dry_run=dry_run, day=day)
        with tempfile.TemporaryDirectory(prefix="avsets-sync-") as tmp:
            return _sync(repo_id, takedowns, Path(tmp), config=config, split=split, revision=revision,
                         token=token, endpoint=endpoint, dry_run=dry_run, day=day)
    except (PushError, SyncError):
        raise
    except Exception as e:  # re-raised without the chained original: its args may hold the token
        failure = PushError(scrub(f"sync of {repo_id} failed: {type(e).__name__}: {e}", token))
    raise failure


def _sync(repo_id: str, takedowns: dict[str, Takedown], work: Path, *, config: str | None, split: str | None,
          revision: str | None, token: str | None, endpoint: str | None, dry_run: bool,
          day: str | None) -> SyncResult:
    api = HfApi(endpoint=endpoint, token=token)
    sha = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision).sha
    copy = HubCopy(api, repo_id, sha, work, token)
    if "README.md" not in copy.files():
        raise SyncError(f"{repo_id} has no README.md: is it a dataset pushed with `avsets push`?")
    plan = plan_sync(copy, takedowns, config=config, split=split)
    result = SyncResult(repo_id, revision, dry_run, plan)
    if dry_run or not plan.changes:
        return result
    out = build_outputs(copy, plan, work / "new", day=day or today())
    ops: list = []
    for path, content in sorted(out.writes.items()):
        ops.append(CommitOperationAdd(path_in_repo=path,
                                      path_or_fileobj=str(content) if isinstance(content, Path) else content))
        result.uploaded[path] = content.stat().st_size if isinstance(content, Path) else len(content)
    ops += [CommitOperationDelete(path_in_repo=p) for p in out.deletes]
    result.deleted = list(out.deletes)
    adds = [op for op in ops if isinstance(op, CommitOperationAdd)]
    api.preupload_lfs_files(repo_id, adds, repo_type=REPO_TYPE, revision=revision)
    kill_point("uploaded")
    n = len(plan.removed)
    try:
        info = api.create_commit(repo_id, ops, commit_message=f"Remove {n} taken-down clip(s) with avsets",
                                 commit_description=_describe(plan), repo_type=REPO_TYPE, revision=revision,
                                 parent_commit=sha)
    except HfHubHTTPError as e:
        if getattr(e.response, "status_code", None) != 412:
            raise
        failure = PushError(f"{repo_id} changed while the sync ran (another push?); nothing was changed by this "
                            "sync: run it again")
    else:
        result.commit = info.oid
        return result
    raise failure


def _describe(plan: SyncPlan) -> str:
    lines = [f"{len(c.removed)} row(s) out of {c.path}" + (" (now empty: deleted)" if not c.rows_after else "")
             for c in plan.changes]
    return "\n".join(lines) + "\n\nThe removed clips are listed in takedowns.csv."
