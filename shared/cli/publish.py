"""``avsets export`` and ``avsets push``: argparse wiring for the main CLI (``avsets.cli.app``).

Both take the same arguments (``push`` adds the Hub ones) so that a dry export can be turned into a push by
changing the verb. Exit codes follow the main CLI: 0 done, 1 the work ran but failed (upload error), 2 usage
or set-up errors.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from huggingface_hub import constants

from avsets.cli.sync import add_sync_arguments
from avsets.core.cli_common import config_kwargs
from avsets.ops.publish.media import AUDIO_FORMATS


def _common(p: argparse.ArgumentParser, *, corpus_required: bool) -> None:
    p.add_argument("corpus", nargs=None if corpus_required else "?", help="corpus name, e.g. vggsound")
    p.add_argument("config", nargs="?", help="config name (default: the corpus' default config)")
    p.add_argument("--data-dir", help="folder with the upstream metadata files")
    p.add_argument("--media-dir", action="append", help="media root, folder or fsspec URL (repeatable)")
    p.add_argument("--split", help="export only this split")
    p.add_argument("--video", action="store_true", help="embed video as mp4 H.264+AAC (default: audio only)")
    p.add_argument("--audio-format", default="flac", choices=sorted(AUDIO_FORMATS),
                   help="container of the embedded audio (default: flac, lossless)")
    p.add_argument("--max-shard-size", default="500MB", help="upper bound of a Parquet shard (default 500MB)")
    p.add_argument("--num-proc", type=int, help="processes cutting media (local engine) or Ray CPUs")
    p.add_argument("--engine", default="local", choices=("local", "ray"), help="where shards are written")
    p.add_argument("--overwrite", action="store_true",
                   help="restart an unfinished export made with other input or options")
    p.add_argument("--option", action="append", help="extra corpus config option key=value (repeatable)")
    add_filter_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (there is none either when stderr is not a terminal: a count line "
                        "every 30 s instead)")


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """``--only-ids``, ``--exclude``, ``--quality``, ``--overlay``, ``--drop``: the filters of ``load_dataset``."""
    p.add_argument("--only-ids", metavar="FILE", help="keep only these clips (manifest, CSV of ids, .txt)")
    p.add_argument("--exclude", metavar="FILE",
                   help="leave these clips out: a dups/overlap CSV (id_a and id_b), a CSV of ids, a manifest, a .txt")
    p.add_argument("--quality", metavar="Q.PARQUET", help="quality table (avsets quality): publish its measures")
    p.add_argument("--overlay", action="append", metavar="NAME",
                   help="join an overlay by id: vggsounder, audioset_qa (repeatable)")
    p.add_argument("--drop", metavar="FLAGS", help="remove rows whose flag is true, e.g. silent,still,static_image")


def filter_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The filter options given on the command line, as ``load_dataset`` keywords."""
    out = {"only_ids": args.only_ids, "exclude": args.exclude, "quality": args.quality,
           "overlays": args.overlay or None, "drop": args.drop}
    return {k: v for k, v in out.items() if v is not None}


def _progress(args: argparse.Namespace) -> Any:
    """The export's progress (bar on a terminal, a line every 30 s elsewhere); ``--quiet`` also silences
    ``datasets``' own per-split bars of the metadata load."""
    from avsets.ops.publish.progress import ExportProgress

    if args.quiet:
        import datasets

        datasets.disable_progress_bars()
    return ExportProgress(quiet=args.quiet)


def _export_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw = dict(data_dir=args.data_dir, media_dir=args.media_dir or None, video=args.video,
              audio_format=args.audio_format, max_shard_size=args.max_shard_size, num_proc=args.num_proc,
              engine=args.engine, split=args.split, overwrite=args.overwrite)
    kw.update(config_kwargs(args.option))
    kw.update(filter_kwargs(args))
    return kw


def _cmd_export(args: argparse.Namespace) -> int:
    from avsets.ops.publish.export import export

    if args.prune:
        from avsets.cli.sync import run_prune

        return run_prune(args)
    if args.corpus is None:
        print("avsets export: error: give a corpus to export (or --prune to prune an export)", file=sys.stderr)
        return 2
    progress = _progress(args)
    try:
        res = export(args.corpus, args.config, out=args.out, progress=progress, **_export_kwargs(args))
    finally:
        progress.close()
    print(f"exported {res.corpus}/{res.config} to {res.out}")
    for split, s in res.splits.items():
        print(f"  {split}: {s.num_rows} of {s.metadata_rows} rows in {len(s.files)} shard(s), "
              f"{s.num_bytes / 1e6:.1f} MB (media copied {s.copied}, re-encoded {s.encoded}, "
              f"rows without media {s.skipped})")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from avsets.ops.publish.push import PushError, push

    endpoint = _endpoint(args.endpoint)
    if endpoint is False:
        print(f"avsets push: error: --endpoint must be an http(s) URL such as https://hub.example.org, "
              f"not {args.endpoint!r}", file=sys.stderr)
        return 2
    args.endpoint = endpoint
    if getattr(args, "quiet", False) or not sys.stderr.isatty():  # the one rule for bars: the Hub client's too
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if args.sync:
        from avsets.cli.sync import run_sync

        return run_sync(args)
    if args.from_dir is None and args.corpus is None:
        print("avsets push: error: give a corpus to export, or --from DIR", file=sys.stderr)
        return 2
    kwargs: dict[str, Any] = {} if args.from_dir else _export_kwargs(args)
    progress = None if args.from_dir else _progress(args)
    if progress is not None:
        kwargs["progress"] = progress
    try:
        res = push(args.corpus or "", args.config, repo_id=args.repo_id, from_dir=args.from_dir,
                   work_dir=args.work_dir, private=args.private or None, revision=args.revision,
                   dry_run=args.dry_run, commit_max_files=args.commit_max_files, endpoint=endpoint, **kwargs)
    except PushError as e:  # already scrubbed of the token
        print(f"avsets push: error: {e}", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.close()
    where = f"{res.repo_id}" + (f"@{res.revision}" if res.revision else "")
    if res.taken_down:
        verb = "would prune" if res.dry_run else "pruned"
        shown = ", ".join(res.taken_down[:5]) + (" ..." if len(res.taken_down) > 5 else "")
        print(f"{verb} {len(res.taken_down)} clip(s) listed in the Hub's takedowns.csv from {args.from_dir or 'the export'}"
              f" before the upload: {shown}")
    if res.dry_run:
        print(f"dry run: would push to {where} on {_shown(endpoint or constants.ENDPOINT)}")
        if res.hub_error:
            print(f"  (Hub not reached, so every file is listed as sent: {res.hub_error})")
        for f in res.files:
            print(f"  {f.action:<6} {f.path} ({f.size} bytes)")
        return 0
    print(f"pushed to {where}: {len(res.added)} file(s) sent, {len(res.skipped)} already there, "
          f"{len(res.deleted)} stale removed, {res.commits} commit(s)")
    return 0


def _endpoint(value: str | None) -> str | None | bool:
    """``--endpoint`` as HfApi takes it; None means ``HF_ENDPOINT`` (or the public Hub); False: not a URL."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return value.rstrip("/")


def _shown(url: str) -> str:
    """An endpoint as printed: without userinfo or query (they may hold credentials)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def add_publish_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export`` and ``push`` on the main CLI's subparsers; each sets ``func`` returning an exit code."""
    p = subparsers.add_parser("export", help="write Hub-layout Parquet shards with embedded media + card")
    _common(p, corpus_required=False)
    p.add_argument("--out", required=True, help="output folder or fsspec URL")
    add_sync_arguments(p, flag="--prune", dry_run=True,
                       help_="remove taken-down clips from the export in --out (see --ledger, --takedowns)")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser("push", help="export (or take --from DIR) and upload to the Hugging Face Hub")
    _common(p, corpus_required=False)
    p.add_argument("--repo-id", required=True, help="dataset repo, e.g. org/vggsound")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to push to (created if missing)")
    p.add_argument("--from", dest="from_dir", help="upload this earlier export instead of exporting")
    p.add_argument("--work-dir", help="export here (kept, resumable) instead of a temporary folder")
    p.add_argument("--dry-run", action="store_true", help="list what would be sent; send nothing")
    p.add_argument("--commit-max-files", type=int, default=50, help="files per commit (default 50)")
    p.add_argument("--endpoint", help="Hub URL (default: $HF_ENDPOINT, else https://huggingface.co), e.g. a "
                   "self-hosted or mirror Hub")
    add_sync_arguments(p, flag="--sync", dry_run=False,
                       help_="remove taken-down clips from the repo on the Hub, in one commit (see --ledger, --takedowns)")
    p.set_defaults(func=_cmd_push)
