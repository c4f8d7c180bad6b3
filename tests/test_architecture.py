"""The package's shape: one error vocabulary and layers that import one way.

These are structural tests: they import every module of the package and inspect it, so a new module
or a new exception class is checked without anyone remembering to list it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import avsets
from avsets.errors import AvsetsError
from avsets.manifest import ManifestError
from avsets.publish.export import ExportEmptyError, ExportMismatchError
from avsets.publish.push import PushError
from avsets.templates import TemplateError


def _all_modules() -> list[ModuleType]:
    """Every module of the installed ``avsets`` package (corpus subpackages included), imported."""
    mods = [avsets]
    for info in pkgutil.walk_packages(avsets.__path__, prefix="avsets."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # runs a CLI when imported
            continue
        mods.append(importlib.import_module(info.name))
    return mods


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
