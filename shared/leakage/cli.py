"""``avsets overlap``, ``avsets fingerprint`` and ``avsets duplicates``: the leakage audit on the command line.

Folders per corpus: ``--data-dir CORPUS=DIR`` (repeatable) names one corpus' metadata folder, a plain
``--data-dir DIR`` is the folder for every corpus not named; ``--media-dir`` works the same way and may be
repeated per corpus (``--media-dir vggsound=/a --media-dir vggsound=/b``: both roots, first match wins).
Exit codes: 0 done, 1 some clips could not be fingerprinted, 2 usage or set-up error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from ..api import list_corpora
from ..cli import _check_output_file, _config_kwargs
from .overlap import format_summary, overlap_units, write_overlap_csv
from .units import LeakageUsageError, Spec, Unit, folder_for, iter_units, parse_folder_options, parse_spec

FOLDERS_HELP = ("CORPUS=DIR for one corpus, or DIR for every corpus not named (repeatable)")


def _specs(values: Sequence[str]) -> list[Spec]:
    specs = [parse_spec(v) for v in values]
    if len({s.text for s in specs}) != len(specs):
        raise LeakageUsageError("a corpus/split is named twice: " + " ".join(values))
    return specs


def media_folders(values: Sequence[str] | None) -> tuple[list[str], dict[str, list[str]]]:
    """``--media-dir`` values: plain roots for every corpus, and ``CORPUS=ROOT`` roots (repeatable)."""
    plain: list[str] = []
    per: dict[str, list[str]] = {}
    corpora = set(list_corpora())
    for value in values or []:
        head, sep, tail = value.partition("=")
        if sep and head.strip().lower() in corpora and tail:
            per.setdefault(head.strip().lower(), []).append(os.path.expanduser(tail))
        else:
            plain.append(os.path.expanduser(value))
    return plain, per


def load_units(specs: Sequence[Spec], data_dirs: Sequence[str] | None, options: Sequence[str] | None = None,
               media: Sequence[str] | None = None, *, with_media: bool = False) -> list[Unit]:
    """Every unit of every spec, in the order given (metadata only unless ``with_media``)."""
    default, per = parse_folder_options(data_dirs)
    plain_media, per_media = media_folders(media)
    kwargs = _config_kwargs(options)
    units: list[Unit] = []
    for spec in specs:
        roots = per_media.get(spec.corpus, plain_media) or None
        if with_media and not roots:
            raise LeakageUsageError(f"{spec.text}: no --media-dir for {spec.corpus} (give --media-dir DIR or "
                                    f"--media-dir {spec.corpus}=DIR)")
        units.extend(iter_units(spec, data_dir=folder_for(spec.corpus, default, per),
                                media_dir=roots if with_media else None,
                                columns=None if with_media else ("id", "youtube_id", "start", "end"), **kwargs))
    return units


def run_overlap(args: argparse.Namespace) -> int:
    """``avsets overlap A B ...``: shared YouTube ids per pair of corpus splits (metadata only)."""
    specs = _specs(args.specs)
    if args.out:
        _check_output_file(args.out, "--out")
    t0 = time.perf_counter()
    units = load_units(specs, args.data_dir, args.option)
    if len(units) < 2:
        raise LeakageUsageError("overlap needs at least two corpus splits (name two specs, or a corpus with "
                                "several splits)")
    table, summaries = overlap_units(units)
    print(format_summary(summaries))
    rows = sum(u.table.num_rows for u in units)
    print(f"{len(units)} splits, {rows:,} rows, {table.num_rows:,} clip pairs sharing a YouTube id "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.out:
        write_overlap_csv(table, args.out)
        print(f"written to {args.out} (avsets.load_dataset(..., exclude={args.out!r}) drops them)")
    return 0


def add_leakage_subcommands(sub) -> None:
    """Register ``overlap`` (and the content commands) on the main parser's subparsers."""
    p = sub.add_parser("overlap", help="YouTube ids shared between corpus splits, and whether segments overlap",
                       description="Leakage by id from metadata alone. SPEC is corpus[:config][/split], e.g. "
                                   "vggsound/test, avset10m:700k, audiosetzsl, ascc.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="corpus[:config][/split] (two or more splits in all)")
    p.add_argument("--data-dir", action="append", help=f"metadata folder: {FOLDERS_HELP}")
    p.add_argument("--out", help="write the pairs as CSV: " + ",".join(
        ("corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "youtube_id", "overlap_s")))
    p.add_argument("--option", action="append", help="extra config option key=value for every corpus (repeatable)")
    p.set_defaults(func=run_overlap)

