"""The fetch ledger: one SQLite file in the output folder, one row per clip, the record of what exists.

Why SQLite: it is in the standard library, a reader (``avsets verify``, a notebook, ``sqlite3`` on the
shell) needs nothing of ours, and with WAL journaling plus a busy timeout two fetchers on one folder
serialize their writes instead of corrupting the file (a JSON or CSV log cannot promise that, and a
per-clip sidecar file costs 10.9 million inodes).

Tables:
- ``clips``: finished attempts (``ok`` or a failure status), the contract in DESIGN.md.
- ``claims``: clips some fetcher is working on right now, so a second fetcher on the same folder leaves
  them alone.  A claim whose owner died (same host, process gone) or whose lease ran out is stale and is
  taken over; this is what makes a rerun after ``kill -9`` pick the unfinished clips up again.
- ``runs`` and ``history`` (added later, created on the next write, so older ledgers stay readable): one
  row per fetch run (start, end, this run's status counts, the whole ledger's status counts at its end)
  and one row per clip outcome recorded in a run.  ``clips`` keeps only the last outcome; these two are
  what ``avsets report`` draws coverage over time from (each run a point).

Why one module of ~550 lines: it is one file format.  The schema, the one writer (:class:`Ledger`, its
claims and runs) and the readers (:func:`read_ledger`, :func:`ledger_summary`, :func:`diff_ledgers`, the
ledger of a remote mirror) change together - a column added touches all of them - and the callers in
fetch, publish, manifest, report and unpack import them from here.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from avsets.core.errors import AvsetsError, NoSpaceError
from avsets.core.secrets import redact_text, redact_url
from avsets.core.segments import MEDIA_EXTENSIONS
from avsets.core.source_names import source_kind, url_path

LEDGER_NAME = "avsets-ledger.sqlite"

OK = "ok"
UNAVAILABLE = "unavailable"
PRIVATE = "private"
REMOVED = "removed"
AGE_RESTRICTED = "age_restricted"
GEO_BLOCKED = "geo_blocked"
RATE_LIMITED = "rate_limited"
ERROR = "error"
#: A file under the clip's name that this ledger did not write and that does not verify: left untouched
#: (never overwritten), looked at again on every run (moving it aside lets the clip be fetched).
CONFLICT = "conflict"
STATUSES = (OK, UNAVAILABLE, PRIVATE, REMOVED, AGE_RESTRICTED, GEO_BLOCKED, RATE_LIMITED, ERROR, CONFLICT)

#: Statuses ``--retry-failed`` fetches again (DESIGN "Fetch decisions").  ``age_restricted`` joins them only
#: when the user brings cookies, since only a signed-in session can change its outcome.
RETRYABLE = frozenset({RATE_LIMITED, ERROR, GEO_BLOCKED})
#: Never retried automatically: the video itself is gone or closed.
FINAL_FAILURES = frozenset({UNAVAILABLE, PRIVATE, REMOVED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id TEXT PRIMARY KEY,
    youtube_id TEXT,
    start REAL,
    "end" REAL,
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER,
    sha256 TEXT,
    duration REAL,
    files TEXT,
    source TEXT,
    fetched_at TEXT,
    tool_version TEXT
);
CREATE INDEX IF NOT EXISTS clips_status ON clips(status);
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    host TEXT,
    tool_version TEXT,
    counts TEXT,
    totals TEXT
);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    fetched_at TEXT
);
CREATE INDEX IF NOT EXISTS history_run ON history(run_id);
"""

_COLUMNS = ("id", "youtube_id", "start", "end", "status", "reason", "attempts", "bytes", "sha256", "duration",
            "files", "source", "fetched_at", "tool_version")


class LedgerFormatError(AvsetsError, ValueError):
    """A file given as a ledger that is not one: not SQLite, or SQLite without our ``clips`` table."""


@dataclass(frozen=True)
class RunRow:
    """One fetch run: when it ran, what it recorded (``counts``) and the ledger's status counts at its end."""

    run_id: str
    started_at: str
    finished_at: str | None
    counts: dict[str, int]
    totals: dict[str, int]


@dataclass(frozen=True)
class LedgerRow:
    """One clip's last outcome.  ``files`` lists the output file names (relative to the folder), space
    separated, and ``sha256`` holds one digest per file in the same order."""

    id: str
    status: str
    reason: str | None = None
    attempts: int = 0
    bytes: int | None = None
    sha256: str | None = None
    duration: float | None = None
    files: str | None = None
    source: str | None = None
    fetched_at: str | None = None
    tool_version: str | None = None
    youtube_id: str | None = None
    start: float | None = None
    end: float | None = None

    def file_names(self) -> list[str]:
        return self.files.split() if self.files else []


def utc_now() -> str:
    """ISO-8601 UTC with seconds, the ``fetched_at`` format."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pid_alive(pid: int) -> bool:
    """Whether a process of this host exists (a claim or temporary file of a dead one is stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """Thread-safe access to one ledger file: one SQLite connection per thread, WAL, busy timeout.

    ``owner`` identifies this fetcher in ``claims``; ``lease`` (seconds) bounds how long a claim of a
    fetcher on another host is honoured.
    """

    def __init__(self, path: str | os.PathLike[str], *, owner: str | None = None, lease: float = 1800.0,
                 busy_timeout: float = 60.0, readonly: bool = False):
        self.path = Path(path)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.owner = owner or f"{self.host}:{self.pid}:{os.urandom(4).hex()}"
        self.lease = lease
        self.busy_timeout = busy_timeout
        self.readonly = readonly
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._columns: tuple[str, ...] = _COLUMNS
        #: set by ``begin_run``: every ``record`` of this run is also appended to ``history``
        self.run_id: str | None = None
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = self._conn()
                with conn:
                    conn.executescript(_SCHEMA)
            except (sqlite3.OperationalError, OSError) as exc:
                if _is_full(exc):
                    raise _disk_full(exc, self.path) from None
                raise
        else:
            self._columns = self._check_schema()

    def _check_schema(self) -> tuple[str, ...]:
        """The ``clips`` columns this file has (older ledgers may lack newer ones); refuse other files."""
        try:
            info = self._conn().execute("PRAGMA table_info(clips)").fetchall()
        except sqlite3.DatabaseError as e:
            raise LedgerFormatError(f"{self.path} is not a fetch ledger (not an SQLite database: {e}); give the "
                                    f"{LEDGER_NAME} of a fetched folder, or the folder") from None
        have = {row[1] for row in info}
        if not {"id", "status"} <= have:
            raise LedgerFormatError(f"{self.path} is an SQLite file but not an avsets fetch ledger (no clips table "
                                    f"with id and status); give the {LEDGER_NAME} of a fetched folder")
        return tuple(c for c in _COLUMNS if c in have)

    @classmethod
    def in_folder(cls, out_dir: str | os.PathLike[str], **kwargs: object) -> Ledger:
        return cls(Path(out_dir) / LEDGER_NAME, **kwargs)  # type: ignore[arg-type]

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.busy_timeout,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reads -------------------------------------------------------------------------------------------

    def get(self, clip_id: str) -> LedgerRow | None:
        cur = self._conn().execute(f"SELECT {_select(self._columns)} FROM clips WHERE id = ?", (clip_id,))
        row = cur.fetchone()
        return _row(row, self._columns) if row else None

    def get_many(self, ids: Sequence[str]) -> dict[str, LedgerRow]:
        """Rows for many ids in few queries (the runner looks clips up in batches, never one by one)."""
        out: dict[str, LedgerRow] = {}
        conn = self._conn()
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            q = f"SELECT {_select(self._columns)} FROM clips WHERE id IN ({','.join('?' * len(chunk))})"
            for row in conn.execute(q, chunk):
                r = _row(row, self._columns)
                out[r.id] = r
        return out

    def rows(self, status: str | None = None) -> Iterator[LedgerRow]:
        q = f"SELECT {_select(self._columns)} FROM clips"
        args: tuple[str, ...] = ()
        if status is not None:
            q += " WHERE status = ?"
            args = (status,)
        for row in self._conn().execute(q + " ORDER BY id", args):
            yield _row(row, self._columns)

    def summary(self) -> dict[str, int]:
        return {s: n for s, n in self._conn().execute("SELECT status, COUNT(*) FROM clips GROUP BY status")}

    def has_table(self, name: str) -> bool:
        """Whether the ledger has table ``name`` (ledgers written before ``runs``/``history`` lack them)."""
        q = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self._conn().execute(q, (name,)).fetchone() is not None

    def runs(self) -> list[RunRow]:
        """Every recorded fetch run, oldest first (``[]`` for a ledger without run history)."""
        if not self.has_table("runs"):
            return []
        q = "SELECT run_id, started_at, finished_at, counts, totals FROM runs ORDER BY started_at, rowid"
        return [RunRow(r[0], r[1], r[2], json.loads(r[3] or "{}"), json.loads(r[4] or "{}"))
                for r in self._conn().execute(q)]

    def history(self) -> Iterator[tuple[str, str, str]]:
        """``(run_id, id, status)`` of every outcome recorded in a run, in recording order."""
        if not self.has_table("history"):
            return iter(())
        return iter(self._conn().execute("SELECT run_id, id, status FROM history ORDER BY rowid"))

    def active_claims(self) -> list[tuple[str, str]]:
        """``(id, owner)`` of claims that are not stale."""
        rows = self._conn().execute("SELECT id, owner, host, pid, claimed_at FROM claims").fetchall()
        return [(r[0], r[1]) for r in rows if not self._stale(r[2], r[3], r[4])]

    # --- writes ------------------------------------------------------------------------------------------

    def _stale(self, host: str, pid: int, claimed_at: float) -> bool:
        if host == self.host and pid != self.pid and not pid_alive(pid):
            return True
        return time.time() - claimed_at > self.lease

    def claim(self, clip_id: str, *, skip_statuses: Iterable[str] = (OK,)) -> str:
        """Try to take ``clip_id`` for this fetcher.

        Returns ``"claimed"``, ``"done"`` (its ledger status is in ``skip_statuses``: someone finished it
        since the run started) or ``"busy"`` (a live fetcher holds it).  One ``BEGIN IMMEDIATE``
        transaction, so two fetchers can never both claim the same clip.
        """
        skip = tuple(skip_statuses)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT status FROM clips WHERE id = ?", (clip_id,)).fetchone()
            if row is not None and row[0] in skip:
                conn.execute("COMMIT")
                return "done"
            c = conn.execute("SELECT owner, host, pid, claimed_at FROM claims WHERE id = ?", (clip_id,)).fetchone()
            if c is not None and c[0] != self.owner and not self._stale(c[1], c[2], c[3]):
                conn.execute("COMMIT")
                return "busy"
            conn.execute("INSERT OR REPLACE INTO claims (id, owner, host, pid, claimed_at) VALUES (?, ?, ?, ?, ?)",
                         (clip_id, self.owner, self.host, self.pid, time.time()))
            conn.execute("COMMIT")
            return "claimed"
        except BaseException as exc:
            _rollback(conn)
            if _is_full(exc):
                raise _disk_full(exc, self.path) from None
            raise

    def begin_run(self, tool_version: str | None = None) -> str:
        """Start a fetch run: a ``runs`` row; later ``record`` calls also append to ``history``."""
        self.run_id = f"{utc_now()}-{os.urandom(4).hex()}"
        self._conn().execute("INSERT INTO runs (run_id, started_at, host, tool_version) VALUES (?, ?, ?, ?)",
                             (self.run_id, utc_now(), self.host, tool_version))
        return self.run_id

    def end_run(self, counts: dict[str, int] | None = None) -> None:
        """Close the run: its end time, its own status counts and the whole ledger's counts now."""
        if self.run_id is None:
            return
        self._conn().execute("UPDATE runs SET finished_at = ?, counts = ?, totals = ? WHERE run_id = ?",
                             (utc_now(), json.dumps(dict(counts or {}), sort_keys=True),
                              json.dumps(self.summary(), sort_keys=True), self.run_id))
        self.run_id = None

    def release(self, clip_id: str) -> None:
        self._conn().execute("DELETE FROM claims WHERE id = ? AND owner = ?", (clip_id, self.owner))

    def record(self, row: LedgerRow, *, add_attempts: int = 1) -> None:
        """Write a clip's outcome and drop this fetcher's claim on it, in one transaction.

        ``attempts`` accumulates across runs (the stored count plus ``add_attempts``), which is what tells a
        user that a clip failed three runs in a row.
        """
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            prev = conn.execute("SELECT attempts FROM clips WHERE id = ?", (row.id,)).fetchone()
            attempts = (prev[0] if prev else 0) + add_attempts
            values = {c: getattr(row, c) for c in _COLUMNS}
            # DESIGN "Secrets": a URL's userinfo or signed query never reaches the ledger (it is shared).
            values["source"] = redact_url(row.source)
            values["reason"] = redact_text(row.reason)
            values["attempts"] = attempts
            values["fetched_at"] = row.fetched_at or utc_now()
            cols = ", ".join(_quote(c) for c in _COLUMNS)
            conn.execute(f"INSERT OR REPLACE INTO clips ({cols}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                         [values[c] for c in _COLUMNS])
            conn.execute("DELETE FROM claims WHERE id = ? AND owner = ?", (row.id, self.owner))
            if self.run_id is not None:
                conn.execute("INSERT INTO history (run_id, id, status, fetched_at) VALUES (?, ?, ?, ?)",
                             (self.run_id, row.id, row.status, values["fetched_at"]))
            conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(conn)
            if _is_full(exc):
                raise _disk_full(exc, self.path) from None
            raise

    def record_many(self, rows: Iterable[tuple[LedgerRow, int]]) -> None:
        """``record`` for a batch (the Ray driver writes each task's results at once)."""
        for row, n in rows:
            self.record(row, add_attempts=n)


def _rollback(conn: sqlite3.Connection) -> None:
    """ROLLBACK only if a transaction is open: on a full disk SQLite has already rolled back, and a second
    ROLLBACK replaced the real error with "cannot rollback - no transaction is active"."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _is_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (isinstance(exc, sqlite3.OperationalError) and ("disk is full" in text or "disk i/o error" in text)) \
        or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


def _disk_full(exc: BaseException, path: Path) -> NoSpaceError:
    return NoSpaceError(f"no space left on the device of {path.parent} (the ledger kept every clip recorded "
                        f"before; free space and rerun to go on): {exc}")


def _quote(col: str) -> str:
    return f'"{col}"'


def _select(columns: Sequence[str] = _COLUMNS) -> str:
    return ", ".join(_quote(c) for c in columns)


def _row(values: Sequence[object], columns: Sequence[str] = _COLUMNS) -> LedgerRow:
    d = dict(zip(columns, values, strict=True))
    if d.get("attempts") is None:
        d["attempts"] = 0
    return LedgerRow(**d)  # type: ignore[arg-type]


LEDGER_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def remote_ledger_url(url: str) -> str | None:
    """Where the ledger of a remote root is, decided by its name alone, or ``None`` when it holds none.

    Why by name: a remote ``--media-dir`` is often an archive (``https://.../clips.zip``), and asking a
    server whether a URL is a folder or what a file holds costs a download of it.  A name ending in a ledger
    suffix is the ledger itself; an archive or media file holds no ledger; anything else is a folder whose
    ledger is ``<folder>/avsets-ledger.sqlite``."""
    name = url_path(url).rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(LEDGER_SUFFIXES) or name.split("?", 1)[0].endswith(LEDGER_SUFFIXES):
        return url
    if source_kind(url) is not None or ("." in name and name.rsplit(".", 1)[-1] in MEDIA_EXTENSIONS):
        return None
    if url_path(url) != url:  # http(s): the ledger goes on the path; a query (a signature) is kept
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + LEDGER_NAME))
    return url.rstrip("/") + "/" + LEDGER_NAME


def _local_ledger_file(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """The ledger file for a file, a folder or an fsspec URL (downloaded to a temporary copy, returned as
    the second value so the caller can delete it)."""
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        import tempfile

        import fsspec

        where = remote_ledger_url(text)
        if where is None:
            raise FileNotFoundError(f"no fetch ledger at {redact_url(text)} (a media file or archive holds none)")
        fs, p = fsspec.core.url_to_fs(where)
        fd, tmp = tempfile.mkstemp(suffix=".sqlite")
        os.close(fd)
        try:  # one request: no ``exists``/``isdir`` first (over HTTP fsspec answers both with a GET)
            fs.get_file(p, tmp)
        except FileNotFoundError:
            os.unlink(tmp)
            raise FileNotFoundError(f"no fetch ledger at {redact_url(where)}") from None
        except BaseException:
            os.unlink(tmp)
            raise
        return Path(tmp), Path(tmp)
    local = Path(text[len("file://"):] if text.startswith("file://") else text)
    if local.is_dir():
        local = local / LEDGER_NAME
    if not local.exists():
        raise FileNotFoundError(f"no fetch ledger at {local}")
    if not local.is_file():
        raise LedgerFormatError(f"{local} is not a fetch ledger file")
    with local.open("rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        what = "an empty file" if not head else "not an SQLite database"
        raise LedgerFormatError(f"{local} is not a fetch ledger ({what}); give the {LEDGER_NAME} of a fetched "
                                "folder, or the folder")
    return local, None


def read_ledger(path: str | os.PathLike[str]) -> list[LedgerRow]:
    """Every row of a ledger: a ledger file, a fetched folder, or an fsspec URL of either; read-only."""
    p, tmp = _local_ledger_file(path)
    try:
        with Ledger(p, readonly=True) as led:
            return list(led.rows())
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def ledger_summary(out_dir: str | os.PathLike[str]) -> dict[str, int]:
    """``{status: count}`` for a fetched folder or URL (``{}`` when it holds no ledger), for ``avsets verify``."""
    try:
        p, tmp = _local_ledger_file(out_dir)
    except FileNotFoundError:
        return {}
    try:
        with Ledger(p, readonly=True) as led:
            return led.summary()
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class LedgerDiff:
    """What changed between two ledgers: clips that became ``ok`` (appeared), clips that were ``ok`` and no
    longer are (vanished: with their new status, or ``absent``), and other status changes."""

    appeared: list[tuple[str, str]]
    vanished: list[tuple[str, str]]
    changed: list[tuple[str, str, str]]

    def lines(self) -> list[str]:
        out = [f"+ {cid}\t(was {old})" for cid, old in self.appeared]
        out += [f"- {cid}\t(now {new})" for cid, new in self.vanished]
        out += [f"~ {cid}\t{old} -> {new}" for cid, old, new in self.changed]
        return out


def diff_ledgers(old: str | os.PathLike[str], new: str | os.PathLike[str]) -> LedgerDiff:
    """Compare two ledgers (files or folders) by clip id and status."""
    a = {r.id: r for r in read_ledger(old)}
    b = {r.id: r for r in read_ledger(new)}
    appeared, vanished, changed = [], [], []
    for cid in sorted(set(a) | set(b)):
        sa = a[cid].status if cid in a else "absent"
        sb = b[cid].status if cid in b else "absent"
        if sa == sb:
            continue
        if sb == OK:
            appeared.append((cid, sa))
        elif sa == OK:
            vanished.append((cid, sb))
        else:
            changed.append((cid, sa, sb))
    return LedgerDiff(appeared, vanished, changed)
