"""The card's "Filters" section: which filters made an exported copy and what each removed, per split.

A reader comparing two published copies needs to know they were cleaned the same way: the filters in the
order they ran (``only_ids``, ``exclude``, ``drop``, ``on_missing``), how many rows each removed per split
(``drop`` per flag; ``exclude`` also per corpus/split the rows leak into), the thresholds the quality table
was made with, and the manifest hash of what remained.  One block per config between markers, so a second
config's export or a push merges blocks like the config blocks of :mod:`card_body`.
"""

from __future__ import annotations

import json
import re

from avsets.build.filters import FilterSummary

FILTERS_START = "<!-- avsets:filters:start -->"
FILTERS_END = "<!-- avsets:filters:end -->"
_BLOCK = re.compile(r"<!-- avsets:filter:(?P<name>\S+?):start -->\n(?P<body>.*?)\n<!-- avsets:filter:(?P=name):end -->",
                    re.S)


def _order_text(s: FilterSummary) -> str:
    steps = []
    if s.only_ids:
        steps.append(f"`only_ids` ({s.only_ids})")
    if s.exclude:
        steps.append(f"`exclude` ({s.exclude})")
    if s.drop:
        steps.append("`drop` (" + ", ".join(f"`{d}`" for d in s.drop) + ")")
    steps.append(f"`on_missing` ({s.on_missing}; rows without media are not exported)")
    return ", then ".join(steps)


def filters_block(config: str, summary: FilterSummary, exported: dict[str, int],
                  hashes: dict[str, str] | None = None) -> str:
    """The Markdown block of one exported config (markers included)."""
    hashes = hashes or {}
    lines = [f"<!-- avsets:filter:{config}:start -->", f"### {config}", "",
             f"Filters, in the order they ran: {_order_text(summary)}."]
    if summary.quality:
        lines.append(f"Quality measures and flags come from `{summary.quality}` (made by `avsets quality`); rows "
                     "it has no result for are kept with `quality_missing` true.")
    if summary.overlays:
        lines.append("Overlays joined by id: " + ", ".join(f"`{o}`" for o in summary.overlays) + ".")
    head = ["split", "rows in metadata"]
    if summary.only_ids:
        head.append("removed by only_ids")
    if summary.exclude:
        head.append("removed by exclude")
    head += [f"removed by drop `{d}`" for d in summary.drop]
    head += ["exported", "manifest hash"]
    lines += ["", "| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 2) + " --- |"]
    for split in sorted(exported):  # an export of one split (--split) speaks of that split only
        c = summary.counts.get(split)
        cells = [split, str(c.rows) if c else "-"]
        if summary.only_ids:
            cells.append(str(c.only_ids) if c else "-")
        if summary.exclude:
            cells.append(str(c.exclude) if c else "-")
        cells += [str(c.drop.get(d, 0)) if c else "-" for d in summary.drop]
        cells += [str(exported.get(split, 0)), f"`{hashes[split]}`" if split in hashes else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    leaks = [(split, where, n) for split, c in sorted(summary.counts.items()) if split in exported
             for where, n in sorted(c.exclude_into.items())]
    if leaks:
        lines += ["", "Rows removed by `exclude` because the same clip sits in another corpus/split:", ""]
        lines += [f"- {split}: {n} leaking into {where}" for split, where, n in leaks]
    if summary.thresholds:
        lines += ["", "Thresholds and versions the quality table was made with:", ""]
        flat = {}
        for k, v in summary.thresholds.items():
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
        lines += [f"- `{k}`: {_value(v)}" for k, v in sorted(flat.items())]
    lines.append(f"<!-- avsets:filter:{config}:end -->")
    return "\n".join(lines)


def _value(v: object) -> str:
    return f"`{json.dumps(v, sort_keys=True)}`" if isinstance(v, (dict, list)) else str(v)


def filters_blocks(body: str) -> dict[str, str]:
    """The per-config filter blocks already in a card, markers included."""
    return {m.group("name"): m.group(0) for m in _BLOCK.finditer(body)}


def filters_section(blocks: dict[str, str]) -> str:
    """The whole section (empty when no config was filtered)."""
    if not blocks:
        return ""
    return "\n".join([FILTERS_START, "## Filters", "",
                      "How each config of this copy was selected and cleaned (`avsets export --quality/--drop/"
                      "--exclude`).", "", "\n\n".join(blocks[k] for k in sorted(blocks)), FILTERS_END])
