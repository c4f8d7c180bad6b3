"""Fetching one clip end to end: resolve, one ffmpeg run into temporary names, verify, rename.

No ledger here: the thread engine records the outcome in the ledger, the Ray engine sends it back to the
driver, which records it.  That keeps the SQLite file on one machine even when a Ray cluster fetches.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from avsets.core.errors import NoSpaceError
from avsets.core.segments import Segment, validate_youtube_id
from avsets.metadata.ledger import CONFLICT, ERROR, OK, RATE_LIMITED, LedgerRow, pid_alive, utc_now

from . import ffmpeg
from .ffmpeg import CutOptions, Input
from .origins import SourceConfig, SourceResolver, download_whole
from .politeness import Backoff, Politeness, RateLimiter, RefusalBreaker
from .status import FetchFailure, Interrupted, classify_http, http_status_from_ffmpeg
from .target import Target

AUDIO_EXT = "flac"
VIDEO_EXT = "mp4"
PART_SUFFIX = ".part"
MP4_CODECS = frozenset({"h264", "aac"})


@dataclass(frozen=True)
class WholeVideo:
    """A row that names a video but no segment (ASCC without ``big_data.csv``): fetched whole, as
    ``{youtube_id}.{ext}``, which the resolver reads as a whole video cut at decode time."""

    youtube_id: str
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        validate_youtube_id(self.youtube_id)

    @property
    def key(self) -> str:
        return self.youtube_id

    @property
    def duration(self) -> float | None:
        return None


@dataclass(frozen=True)
class ClipRequest:
    """One clip to fetch: its segment (or whole video) and the row's other columns (for
    ``--source-url-template``)."""

    segment: Segment | WholeVideo
    fields: Mapping[str, object] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.segment.key


@dataclass(frozen=True)
class FetchOptions:
    """Everything ``avsets fetch`` can be told, as one picklable value (Ray ships it to its tasks).

    Defaults are for real use; tests shorten ``backoff_base`` and friends.  ``tolerance`` is how far (in
    seconds) a clip's measured duration may be from ``end - start`` before it is re-cut or marked bad.
    """

    audio: bool = False
    video: bool = True
    sampling_rate: int | None = None
    max_height: int | None = None
    exact: bool = False
    tolerance: float = 0.2
    workers: int = 4
    shard: tuple[int, int] | None = None
    retry_failed: bool = False
    max_attempts: int = 3
    timeout: float = 120.0
    rate: float | None = None
    backoff_base: float = 2.0
    backoff_cap: float = 60.0
    max_retry_after: float = 300.0
    refusal_threshold: int = 10
    refusal_pause: float = 60.0
    source_url_template: str | None = None
    resolve: str = "auto"
    cookies: str | None = None
    proxy: str | None = None
    limit: int | None = None
    engine: str = "threads"
    address: str | None = None
    ray_batch_size: int = 16
    lease: float = 1800.0

    def extensions(self) -> tuple[str, ...]:
        return ((AUDIO_EXT,) if self.audio else ()) + ((VIDEO_EXT,) if self.video else ())

    def source_config(self) -> SourceConfig:
        return SourceConfig(template=self.source_url_template, resolve=self.resolve, cookies=self.cookies,
                            proxy=self.proxy, timeout=min(self.timeout, 60.0), max_height=self.max_height)

    def cut_options(self, *, exact: bool | None = None) -> CutOptions:
        return CutOptions(exact=self.exact if exact is None else exact, sampling_rate=self.sampling_rate,
                          max_height=self.max_height, timeout=self.timeout, proxy=self.proxy)

    def politeness(self, sleep: Callable[[float], object] = time.sleep) -> Politeness:
        """The shared politeness pieces; ``sleep`` lets a stop event cut their waits short (Ctrl-C)."""
        return Politeness(RateLimiter(self.rate, sleep=sleep),
                          Backoff(self.backoff_base, self.backoff_cap, self.max_retry_after),
                          RefusalBreaker(self.refusal_threshold, self.refusal_pause, sleep=sleep))


def part_token() -> str:
    """``host-pid-random``: who wrote a temporary file, so cleanup removes only a dead fetcher's files."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())
    return f"{host}-{os.getpid()}-{os.urandom(3).hex()}"


def part_path(out_dir: Path, key: str, ext: str) -> Path:
    """A hidden temporary name ending in ``.part``: no resolver takes it for media, whatever its state."""
    return out_dir / f".{key}.{part_token()}.{ext}{PART_SUFFIX}"


_PART_RE = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]+\.\w+\.part$")


def cleanup_partials(out_dir: Path, *, max_age: float = 1800.0) -> int:
    """Delete temporary files left by dead fetchers (same host, process gone) or older than ``max_age``."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())
    removed = 0
    try:
        entries = list(os.scandir(out_dir))
    except FileNotFoundError:
        return 0
    now = time.time()
    for entry in entries:
        m = _PART_RE.match(entry.name)
        if m is None:
            continue
        pid = int(m.group("pid"))
        dead = m.group("host") == host and pid != os.getpid() and not pid_alive(pid)
        try:
            old = now - entry.stat().st_mtime > max_age
            if dead or old:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_version() -> str:
    """What made a clip: avsets, yt-dlp and ffmpeg versions (the ledger's ``tool_version``)."""
    from importlib.metadata import PackageNotFoundError, version

    def _v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return f"avsets {_v('avsets')}; yt-dlp {_v('yt-dlp')}; ffmpeg {ffmpeg.ffmpeg_version()}"


@dataclass(frozen=True)
class KeptFile:
    """An output already in the folder that this clip keeps: ours from an earlier run, or adopted."""

    name: str
    sha256: str
    size: int
    duration: float | None


def decoded_seconds(path: Path, ext: str) -> float:
    """How many seconds of ``path`` really decode: every frame of its audio stream (FLAC) or video stream
    (mp4).  A header can promise 10 s over a file cut at 300 bytes; only decoding tells (a 10-s clip
    decodes in milliseconds, and this runs only for files the ledger did not write)."""
    import av

    with av.open(str(path)) as c:
        kind = "audio" if ext == AUDIO_EXT else "video"
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            raise ValueError(f"no {kind} stream")
        stream = streams[0]
        if kind == "audio":
            samples = sum(frame.samples for frame in c.decode(stream))
            return samples / float(stream.codec_context.sample_rate or 1)
        times = [frame.time for frame in c.decode(stream) if frame.time is not None]
        if not times:
            return 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        return max(times) - min(times) + 1.0 / rate


def verify_existing(path: Path, seg: Segment | WholeVideo, ext: str, tolerance: float) -> tuple[float | None, str | None]:
    """``(duration, None)`` when a file we did not write can stand for the clip (it decodes to the end, has
    the stream its extension promises, and lasts the segment within ``tolerance``); else ``(d, reason)``."""
    import av

    try:
        d = decoded_seconds(path, ext)
    except (av.error.FFmpegError, OSError, ValueError, ZeroDivisionError) as e:
        return None, f"does not decode ({type(e).__name__}: {str(e)[:120]})"
    if d <= 0:
        return None, "holds no decodable media"
    if seg.duration is not None and abs(d - seg.duration) > tolerance:
        return d, f"decodes to {d:.3f} s, the segment is {seg.duration:.3f} s"
    return d, None


class ClipFetcher:
    """Fetches clips into ``out_dir`` with retries, backoff and verification; shared by worker threads.

    ``stop`` (set on Ctrl-C) ends waits at once, kills running ffmpeg processes and starts no new attempt;
    a clip cut short that way raises ``Interrupted`` and gets no ledger row, so the next run fetches it.
    """

    def __init__(self, target: Target | str | os.PathLike[str], options: FetchOptions,
                 stop: threading.Event | None = None):
        self.target = target if isinstance(target, Target) else Target(target)
        self.out_dir = self.target.work_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.options = options
        self.stop = stop or threading.Event()
        self.resolver = SourceResolver(options.source_config())
        self.polite = options.politeness(sleep=self.stop.wait)
        self.version = tool_version()

    def close(self) -> None:
        self.resolver.close()

    # --- what is already there -----------------------------------------------------------------------

    def existing(self, req: ClipRequest, prev: LedgerRow | None) -> tuple[list[KeptFile], list[str]]:
        """Files of this clip already in the folder: ``(kept, conflicts)``.

        Files the ledger lists (any earlier run, any of ``--audio``/``--video``) are kept as they are.  A
        file under one of the clip's names that the ledger does not list was not written by this ledger
        (a user's file, or one whose ledger was moved aside): adopted when it verifies, otherwise left
        untouched and named in ``conflicts`` — never overwritten.
        """
        kept: list[KeptFile] = []
        conflicts: list[str] = []
        recorded: dict[str, str] = {}
        if prev is not None and prev.files:
            names = prev.file_names()
            digests = (prev.sha256 or "").split()
            recorded = {n: (digests[i] if i < len(digests) else "") for i, n in enumerate(names)}
        seen: set[str] = set()
        for name, digest in recorded.items():
            if self.target.remote or (self.out_dir / name).is_file():
                size = 0 if self.target.remote else (self.out_dir / name).stat().st_size
                kept.append(KeptFile(name, digest, size, prev.duration if prev else None))
                seen.add(name)
        if self.target.remote:
            return kept, conflicts
        for ext in self.options.extensions():
            name = f"{req.key}.{ext}"
            path = self.out_dir / name
            if name in seen or not path.is_file():
                continue
            duration, reason = verify_existing(path, req.segment, ext, self.options.tolerance)
            if reason is None:
                kept.append(KeptFile(name, sha256_file(path), path.stat().st_size, duration))
            else:
                conflicts.append(f"{name} {reason}")
        return kept, conflicts

    # --- fetching ------------------------------------------------------------------------------------

    def fetch(self, req: ClipRequest, prev: LedgerRow | None = None) -> tuple[LedgerRow, int]:
        """The clip's ledger row and how many attempts it took; never raises for a clip's own failure.

        Only the outputs the folder lacks are fetched; the row lists every file of the clip (earlier runs',
        adopted ones and this run's).  Raises ``Interrupted`` when ``stop`` is set mid-way.
        """
        opts = self.options
        kept, conflicts = self.existing(req, prev)
        if conflicts:
            return self._conflict(req, kept, conflicts, prev), 0
        have = {k.name for k in kept}
        missing = tuple(ext for ext in opts.extensions() if f"{req.key}.{ext}" not in have)
        if not missing:
            return self._ok(req, kept, [], {}, prev.source if prev is not None and prev.status == OK else None,
                            adopted=prev is None or prev.status != OK), 0
        last: FetchFailure | None = None
        attempts = 0
        for attempt in range(max(1, opts.max_attempts)):
            if self.stop.is_set():
                raise Interrupted()
            self.polite.before_request()
            if self.stop.is_set():
                raise Interrupted()
            attempts += 1
            try:
                new, durations, url = self._fetch_once(req, missing)
            except (Interrupted, NoSpaceError):  # a full disk stops the run: this clip gets no ledger row
                raise
            except FileExistsError as e:  # a file appeared under the clip's name while we fetched
                return self._conflict(req, kept, [f"{Path(str(e.filename or '')).name} appeared during the fetch"],
                                      prev), attempts
            except FetchFailure as f:
                last = f
                if f.refused:
                    self.polite.breaker.refused()
                retry = f.transient and f.status in (RATE_LIMITED, ERROR) and attempt + 1 < opts.max_attempts
                if not retry:
                    break
                if self.stop.wait(self.polite.backoff.delay(attempt, f.retry_after)):
                    raise Interrupted() from None
                continue
            except Exception as e:  # noqa: BLE001 - one clip's bug must not end a 10-million-clip run
                if self.stop.is_set():
                    raise Interrupted() from None
                if isinstance(e, OSError) and e.errno == errno.ENOSPC:  # not this clip's fault: every clip would fail
                    raise NoSpaceError(f"no space left on the device of {self.out_dir} ({e}); free space and rerun "
                                       "to go on") from None
                last = FetchFailure(ERROR, f"{type(e).__name__}: {e}"[:300], transient=False)
                break
            self.polite.breaker.succeeded()
            return self._ok(req, kept, new, durations, url), attempts
        assert last is not None
        return self._failed(req, last, kept), attempts

    def _ok(self, req: ClipRequest, kept: list[KeptFile], new: list[KeptFile], durations: Mapping[str, float],
            source: str | None, *, adopted: bool = False) -> LedgerRow:
        seg = req.segment
        files = kept + new
        duration = durations.get(AUDIO_EXT, durations.get(VIDEO_EXT))
        if duration is None:
            duration = next((f.duration for f in files if f.duration is not None), None)
        return LedgerRow(id=req.key, status=OK, reason="adopted a file already in the folder" if adopted else None,
                         bytes=sum(f.size for f in files), sha256=" ".join(f.sha256 for f in files),
                         duration=duration, files=" ".join(f.name for f in files), source=source,
                         fetched_at=utc_now(), tool_version=self.version, youtube_id=seg.youtube_id,
                         start=seg.start, end=seg.end)

    def _conflict(self, req: ClipRequest, kept: list[KeptFile], conflicts: list[str],
                  prev: LedgerRow | None) -> LedgerRow:
        seg = req.segment
        reason = ("kept " + "; ".join(conflicts) + " (not written by avsets, not overwritten; move it aside to "
                  "fetch this clip)")
        return LedgerRow(id=req.key, status=CONFLICT, reason=reason[:500], bytes=sum(f.size for f in kept) or None,
                         sha256=" ".join(f.sha256 for f in kept) or None, duration=prev.duration if prev else None,
                         files=" ".join(f.name for f in kept) or None, source=prev.source if prev else None,
                         fetched_at=utc_now(), tool_version=self.version, youtube_id=seg.youtube_id,
                         start=seg.start, end=seg.end)

    def _failed(self, req: ClipRequest, f: FetchFailure, kept: Sequence[KeptFile] = ()) -> LedgerRow:
        seg = req.segment
        return LedgerRow(id=req.key, status=f.status, reason=f.reason, youtube_id=seg.youtube_id, start=seg.start,
                         end=seg.end, source=self._source_text(req), fetched_at=utc_now(),
                         tool_version=self.version, files=" ".join(k.name for k in kept) or None,
                         sha256=" ".join(k.sha256 for k in kept) or None)

    def _source_text(self, req: ClipRequest) -> str | None:
        try:
            return self.resolver.url_for(req.segment, req.fields)
        except (FetchFailure, ValueError):
            return None

    def _fetch_once(self, req: ClipRequest, exts: tuple[str, ...]) -> tuple[list[KeptFile], dict[str, float], str]:
        seg: Segment | WholeVideo = req.segment
        opts = self.options
        url = self.resolver.url_for(seg, req.fields)
        inputs = self.resolver.resolve(url, want_video=VIDEO_EXT in exts)
        if self.stop.is_set():
            raise Interrupted()
        parts: dict[str, Path] = {ext: part_path(self.out_dir, req.key, ext) for ext in exts}
        new: list[KeptFile] = []
        copies: list[Path] = []
        try:
            inputs = self._seekable(inputs, req.key, copies)
            self._cut(inputs, seg, parts, exact=opts.exact)
            durations = self._verify(inputs, seg, parts)
            token = part_token()
            for ext, tmp in parts.items():
                digest, size = sha256_file(tmp), tmp.stat().st_size
                name = f"{req.key}.{ext}"
                self.target.commit(tmp, name, token)
                new.append(KeptFile(name, digest, size, durations.get(ext)))
        finally:
            for tmp in [*parts.values(), *copies]:
                tmp.unlink(missing_ok=True)
        return new, durations, url

    def _seekable(self, inputs: list[Input], key: str, copies: list[Path]) -> list[Input]:
        """``inputs`` with each one whose server ignores Range replaced by a local copy (``copies`` lists
        them for removal; a killed fetcher's copy is a ``.part`` file that ``cleanup_partials`` removes)."""
        out = []
        for inp in inputs:
            inp = self.resolver.ranged(inp)
            if inp.network and not inp.ranged:
                dest = part_path(self.out_dir, key, "src")
                copies.append(dest)
                inp = download_whole(inp, dest, proxy=self.options.proxy, timeout=self.options.timeout,
                                     stop=self.stop)
            out.append(inp)
        return out

    def _cut(self, inputs: list[Input], seg: Segment | WholeVideo, parts: Mapping[str, Path], *, exact: bool) -> None:
        cut = self.options.cut_options(exact=exact)
        inputs = [self.resolver.ranged(inp) for inp in inputs]
        if seg.end is None:
            args = ffmpeg.build_whole_args(inputs, audio_out=parts.get(AUDIO_EXT), video_out=parts.get(VIDEO_EXT),
                                           opts=cut)
        else:
            args = ffmpeg.build_args(inputs, seg.start, seg.end, audio_out=parts.get(AUDIO_EXT),
                                     video_out=parts.get(VIDEO_EXT), opts=cut)
        result = ffmpeg.run(args, self.options.timeout, stop=self.stop)
        if result.returncode == 0:
            return
        if "No space left on device" in result.stderr:  # a full disk, not a bad clip: stop, no retry, no row
            raise NoSpaceError(f"no space left on the device of {self.out_dir}; free space and rerun to go on")
        status = http_status_from_ffmpeg(result.stderr)
        if status is not None:
            page = self.resolver.explain_403(inputs[0]) if status == 403 else ""
            raise classify_http(status, page, what="media")
        raise FetchFailure(ERROR, ffmpeg.failure_text(result))

    def _verify(self, inputs: list[Input], seg: Segment | WholeVideo, parts: dict[str, Path]) -> dict[str, float]:
        """Check every output's duration; a stream-copied mp4 that misses is re-cut exactly once."""
        out: dict[str, float] = {}
        for ext, tmp in parts.items():
            p = ffmpeg.probe(tmp)
            d = p.duration
            copied_other_codecs = ext == VIDEO_EXT and d is not None and not p.codecs <= MP4_CODECS
            if ext == VIDEO_EXT and not self.options.exact and (copied_other_codecs or not self._close(d, seg)):
                # A stream copy that missed the segment, or copied a source that is not H.264 + AAC (the
                # mp4 output promises those): re-encode it.
                tmp.unlink(missing_ok=True)
                self._cut(inputs, seg, {VIDEO_EXT: tmp}, exact=True)
                d = ffmpeg.media_duration(tmp)
            if d is None or d <= 0:
                raise FetchFailure(ERROR, f"{ext}: empty output (the segment may lie past the end of the video)",
                                   transient=False)
            if not self._close(d, seg):
                raise FetchFailure(ERROR, f"{ext}: duration {d:.3f} s, expected {seg.duration or 0:.3f} s "
                                   f"(tolerance {self.options.tolerance:g} s; the video may be shorter)",
                                   transient=False)
            out[ext] = d
        return out

    def _close(self, duration: float | None, seg: Segment | WholeVideo) -> bool:
        if seg.duration is None:  # a whole video: any positive length is right
            return duration is not None and duration > 0
        return duration is not None and abs(duration - seg.duration) <= self.options.tolerance
