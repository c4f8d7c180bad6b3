"""The fetch run: plan (shard, consult the ledger), fetch with worker threads or Ray tasks, record.

The runner takes any iterable of ``Segment``s or ``ClipRequest``s and never materializes it: segments are
read in batches of ``PLAN_BATCH``, looked up in the ledger per batch, and at most a few times ``workers``
clips are in flight.  That is what lets a 10.9M-row corpus stream through a machine with bounded memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from avsets.core.errors import NoSpaceError
from avsets.core.secrets import redact_url
from avsets.core.segments import Segment
from avsets.core.version import __version__
from avsets.metadata.ledger import AGE_RESTRICTED, FINAL_FAILURES, OK, RETRYABLE, Ledger, LedgerRow

from .checks import FetchSetupError, check_options, check_output_folder, check_template
from .clip import ClipFetcher, ClipRequest, FetchOptions, cleanup_partials
from .ffmpeg import ffmpeg_exe
from .ray_engine import run_ray
from .status import Interrupted
from .target import Target

logger = logging.getLogger(__name__)

PLAN_BATCH = 500
STOP_GRACE = 2.0  # seconds Ctrl-C waits for clips in flight to clean up (their ffmpeg is killed at once;
#                   a worker still blocked in a network read after that is abandoned)

Progress = Callable[[LedgerRow], None]


@dataclass
class FetchReport:
    """What one run did.  ``counts`` holds the statuses of clips attempted in this run; ``skipped`` counts
    clips the ledger already settled (ok, or a failure not to retry) and ``busy`` those another live
    fetcher held."""

    counts: Counter = field(default_factory=Counter)
    skipped: int = 0
    busy: int = 0
    planned: int = 0
    bytes: int = 0
    seconds: float = 0.0
    out_dir: str = ""
    pauses: int = 0
    interrupted: int = 0
    failures: list[LedgerRow] = field(default_factory=list)  # the first few, for the summary
    settled: int = 0  # planned clips whose outcome this run saw (a row, skipped, busy or interrupted)
    stopped: str = ""  # why the run stopped early (the disk filled up); a rerun resumes
    not_reached: int = 0  # planned clips never started because the run stopped

    MAX_NAMED = 5

    @property
    def fetched(self) -> int:
        """Clips that ended ``ok`` in this run (failures are not "fetched")."""
        return self.counts.get(OK, 0)

    @property
    def attempted(self) -> int:
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.counts.items() if s != OK)

    @property
    def exit_code(self) -> int:
        """DESIGN: 0 when every clip is ok or skipped, 1 when any clip failed or the run stopped early."""
        return 1 if self.failed or self.stopped else 0

    def add(self, row: LedgerRow) -> None:
        self.settled += 1
        self.counts[row.status] += 1
        self.bytes += row.bytes or 0
        if row.status != OK and len(self.failures) < self.MAX_NAMED:
            self.failures.append(row)

    def summary(self) -> str:
        """One line: ok clips, failures by status, skipped, busy, bytes, time (failures never count as fetched)."""
        failed = ", ".join(f"{s} {n}" for s, n in sorted(self.counts.items()) if s != OK)
        paused = f", paused {self.pauses}x after refusals" if self.pauses else ""
        stopped = f", interrupted {self.interrupted} (fetched on the next run)" if self.interrupted else ""
        text = (f"fetched {self.fetched} clips, failed {self.failed}{f' ({failed})' if failed else ''}, "
                f"skipped {self.skipped}, busy {self.busy}{stopped}, {self.bytes / 1e6:.1f} MB in "
                f"{self.seconds:.1f} s{paused} -> {redact_url(self.out_dir)}")
        if self.stopped:  # the same second line as ``avsets unpack`` on a full disk
            text += f"\nstopped with {self.not_reached} clip(s) not reached: {self.stopped}"
        return text

    def failure_lines(self) -> list[str]:
        """The first few failed clips, named, and where the full list is (the ledger)."""
        if not self.failed:
            return []
        lines = [f"  {r.id}\t{r.status}\t{r.reason or ''}" for r in self.failures]
        more = self.failed - len(self.failures)
        tail = f"  ... and {more} more; " if more > 0 else "  "
        lines.append(tail + f"every clip's status and reason: the ledger in {redact_url(self.out_dir)} "
                     "(avsets verify --media-dir, sqlite3, or avsets.ops.fetch.read_ledger)")
        return lines


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0-based I) -> ``(I, N)``; a usage error otherwise."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise FetchSetupError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise FetchSetupError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def shard_of(key: str, n: int) -> int:
    """Which of ``n`` shards a clip belongs to: a hash of its key, so the split depends neither on the order
    of the list nor on which other clips it holds (machines reading different splits still agree)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def as_request(item: Segment | ClipRequest) -> ClipRequest:
    return item if isinstance(item, ClipRequest) else ClipRequest(item)


def _wanted_files(req: ClipRequest, options: FetchOptions) -> list[str]:
    return [f"{req.key}.{ext}" for ext in options.extensions()]


def needs_fetch(row: LedgerRow | None, req: ClipRequest, target: Target | Path, options: FetchOptions) -> bool:
    """The resume rule (DESIGN): new or unfinished clips; ``--retry-failed`` adds the retryable failures;
    ``unavailable``/``private``/``removed`` never come back by themselves."""
    if row is None:
        return True
    if row.status == OK:
        have = set(row.file_names())
        exists = target.exists if isinstance(target, Target) else (lambda n: (target / n).is_file())
        return any(name not in have or not exists(name) for name in _wanted_files(req, options))
    if row.status in FINAL_FAILURES:
        return False
    if row.status == AGE_RESTRICTED:
        return options.retry_failed and bool(options.cookies)
    if row.status in RETRYABLE:
        return options.retry_failed
    return True  # conflict (re-examined every run: the user may have moved the file aside) and unknown


def plan(items: Iterable[Segment | ClipRequest], ledger: Ledger, target: Target | Path, options: FetchOptions,
         report: FetchReport) -> Iterator[tuple[ClipRequest, LedgerRow | None]]:
    """Yield ``(request, ledger row or None)`` for clips to fetch (a row with ``ok``: some wanted file is
    missing; the fetcher keeps the files the row lists and fetches only the others).

    Applies ``--shard`` and ``--limit``, drops duplicate keys within a batch, and consults the ledger one
    batch at a time.
    """
    reqs: Iterator[ClipRequest] = (as_request(x) for x in items)
    if options.shard is not None:
        i, n = options.shard
        reqs = (r for r in reqs if shard_of(r.key, n) == i)
    if options.limit is not None:
        reqs = islice(reqs, options.limit)
    while True:
        batch = list(islice(reqs, PLAN_BATCH))
        if not batch:
            return
        unique = list({r.key: r for r in batch}.values())
        rows = ledger.get_many([r.key for r in unique])
        for req in unique:
            row = rows.get(req.key)
            if needs_fetch(row, req, target, options):
                report.planned += 1
                yield req, row
            else:
                report.skipped += 1


def _checked_items(items: Iterable[Segment | ClipRequest], options: FetchOptions) -> Iterator[Segment | ClipRequest]:
    """``items`` with the first one read up front, so the template's field names are checked against a real
    row before anything is written (a corpus that cannot be read fails here too, as a set-up error)."""
    it = iter(items)
    try:
        first = next(it)
    except StopIteration:
        return iter(())
    if options.source_url_template is not None:
        names = set(first.fields) if isinstance(first, ClipRequest) else set()
        check_template(options.source_url_template, names)
    return chain([first], it)


def run_fetch(items: Iterable[Segment | ClipRequest], out_dir: str | os.PathLike[str],
              options: FetchOptions | None = None, *, progress: Progress | None = None) -> FetchReport:
    """Fetch every clip of ``items`` into ``out_dir`` (a folder, created, or an fsspec URL), recording each
    in the folder's ledger.

    Everything that can be refused is refused before the first clip and before the ledger is touched
    (``FetchSetupError``).  Ctrl-C (``KeyboardInterrupt``) stops within seconds: no new attempts, running
    ffmpeg processes killed, interrupted clips left without a ledger row (fetched by the next run).
    """
    options = options or FetchOptions()
    check_options(options)
    check_output_folder(out_dir)
    ffmpeg_exe()  # no ffmpeg binary is a set-up error, said before anything is written
    items = _checked_items(items, options)
    target = Target(out_dir)
    try:
        target.prepare()
    except OSError as e:
        raise FetchSetupError(f"--out {out_dir}: cannot prepare the folder ({e})") from None
    report = FetchReport(out_dir=str(target))
    t0 = time.perf_counter()
    cleanup_partials(target.work_dir, max_age=options.lease)
    try:
        ledger = Ledger(target.ledger_path, lease=options.lease)
    except sqlite3.DatabaseError as e:  # truncated or overwritten (a full disk, a bad copy): say what to do
        raise FetchSetupError(f"the ledger {target.ledger_path} is unreadable ({e}); move it aside (the clips "
                              "stay, and are adopted by the next run once they verify) to start a new ledger") from None
    try:
        ledger.begin_run(tool_version=f"avsets {__version__}")
        planned = plan(items, ledger, target, options, report)
        try:
            if options.engine == "ray":
                run_ray(planned, target, options, ledger, report, progress)
            else:
                _run_threads(planned, target, options, ledger, report, progress)
        except NoSpaceError as exc:  # stop like ``unpack``: what finished is recorded, a rerun resumes after it
            report.stopped = str(exc)
            for _ in planned:  # the rest of the plan, for the count (ledger reads only: they work on a full disk)
                pass
            report.not_reached = max(0, report.planned - report.settled)
    finally:
        try:
            ledger.end_run(report.counts)
        except (sqlite3.Error, OSError) as e:  # the outcomes are in ``clips`` already; only the run's summary is lost
            logger.warning("could not close the run in the ledger: %s", e)
        ledger.close()
        cleanup_partials(target.work_dir, max_age=options.lease)
        target.publish_ledger()
        report.seconds = time.perf_counter() - t0
    logger.info(report.summary())
    return report


def _run_threads(planned: Iterator[tuple[ClipRequest, LedgerRow | None]], target: Target, options: FetchOptions,
                 ledger: Ledger, report: FetchReport, progress: Progress | None) -> None:
    stop = threading.Event()
    fetcher = ClipFetcher(target, options, stop=stop)
    workers = max(1, options.workers)

    def one(req: ClipRequest, prev: LedgerRow | None) -> LedgerRow | None:
        if stop.is_set():
            return _interrupted
        was_ok = prev is not None and prev.status == OK
        state = ledger.claim(req.key, skip_statuses=() if was_ok else (OK,))
        if state != "claimed":
            return None if state == "done" else _busy
        try:
            if prev is None or was_ok:  # the plan's view may be stale: another fetcher may have written since
                prev = ledger.get(req.key) or prev
            row, attempts = fetcher.fetch(req, prev)
            ledger.record(row, add_attempts=attempts)
            return row
        except Interrupted:
            return _interrupted
        finally:
            try:
                ledger.release(req.key)
            except sqlite3.Error:  # the run is ending and closed the ledger: the claim goes stale by itself
                pass

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="avsets-fetch")
    pending: set[Future] = set()
    try:
        for req, prev in planned:
            pending.add(pool.submit(one, req, prev))
            if len(pending) >= workers * 2:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done, report, progress)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            _collect(done, report, progress)
    except BaseException:
        # Ctrl-C or a ledger failure: no new clips, no new attempts; running ffmpeg processes are killed,
        # their temporary files removed and their claims released; what finishes in time is recorded.
        stop.set()
        for fut in pending:
            fut.cancel()
        done, _ = wait(pending, timeout=STOP_GRACE)
        try:
            _collect(done, report, progress)
        except Exception:  # noqa: BLE001 - the original exception is the one to report
            pass
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        report.pauses += fetcher.polite.breaker.pauses
        fetcher.close()


_busy = LedgerRow(id="", status="busy")
_interrupted = LedgerRow(id="", status="interrupted")


def _collect(done: Iterable[Future], report: FetchReport, progress: Progress | None) -> None:
    """Count finished clips; a full disk in any of them is raised after every other one is counted."""
    full: NoSpaceError | None = None
    for fut in done:
        if fut.cancelled():
            continue
        exc = fut.exception()
        if isinstance(exc, NoSpaceError):  # that clip has no ledger row: not reached, fetched by the rerun
            full = full or exc
            continue
        row = fut.result()
        if row is None or row is _busy or row is _interrupted:
            report.settled += 1
        if row is None:
            report.skipped += 1
        elif row is _busy:
            report.busy += 1
        elif row is _interrupted:
            report.interrupted += 1
        else:
            report.add(row)
            if progress is not None:
                progress(row)
    if full is not None:
        raise full
