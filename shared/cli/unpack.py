"""``avsets unpack``: its arguments and exit codes; the work is :mod:`avsets.ops.unpack`."""

from __future__ import annotations

import argparse
import sys

from avsets.core.cli_common import config_kwargs
from avsets.core.errors import AvsetsError
from avsets.media.sources.clip_or_video import stated
from avsets.ops.unpack import UnpackSetupError, corpus_table, unpack_rows


def add_unpack_subcommand(sub) -> None:
    """Register ``avsets unpack`` on the main parser's subparsers."""
    p = sub.add_parser("unpack", help="extract from a mirror (tar.gz, tar, zip, Parquet) only the clips a corpus uses")
    p.add_argument("corpus")
    p.add_argument("config", nargs="?")
    p.add_argument("--data-dir", help="folder with the corpus' metadata files")
    p.add_argument("--media-dir", action="append", required=True,
                   help="the mirror: archive(s), Parquet file(s), a folder or glob of them, local or fsspec URL "
                        "(repeatable; first match wins)")
    p.add_argument("--out", required=True, help="local output folder (clips + avsets-ledger.sqlite)")
    p.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    p.add_argument("--audio-only", action="store_true", help="only audio members (and the audio of videos)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--option", action="append", default=[], help="extra config option key=value (repeatable)")
    p.set_defaults(func=run_unpack_command)


def run_unpack_command(args: argparse.Namespace) -> int:
    """``avsets unpack``: 0 every row written or already there, 1 some missing or failed, 2 set-up error."""
    try:
        kwargs = config_kwargs(args.option)
        table = corpus_table(args.corpus, args.config, data_dir=args.data_dir, split=args.split, **kwargs)
        if table.num_rows == 0:
            raise UnpackSetupError("the corpus has no rows for this config/split")
        modalities = ("audio",) if args.audio_only else ("audio", "video")
        report = unpack_rows(table, args.media_dir, args.out, modalities=modalities,
                             media_pattern=kwargs.get("media_pattern"),
                             assume_trimmed=stated(kwargs.get("id_named")),
                             key_column=kwargs.get("media_key_column"), quiet=args.quiet)
    except (AvsetsError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"avsets unpack: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.missing_ids:
        print("not in the sources (first): " + ", ".join(report.missing_ids[:10]), file=sys.stderr)
    return report.exit_code
