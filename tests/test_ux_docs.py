"""The docs cite only what the repository holds: no design notes from outside it (``notes/*.md``,
``../shared``), every relative Markdown link and every ``docs/...`` / ``*/README.md`` path named in the
text resolves to a file here, and the README's two set-up commands stay as documented.

Every Markdown file of the repository is read (the corpus cards, the ``shared/**/README.md`` files, the
``docs/`` folder), and the Python sources' docstrings for the same outside citations.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}
OUTSIDE = re.compile(r"(?<![\w/])notes/\w+\.md|\.\./shared\b|/work/shared\b|(?<![\w.])shared/notes/")
LINK = re.compile(r"\]\(([^)\s]+)\)")
NAMED = re.compile(r"`((?:docs|shared|tests|bench|vggsound|audiosetzsl|avset10m|avmit|ascc)/[\w./-]+\.(?:md|py))`")


def _files(suffix: str) -> list[Path]:
    out = []
    for p in ROOT.rglob(f"*{suffix}"):
        rel = p.relative_to(ROOT)
        if not any(part in SKIP or part.startswith(".venv") or part.endswith(".egg-info") for part in rel.parts):
            out.append(p)
    return sorted(out)


MARKDOWN = _files(".md")


def test_the_docs_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    assert {"README.md", "docs/datasets-behaviour.md", "shared/ops/publish/README.md", "vggsound/README.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN + _files(".py"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_citation_outside_the_repo(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.name == "test_ux_docs.py":
        return
    hits = [m.group(0) for m in OUTSIDE.finditer(text)]
    assert not hits, f"{path.relative_to(ROOT)} cites {hits}: bring the facts into docs/ and cite that"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_and_named_files_resolve(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    missing = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor
        if not (path.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    for named in NAMED.findall(text):
        if not (ROOT / named).exists() and not (path.parent / named).exists():
            missing.append(named)
    assert not missing, f"{path.relative_to(ROOT)} names files that are not in the repo: {missing}"


def test_readme_setup_commands_are_the_documented_ones():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'python -m pip install -e . && avsets demo' in readme  # the demo needs no extra (issue 19)
    assert 'python -m pip install -e ".[test]" && python -m pytest -q' in readme
