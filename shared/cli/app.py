"""The ``avsets`` command: list, info, verify, report, compare, demo, unpack, fetch/ledger, export/push.

Exit codes: 0 success, 1 the work ran but found failures, 2 usage or set-up errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from avsets.cli.fetch import add_fetch_subcommands
from avsets.cli.leakage import add_leakage_subcommands
from avsets.cli.publish import add_publish_subcommands
from avsets.cli.quality import add_quality_subcommand
from avsets.cli.unpack import add_unpack_subcommand
from avsets.core.cli_common import UsageError, check_output_file, config_kwargs, guarded
from avsets.core.errors import AvsetsError
from avsets.core.secrets import redact_url
from avsets.media.sources.base import media_source
from avsets.metadata.ledger import ledger_summary, read_ledger

__all__ = ["UsageError", "build_parser", "config_kwargs", "guarded", "main"]


def _cmd_list(args: argparse.Namespace) -> int:
    from avsets.build.api import get_dataset_config_names, list_corpora

    for name in list_corpora():
        print(f"{name:<12} configs: {', '.join(get_dataset_config_names(name))}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from avsets.build.api import builder_class, get_dataset_config_names
    from avsets.metadata.card import read_card

    cls = builder_class(args.corpus)
    card = read_card(args.corpus)
    out: dict = {"corpus": args.corpus, "pretty_name": card.get("pretty_name"), "license": card.get("license"),
                 "homepage": card.get("homepage"), "configs": {}}
    for config in get_dataset_config_names(args.corpus):
        cfg = next(c for c in cls.BUILDER_CONFIGS if c.name == config)
        try:
            builder = cls(config_name=config, cache_dir=None, dataset_name=args.corpus, hash="info")
        except AvsetsError as exc:  # features that depend on a metadata file (AVMIT's videos/ratings labels)
            out["configs"][config] = {"description": cfg.description, "features": {"(unavailable)": str(exc)}}
            continue
        features = builder.info.features
        out["configs"][config] = {
            "description": cfg.description,
            "features": {k: _feature_text(v) for k, v in features.items()},
        }
    out["citation"] = card.get("citation")
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['pretty_name']} ({args.corpus})  licence: {out['license']}  {out['homepage']}")
    for config, info in out["configs"].items():
        print(f"\n[{config}] {info['description'] or ''}")
        for k, v in info["features"].items():
            print(f"  {k:<18} {v}")
    print(f"\nCitation:\n{out['citation']}")
    return 0


def _feature_text(feat: object) -> str:
    import datasets

    if isinstance(feat, datasets.ClassLabel):
        return f"ClassLabel({feat.num_classes} names)"
    inner = getattr(feat, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return f"Sequence(ClassLabel({inner.num_classes} names))"
    return repr(feat)[:80]


#: ``--option`` keys ``verify`` sets itself: it must see every row to count what is missing.
_VERIFY_FIXED = ("on_missing", "streaming")


def _ledger_status(media_dirs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{clip id or youtube id: (status, reason)}`` from the fetch ledgers in the media folders (none: {})."""
    out: dict[str, tuple[str, str]] = {}
    for root in media_dirs:
        try:
            rows = read_ledger(root)
        except (OSError, ValueError):  # no ledger there (an unreadable one is reported by the summary below)
            continue
        for r in rows:
            out[r.id] = (r.status, r.reason or "")
            if r.youtube_id:
                out.setdefault(r.youtube_id, (r.status, r.reason or ""))
    return out


def _cmd_verify(args: argparse.Namespace) -> int:
    from avsets.ops.verify import format_table, verify, write_missing_csv

    kwargs = config_kwargs(args.option)
    for key in _VERIFY_FIXED:
        if key in kwargs:
            raise UsageError(f"--option {key} does not apply to verify (it reads every row and counts missing "
                             f"media itself); drop --option {key}")
    if args.missing_csv:
        check_output_file(args.missing_csv, "--missing-csv")
    if not args.media_dir and not args.report:
        if args.missing_csv:
            raise UsageError("--missing-csv lists the clips missing from --media-dir: give --media-dir (without "
                             "it, verify reports on the metadata only)")
        from avsets.ops.verify_metadata import format_metadata_report, metadata_report

        rep = metadata_report(args.corpus, args.config, data_dir=args.data_dir, **kwargs)
        if args.split:  # the same --split as with media: only those splits, a wrong name is exit 2
            unknown = sorted(set(args.split) - {sp.split for sp in rep.splits})
            if unknown:
                raise UsageError(f"--split {', '.join(unknown)}: no such split (has "
                                 f"{', '.join(sp.split for sp in rep.splits)})")
            rep.splits = [sp for sp in rep.splits if sp.split in args.split]
        print(format_metadata_report(rep))
        return 0
    ledger = _ledger_status(args.media_dir or []) if args.missing_csv else None
    if args.report:  # one pass: the report counts with verify's functions, so its table is verify's
        from avsets.ops.report import build_report
        from avsets.ops.report_render import format_of, summary_lines, write_report

        check_output_file(args.report, "--report")
        if not _charts_available(format_of(args.report, None)):
            return 2
        if args.split:
            raise UsageError("--split does not apply with --report (the report covers every split); drop one")
        rep = build_report(args.corpus, args.config, data_dir=args.data_dir, media_dir=args.media_dir or None,
                           probe=not args.no_probe, probe_limit=args.probe_limit, progress=_show_bar(args),
                           **kwargs)
        report = rep.coverage
        if args.missing_csv:
            write_missing_csv(report, args.missing_csv, ledger=ledger)
        paths = write_report(rep, args.report)
        print(summary_lines(rep, paths)[-1])
    else:
        report = verify(args.corpus, args.config, data_dir=args.data_dir, media_dir=args.media_dir or None,
                        probe=not args.no_probe, progress=_show_bar(args), splits=args.split, **kwargs)
        if args.missing_csv:
            write_missing_csv(report, args.missing_csv, ledger=ledger)
    print(format_table(report))
    if args.missing_csv:
        print(f"missing and corrupt clip ids written to {args.missing_csv}")
    for root in args.media_dir or []:
        try:
            if not media_source(root).is_folder:  # an archive holds no ledger: looking must cost no media bytes
                continue
            summary = ledger_summary(root)
        except (OSError, ValueError):
            continue
        if summary:
            print(f"fetch ledger in {redact_url(root)}: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.items())))
    return 0 if all(c.missing == 0 and c.corrupt == 0 for c in report) else 1


def _show_bar(args: argparse.Namespace) -> bool:
    """The one rule for progress bars: on a terminal, unless ``--quiet`` (a pipe or a log gets none)."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _charts_available(fmt: str) -> bool:
    """HTML and PNG reports need matplotlib (the ``report`` extra); say how to get it."""
    if fmt in ("html", "png"):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("avsets report: error: charts need matplotlib: pip install 'avsets[report]' "
                  "(or --format md / json)", file=sys.stderr)
            return False
    return True


def _cmd_report(args: argparse.Namespace) -> int:
    from avsets.ops.leakage.report_section import read_pairs, split_leakage
    from avsets.ops.report import build_report
    from avsets.ops.report_render import format_of, summary_lines, write_report

    if "://" not in args.out:
        check_output_file(args.out, "--out")
    if not _charts_available(format_of(args.out, args.format)):  # a bad format or extra: say so before the scan
        return 2
    pairs = read_pairs(args.leakage) if args.leakage else None  # a bad CSV fails before the scan
    rep = build_report(args.corpus, args.config, data_dir=args.data_dir, media_dir=args.media_dir or None,
                       ledger=args.ledger or None, probe=not args.no_probe, probe_limit=args.probe_limit,
                       progress=_show_bar(args), quality=args.quality, **config_kwargs(args.option))
    if pairs is not None:
        rep.leakage = split_leakage(pairs, rep.corpus, {s.split: s.coverage.rows for s in rep.splits})
    paths = write_report(rep, args.out, args.format)
    print("\n".join(summary_lines(rep, paths)))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from avsets.metadata.manifest import compare, read_id_sets, write_segments_csv

    if args.out and "://" not in args.out:
        check_output_file(args.out, "--out")
    a = read_id_sets(args.a, config=args.config)
    b = read_id_sets(args.b, config=args.config)
    result = compare(a, b)
    print("\n".join(result.lines(names=(redact_url(args.a), redact_url(args.b)))))
    for warning in result.warnings():
        print(f"avsets compare: warning: {warning}", file=sys.stderr)
    if args.out:
        n = write_segments_csv(result.intersection, args.out)
        print(f"{n} clips in both written to {args.out} (avsets fetch --segments / load_dataset(only_ids=...))")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from avsets.ops.demo import run_demo

    print(run_demo(out=args.out))
    return 0


def _count(text: str) -> int:
    """A count (``--probe-limit``): a whole number >= 0; ``-5`` is a usage error, not "probe nothing"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the optional subsystems' subcommands when they are importable."""
    parser = argparse.ArgumentParser(prog="avsets", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list corpora and their configs")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="configs, features, licence and citation of a corpus")
    p.add_argument("corpus")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("verify", help="coverage table per split: rows, media found, missing, corrupt")
    p.add_argument("corpus")
    p.add_argument("config", nargs="?")
    p.add_argument("--data-dir")
    p.add_argument("--media-dir", action="append", help="media root (repeatable)")
    p.add_argument("--missing-csv", help="write missing/corrupt clip ids to this CSV")
    p.add_argument("--no-probe", action="store_true", help="skip opening each file (existence only)")
    p.add_argument("--option", action="append", help="extra config option key=value (repeatable)")
    p.add_argument("--report", metavar="PATH", help="also write the coverage report (html, md, json or png)")
    p.add_argument("--probe-limit", type=_count, default=100_000_000, help=argparse.SUPPRESS)
    p.add_argument("--split", action="append", help="only this split (repeatable; default: all)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (none is shown outside a terminal)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("report", help="coverage report: present, missing by ledger status, per class, over time")
    p.add_argument("corpus")
    p.add_argument("config", nargs="?")
    p.add_argument("--data-dir")
    p.add_argument("--media-dir", action="append", help="media root (repeatable)")
    p.add_argument("--ledger", action="append",
                   help="fetch ledger file or fetched folder (repeatable; default: a ledger in a media root)")
    p.add_argument("--out", required=True, help="report file (.html, .md, .json or .png)")
    p.add_argument("--format", choices=("html", "md", "json", "png"), help="default: from --out's extension")
    p.add_argument("--probe-limit", type=_count, default=2000,
                   help="open at most this many files per split for durations/sample rates (default 2000); "
                        "corrupt files are counted only when every file is opened")
    p.add_argument("--no-probe", action="store_true", help="open no file (existence only)")
    p.add_argument("--option", action="append", help="extra config option key=value (repeatable)")
    p.add_argument("--quality", metavar="Q.PARQUET",
                   help="quality table (avsets quality): add flag counts, measure histograms, most flagged classes")
    p.add_argument("--leakage", action="append", metavar="CSV",
                   help="avsets overlap/duplicates CSV: add a leakage line per split (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (none is shown outside a terminal)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="clips two copies share: manifests, ledgers, exports or Hub repos")
    p.add_argument("a", help="manifest .json, CSV of ids, fetch ledger, export folder or hf://datasets/org/name")
    p.add_argument("b", help="the same kinds as A")
    p.add_argument("--config", help="the config to read from exports or repos that hold several")
    p.add_argument("--out", help="write the clips both hold here as a --segments CSV")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("demo", help="load the bundled sample with synthetic media, offline")
    p.add_argument("--out", help="work folder (default: a temp folder)")
    p.set_defaults(func=_cmd_demo)

    add_unpack_subcommand(sub)
    add_quality_subcommand(sub)
    add_leakage_subcommands(sub)
    add_fetch_subcommands(sub)
    add_publish_subcommands(sub)
    for subparser in sub.choices.values():  # --debug / -v also after the subcommand (`avsets fetch ... --debug`)
        _add_global_flags(subparser)
    return parser


def _add_global_flags(p: argparse.ArgumentParser) -> None:
    """``--debug`` and ``-v`` on a subcommand too; ``SUPPRESS`` keeps the main parser's value when absent."""
    have = {o for a in p._actions for o in a.option_strings}
    if "--debug" not in have:
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    if "--verbose" not in have and "-v" not in have:
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    for action in p._actions:  # nested subcommands (`avsets ledger diff`)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_global_flags(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``avsets`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return guarded(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
