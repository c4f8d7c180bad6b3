"""Where finished clips go: a local (or shared, NFS-style) folder, or an fsspec URL such as ``s3://b/media``.

Local: ffmpeg writes a hidden ``.part`` file inside the folder and ``os.replace`` renames it — atomic, so a
killed run never leaves a partial clip under a media name.

fsspec: ffmpeg writes into a local staging folder; the verified clip is uploaded under a hidden ``.part``
name and moved to its final name (object stores make an object visible whole, and the move keeps that
true for filesystems that do not).  SQLite cannot live on an object store (nor safely on a network
filesystem), so the ledger stays in the local staging folder and a consistent snapshot of it is uploaded
as ``avsets-ledger.sqlite`` at the end of every run; a run on a machine with no local ledger starts
from the uploaded one.  For a remote target the ledger is trusted for "this clip exists" (no HEAD
request per clip on a rerun).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from avsets.metadata.ledger import LEDGER_NAME


def is_remote(out: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL other than ``file://`` (which is a local folder)."""
    text = str(out)
    if "://" not in text:
        return False
    return text.split("://", 1)[0].lower() not in ("file", "local")


def _staging_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "avsets" / "fetch"


class Target:
    """An output folder; picklable (Ray tasks get one), the fsspec filesystem is made where it is used."""

    def __init__(self, out: str | os.PathLike[str]):
        text = str(out)
        self.remote = is_remote(text)
        if self.remote:
            self.url = text.rstrip("/")
            digest = hashlib.sha1(self.url.encode()).hexdigest()[:16]
            self.work_dir = _staging_root() / digest
        else:
            path = text[len("file://"):] if text.startswith("file://") else text
            self.url = str(Path(path).absolute())
            self.work_dir = Path(self.url)
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fs"] = None
        return state

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs = fsspec.core.url_to_fs(self.url)[0]
        return self._fs

    def _remote_path(self, name: str) -> str:
        return f"{self.url}/{name}"

    @property
    def ledger_path(self) -> Path:
        return self.work_dir / LEDGER_NAME

    def prepare(self) -> None:
        """Create the folders; for a remote target with no local ledger yet, start from the uploaded one."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if not self.remote:
            return
        self.fs.makedirs(self.url, exist_ok=True)
        remote_ledger = self._remote_path(LEDGER_NAME)
        if not self.ledger_path.exists() and self.fs.exists(remote_ledger):
            tmp = self.ledger_path.with_suffix(".download")
            self.fs.get_file(remote_ledger, str(tmp))
            os.replace(tmp, self.ledger_path)

    def exists(self, name: str) -> bool:
        return True if self.remote else (self.work_dir / name).is_file()

    def commit(self, tmp: Path, name: str, token: str) -> None:
        """Make a verified temporary file visible under ``name`` all at once, never over an existing file.

        Local: ``os.link`` then unlink (atomic, and it fails with ``FileExistsError`` where a file already
        is, which ``os.replace`` would silently destroy); filesystems without hard links fall back to a
        check then ``os.replace``.  Remote: the name is checked before the move.
        """
        if not self.remote:
            final = self.work_dir / name
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, "file exists", str(final)) from None
            except OSError:
                if final.exists():
                    raise FileExistsError(errno.EEXIST, "file exists", str(final)) from None
                os.replace(tmp, final)
                return
            tmp.unlink(missing_ok=True)
            return
        final_url = self._remote_path(name)
        if self.fs.exists(final_url):
            raise FileExistsError(errno.EEXIST, "file exists", final_url)
        part = self._remote_path(f".{name}.{token}.part")
        self.fs.put_file(str(tmp), part)
        self.fs.mv(part, final_url)
        tmp.unlink(missing_ok=True)

    def publish_ledger(self) -> None:
        """Upload a consistent snapshot of the ledger (SQLite's backup API, safe while others write)."""
        if not self.remote or not self.ledger_path.exists():
            return
        fd, snap = tempfile.mkstemp(suffix=".sqlite", dir=self.work_dir)
        os.close(fd)
        try:
            src = sqlite3.connect(str(self.ledger_path))
            dst = sqlite3.connect(snap)
            with dst:
                src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.close()
            src.close()
            self.fs.put_file(snap, self._remote_path(f".{LEDGER_NAME}.part"))
            self.fs.mv(self._remote_path(f".{LEDGER_NAME}.part"), self._remote_path(LEDGER_NAME))
        finally:
            Path(snap).unlink(missing_ok=True)

    def __str__(self) -> str:
        return self.url


def remove_staging(target: Target) -> None:
    """Drop a remote target's staging folder (and with it the local ledger copy)."""
    if target.remote:
        shutil.rmtree(target.work_dir, ignore_errors=True)
