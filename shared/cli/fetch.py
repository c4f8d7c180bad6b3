"""The ``fetch`` and ``ledger diff`` subcommands, registered on the main ``avsets`` parser.

Exit codes (DESIGN): 0 every clip ok or skipped, 1 any clip failed, 2 usage or set-up errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from avsets.core.cli_common import guarded
from avsets.core.errors import AvsetsError
from avsets.core.progress import ClipProgress
from avsets.core.secrets import redact_text
from avsets.metadata.ledger import LedgerFormatError, LedgerRow, diff_ledgers
from avsets.ops.fetch import make_options
from avsets.ops.fetch.clip import FetchOptions
from avsets.ops.fetch.corpus import CorpusStats, corpus_requests, file_requests
from avsets.ops.fetch.runner import FetchSetupError, run_fetch
from avsets.ops.unpack import fetch_from_mirror

_DEFAULTS = FetchOptions()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_fetch_arguments(p: argparse.ArgumentParser) -> None:
    """The ``fetch`` options (kept apart so ``python -m avsets.cli.fetch`` builds the same parser)."""
    p.add_argument("corpus", nargs="?", help="corpus name (audiosetzsl, avset10m, vggsound, avmit, ascc)")
    p.add_argument("config", nargs="?", help="builder config (default: the corpus' default)")
    p.add_argument("--data-dir", help="folder with the upstream metadata files")
    p.add_argument("--out", required=True,
                   help="output folder or fsspec URL (clips + avsets-ledger.sqlite)")
    p.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    p.add_argument("--option", action="append", default=[], help="extra config option key=value (repeatable)")
    p.add_argument("--whole-videos", action="store_true",
                   help="rows that name a video but no segment: fetch the whole video as {youtube_id}.{ext}")
    p.add_argument("--segments", metavar="CSV",
                   help="fetch the segments of this CSV (youtube_id,start,end or clip-key id) instead of a corpus")
    kinds = p.add_argument_group("outputs (neither flag: --video, one mp4 that serves audio and video)")
    kinds.add_argument("--audio", action="store_true", help="write FLAC audio clips")
    kinds.add_argument("--video", action="store_true", help="write mp4 (H.264 + AAC) clips")
    kinds.add_argument("--sampling-rate", type=_positive_int, help="resample FLAC (default: keep the source's)")
    kinds.add_argument("--max-height", type=_positive_int, help="scale video down to at most this height")
    kinds.add_argument("--exact", action="store_true", help="re-encode video for frame-exact cuts")
    kinds.add_argument("--tolerance", type=float, default=_DEFAULTS.tolerance,
                       help="allowed clip duration error in seconds (default %(default)s)")
    src = p.add_argument_group("sources")
    src.add_argument("--source-url-template",
                     help="mirror URL, fsspec URL or local path with {youtube_id}, {start_ms}, {label}... "
                          "(default: the YouTube page, resolved by yt-dlp)")
    src.add_argument("--resolve", choices=("auto", "ytdlp", "direct"), default="auto",
                     help="auto: URLs ending in a media extension go straight to ffmpeg, others to yt-dlp")
    src.add_argument("--source", action="append", metavar="MIRROR",
                     help="copy the clips out of a mirror (tar.gz, tar, zip, Parquet, folder or glob of them; "
                          "repeatable) instead of downloading: see `avsets unpack`")
    src.add_argument("--cookies", help="Netscape cookies file (yt-dlp and ffmpeg)")
    src.add_argument("--proxy", help="HTTP proxy URL")
    run = p.add_argument_group("running")
    run.add_argument("--workers", type=_positive_int, default=_DEFAULTS.workers)
    run.add_argument("--shard", help="I/N: fetch only shard I (0-based) of N, split by clip key")
    run.add_argument("--engine", choices=("threads", "ray"), default="threads")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    run.add_argument("--retry-failed", action="store_true",
                     help="also retry rate_limited, error and geo_blocked clips (age_restricted with --cookies)")
    run.add_argument("--max-attempts", type=_positive_int, default=_DEFAULTS.max_attempts,
                     help="attempts per clip within a run (default %(default)s)")
    run.add_argument("--timeout", type=float, default=_DEFAULTS.timeout, help="seconds per ffmpeg run")
    run.add_argument("--rate", type=float, help="at most this many requests per second")
    run.add_argument("--backoff", type=float, default=_DEFAULTS.backoff_base,
                     help="first backoff delay in seconds on 429/403, doubled each retry (default %(default)s)")
    run.add_argument("--refusal-pause", type=float, default=_DEFAULTS.refusal_pause,
                     help="pause in seconds after --refusal-threshold refusals in a row (default %(default)s)")
    run.add_argument("--refusal-threshold", type=int, default=_DEFAULTS.refusal_threshold)
    run.add_argument("--limit", type=_positive_int, help="only the first N segments of the list (after --shard)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar and no periodic count lines (the summary is still printed)")


def add_fetch_subcommands(subparsers: Any) -> None:
    """Register ``fetch`` and ``ledger diff`` on the main CLI's subparsers object."""
    p = subparsers.add_parser("fetch", help="fetch segment-only clips into a media folder, with a ledger")
    add_fetch_arguments(p)
    p.set_defaults(func=run_fetch_command)
    led = subparsers.add_parser("ledger", help="read fetch ledgers")
    led_sub = led.add_subparsers(dest="ledger_command", required=True)
    d = led_sub.add_parser("diff", help="clips that appeared or vanished between two ledgers")
    d.add_argument("old", help="old ledger file or fetched folder")
    d.add_argument("new", help="new ledger file or fetched folder")
    d.set_defaults(func=run_ledger_diff_command)


#: Options the fetch sets itself (it must see every row, media or not).
_FIXED_OPTIONS = {"on_missing": "fetch reads every row whatever media exists; drop --option on_missing",
                  "streaming": "fetch always streams the metadata; drop --option streaming"}


def _config_kwargs(options: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in options:
        if "=" not in item:
            raise FetchSetupError(f"--option must be key=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k in _FIXED_OPTIONS:
            raise FetchSetupError(f"--option {k}: {_FIXED_OPTIONS[k]}")
        out[k] = v
    return out


def options_from_args(args: argparse.Namespace) -> FetchOptions:
    return make_options(
        audio=args.audio, video=True if args.video else None if not args.audio else False,
        sampling_rate=args.sampling_rate, max_height=args.max_height, exact=args.exact, tolerance=args.tolerance,
        workers=args.workers, shard=args.shard, retry_failed=args.retry_failed, max_attempts=args.max_attempts,
        timeout=args.timeout, rate=args.rate, backoff_base=args.backoff, refusal_pause=args.refusal_pause,
        refusal_threshold=args.refusal_threshold, source_url_template=args.source_url_template,
        resolve=args.resolve, cookies=args.cookies, proxy=args.proxy, limit=args.limit, engine=args.engine,
        address=args.address,
    )


class _Progress(ClipProgress):
    """Counts by ledger status (:class:`avsets.core.progress.ClipProgress`). Failures are not printed one by one:
    the summary names the first few, the ledger holds them all."""

    def __init__(self, *, quiet: bool = False, every: float = 30.0):
        super().__init__(quiet=quiet, every=every, desc="fetch")
        self.open_bar()

    def __call__(self, row: LedgerRow) -> None:
        self.count(row.status)


def _fail(message: str) -> int:
    print(f"avsets fetch: error: {redact_text(message)}", file=sys.stderr)
    return 2


def _exit_interrupted(progress: _Progress | None) -> int:
    """Ctrl-C: say what happened and how to resume; do not wait for a worker stuck in a network read."""
    import threading

    if progress is not None:
        progress.close()
    done = sum(progress.counts.values()) if progress is not None else 0
    print(f"avsets fetch: interrupted after {done} clips; the ledger holds every finished clip and the "
          "interrupted ones are fetched by the next run (rerun the same command)", file=sys.stderr)
    if any(t.name.startswith("avsets-fetch") and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # a worker blocked in a resolve: its claim goes stale when this process is gone
    return 130


def _stop_on_sigterm() -> Any:
    """SIGTERM (``kill``, ``docker stop``, a batch scheduler) stops a fetch the way Ctrl-C does: without
    this, Python dies at once and its ffmpeg processes, in their own session, run on until their timeout."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, _term)


def run_fetch_command(args: argparse.Namespace) -> int:
    """``avsets fetch``: 0 all ok or skipped, 1 some clip failed, 2 usage or set-up error, 130 Ctrl-C."""
    progress: _Progress | None = None
    try:
        options = options_from_args(args)
        stats = CorpusStats()
        if args.segments:
            if args.corpus:
                raise FetchSetupError("give a corpus or --segments, not both")
            if not os.path.isfile(args.segments):
                raise FetchSetupError(f"--segments: no file {args.segments}")
            items = file_requests(args.segments, stats=stats)
        elif args.corpus:
            items = corpus_requests(args.corpus, args.config, data_dir=args.data_dir, split=args.split,
                                    stats=stats, whole_videos=args.whole_videos, **_config_kwargs(args.option))
        else:
            raise FetchSetupError("name a corpus (e.g. vggsound) or give --segments CSV")
        if getattr(args, "source", None):
            return fetch_from_mirror(items, args.source, args.out, options.extensions())
        progress = _Progress(quiet=getattr(args, "quiet", False))
        previous = _stop_on_sigterm()
        try:
            report = run_fetch(items, args.out, options, progress=progress)
        finally:
            progress.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt:
        return _exit_interrupted(progress)
    except (AvsetsError, ValueError, FileNotFoundError, ImportError) as e:
        return _fail(str(e))
    print(report.summary())
    for line in report.failure_lines():
        print(line, file=sys.stderr)
    if stats.without_segment:
        print(f"{stats.without_segment} rows name no YouTube segment and were skipped"
              + ("" if args.whole_videos else " (--whole-videos fetches whole videos for those with an id)"))
    return report.exit_code


def run_ledger_diff_command(args: argparse.Namespace) -> int:
    """``avsets ledger diff OLD NEW``: ``+ id`` appeared, ``- id`` vanished, ``~ id`` other change."""
    try:
        diff = diff_ledgers(args.old, args.new)
    except (FileNotFoundError, LedgerFormatError) as e:
        print(f"avsets ledger: error: {e}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as e:
        print(f"avsets ledger: error: cannot read the ledgers ({type(e).__name__}: {e}); give two "
              "avsets-ledger.sqlite files or fetched folders", file=sys.stderr)
        return 2
    for line in diff.lines():
        print(line)
    print(f"{len(diff.appeared)} appeared, {len(diff.vanished)} vanished, {len(diff.changed)} changed status",
          file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m avsets.cli.fetch``: the fetch subcommands without the rest of the CLI (same guard as ``avsets``)."""
    parser = argparse.ArgumentParser(prog="python -m avsets.cli.fetch")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    add_fetch_subcommands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return guarded(args, prog="python -m avsets.cli.fetch")


if __name__ == "__main__":  # ``python -m avsets.cli.fetch fetch ...`` / ``ledger diff ...``
    sys.exit(main())
