"""One ffmpeg run per clip: read only the segment (ranged HTTP reads), cut it exactly, write the outputs.

The recipe is the one measured in ``shared/ops/fetch/README.md`` ("Measured facts"): input options
``-request_size 65536 -ss (S-1) -t (D+1.5) -i cache:URL`` (bounded range requests; ``cache:`` stops ffmpeg reading through instead of
seeking), then ``atrim``/``trim`` of ``[1, 1+D)`` in a filter graph.  Seeking one second early and trimming
is what makes audio sample-exact: seeking straight to S loses the first AAC frame (64 ms of silence).

Video is stream-copied by default (input seek to S, cut at the keyframe before S; the mp4 edit list hides
the pre-roll, measured: decoders show exactly the frames of ``[S, E)``) because re-encoding costs CPU on
every clip.  ``exact=True`` (``--exact``) or ``max_height`` re-encode H.264 + AAC through the trim filter,
so the file holds exactly the segment for any reader.

The binary comes from ``imageio_ffmpeg`` (a PyPI wheel), so no system ffmpeg is needed.  Arguments are a
list (no shell), every output is an absolute path and every id travels inside a URL, so an id starting
with ``-`` is never read as an option.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from avsets.core.secrets import redact_text
from avsets.metadata.ledger import ERROR

from .status import FetchFailure, FetchSetupError, Interrupted, describe_ffmpeg_failure

MARGIN = 1.0  # seconds read before the start (see module docstring)
TAIL = 0.5  # seconds read past the end, so the trim never runs out of input
POLL = 0.1  # seconds between checks of the stop event while ffmpeg runs (Ctrl-C reaction time)


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary: the one ``imageio-ffmpeg`` ships (``avsets[fetch]``, a known build), else ``ffmpeg``
    on ``PATH``; neither is a set-up error that names both ways to get one.

    ``unpack`` and ``fetch --source`` cut members with it too, so a system ffmpeg is enough for them; the
    message speaks of cutting media, whichever command needs it.
    """
    try:
        import imageio_ffmpeg
    except ImportError:
        found = shutil.which("ffmpeg")
        if found:
            return found
        raise FetchSetupError("cutting or converting media needs an ffmpeg binary: none is on PATH and imageio-ffmpeg "
                              "is not installed; install ffmpeg (e.g. apt-get install ffmpeg) or pip install "
                              "'avsets[fetch]'") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"ffmpeg version (\S+)", out.stdout)
    return m.group(1) if m else "unknown"


@dataclass(frozen=True)
class Input:
    """One media input: an ffmpeg URL (``http(s)://...`` or ``file:/abs/path``), request headers, and which
    streams it supplies (``"av"``, ``"a"`` or ``"v"``: YouTube serves audio and video as separate URLs)."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    streams: str = "av"
    ranged: bool = True  # False: the server ignores Range (200 for a ranged GET): read it in one stream

    @property
    def network(self) -> bool:
        return self.url.startswith(("http://", "https://"))


@dataclass(frozen=True)
class CutOptions:
    """How to cut and encode.  ``sampling_rate`` applies to the FLAC output (None keeps the source's)."""

    exact: bool = False
    sampling_rate: int | None = None
    max_height: int | None = None
    timeout: float = 120.0
    proxy: str | None = None
    request_size: int = 65536
    crf: int = 23
    preset: str = "veryfast"


@dataclass
class _Plan:
    args: list[str] = field(default_factory=list)
    inputs: dict[tuple[str, bool], int] = field(default_factory=dict)
    filters: list[str] = field(default_factory=list)


def _input_args(inp: Input, seek: float, length: float | None, opts: CutOptions) -> list[str]:
    args: list[str] = []
    url = inp.url
    if inp.network:
        args += ["-request_size", str(opts.request_size), "-rw_timeout", str(int(opts.timeout * 1e6))]
        if inp.headers:
            args += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in inp.headers)]
        if opts.proxy:
            args += ["-http_proxy", opts.proxy]
        if inp.ranged:
            url = "cache:" + url
        else:
            # ``cache:`` over a server that ignores Range fails its internal seeks and writes a short clip;
            # plain http with seeking off reads the file once from the start, up to the segment's end.
            args += ["-seekable", "0"]
    if seek > 0:
        args += ["-ss", f"{seek:.6f}"]
    if length is not None:
        args += ["-t", f"{length:.6f}"]
    args += ["-i", url]
    return args


def _input_index(plan: _Plan, inp: Input, start: float, duration: float, *, early: bool, opts: CutOptions) -> int:
    """Index of the input that reads ``inp`` seeked early (filter path) or exactly (copy path)."""
    key = (inp.url, early)
    if key not in plan.inputs:
        if early:
            pre = min(start, MARGIN)
            plan.args += _input_args(inp, start - pre, duration + pre + TAIL, opts)
        else:  # the copy path: ffmpeg cuts at [S, S+D) itself, the edit list hides the pre-roll
            plan.args += _input_args(inp, start, duration, opts)
        plan.inputs[key] = len(plan.inputs)
    return plan.inputs[key]


def _pick(inputs: list[Input], stream: str) -> Input:
    for inp in inputs:
        if stream in inp.streams:
            return inp
    raise FetchFailure(ERROR, f"the source has no {'audio' if stream == 'a' else 'video'} stream")


def build_args(inputs: list[Input], start: float, end: float, *, audio_out: Path | None, video_out: Path | None,
               opts: CutOptions) -> list[str]:
    """The full ffmpeg argument list (binary first) for one clip; outputs must be absolute paths."""
    for out in (audio_out, video_out):
        if out is not None and not Path(out).is_absolute():
            raise ValueError(f"ffmpeg output paths must be absolute (an id may start with '-'): {out}")
    duration = end - start
    pre = min(start, MARGIN)
    plan = _Plan(args=[ffmpeg_exe(), "-nostdin", "-y", "-hide_banner", "-loglevel", "warning"])
    outputs: list[str] = []
    audio_src = _pick(inputs, "a") if audio_out is not None or video_out is not None else None
    trim_a = f"atrim=start={pre:.6f}:end={pre + duration:.6f},asetpts=PTS-STARTPTS"
    if audio_out is not None:
        ai = _input_index(plan, audio_src, start, duration, early=True, opts=opts)  # type: ignore[arg-type]
        rate = f",aresample={opts.sampling_rate}" if opts.sampling_rate else ""
        plan.filters.append(f"[{ai}:a:0]{trim_a}{rate}[aflac]")
        outputs += ["-map", "[aflac]", "-c:a", "flac", "-f", "flac", str(audio_out)]
    if video_out is not None:
        video_src = _pick(inputs, "v")
        reencode = opts.exact or opts.max_height is not None
        if reencode:
            vi = _input_index(plan, video_src, start, duration, early=True, opts=opts)
            ai = _input_index(plan, audio_src, start, duration, early=True, opts=opts)  # type: ignore[arg-type]
            scale = f",scale=-2:'min(ih,{int(opts.max_height)})'" if opts.max_height else ""
            plan.filters.append(f"[{vi}:v:0]trim=start={pre:.6f}:end={pre + duration:.6f},setpts=PTS-STARTPTS{scale}[vout]")
            plan.filters.append(f"[{ai}:a:0]{trim_a}[amp4]")
            outputs += ["-map", "[vout]", "-map", "[amp4]", "-c:v", "libx264", "-preset", opts.preset,
                        "-crf", str(opts.crf), "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"]
        else:
            vi = _input_index(plan, video_src, start, duration, early=False, opts=opts)
            ai = _input_index(plan, audio_src, start, duration, early=False, opts=opts)  # type: ignore[arg-type]
            outputs += ["-map", f"{vi}:v:0", "-map", f"{ai}:a:0?", "-c", "copy"]
        outputs += ["-movflags", "+faststart", "-f", "mp4", str(video_out)]
    if plan.filters:
        plan.args += ["-filter_complex", ";".join(plan.filters)]
    return plan.args + outputs


def build_whole_args(inputs: list[Input], *, audio_out: Path | None, video_out: Path | None,
                     opts: CutOptions) -> list[str]:
    """Arguments for a whole video (a row with no segment: ASCC without ``big_data.csv``): no seek, no
    trim; video stream-copied unless ``exact``/``max_height`` ask for a re-encode."""
    for out in (audio_out, video_out):
        if out is not None and not Path(out).is_absolute():
            raise ValueError(f"ffmpeg output paths must be absolute (an id may start with '-'): {out}")
    args = [ffmpeg_exe(), "-nostdin", "-y", "-hide_banner", "-loglevel", "warning"]
    index: dict[str, int] = {}
    for inp in inputs:
        args += _input_args(inp, 0.0, None, opts)
        index[inp.url] = len(index)
    ai = index[_pick(inputs, "a").url]
    outputs: list[str] = []
    if audio_out is not None:
        rate = ["-ar", str(opts.sampling_rate)] if opts.sampling_rate else []
        outputs += ["-map", f"{ai}:a:0", "-c:a", "flac", *rate, "-f", "flac", str(audio_out)]
    if video_out is not None:
        vi = index[_pick(inputs, "v").url]
        outputs += ["-map", f"{vi}:v:0", "-map", f"{ai}:a:0?"]
        if opts.exact or opts.max_height:
            scale = ["-vf", f"scale=-2:'min(ih,{int(opts.max_height)})'"] if opts.max_height else []
            outputs += [*scale, "-c:v", "libx264", "-preset", opts.preset, "-crf", str(opts.crf), "-pix_fmt",
                        "yuv420p", "-c:a", "aac", "-b:a", "128k"]
        else:
            outputs += ["-c", "copy"]
        outputs += ["-movflags", "+faststart", "-f", "mp4", str(video_out)]
    return args + outputs


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stderr: str


def run(args: list[str], timeout: float, stop: threading.Event | None = None) -> FfmpegRun:
    """Run ffmpeg (argument list, no shell); on timeout kill it and raise an ``error`` failure.

    ffmpeg runs in its own session, so a terminal's Ctrl-C reaches only us (an ffmpeg that caught SIGINT
    would exit non-zero and the clip would be recorded as an ``error``); when ``stop`` is set we kill it
    within ``POLL`` seconds and raise ``Interrupted``.
    """
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stderr.read() if proc.stderr else b""),
                              name="ffmpeg-stderr", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                proc.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop is not None and stop.is_set():
                raise Interrupted()
            if time.monotonic() >= deadline:
                raise FetchFailure(ERROR, f"ffmpeg timed out after {timeout:g} s")
    except BaseException:
        proc.kill()
        proc.wait()
        reader.join(timeout=2)
        raise
    reader.join(timeout=5)
    text = b"".join(chunks).decode("utf-8", "replace")
    return FfmpegRun(proc.returncode, redact_text(text[-8000:]) or "")


@dataclass(frozen=True)
class Probe:
    """What a written clip holds: duration in seconds (None when unreadable or empty) and codec names."""

    duration: float | None
    codecs: frozenset[str] = frozenset()


def probe(path: str | os.PathLike[str]) -> Probe:
    """Open a clip with PyAV: container duration (for FLAC, STREAMINFO's sample count; for mp4, with the
    edit list applied) and the codecs of its streams.  imageio-ffmpeg ships no ffprobe; PyAV is a core
    dependency anyway."""
    import av

    try:
        with av.open(str(path)) as c:
            codecs = frozenset(s.codec_context.name for s in c.streams if s.type in ("audio", "video"))
            if c.duration is not None and c.duration > 0:
                return Probe(c.duration / 1_000_000, codecs)
            best = 0.0
            for s in c.streams:
                if s.duration is not None and s.time_base is not None:
                    best = max(best, float(s.duration * s.time_base))
            return Probe(best or None, codecs)
    except (av.error.FFmpegError, OSError, ValueError):
        return Probe(None)


def media_duration(path: str | os.PathLike[str]) -> float | None:
    return probe(path).duration


def failure_text(result: FfmpegRun) -> str:
    return describe_ffmpeg_failure(result.returncode, result.stderr)
