"""interp.cache and interp.report are plain functions; the modules that held them moved, and
their old import paths still work for one release, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import warnings

import pytest

import interp
import interp.activations
import interp.activations.disk
import interp.viz.report


def test_the_public_names_are_plain_functions():
    assert inspect.isfunction(interp.cache) and interp.cache is interp.activations.cache
    assert inspect.isfunction(interp.report) and interp.report is interp.viz.report.report
    # importing every module of the package leaves them functions
    importlib.import_module("interp.activations.api")
    importlib.import_module("interp.viz.report")
    assert inspect.isfunction(interp.cache) and inspect.isfunction(interp.report)


def test_old_imports_alias_the_same_objects_and_warn():
    # Forget earlier uses in this process, so each old import below runs (and warns) afresh.
    sys.modules.pop("interp.cache.disk", None)
    vars(sys.modules["interp.cache"]).pop("DiskCache", None)
    vars(sys.modules["interp.report"]).pop("report", None)
    with pytest.warns(DeprecationWarning, match=r"interp\.activations\.DiskCache"):
        from interp.cache import DiskCache
    assert DiskCache is interp.activations.disk.DiskCache
    with pytest.warns(DeprecationWarning, match=r"interp\.activations\.disk"):
        from interp.cache.disk import DiskCache as D2
    assert D2 is DiskCache
    assert sys.modules["interp.cache.disk"] is interp.activations.disk  # one module, not two
    with pytest.warns(DeprecationWarning, match=r"interp\.viz\.report\.report"):
        from interp.report import report
    assert report is interp.report


def test_a_fresh_process_sees_functions_whatever_it_imports_first():
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from interp.cache.api import load_cache\n"
        "import interp, inspect\n"
        "assert inspect.isfunction(interp.cache), interp.cache\n"
        "assert inspect.isfunction(interp.report), interp.report\n"
        "assert load_cache is interp.load_cache\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_new_imports_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from interp.activations import DiskCache, load_cache  # noqa: F401
        from interp.viz.report import report  # noqa: F401
