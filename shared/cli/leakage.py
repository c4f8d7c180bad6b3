"""``avsets overlap``, ``avsets fingerprint`` and ``avsets duplicates``: the leakage audit on the command line.

Folders per corpus: ``--data-dir CORPUS=DIR`` (repeatable) names one corpus' metadata folder, a plain
``--data-dir DIR`` is the folder for every corpus not named; ``--media-dir`` works the same way and may be
repeated per corpus (``--media-dir vggsound=/a --media-dir vggsound=/b``: both roots, first match wins).
Exit codes: 0 done, 1 some clips could not be fingerprinted, 2 usage or set-up error.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

from avsets.build.api import list_corpora
from avsets.core.cli_common import check_output_file, config_kwargs
from avsets.ops.leakage.audio_fp import MATCH_BER as AUDIO_BER
from avsets.ops.leakage.duplicates import duplicates_from_table, format_duplicates, write_duplicates_csv
from avsets.ops.leakage.overlap import format_summary, overlap_units, write_overlap_csv
from avsets.ops.leakage.store import fingerprint_units, read_fingerprints
from avsets.ops.leakage.units import (
    LeakageUsageError,
    Spec,
    Unit,
    folder_for,
    iter_units,
    parse_folder_options,
    parse_spec,
)
from avsets.ops.leakage.video_fp import MATCH_DISTANCE as VIDEO_DISTANCE

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
               media: Sequence[str] | None = None, *, with_media: bool = False, jobs: int = 1) -> list[Unit]:
    """Every unit of every spec, in the order given (metadata only unless ``with_media``; ``jobs`` worker
    processes read a many-file corpus' keys, see :func:`avsets.ops.leakage.units.iter_units`)."""
    default, per = parse_folder_options(data_dirs)
    plain_media, per_media = media_folders(media)
    kwargs = config_kwargs(options)
    units: list[Unit] = []
    for spec in specs:
        roots = per_media.get(spec.corpus, plain_media) or None
        if with_media and not roots:
            raise LeakageUsageError(f"{spec.text}: no --media-dir for {spec.corpus} (give --media-dir DIR or "
                                    f"--media-dir {spec.corpus}=DIR)")
        units.extend(iter_units(spec, data_dir=folder_for(spec.corpus, default, per),
                                media_dir=roots if with_media else None,
                                columns=None if with_media else ("id", "youtube_id", "start", "end"), jobs=jobs,
                                **kwargs))
    return units


def run_overlap(args: argparse.Namespace) -> int:
    """``avsets overlap A B ...``: shared YouTube ids per pair of corpus splits (metadata only)."""
    specs = _specs(args.specs)
    if args.out:
        check_output_file(args.out, "--out")
    t0 = time.perf_counter()
    if args.workers < 1:
        raise LeakageUsageError(f"--workers must be at least 1, not {args.workers}")
    units = load_units(specs, args.data_dir, args.option, jobs=args.workers)
    if len(units) < 2:
        raise LeakageUsageError("overlap needs at least two corpus splits (name two specs, or a corpus with "
                                "several splits)")
    table, summaries = overlap_units(units)
    print(format_summary(summaries))
    for u in units:
        if u.table.num_rows and u.table.column("youtube_id").null_count == u.table.num_rows:
            print(f"{u.label}: its rows name no YouTube video (e.g. Moments-in-Time files): compare it by content "
                  "with avsets duplicates")
    rows = sum(u.table.num_rows for u in units)
    print(f"{len(units)} splits, {rows:,} rows, {table.num_rows:,} clip pairs sharing a YouTube id "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.out:
        write_overlap_csv(table, args.out)
        print(f"written to {args.out} (avsets.load_dataset(..., exclude={args.out!r}) drops them)")
    return 0


def _fingerprint(args: argparse.Namespace, out: str) -> int:
    """Fingerprint the units of ``args.specs`` into ``out``; print what was done; return failed clips."""
    units = load_units(_specs(args.specs), args.data_dir, args.option, args.media_dir, with_media=True)
    run = fingerprint_units(units, out, workers=args.workers, progress=not args.quiet)
    print(f"fingerprints of {run.table.num_rows:,} clips in {out}: {run.computed:,} computed, "
          f"{run.reused:,} reused, {run.failed:,} failed")
    for label, clip_id, error in run.failed_ids[:10]:
        print(f"  failed {label} {clip_id}: {error}")
    if run.failed > 10:
        print(f"  ... and {run.failed - 10:,} more")
    return run.failed


def run_fingerprint(args: argparse.Namespace) -> int:
    """``avsets fingerprint A ... --out fp.parquet``: 0 all fingerprinted, 1 some clips failed."""
    check_output_file(args.out, "--out")
    return 1 if _fingerprint(args, args.out) else 0


def run_duplicates(args: argparse.Namespace) -> int:
    """``avsets duplicates A B ... --out dups.csv``: fingerprint (cached), index, verify, write the pairs."""
    check_output_file(args.out, "--out")
    fp_path = args.fingerprints or os.path.join(os.path.dirname(os.path.abspath(args.out)), "fingerprints.parquet")
    check_output_file(fp_path, "--fingerprints")
    failed = 0
    if args.specs:
        failed = _fingerprint(args, fp_path)
    elif not os.path.exists(fp_path):
        raise LeakageUsageError("name the corpus splits to search (SPEC ...) or an existing --fingerprints table")
    prints = read_fingerprints(fp_path)
    if args.specs:  # only the units named now, even if the table holds others
        wanted = {(u.corpus, u.split) for u in _units_named(args, prints)}
        keep = [(c, s) in wanted for c, s in zip(prints.column("corpus").to_pylist(),
                                                 prints.column("split").to_pylist(), strict=True)]
        prints = prints.filter(keep)
    t0 = time.perf_counter()
    result = duplicates_from_table(prints, audio_ber=args.audio_ber, video_dist=args.video_distance)
    print(format_duplicates(result) + f" ({time.perf_counter() - t0:.1f} s)")
    write_duplicates_csv(result.table, args.out)
    print(f"written to {args.out}")
    return 1 if failed else 0


def _units_named(args: argparse.Namespace, prints) -> list[Unit]:
    """The (corpus, split) units that ``args.specs`` names, as found in the fingerprint table."""
    rows = prints.select(["corpus", "config", "split"]).group_by(["corpus", "config", "split"]).aggregate([])
    out = []
    for spec in _specs(args.specs):
        for r in rows.to_pylist():
            if r["corpus"] == spec.corpus and (spec.config is None or r["config"] == spec.config) \
                    and (spec.split is None or r["split"] == spec.split):
                out.append(Unit(r["corpus"], r["config"], r["split"], prints.slice(0, 0)))
    return out


def _media_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", action="append", help=f"metadata folder: {FOLDERS_HELP}")
    p.add_argument("--media-dir", action="append", help=f"media root: {FOLDERS_HELP}; a corpus may have several")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    p.add_argument("--option", action="append", help="extra config option key=value for every corpus (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes reading a many-file corpus' metadata, e.g. AVSET-10M's 441 files "
                        "(default: 2, or 1 on one core; 1 reads in this process)")
    p.set_defaults(func=run_overlap)

    p = sub.add_parser("fingerprint", help="audio and video fingerprints per clip, cached (resumable)",
                       description="Fingerprint every clip with media of the named corpus splits into a Parquet "
                                   "table keyed by clip id + media fingerprint; a rerun computes only new or "
                                   "changed clips.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="corpus[:config][/split]")
    p.add_argument("--out", required=True, help="the fingerprint table (.parquet), reused if it exists")
    _media_arguments(p)
    p.set_defaults(func=run_fingerprint)

    p = sub.add_parser("duplicates", help="near-duplicate clips (re-uploads) within and across corpus splits",
                       description="Find near-duplicate clips by audio and video fingerprints (computed and "
                                   "cached first when SPECs are given) and write corpus_a,split_a,id_a,"
                                   "corpus_b,split_b,id_b,kind,score.")
    p.add_argument("specs", nargs="*", metavar="SPEC", help="corpus[:config][/split] (none: every clip of "
                                                            "--fingerprints)")
    p.add_argument("--out", required=True, help="the pairs CSV")
    p.add_argument("--fingerprints", help="fingerprint table to use and fill (default: fingerprints.parquet "
                                          "beside --out)")
    p.add_argument("--audio-ber", type=float, default=AUDIO_BER,
                   help=f"audio bit error rate at or below which clips match (default {AUDIO_BER})")
    p.add_argument("--video-distance", type=float, default=VIDEO_DISTANCE,
                   help=f"mean frame-hash distance (0-1) at or below which clips match (default {VIDEO_DISTANCE})")
    _media_arguments(p)
    p.set_defaults(func=run_duplicates)

