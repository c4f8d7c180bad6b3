"""The text of an exported card: what a Hub reader needs, for exactly the configs and columns exported.

The corpus card (``avsets.<corpus>/README.md``) is written for avsets users: it describes every config, the
columns of ``avsets.load_dataset`` (``video`` included), options and where media comes from. A published
copy holds one or a few configs, often audio only, and is read with stock ``datasets``. So the exported
card keeps the corpus card's introduction, its ``Source`` / ``Licence`` / ``Citation`` sections and the
description of each *exported* config, and generates the rest from the exported features: one block per
config (its description and a column table), and a ``Loading`` block naming the real place to load from
(the export folder, or the repo id once pushed) and what stock reading needs (torchcodec, or
``avsets.decode``). Each generated part sits between HTML-comment markers so that a second export or a
push can replace or merge it without touching the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import datasets

CONFIGS_START = "<!-- avsets:configs:start -->"
CONFIGS_END = "<!-- avsets:configs:end -->"
LOADING_START = "<!-- avsets:loading:start -->"
LOADING_END = "<!-- avsets:loading:end -->"
_BLOCK = re.compile(r"<!-- avsets:config:(?P<name>\S+?):start -->\n(?P<body>.*?)\n<!-- avsets:config:(?P=name):end -->",
                    re.S)
#: sections of the corpus card that are true of a published copy (the others describe avsets' loader)
KEPT_SECTIONS = ("source", "licence", "license", "citation")
_BULLET = re.compile(r"^- `(?P<name>[^`]+)`(?: \(default\))?:\s*(?P<text>.*)$")


def split_sections(body: str) -> tuple[str, list[tuple[str, str]]]:
    """``(text before the first '## ' heading, [(heading, section text), ...])``; fenced code is not split."""
    intro: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    fenced = False
    for line in body.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
        else:
            intro.append(line)
    return "\n".join(intro).strip(), [(h, "\n".join(lines).strip()) for h, lines in sections]


def config_descriptions(body: str) -> dict[str, str]:
    """The ``- `name`: text`` bullets of the corpus card's ``Configs`` section, by config name (continuation
    lines joined)."""
    out: dict[str, str] = {}
    for heading, text in split_sections(body)[1]:
        if heading.lower() != "configs":
            continue
        current = None
        for line in text.splitlines():
            m = _BULLET.match(line)
            if m:
                current = m.group("name")
                out[current] = m.group("text").strip()
            elif current and line.startswith("  ") and line.strip():
                out[current] += " " + line.strip()
            else:
                current = None
    return out


def feature_text(feat: object) -> str:
    """A column's type in words a Hub reader knows."""
    if isinstance(feat, datasets.ClassLabel):
        return f"ClassLabel ({feat.num_classes} names)"
    if isinstance(feat, datasets.Audio):
        return "Audio (the segment's sound, already cut to [start, end))"
    if isinstance(feat, datasets.Video):
        return "Video (the segment, mp4 H.264 + AAC, already cut)"
    if isinstance(feat, datasets.Value):
        return feat.dtype
    inner = getattr(feat, "feature", None)
    if isinstance(feat, (datasets.List, datasets.LargeList, datasets.Sequence)) and inner is not None:
        return f"list of {feature_text(inner)}"
    if isinstance(feat, dict):
        return "{" + ", ".join(f"{k}: {feature_text(v)}" for k, v in feat.items()) + "}"
    return type(feat).__name__


def media_kinds(features: datasets.Features | None) -> set[str]:
    """``{"audio", "video"}`` or a part of it: which media feature types the columns hold."""
    kinds: set[str] = set()
    for feat in (features or {}).values():
        if isinstance(feat, datasets.Audio):
            kinds.add("audio")
        elif isinstance(feat, datasets.Video):
            kinds.add("video")
    return kinds


def config_block(config: str, description: str | None, features: datasets.Features) -> str:
    """The generated block of one exported config: its description and its columns."""
    lines = [f"<!-- avsets:config:{config}:start -->", f"### `{config}`", ""]
    if description:
        lines += [description[:1].upper() + description[1:], ""]
    lines += ["| column | type |", "| --- | --- |"]
    lines += [f"| `{name}` | {feature_text(feat)} |" for name, feat in features.items()]
    lines.append(f"<!-- avsets:config:{config}:end -->")
    return "\n".join(lines)


def config_blocks(body: str) -> dict[str, str]:
    """The generated config blocks of a card body, by config name (whole blocks, markers included)."""
    return {m.group("name"): m.group(0) for m in _BLOCK.finditer(body)}


def configs_section(blocks: dict[str, str]) -> str:
    return "\n".join([CONFIGS_START, "## Configs", "", "\n\n".join(blocks[k] for k in blocks), CONFIGS_END])


def loading_section(target: str, config: str, kinds: Iterable[str], split: str = "train") -> str:
    """How to read the copy: stock ``datasets`` (and what its decoding needs), or avsets' torch-free decode."""
    kinds = set(kinds)
    media = " and ".join(f"`{k}`" for k in ("audio", "video") if k in kinds) or "the media columns"
    types = " / ".join(t for k, t in (("audio", "`Audio()`"), ("video", "`Video()`")) if k in kinds)
    casts = "\n".join(f'ds = ds.cast_column("{k}", {k.capitalize()}(decode=False))  # {{"bytes", "path"}}'
                      for k in ("audio", "video") if k in kinds)
    imports = ", ".join(k.capitalize() for k in ("audio", "video") if k in kinds)
    return "\n".join([
        LOADING_START,
        "## Loading",
        "",
        "With stock `datasets` (avsets is not needed to read this copy):",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{target}", "{config}", split="{split}", streaming=True)',
        "```",
        "",
        f"{media} {'are' if len(kinds) > 1 else 'is'} {types or 'media'} holding the bytes of each segment, already cut "
        "to `[start, end)` (`media_offset` is 0: decode the whole cell). Reading a row decodes them the way "
        "stock `datasets` does, with torchcodec: that needs `pip install torch torchcodec` and FFmpeg's shared "
        "libraries (for example `apt-get install ffmpeg`); without them `ds[0]` raises ImportError. Two ways "
        "without torch:",
        "",
        "```python",
        f"from datasets import {imports or 'Audio'}",
        casts or 'ds = ds.cast_column("audio", Audio(decode=False))',
        "",
        "import avsets                # pip install avsets: NumPy arrays, no torch",
        "ds = avsets.decode(ds)       # audio: {array, sampling_rate}; video: {frames, timestamps, fps}",
        "```",
        "",
        "Published with [avsets](https://pypi.org/project/avsets/).",
        LOADING_END,
    ])


def replace_region(body: str, start: str, end: str, new: str) -> str:
    """``body`` with the text from ``start`` to ``end`` (markers included) replaced by ``new``; appended when
    the markers are absent."""
    if start in body and end in body:
        head, rest = body.split(start, 1)
        return head + new + rest.split(end, 1)[1]
    return body.rstrip() + "\n\n" + new


def render_body(*, title: str, intro: str, sections: list[tuple[str, str]], blocks: dict[str, str],
                loading: str) -> str:
    """Title, introduction, the exported configs, loading, then the corpus card's kept sections."""
    parts = [title]
    if intro:
        parts.append(intro)
    parts.append(configs_section(blocks))
    parts.append(loading)
    parts += [f"## {h}\n\n{t}" for h, t in sections if h.lower() in KEPT_SECTIONS]
    return "\n\n".join(parts)
