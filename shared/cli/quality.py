"""``avsets quality``: measure every clip of a corpus once into a Parquet table of measures and flags.

Exit codes: 0 every clip measured, 1 some clip gave an error row, 2 usage or set-up error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from avsets.core.cli_common import config_kwargs
from avsets.core.errors import AvsetsError
from avsets.metadata.quality.table import QUALITY_FLAGS
from avsets.metadata.quality.thresholds import DEFAULT_THRESHOLDS, Thresholds
from avsets.ops.quality.run import run_quality

#: threshold options: (flag, Thresholds field, help)
THRESHOLD_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--silence-db", "silence_db", "a 100-ms window below this RMS level (dBFS) is silent"),
    ("--silent-fraction", "silent_fraction", "flag `silent` when this share of windows is silent"),
    ("--clip-level", "clip_level", "a sample at or above this |level| (full scale 1.0) is clipped"),
    ("--still-threshold", "still_threshold",
     "a sampled frame is still when its mean absolute grey difference from the previous one is below this (0-255)"),
    ("--still-fraction", "still_fraction", "flag `still` when this share of frame pairs is still"),
    ("--black-luma", "black_luma", "a pixel darker than this (0-1 of full scale) is black"),
    ("--black-pixel-share", "black_pixel_share", "a frame is black when this share of its pixels is black"),
    ("--black-fraction", "black_fraction", "flag `black` when this share of sampled frames is black"),
    ("--scene-cut", "scene_cut", "a frame difference (0-255) above this counts as a scene cut"),
    ("--short-fraction", "short_fraction", "flag `short` when the decoded length is below this share of end-start"),
    ("--min-duration", "min_duration_s", "flag `short` below this many seconds when a row has no segment"),
    ("--av-mismatch", "av_mismatch_s", "flag `av_mismatch` when audio and video lengths differ by more (s)"),
    ("--sample-fps", "sample_fps", "frames per second compared for the video measures"),
    ("--sample-width", "sample_width", "width (px) frames are scaled to for the video measures"),
)


def add_quality_subcommand(sub: argparse._SubParsersAction) -> None:
    """Register ``avsets quality`` on the main parser's subparsers."""
    p = sub.add_parser(
        "quality", help="measure every clip (level, silence, stills, black frames, lengths) into a Parquet table",
        description="One pass over every clip of CORPUS that has media; writes one row per clip (key `id`) "
                    "with measures and the flags " + ", ".join(QUALITY_FLAGS) + ". Resumable: a rerun measures only clips whose media changed. See docs/quality.md.")
    p.add_argument("corpus", help="vggsound, audiosetzsl, avset10m, avmit or ascc (`avsets list`)")
    p.add_argument("config", nargs="?", help="the corpus config (default: its first)")
    p.add_argument("--data-dir", help="folder with the corpus' metadata files")
    p.add_argument("--media-dir", action="append", required=True,
                   help="media: folder, archive(s), Parquet, glob or fsspec URL (repeatable; first match wins)")
    p.add_argument("--out", required=True, help="the Parquet table to write (and resume from)")
    p.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    p.add_argument("--num-proc", type=int, default=1, help="processes measuring clips (local) or Ray CPUs")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="where clips are measured")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--option", action="append", default=[], help="extra config option key=value (repeatable)")
    p.add_argument("--json", action="store_true", help="print the run's counts as JSON")
    group = p.add_argument_group("thresholds (defaults in docs/quality.md; stored in the table's metadata)")
    for flag, name, text in THRESHOLD_OPTIONS:
        default = getattr(DEFAULT_THRESHOLDS, name)
        unit = "DBFS" if name.endswith("_db") else "S" if name.endswith("_s") else \
            "PX" if name.endswith("width") else "X"
        group.add_argument(flag, dest=f"t_{name}", type=type(default), default=default, metavar=unit,
                           help=f"{text} (default {default})")
    p.set_defaults(func=run_quality_command)


class QualityUsageError(AvsetsError, ValueError):
    """A command line that cannot work as given (exit 2)."""


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    """The run's thresholds from the ``--...`` options (defaults where not given)."""
    return Thresholds(**{f.name: getattr(args, f"t_{f.name}") for f in dataclasses.fields(Thresholds)})


def run_quality_command(args: argparse.Namespace) -> int:
    """``avsets quality``: 0 every clip measured, 1 some clip could not be decoded (error rows), 2 set-up error.

    Set-up errors propagate to the main command's guard, which prints one redacted line and exits 2.
    """
    if args.num_proc < 1:
        raise QualityUsageError("--num-proc must be at least 1")
    report = run_quality(args.corpus, args.config, data_dir=args.data_dir, media_dir=args.media_dir, out=args.out,
                         split=args.split, num_proc=args.num_proc, engine=args.engine,
                         thresholds=thresholds_from_args(args), quiet=args.quiet, **config_kwargs(args.option))
    if args.json:
        print(json.dumps(dataclasses.asdict(report) | {"exit_code": report.exit_code}, indent=2))
    else:
        print(report.summary())
    if report.errors:
        print(f"{report.errors} clips could not be decoded: their rows have `error` set", file=sys.stderr)
    return report.exit_code
