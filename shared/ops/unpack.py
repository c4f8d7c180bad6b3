"""``avsets unpack`` and ``avsets fetch --source`` (parsed in :mod:`avsets.cli.unpack`): copy out of a mirror only the members a corpus' rows use.

One pass through each source in archive order (:meth:`avsets.media.sources.MediaSource.iter_members`), members joined to rows with
the streaming rules (:mod:`avsets.media.sources.row_join`), each match written under its canonical name
``{youtube_id}_{start_ms}_{end_ms}.{ext}`` - never under the member's own name, so a hostile ``../x`` or
``/etc/x`` member can never choose where bytes land.  A member that is a whole video (named by YouTube id,
longer than the segment) is cut to the segment with fetch's ffmpeg recipe (``avsets.ops.fetch.ffmpeg``: video
stream-copied, audio cut sample-exact to FLAC); a trimmed member is copied byte for byte.

Resumable: every file is written under a hidden ``.part`` name and renamed when complete, after its ledger row
is written (so a kill can never leave a finished-looking file the ledger does not hold); a rerun removes the
dead run's ``.part`` files, skips the rows whose files are all there and stops reading a source as soon as
every row is served.  Every written clip is
recorded in the fetch ledger (``avsets-ledger.sqlite``: status ``ok``, ``source`` = archive URL without
credentials + ``!/`` + member name).  Rows no source holds are reported and left out of the ledger, so
``avsets fetch`` can still try them elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from avsets.core.errors import AvsetsError, MediaError, MediaSourceError, NoSpaceError
from avsets.core.segments import MEDIA_EXTENSIONS
from avsets.media.sources.base import MediaSource, media_sources
from avsets.media.sources.clip_or_video import media_seconds
from avsets.media.sources.members import ReadStats, public_url
from avsets.media.sources.records import Member
from avsets.media.sources.row_join import RowIndex, Serve, iter_groups, serve_group
from avsets.metadata.ledger import ERROR, LEDGER_NAME, OK, Ledger, LedgerRow

logger = logging.getLogger("avsets")

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
TOLERANCE = 0.5  # seconds a cut may differ from the segment (stream copy cuts at packet boundaries)


class UnpackSetupError(AvsetsError):
    """A usage or set-up problem: no rows, no sources, an output that is not a local folder (exit code 2)."""


@dataclass
class UnpackReport:
    """What one run did."""

    rows: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0
    missing: int = 0
    bytes: int = 0
    unsafe: int = 0
    damaged: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    stopped: str = ""  # why the run stopped early (the disk filled up); a rerun resumes
    not_reached: int = 0  # rows not looked at because the run stopped

    @property
    def exit_code(self) -> int:
        """0 every row written or already there; 1 some row failed, no source held it, or the run stopped."""
        return 1 if (self.failed or self.missing or self.stopped) else 0

    def summary(self) -> str:
        text = (f"{self.rows} rows: wrote {self.written} ({self.bytes / 1e6:.1f} MB), {self.skipped} already there, "
                f"{self.missing} not in the sources, {self.failed} failed")
        if self.unsafe:
            text += f"; ignored {self.unsafe} member(s) named outside the archive"
        if self.damaged:
            text += f"; damaged: {', '.join(self.damaged)}"
        if self.stopped:
            text += f"\nstopped with {self.not_reached} row(s) not reached: {self.stopped}"
        return text


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"avsets {version('avsets')} unpack"
    except PackageNotFoundError:  # pragma: no cover
        return "avsets unpack"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _existing(out: Path) -> set[str]:
    """Stems of finished media files in the output folder (one listing, no stat per row).

    A stem the ledger records ``ok`` with a file that is not there is not finished: a kill between the ledger
    row and the renames (``_Writer.write``) left it, and the rerun redoes it.  A file the ledger does not hold
    (put there by hand) counts as finished, as it always did."""
    done: set[str] = set()
    names: set[str] = set()
    with os.scandir(out) as it:
        for entry in it:
            name = entry.name
            if name.startswith("."):
                continue
            names.add(name)
            stem, _, ext = name.rpartition(".")
            if ext.lower() in MEDIA_EXTENSIONS:
                done.add(stem)
    if done and LEDGER_NAME in names:
        with Ledger.in_folder(out) as ledger:
            rows = ledger.get_many(sorted(done))
        done -= {rid for rid, row in rows.items()
                 if row.status == OK and not all(f in names for f in row.file_names())}
    return done


def _source_size(source: MediaSource) -> int | None:
    try:
        if "://" not in source.url:
            return os.path.getsize(source.url) if os.path.isfile(source.url) else None
        import fsspec

        fs, path = fsspec.core.url_to_fs(source.url)
        return int(fs.size(path) or 0) or None
    except (OSError, ValueError):
        return None


class _Writer:
    """Writes one served row into the output folder (temporary name + rename) and records it."""

    def __init__(self, out: Path, ledger, kinds: Sequence[str] | None, tolerance: float):
        self.out = out
        self.ledger = ledger
        self.kinds = tuple(kinds) if kinds else None
        self.tolerance = tolerance
        self.version = _tool_version()

    def write(self, rows: RowIndex, s: Serve, archive: str) -> int:
        """Bytes written; raises ``MediaError`` when the member cannot be cut."""
        from avsets.ops.fetch.clip import part_path

        table = rows.table
        rid = table.column("id")[s.row].as_py()
        ytid = table.column("youtube_id")[s.row].as_py()
        start, end = rows.starts[s.row], rows.ends[s.row]
        if not isinstance(rid, str) or not _SAFE_ID.match(rid):
            raise MediaError(f"row id {rid!r} is not a safe file name", clip_id=str(rid))
        jobs = self._jobs(s)
        finals, digests, total, duration, sources, tmps = [], [], 0, None, [], []
        try:
            for ext, member in jobs:
                tmp = part_path(self.out, rid, ext)
                tmps.append(tmp)
                d = self._produce(member, ext, s.offset, start, end, tmp, rid)
                total += tmp.stat().st_size
                digests.append(_sha256(tmp))
                finals.append(f"{rid}.{ext}")
                duration = duration if duration is not None else d
                src = f"{archive}!/{member.name}"
                if src not in sources:
                    sources.append(src)
            # the ledger row first, the renames after: a kill between them leaves a row whose files are not all
            # there, which a rerun redoes (``_existing``); renames first left a file without a row, which a rerun
            # took as done and the ledger never held (the kill the resume test hit 1 run in 4)
            self.ledger.record(LedgerRow(id=rid, status=OK, bytes=total, sha256=" ".join(digests),
                                         duration=duration, files=" ".join(finals), source=" ".join(sources),
                                         tool_version=self.version, youtube_id=ytid, start=start, end=end))
            for tmp, name in zip(tmps, finals, strict=True):
                os.replace(tmp, self.out / name)
        finally:
            for tmp in tmps:
                tmp.unlink(missing_ok=True)
        return total

    def _jobs(self, s: Serve) -> list[tuple[str, Member]]:
        """``(output extension, member)`` pairs: the members themselves, or the kinds fetch asked for."""
        if self.kinds is None:
            out: list[tuple[str, Member]] = []
            for m in (s.video, s.audio):
                if m is not None and all(m is not other for _, other in out):
                    out.append((m.ext, m))
            return out
        jobs = []
        for ext in self.kinds:
            if ext == "mp4":
                if s.video is None:
                    raise MediaError("the mirror holds no video for this clip (fetch --video asked for mp4)")
                jobs.append(("mp4", s.video))
            else:
                src = s.audio or s.video
                assert src is not None
                jobs.append(("flac", src))
        return jobs

    def _produce(self, m: Member, ext: str, offset: float, start: float | None, end: float | None, tmp: Path,
                 rid: str) -> float | None:
        """Write the member (copied, or cut/converted by ffmpeg) to ``tmp``; its duration when measured."""
        whole = offset > 0 and start is not None and end is not None
        if not whole and ext == m.ext:
            d = media_seconds(m.data, m.ext)  # a header read: a corrupt member is never written as a clip
            if d is None:
                raise MediaError(f"member {m.name} is not readable {m.ext} media", clip_id=rid)
            tmp.write_bytes(m.data)
            return d
        from avsets.ops.fetch import ffmpeg
        from avsets.ops.fetch.clip import part_path
        from avsets.ops.fetch.ffmpeg import CutOptions, Input

        # a ``part_path`` name, so the resume's ``cleanup_partials`` removes the copy a kill mid-cut leaves
        # (``.{name}.mp4.src.part`` matched none of its patterns and stayed for ever)
        src = part_path(tmp.parent, rid, "src")
        try:
            src.write_bytes(m.data)
            inp = Input(url=f"file:{src}", streams="av" if m.kind == "video" else "a")
            audio_out = tmp if ext != "mp4" else None
            video_out = tmp if ext == "mp4" else None
            for exact in (False, True):
                opts = CutOptions(exact=exact)
                if whole:
                    args = ffmpeg.build_args([inp], float(offset), float(offset) + float(end - start),
                                             audio_out=audio_out, video_out=video_out, opts=opts)
                else:
                    args = ffmpeg.build_whole_args([inp], audio_out=audio_out, video_out=video_out, opts=opts)
                result = ffmpeg.run(args, 600.0)
                if result.returncode != 0:
                    why = ffmpeg.failure_text(result)
                    if "No space left on device" in why:
                        raise NoSpaceError(f"no space left on the device of {tmp.parent}; free space and rerun "
                                           "to go on")
                    raise MediaError(f"cannot cut the member: {why[:300]}", clip_id=rid)
                d = ffmpeg.media_duration(tmp)
                if not whole or (d is not None and abs(d - (end - start)) <= self.tolerance):
                    return d
                if ext != "mp4":
                    break
            raise MediaError(f"the member is shorter than the segment (cut gave {d} s, expected {end - start:g} s)",
                             clip_id=rid)
        finally:
            src.unlink(missing_ok=True)


def unpack_rows(table: pa.Table, media_dir: str | Sequence[str], out: str | os.PathLike[str], *,
                kinds: Sequence[str] | None = None, modalities: Sequence[str] = ("audio", "video"),
                media_pattern: str | None = None, assume_trimmed: bool | None = None, key_column: str | None = None,
                quiet: bool = False, tolerance: float = TOLERANCE) -> UnpackReport:
    """Write the members serving ``table``'s rows (``id``, ``youtube_id``, ``start``, ``end``) into ``out``."""
    from avsets.ops.fetch.clip import cleanup_partials

    text = os.fspath(out)
    if "://" in text and not text.startswith("file://"):
        raise UnpackSetupError(f"--out must be a local folder, not {public_url(text)} (unpack, then upload)")
    # absolute from here on: ffmpeg is handed output paths, and a relative one (``--out media``, as the README
    # writes it) was refused (an id may start with "-", so fetch's ffmpeg recipe takes absolute paths only)
    out_dir = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser().absolute()
    roots = [media_dir] if isinstance(media_dir, (str, os.PathLike)) else list(media_dir)
    absent = [os.fspath(r) for r in roots if _absent_local(os.fspath(r))]
    if absent:  # a typo: exit 2 before anything is created (as verify, report and export do)
        raise UnpackSetupError(f"--media-dir {absent[0]}: no such file or folder")
    sources = media_sources(media_dir, key_column=key_column)
    if not sources:
        raise UnpackSetupError(f"no media source in {[public_url(os.fspath(r)) for r in roots]!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cleanup_partials(out_dir)
    report = UnpackReport(rows=table.num_rows)
    done = _existing(out_dir)
    from avsets.media.resolve import clip_keys

    # canonical names: {youtube_id}_{start_ms}_{end_ms} (the bare id for rows without a segment), whatever
    # the corpus' own ``id`` is - the names `avsets fetch` writes and the resolver reads
    keys = clip_keys(table).cast(pa.string())
    table = (table.set_column(table.column_names.index("id"), "id", keys) if "id" in table.column_names
             else table.append_column("id", keys))
    ids = table.column("id").to_pylist()
    pending = [i for i, rid in enumerate(ids) if rid not in done]
    report.skipped = table.num_rows - len(pending)
    if not pending:
        return report
    rows = RowIndex.build(table.take(pa.array(pending, pa.int64())), media_pattern=media_pattern)
    served: set[int] = set()
    failed: set[int] = set()
    want_audio = "audio" in modalities or (kinds is not None and "flac" in kinds)
    want_video = "video" in modalities or (kinds is not None and "mp4" in kinds)
    from tqdm.auto import tqdm

    sizes = [_source_size(s) for s in sources]
    show = not quiet and sys.stderr.isatty()
    bar = tqdm(total=sum(x or 0 for x in sizes) or None, unit="B", unit_scale=True, disable=not show,
               desc="unpack", leave=False)
    with Ledger.in_folder(out_dir) as ledger:
        writer = _Writer(out_dir, ledger, kinds, tolerance)
        try:
            ledger.begin_run(writer.version)  # a run in the ledger's history, as fetch records (the report's chart)
            for source in sources:
                if len(served) == len(rows):
                    break  # every row served: the rest of the mirror is not read at all
                shown = public_url(source.url)
                stats = ReadStats()
                seen = 0
                try:
                    for group in iter_groups(source.iter_members(stats, want=rows.wants)):
                        bar.update(stats.bytes_read - seen)
                        seen = stats.bytes_read
                        got, _dup = serve_group(group, rows, served, want_audio=want_audio, want_video=want_video,
                                                assume_trimmed=assume_trimmed)
                        for s in got:
                            try:
                                report.bytes += writer.write(rows, s, shown)
                                report.written += 1
                            except NoSpaceError:
                                raise  # the disk is full: every later clip would fail the same way
                            except OSError as exc:
                                if exc.errno == errno.ENOSPC:
                                    raise NoSpaceError(f"no space left on the device of {out_dir} ({exc}); "
                                                       "free space and rerun to go on") from None
                                report.failed += 1
                                failed.add(s.row)
                                _record_failure(ledger, rows, s, shown, exc)
                            except MediaError as exc:
                                report.failed += 1
                                failed.add(s.row)
                                _record_failure(ledger, rows, s, shown, exc)
                        bar.set_postfix(written=report.written, refresh=False)
                        if len(served) == len(rows):
                            break
                except MediaSourceError as exc:
                    report.damaged.append(shown)
                    logger.warning("avsets unpack: %s", exc)
                report.damaged.extend(f"{shown}!/{name}" for name in stats.damaged_names)  # lost alone
                report.unsafe += stats.unsafe
        except NoSpaceError as exc:  # stop: what was written is recorded, a rerun resumes after it
            report.stopped = str(exc)
        finally:
            bar.close()
            try:
                ledger.end_run({k: v for k, v in (("ok", report.written), ("error", report.failed)) if v})
            except (sqlite3.Error, OSError) as exc:  # a full disk: the clips are recorded, the run's end is not
                logger.warning("avsets unpack: could not record the end of the run in the ledger: %s", exc)
    missing = [i for i in range(len(rows)) if i not in served and i not in failed]
    if report.stopped:  # the rows after the stop were never looked for: not "missing from the sources"
        report.not_reached = len(rows) - report.written - report.failed
        return report
    report.missing = len(missing)
    report.missing_ids = [str(x) for x in rows.table.column("id").take(pa.array(missing[:20], pa.int64())).to_pylist()]
    return report


def _absent_local(root: str) -> bool:
    """A local root (not a URL, not a glob) that does not exist."""
    if "://" in root and not root.startswith("file://"):
        return False
    path = root[len("file://"):] if root.startswith("file://") else root
    return not any(ch in path for ch in "*?[") and not os.path.exists(os.path.expanduser(path))


def _record_failure(ledger, rows: RowIndex, s: Serve, archive: str, exc: BaseException) -> None:

    member = s.video or s.audio
    rid = rows.table.column("id")[s.row].as_py()
    ledger.record(LedgerRow(id=rid, status=ERROR, reason=str(exc)[:300],
                            source=f"{archive}!/{member.name if member else ''}", tool_version=_tool_version(),
                            youtube_id=rows.table.column("youtube_id")[s.row].as_py(), start=rows.starts[s.row],
                            end=rows.ends[s.row]))
    logger.warning("avsets unpack: %s", exc)


def corpus_table(corpus: str, config: str | None, *, data_dir: str | None, split: str | Sequence[str] | None,
                 **config_kwargs) -> pa.Table:
    """The rows of a corpus (metadata only, streamed through its builder) as ``id, youtube_id, start, end``."""
    from avsets.build.api import load_dataset

    ids, ytids, starts, ends = [], [], [], []
    splits = [split] if isinstance(split, str) else list(split) if split else [None]
    for sp in splits:
        ds = load_dataset(corpus, config, split=sp, data_dir=data_dir, streaming=True, on_missing="keep",
                          decode=False, **config_kwargs)
        parts = ds.values() if hasattr(ds, "values") else [ds]
        for part in parts:
            for batch in part.select_columns(["id", "youtube_id", "start", "end"]).iter(batch_size=10_000):
                ids += batch["id"]
                ytids += batch["youtube_id"]
                starts += batch["start"]
                ends += batch["end"]
    return pa.table({"id": pa.array(ids, pa.string()), "youtube_id": pa.array(ytids, pa.string()),
                     "start": pa.array(starts, pa.float64()), "end": pa.array(ends, pa.float64())})


def requests_table(items: Iterable) -> pa.Table:
    """``ClipRequest``s / ``Segment``s (fetch's inputs) as the same table."""
    ids, ytids, starts, ends = [], [], [], []
    for item in items:
        seg = getattr(item, "segment", item)
        ids.append(seg.key)
        ytids.append(seg.youtube_id)
        starts.append(seg.start if seg.end is not None else None)
        ends.append(seg.end)
    return pa.table({"id": pa.array(ids, pa.string()), "youtube_id": pa.array(ytids, pa.string()),
                     "start": pa.array(starts, pa.float64()), "end": pa.array(ends, pa.float64())})


def fetch_from_mirror(items: Iterable, media_dir: Sequence[str], out: str, kinds: Sequence[str]) -> int:
    """``avsets fetch --source MIRROR``: fetch's clips copied (or cut) out of a mirror instead of downloaded.

    ``kinds`` are fetch's outputs (``flac``, ``mp4``); returns fetch's exit code.
    """
    report = unpack_rows(requests_table(items), list(media_dir), out, kinds=kinds, quiet=True)
    print(report.summary())
    if report.missing_ids:
        print("not in the mirror (first): " + ", ".join(report.missing_ids[:10]), file=sys.stderr)
    return report.exit_code
