"""The package's shape: one error vocabulary, and layers that import one way with no cycle.

The layers, lowest first (``docs/architecture.md`` explains each; a module may import its own layer and
the layers below, never above)::

    core -> metadata -> media -> build -> ops -> cli

The layer of a module is its folder: ``avsets.<layer>.…`` (:func:`layer_of`); the corpus packages
(``avsets.vggsound``…) and the package root (which re-exports ``load_dataset``) are the build layer.  A module
outside the layer folders fails :func:`test_every_module_has_a_layer`.  The import graph is read from the source files by
:func:`import_graph`, imports inside functions included (they run too, only later) and ``if
TYPE_CHECKING:`` blocks excluded (they never run); importing ``a.b.c`` also runs the ``__init__`` of ``a``
and ``a.b``, so those count as imports too.  The reader is checked against ``grimp``'s graph of the same
package (:func:`test_import_graph_matches_grimp`).  These tests import or parse every module, so a new
module or a new exception class is checked without anyone remembering to list it.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest

import avsets
from avsets.core.errors import AvsetsError
from avsets.core.templates import TemplateError
from avsets.metadata.manifest import ManifestError
from avsets.ops.publish.export import ExportEmptyError, ExportMismatchError
from avsets.ops.publish.push import PushError


def _all_modules() -> list[ModuleType]:
    """Every module of the installed ``avsets`` package (corpus subpackages included), imported."""
    return [importlib.import_module(name) for name in module_files()
            if name.rsplit(".", 1)[-1] != "__main__"]  # a __main__ runs its CLI when imported


def _exception_classes(mod: ModuleType) -> list[type[BaseException]]:
    """Exception classes *defined* in ``mod`` (not imported into it); warnings are categories, not errors."""
    return [obj for _, obj in inspect.getmembers(mod, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__ == mod.__name__
            and not issubclass(obj, Warning)]


def test_walk_finds_the_package_exceptions():
    """The walk reaches subpackages: a walk that found nothing would pass the next test vacuously."""
    names = {c.__qualname__ for m in _all_modules() for c in _exception_classes(m)}
    assert {"AvsetsError", "MetadataError", "ExportEmptyError", "PushError", "TemplateError",
            "ManifestError", "FetchFailure", "LedgerFormatError"} <= names


def test_every_exception_class_is_an_avsets_error():
    """``except AvsetsError`` catches everything avsets raises on purpose (CLI exit 2, no traceback)."""
    stray = sorted(f"{c.__module__}.{c.__qualname__}" for m in _all_modules() for c in _exception_classes(m)
                   if not issubclass(c, AvsetsError))
    assert stray == [], f"exception classes that are not AvsetsError: {stray}"


def test_errors_keep_their_stdlib_bases():
    """Callers (and tests) that catch ``ValueError``/``RuntimeError`` keep working: both bases stay."""
    for cls in (ExportEmptyError, ExportMismatchError, TemplateError, ManifestError):
        assert issubclass(cls, ValueError) and issubclass(cls, AvsetsError)
    assert issubclass(PushError, RuntimeError) and issubclass(PushError, AvsetsError)


# ------------------------------------------------------------------------------------------------ layers

LAYER_ORDER = ("core", "metadata", "media", "build", "ops", "cli")
CORPORA = ("vggsound", "audiosetzsl", "avset10m", "avmit", "ascc")


def layer_of(module: str) -> str | None:
    """The layer of ``module``: the folder it sits in (None for a module outside the layer folders)."""
    parts = module.split(".")
    if parts[0] != "avsets":
        return None
    if len(parts) == 1 or parts[1] in CORPORA:
        return "build"
    return parts[1] if parts[1] in LAYER_ORDER else None


def module_files() -> dict[str, Path]:
    """``{module name: source file}`` of ``avsets`` and of the corpus packages (their own folders)."""
    roots = [("avsets", Path(avsets.__path__[0]))]
    roots += [(f"avsets.{c}", Path(importlib.util.find_spec(f"avsets.{c}").submodule_search_locations[0]))
              for c in CORPORA]
    out: dict[str, Path] = {}
    for base, root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if base == "avsets" and parts[0] in CORPORA or not all(p.isidentifier() for p in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([base, *parts])] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def direct_imports(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """``{imported avsets module: first line}`` of every import statement in the file, wherever it sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
               for stmt in node.body for n in ast.walk(stmt)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
        else:
            continue
        for target in targets:
            if target != "avsets" and not target.startswith("avsets."):
                continue
            while target not in modules:  # an attribute of a module: the module
                target = target.rsplit(".", 1)[0]
            if target != module:
                found.setdefault(target, node.lineno)
    return found


@functools.lru_cache(maxsize=2)  # parsed once per test session (about a second of CPU)
def import_graph(*, package_inits: bool = True) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}``; with ``package_inits``, importing ``a.b.c`` also imports the
    packages ``a`` and ``a.b`` (their ``__init__`` runs) unless the importer is inside them already."""
    modules = module_files()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = direct_imports(module, path, modules)
        if package_inits:
            for target, line in list(edges.items()):
                parts = target.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if module != parent and not module.startswith(parent + "."):
                        edges.setdefault(parent, line)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(graph: dict[str, dict[str, int]]) -> list[str]:
    """Imports that go up the layers, as ``importer (layer) line N -> imported (layer)``."""
    rank = {name: i for i, name in enumerate(LAYER_ORDER)}
    out = []
    for module, edges in sorted(graph.items()):
        mine = layer_of(module)
        for target, line in sorted(edges.items()):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and rank[theirs] > rank[mine]:
                out.append(f"{module} ({mine}) line {line} -> {target} ({theirs})")
    return out


def _cycle_text(graph: dict[str, dict[str, int]], comp: list[str]) -> str:
    return "; ".join(f"{a} line {line} -> {b}" for a in comp for b, line in sorted(graph[a].items()) if b in comp)


def test_no_import_cycle():
    """No two modules import each other, directly or around a loop, at import time or inside a function."""
    graph = import_graph()
    found = cycles(graph)
    assert found == [], "\n".join(_cycle_text(graph, comp) for comp in found)


def test_imports_run_down_the_layers():
    assert violations(import_graph()) == []


def test_every_module_has_a_layer():
    """A new module goes into a layer folder; one left at the package's top level has no layer."""
    modules = module_files()
    assert len(modules) > 90  # the walk reached the subpackages and the corpus folders
    assert [m for m in modules if layer_of(m) is None] == []
    assert {layer_of(m) for m in modules} == set(LAYER_ORDER)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    """The checkers themselves: a planted loop and a core module importing the CLI are both reported."""
    graph = {"avsets.core.errors": {"avsets.cli.app": 3}, "avsets.cli.app": {"avsets.core.errors": 9}, "avsets.core.paths": {}}
    assert cycles(graph) == [["avsets.cli.app", "avsets.core.errors"]]
    assert violations(graph) == ["avsets.core.errors (core) line 3 -> avsets.cli.app (cli)"]
    assert layer_of("avsets.ops.unpack") == "ops" and layer_of("avsets.media.sources.tarsrc") == "media"
    assert layer_of("avsets.vggsound.metadata") == "build" and layer_of("avsets") == "build"
    assert layer_of("avsets.stray_module") is None


def test_function_level_and_package_init_imports_count(tmp_path):
    """An import inside a function is an edge, one under ``if TYPE_CHECKING:`` is not, and a relative import
    from a package ``__init__`` resolves against the package itself."""
    src = tmp_path / "mod.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .cli import main\n"
                   "def f():\n    from .fetch import ledger_summary\n    from . import errors\n")
    modules = {"avsets": tmp_path, "avsets.mod": src, "avsets.cli": src, "avsets.fetch": src,
               "avsets.errors": src}
    assert direct_imports("avsets.mod", src, modules) == {"avsets.fetch": 5, "avsets.errors": 6}
    init = tmp_path / "__init__.py"
    init.write_text("from .runner import run\n")
    assert direct_imports("avsets.fetch", init, {**modules, "avsets.fetch.runner": src}) == {
        "avsets.fetch.runner": 1}


def test_import_graph_matches_grimp():
    """The hand-written reader finds exactly the edges ``grimp`` (the reference) finds in ``avsets``."""
    grimp = pytest.importorskip("grimp")
    ref = grimp.build_graph("avsets", cache_dir=None, exclude_type_checking_imports=True)
    ours = import_graph(package_inits=False)
    differ = {m: (set(ours.get(m, {})) ^ set(ref.find_modules_directly_imported_by(m))) for m in ref.modules}
    assert {m: d for m, d in differ.items() if d} == {}
    assert set(ref.modules) <= set(ours)
