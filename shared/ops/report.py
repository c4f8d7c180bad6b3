"""``avsets report``: what a media mirror holds, what it lacks and why, and how that changed over fetch runs.

The counts come from ``verify``'s own functions over the very tables they count (``split_tables`` and
``split_coverage``), so the report's numbers equal ``avsets verify``'s.  On top of them: the fetch ledger's
status of every missing clip (unavailable, private, removed...), coverage per class, coverage after each
fetch run (the ledger's ``runs``/``history`` tables; ``fetched_at`` dates for older ledgers), and duration
and sample-rate histograms of the files present (probed up to ``probe_limit`` files; past that, an evenly
spaced sample, and corrupt files are not counted).  Rendering lives in :mod:`avsets.ops.report_render`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from avsets.build.tables import label_names_of
from avsets.media.sources.base import media_source
from avsets.metadata.ledger import Ledger, _local_ledger_file
from avsets.metadata.manifest import Manifest

from .report_quality import QualitySection, quality_section
from .verify import SplitCoverage, add_probe_targets, count_corrupt, split_coverage, split_tables

#: status shown for a missing clip the ledger has never seen
NOT_IN_LEDGER = "not in ledger"
#: status shown for a missing clip the ledger says was fetched (its file is gone since)
OK_BUT_GONE = "ok in ledger, file gone"
DEFAULT_PROBE_LIMIT = 2000


@dataclass
class ClassCoverage:
    """Rows and present clips of one class in one split."""

    name: str
    rows: int
    present: int

    @property
    def share(self) -> float:
        return self.present / self.rows if self.rows else 0.0


#: bins of the per-class coverage distribution; "none" and "all" are exact, so a class missing one clip is
#: never counted as complete, the others are quarters of the share present
COVERAGE_BINS = ("none", "under 25%", "25-49%", "50-74%", "75-99%", "all")


def coverage_bin(c: ClassCoverage) -> str:
    """The :data:`COVERAGE_BINS` label of a class."""
    if c.present <= 0:
        return COVERAGE_BINS[0]
    if c.present >= c.rows:
        return COVERAGE_BINS[-1]
    return COVERAGE_BINS[1 + min(3, int(4 * c.present / c.rows))]


@dataclass
class RunPoint:
    """Coverage of one split after one fetch run (clips whose ledger status was ``ok`` then)."""

    label: str  # when the run ended (ISO), or a date for ledgers without run history
    ok: int
    rows: int


@dataclass
class SplitReport:
    """Everything the report says about one split."""

    coverage: SplitCoverage
    missing_by_status: dict[str, int] = field(default_factory=dict)
    missing_status: dict[str, str] = field(default_factory=dict)  # id -> ledger status
    classes: list[ClassCoverage] = field(default_factory=list)
    over_time: list[RunPoint] = field(default_factory=list)
    present_ids: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    sample_rates: list[int] = field(default_factory=list)
    present_files: int = 0
    probed_files: int = 0

    @property
    def split(self) -> str:
        return self.coverage.split

    @property
    def usable(self) -> int:
        """Present and, when probed, readable."""
        return self.coverage.found - self.coverage.corrupt

    def class_bins(self) -> dict[str, int]:
        """How many classes fall in each :data:`COVERAGE_BINS` bin: on a first, low-coverage report most
        classes have nothing yet, and this says how many, where 30 bars of "0/1" would say nothing."""
        out = dict.fromkeys(COVERAGE_BINS, 0)
        for c in self.classes:
            out[coverage_bin(c)] += 1
        return out

    def partly_present(self, limit: int | None = None) -> list[ClassCoverage]:
        """Classes with some but not all clips present, lowest coverage first (then most rows): the classes
        a rerun of fetch can still complete, the ones a user looks at first."""
        part = [c for c in self.classes if 0 < c.present < c.rows]
        part.sort(key=lambda k: (k.share, -k.rows, k.name))
        return part[:limit] if limit is not None else part


@dataclass
class LedgerRun:
    """One fetch run of the ledger, as the runs table of the report lists it."""

    started_at: str
    finished_at: str | None
    counts: dict[str, int]
    totals: dict[str, int]


@dataclass
class CoverageReport:
    """A coverage report of one corpus config (see module doc)."""

    corpus: str
    config: str | None
    splits: list[SplitReport]
    created: str
    data_dir: str | None = None
    media_dirs: list[str] = field(default_factory=list)
    ledgers: list[str] = field(default_factory=list)
    runs: list[LedgerRun] = field(default_factory=list)
    history: str = "none"  # "runs": per-run history; "fetched_at": dates of last outcomes; "none"
    corrupt_checked: bool = True
    notes: list[str] = field(default_factory=list)
    quality: QualitySection | None = None  # with ``quality=``: the quality section (avsets.ops.report_quality)
    leakage: list = field(default_factory=list)  # avsets.ops.leakage.report_section.SplitLeakage (report --leakage)

    @property
    def coverage(self) -> list[SplitCoverage]:
        return [s.coverage for s in self.splits]

    def manifest(self) -> Manifest:
        """The clips present (and readable, when probed) per split."""
        return Manifest({s.split: s.present_ids for s in self.splits}, corpus=self.corpus, config=self.config,
                        source="avsets report")


# --- ledger ----------------------------------------------------------------------------------------------


@dataclass
class _LedgerFacts:
    """A ledger's last outcome per clip, plus its history as intervals: clip ``hist_id`` had status ``ok``
    (``hist_ok``) from run ``hist_from`` up to, not including, run ``hist_to`` (runs numbered in order)."""

    ids: pa.Array
    statuses: pa.Array
    fetched_at: pa.Array | None
    runs: list[LedgerRun]
    hist_id: pa.Array | None = None
    hist_ok: np.ndarray | None = None
    hist_from: np.ndarray | None = None
    hist_to: np.ndarray | None = None

    def ok_after_each_run(self, ids: pa.Array) -> list[int]:
        """How many of ``ids`` had status ``ok`` after each run (one interval sweep, no per-run pass)."""
        n = len(self.runs)
        if self.hist_id is None or not len(self.hist_id) or not len(ids):
            return [0] * n
        mine = pc.is_in(self.hist_id, value_set=ids).to_numpy(zero_copy_only=False) & self.hist_ok
        delta = (np.bincount(self.hist_from[mine], minlength=n + 1)
                 - np.bincount(self.hist_to[mine], minlength=n + 1))
        return [int(x) for x in np.cumsum(delta)[:n]]


def _read_ledgers(paths: Sequence[str]) -> _LedgerFacts | None:
    """Read ledgers straight from SQLite into Arrow (the report's only Python-object pass is the fetch)."""
    clips: list[tuple] = []
    hist: list[tuple[np.ndarray, tuple, np.ndarray]] = []  # (run numbers in reading order, ids, ok)
    runs: dict[tuple[str, int, int], LedgerRun] = {}
    found = False
    for li, path in enumerate(paths):
        local, tmp = _local_ledger_file(path)
        try:
            with Ledger(local, readonly=True) as led:
                conn = led._conn()
                run_rows = led.runs()
                mine = conn.execute("SELECT id, status, fetched_at FROM clips").fetchall()
                clips += mine
                found = True
                base = len(runs)
                for order, r in enumerate(run_rows):
                    runs[(r.started_at, li, order)] = LedgerRun(r.started_at, r.finished_at, r.counts, r.totals)
                if run_rows:
                    # run numbers as the rowid of ``runs`` (ints, cheap to fetch), mapped to global order below
                    rowids = [x[0] for x in conn.execute("SELECT rowid FROM runs ORDER BY started_at, rowid")]
                    q = ("SELECT r.rowid, h.id, h.status = 'ok' FROM history h JOIN runs r ON r.run_id = h.run_id "
                         "ORDER BY h.rowid")
                    rows = conn.execute(q).fetchall()
                    rid, cid, ok = zip(*rows, strict=True) if rows else ((), (), ())
                    # clips recorded before this ledger kept history: their outcome holds from its first run
                    had = pa.array(cid, pa.string())
                    all_ids = pa.array([r[0] for r in mine], pa.string())
                    old_mask = pc.invert(pc.is_in(all_ids, value_set=had)).to_numpy(zero_copy_only=False)
                    old_idx = np.flatnonzero(old_mask)
                    older = [mine[i] for i in old_idx]
                    hist.append((np.full(len(older), base, dtype=np.int64), tuple(r[0] for r in older),
                                 np.array([r[1] == "ok" for r in older], dtype=bool)))
                    lookup = np.full(max(rowids) + 1, -1, dtype=np.int64)
                    lookup[rowids] = np.arange(base, base + len(rowids))
                    hist.append((lookup[np.asarray(rid, dtype=np.int64)], cid, np.asarray(ok, dtype=bool)))
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{path}: not a readable fetch ledger ({e})") from None
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    if not found:
        return None
    order = sorted(runs)
    columns = list(zip(*clips, strict=True)) if clips else [(), (), ()]
    table = pa.table({"id": pa.array(columns[0], pa.string()), "status": pa.array(columns[1], pa.string()),
                      "fetched_at": pa.array(columns[2], pa.string())})
    if len(paths) > 1 and table.num_rows:  # several ledgers may name one clip: the later outcome wins
        table = table.sort_by([("id", "ascending"), ("fetched_at", "ascending")])
        idc = table["id"].combine_chunks()
        table = table.filter(pa.concat_arrays([pc.not_equal(idc[1:], idc[:-1]), pa.array([True])]))
    facts = _LedgerFacts(table["id"].combine_chunks(), table["status"].combine_chunks(),
                         table["fetched_at"].combine_chunks(), [runs[k] for k in order])
    if runs:
        # reading order (ledger by ledger) -> time order of the runs
        reading = list(runs)  # dicts keep insertion order: the ``base`` numbering above
        to_time = np.array([order.index(k) for k in reading], dtype=np.int64) if reading else np.zeros(0, np.int64)
        run_no = np.concatenate([to_time[h[0]] for h in hist]) if hist else np.zeros(0, np.int64)
        hid = pa.concat_arrays([pa.array(x[1], pa.string()) for x in hist]) if hist else pa.array([], pa.string())
        h = pa.table({"id": hid, "run": run_no,
                      "seq": np.arange(len(run_no), dtype=np.int64),
                      "ok": np.concatenate([x[2] for x in hist]) if hist else np.zeros(0, bool)})
        h = h.sort_by([("id", "ascending"), ("run", "ascending"), ("seq", "ascending")])
        idc = h["id"].combine_chunks()
        run = h["run"].to_numpy()
        same = pc.equal(idc[1:], idc[:-1]).to_numpy(zero_copy_only=False) if len(idc) > 1 else np.zeros(0, bool)
        nxt = np.full(len(run), len(order), dtype=np.int64)
        nxt[:-1][same] = run[1:][same]
        facts.hist_id, facts.hist_ok = idc, h["ok"].to_numpy(zero_copy_only=False)
        facts.hist_from, facts.hist_to = run, nxt
    return facts


def _default_ledgers(media_dirs: Sequence[str]) -> list[str]:
    out = []
    for root in media_dirs:
        if not media_source(root).is_folder:  # an archive is no ledger: looking inside it must cost no media bytes
            continue
        try:
            _, tmp = _local_ledger_file(root)
        except (FileNotFoundError, OSError, ValueError):
            continue
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        out.append(root)
    return out


def _file_paths(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Paths of media cells that are files (a streamed archive member holds its bytes: no path to open)."""
    path = pc.struct_field(col, "path")
    return pc.if_else(pc.is_null(pc.struct_field(col, "bytes")), path, pa.scalar(None, path.type))


# --- media facts -----------------------------------------------------------------------------------------


def media_facts(path: str) -> tuple[float | None, int | None]:
    """``(duration seconds, audio sample rate)`` from the file header (soundfile, else PyAV): no decoding."""
    from avsets.media.decoding.common import SOUNDFILE_EXTENSIONS, _ext_of, open_source

    try:
        src = open_source(path, None)
        if _ext_of(path) in SOUNDFILE_EXTENSIONS:
            import soundfile as sf

            try:
                info = sf.info(src)
                return float(info.duration), int(info.samplerate)
            except sf.LibsndfileError:
                if not isinstance(src, str):
                    src.seek(0)
        import av

        with av.open(src, metadata_errors="ignore") as c:
            dur = c.duration / 1e6 if c.duration else None
            rate = next((s.rate for s in c.streams.audio), None)
            return dur, int(rate) if rate else None
    except Exception:  # noqa: BLE001 - an unreadable file has no facts; verify's probe says why
        return None, None


# --- the report ------------------------------------------------------------------------------------------


def build_report(
    corpus: str,
    config: str | None = None,
    *,
    data_dir: str | None = None,
    media_dir: str | Sequence[str] | None = None,
    ledger: str | Sequence[str] | None = None,
    probe: bool = True,
    probe_limit: int = DEFAULT_PROBE_LIMIT,
    progress: bool = False,
    workers: int = 4,
    quality: str | os.PathLike[str] | None = None,
    **config_kwargs: Any,
) -> CoverageReport:
    """Gather the coverage report of ``corpus``/``config`` (see module doc).

    ``ledger``: ledger files or fetched folders (default: a ledger found in a ``media_dir`` root).  When
    more than ``probe_limit`` files are present, corrupt files are not counted (``verify`` does that) and
    the histograms come from an evenly spaced sample of ``probe_limit`` files.  ``quality`` (a quality table
    of ``avsets quality``) adds the quality section: flags per split, measure histograms, most flagged classes.
    """
    media_dirs = [media_dir] if isinstance(media_dir, (str, os.PathLike)) else list(media_dir or [])
    media_dirs = [os.fspath(m) for m in media_dirs]
    ledgers = [ledger] if isinstance(ledger, (str, os.PathLike)) else list(ledger or [])
    ledgers = [os.fspath(x) for x in ledgers] or _default_ledgers(media_dirs)
    facts = _read_ledgers(ledgers) if ledgers else None

    rep = CoverageReport(corpus=corpus, config=config, splits=[], data_dir=data_dir, media_dirs=media_dirs,
                         ledgers=ledgers, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    gathered: list[tuple[SplitCoverage, dict[str, list]]] = []
    label_names: dict[str, Sequence[str]] = {}
    for split, tables in split_tables(corpus, config, data_dir=data_dir, media_dir=media_dirs or None,
                                      **config_kwargs):
        cols: dict[str, list] = {"tables": [], "schema": []}

        def keep(table: pa.Table, has: pa.ChunkedArray, cols: dict[str, list] = cols) -> None:
            names = [n for n in ("label", "labels") if n in table.column_names]
            sub = {"id": table.column("id"), "has": has, "audio": _file_paths(table.column("audio")),
                   "video": _file_paths(table.column("video"))}
            if names:
                sub["label"] = table.column(names[0])
            cols["tables"].append(pa.table(sub))
            if not cols["schema"]:
                cols["schema"].append(table.schema)

        # count first (verify's function), then open the files only if there are few enough of them; the
        # tables stream by, only the columns the report needs are kept
        cov = split_coverage(split, tables, probe=False, probe_streamed=probe, progress=progress, workers=workers,
                             on_table=keep)
        if probe and cov.found <= probe_limit:
            to_probe: dict[str, list[str]] = {}
            for t in cols["tables"]:
                f = t.filter(t["has"])
                add_probe_targets(to_probe, f["id"].to_pylist(), f["audio"].to_pylist(), f["video"].to_pylist())
            count_corrupt(cov, to_probe, progress=progress, workers=workers)
        elif probe:
            rep.corrupt_checked = False
        if not label_names and cols["schema"]:
            from datasets import Features

            label_names = label_names_of(Features.from_arrow_schema(cols["schema"][0]))
        gathered.append((cov, cols))

    if not probe:
        rep.corrupt_checked = False
    if quality is not None:
        tables = {cov.split: pa.concat_tables(cols["tables"]) if cols["tables"] else
                  pa.table({"id": pa.array([], pa.string())}) for cov, cols in gathered}
        rep.quality = quality_section(quality, tables, next(iter(label_names.values()), None))
    for cov, cols in gathered:
        rep.splits.append(_split_report(cov, cols, label_names, facts, probe, probe_limit, workers))
    if facts is not None:
        rep.runs = facts.runs
        rep.history = "runs" if facts.runs else "fetched_at" if len(facts.ids) else "none"
    if not rep.corrupt_checked:
        rep.notes.append("Corrupt files were not counted: " + (
            "probing was turned off." if not probe else
            f"more than {probe_limit} files are present (raise --probe-limit, or run `avsets verify`)."))
    if rep.history == "fetched_at":
        rep.notes.append("This ledger predates per-run history: coverage over time is drawn from the dates of "
                         "each clip's last outcome (a clip that vanished later shows only its last state).")
    if any(s.probed_files < s.present_files for s in rep.splits):
        rep.notes.append(f"Duration and sample-rate histograms come from an evenly spaced sample of at most "
                         f"{probe_limit} files per split.")
    return rep


def _split_report(cov: SplitCoverage, cols: dict[str, list], label_names: dict[str, Sequence[str]],
                  facts: _LedgerFacts | None, probe: bool, probe_limit: int, workers: int) -> SplitReport:
    parts = cols["tables"]
    table = pa.concat_tables(parts) if parts else pa.table({"id": pa.array([], pa.string()),
                                                            "has": pa.array([], pa.bool_())})
    sr = SplitReport(coverage=cov)
    bad = {c[0] for c in cov.corrupt_ids}
    present = table.filter(table["has"]) if table.num_rows else table
    sr.present_ids = [i for i in present["id"].to_pylist() if i not in bad] if bad else present["id"].to_pylist()

    # missing clips by ledger status
    missing = pa.array(cov.missing_ids, pa.string())
    if facts is not None and len(missing):
        idx = pc.index_in(missing, value_set=facts.ids)
        st = pc.take(facts.statuses, pc.fill_null(idx, 0)) if len(facts.ids) else pa.nulls(len(missing), pa.string())
        st = pc.if_else(pc.is_null(idx), pa.scalar(NOT_IN_LEDGER), st)
        st = pc.if_else(pc.equal(st, "ok"), pa.scalar(OK_BUT_GONE), st)
        sr.missing_status = dict(zip(cov.missing_ids, st.to_pylist(), strict=True))
    elif len(missing):
        sr.missing_status = dict.fromkeys(cov.missing_ids, NOT_IN_LEDGER)
    counts = pc.value_counts(pa.array(list(sr.missing_status.values()), pa.string())) if len(missing) else []
    sr.missing_by_status = dict(sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts),
                                       key=lambda kv: (-kv[1], kv[0])))

    # coverage per class
    if "label" in table.column_names and table.num_rows:
        names = next(iter(label_names.values()), None)
        col = table["label"].combine_chunks()
        has = table["has"].combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            parents = pc.list_parent_indices(col)
            col, has = pc.list_flatten(col), pc.take(has, parents)
        g = pa.table({"c": col, "h": has.cast(pa.int64())}).group_by("c").aggregate([("h", "sum"), ("h", "count")])
        for c, s, n in zip(g["c"].to_pylist(), g["h_sum"].to_pylist(), g["h_count"].to_pylist(), strict=True):
            if c is None:
                continue
            name = names[c] if names is not None and isinstance(c, int) and 0 <= c < len(names) else str(c)
            sr.classes.append(ClassCoverage(name, n, s))
        sr.classes.sort(key=lambda k: (k.share, -k.rows, k.name))

    # coverage after each fetch run
    if facts is not None:
        ids = table["id"].combine_chunks() if table.num_rows else pa.array([], pa.string())
        if facts.runs:
            for run, n in zip(facts.runs, facts.ok_after_each_run(ids), strict=True):
                sr.over_time.append(RunPoint(run.finished_at or run.started_at, n, cov.rows))
        elif len(facts.ids) and facts.fetched_at is not None:
            ok = pc.equal(facts.statuses, "ok")
            days = pc.utf8_slice_codeunits(pc.fill_null(facts.fetched_at, ""), 0, 10)
            mine = pc.is_in(facts.ids, value_set=ids)
            t = pa.table({"day": days, "ok": pc.and_(ok, mine).cast(pa.int64())})
            g = t.group_by("day").aggregate([("ok", "sum")]).sort_by("day")
            total = 0
            for day, n in zip(g["day"].to_pylist(), g["ok_sum"].to_pylist(), strict=True):
                total += n
                if day:
                    sr.over_time.append(RunPoint(day, total, cov.rows))

    # durations and sample rates of what is present
    paths: list[str] = []
    if present.num_rows:
        a = present["audio"].to_pylist()
        v = present["video"].to_pylist()
        paths = list(dict.fromkeys(x if x is not None else y for x, y in zip(a, v, strict=True)))
    sr.present_files = len(paths)
    if probe and paths:
        if len(paths) > probe_limit:
            step = len(paths) / probe_limit
            paths = [paths[int(i * step)] for i in range(probe_limit)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for dur, rate in pool.map(media_facts, paths):
                if dur is not None:
                    sr.durations.append(dur)
                if rate is not None:
                    sr.sample_rates.append(rate)
        sr.probed_files = len(paths)
    return sr
