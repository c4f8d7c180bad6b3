"""Corpus dataset cards: ``<corpus>/README.md`` (YAML header + text) is the one place for licence,
citation, homepage and description, read by the builders' ``_info`` and by export/push."""

from __future__ import annotations

import functools
import importlib.resources
import re

import yaml

_FRONT_MATTER = re.compile(r"^---\s*\n(.*?)\n---\s*\n?(.*)$", re.S)


@functools.cache
def card_text(corpus: str) -> str:
    """The raw ``README.md`` of a corpus package (empty if it has none)."""
    try:
        return (importlib.resources.files(f"avsets.{corpus}") / "README.md").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return ""


def split_card(text: str) -> tuple[dict, str]:
    """``(yaml header as dict, markdown body)``."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    header = yaml.safe_load(m.group(1)) or {}
    return (header if isinstance(header, dict) else {}), m.group(2)


@functools.cache
def read_card(corpus: str) -> dict:
    """Licence, homepage, citation and description of a corpus, from its card.

    The citation is the first fenced ``bibtex`` block of the body; the description its first paragraph.
    """
    if not corpus:
        return {}
    header, body = split_card(card_text(corpus))
    out: dict = {"header": header, "body": body}
    out["license"] = str(header.get("license", ""))
    out["pretty_name"] = str(header.get("pretty_name", corpus))
    out["homepage"] = str(header.get("homepage", "") or "")
    m = re.search(r"```bibtex\s*\n(.*?)```", body, re.S)
    out["citation"] = m.group(1).strip() if m else ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip() and not p.strip().startswith("#")]
    out["description"] = paragraphs[0] if paragraphs else ""
    return out
