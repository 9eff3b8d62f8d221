"""Modules that moved, importable under their old names for one release (with a warning).

`interp.cache` and `interp.report` are the public functions (DESIGN's ``interp.cache(model,
task, ...)``), so the modules that held them moved: ``interp.cache`` -> `interp.activations`,
``interp.report`` -> `interp.viz.report`. A module and a function cannot share a name in one
package (importing the module rebinds the name), which is why they moved instead of being made
callable. ``from interp.cache import DiskCache`` and ``from interp.cache.disk import DiskCache``
keep working: the old name is an alias of the same module object, never a second copy (classes
stay identical). ``import interp.cache.disk as d`` cannot: ``interp.cache`` is the function now.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

from interp.deprecation import warn_renamed

MOVED = {"interp.cache": "interp.activations", "interp.report": "interp.viz.report"}


def _new_name(name: str) -> str | None:
    for old, new in MOVED.items():
        if name.startswith(old + "."):
            return new + name[len(old) :]
    return None


class _Alias(types.ModuleType):
    """The old top name (``interp.cache``): attributes come from the new module, with a warning."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old, f"Moved to {new}.")
        self.__path__: list[str] = []  # a package, so `interp.cache.disk` is looked up
        self._new = new

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        warn_renamed(f"{self.__name__}.{attr}", f"{self._new}.{attr}", "import")
        value = getattr(importlib.import_module(self._new), attr)
        setattr(self, attr, value)  # `from interp.cache import X` looks twice: warn once
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of ``interp.cache.X`` return the module ``interp.activations.X`` itself."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if _new_name(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = _new_name(spec.name)
        assert new is not None  # find_spec only answers for moved names
        warn_renamed(f"import {spec.name}", f"import {new}", "import", stacklevel=6)
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        """The module is the new one, already executed."""


def install() -> None:
    """Register the old names (called once by ``import interp``)."""
    for old, new in MOVED.items():
        sys.modules.setdefault(old, _Alias(old, new))
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
