"""``avsets export --prune`` and ``avsets push --sync``: their options and output (wired in ``avsets.cli.publish``)."""

from __future__ import annotations

import argparse
import sys

from avsets.ops.publish.sync import SyncPlan
from avsets.ops.publish.takedowns import Takedown, ledger_takedowns, read_takedown_list


def add_sync_arguments(p: argparse.ArgumentParser, *, flag: str, help_: str, dry_run: bool) -> None:
    p.add_argument(flag, action="store_true", help=help_)
    p.add_argument("--ledger", action="append",
                   help=f"with {flag}: a newer fetch ledger (file, fetched folder or URL; repeatable): clips "
                        "now removed/private/unavailable leave the copy")
    p.add_argument("--takedowns", metavar="FILE",
                   help=f"with {flag}: CSV of clip ids or YouTube ids (optional date, reason columns) to remove")
    if dry_run:
        p.add_argument("--dry-run", action="store_true", help=f"with {flag}: list what would change; change nothing")


def _takedowns(args: argparse.Namespace, verb: str) -> dict[str, Takedown] | None:
    if not args.ledger and not args.takedowns:
        print(f"avsets {verb}: error: give --ledger and/or --takedowns FILE (what to remove)", file=sys.stderr)
        return None
    found: dict[str, Takedown] = {}
    if args.ledger:
        found.update(ledger_takedowns(args.ledger))
    if args.takedowns:
        found.update(read_takedown_list(args.takedowns))  # an explicit request's date and reason win
    return found


def print_plan(plan: SyncPlan, where: str, *, dry_run: bool) -> None:
    n = len(plan.removed)
    if plan.finished_interrupted is not None:
        print(f"finished the interrupted prune of {where}: {plan.finished_interrupted} row(s) removed then")
    if plan.discarded_journal:
        print(f"discarded the journal of an interrupted prune of {where} ({plan.discarded_journal}); "
              "pruned from the folder as it is")
    head = "dry run: would remove" if dry_run else "removed"
    if plan.finished_interrupted is not None and not n:
        head = "then removed"
    print(f"{head} {n} row(s) from {len(plan.changes)} of {plan.shards_scanned} shard(s) of {where}")
    if plan.interrupted:
        print("  an interrupted sync of this folder is journaled: the next run finishes it first")
    for c in plan.changes:
        action = "delete " if not c.rows_after else "rewrite"
        print(f"  {action} {c.path}: {c.rows_before} -> {c.rows_after} rows")
    for r in plan.removed:
        print(f"  - {r.id}\t{r.config}/{r.split}\t{r.date}\t{r.reason}")
    if plan.already_removed:
        print(f"  {plan.already_removed} listed id(s) were removed by an earlier sync (in takedowns.csv)")
    if plan.not_found:
        shown = ", ".join(plan.not_found[:10]) + (" ..." if len(plan.not_found) > 10 else "")
        print(f"  {len(plan.not_found)} listed id(s) are not in this copy: {shown}")


def run_prune(args: argparse.Namespace) -> int:
    from avsets.ops.publish.sync_local import prune_export

    takedowns = _takedowns(args, "export --prune")
    if takedowns is None:
        return 2
    plan = prune_export(args.out, takedowns, config=args.config, split=args.split, dry_run=args.dry_run)
    print_plan(plan, args.out, dry_run=args.dry_run)
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from avsets.ops.publish.push import PushError
    from avsets.ops.publish.sync_hub import sync_hub

    if args.from_dir:
        print("avsets push: error: --sync works on the Hub copy; to prune a local export use "
              "`avsets export --prune --out DIR`", file=sys.stderr)
        return 2
    takedowns = _takedowns(args, "push --sync")
    if takedowns is None:
        return 2
    try:
        res = sync_hub(args.repo_id, takedowns, config=args.config, split=args.split, revision=args.revision,
                       endpoint=getattr(args, "endpoint", None), dry_run=args.dry_run, work_dir=args.work_dir)
    except PushError as e:  # already scrubbed of the token
        print(f"avsets push: error: {e}", file=sys.stderr)
        return 1
    where = res.repo_id + (f"@{res.revision}" if res.revision else "")
    print_plan(res.plan, where, dry_run=res.dry_run)
    if res.commit:
        sent = sum(res.uploaded.values())
        print(f"  one commit {res.commit[:12]}: {len(res.uploaded)} file(s) sent ({sent} bytes), "
              f"{len(res.deleted)} deleted")
    return 0
