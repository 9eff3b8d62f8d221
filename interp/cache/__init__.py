"""Activation caching: `interp.cache(model, task, names=..., store=...)`.

The package itself is callable (``interp.cache(...)``) so that the documented call works even
though ``interp.cache`` is also the package holding the on-disk format and readers.
"""

from __future__ import annotations

from interp._callable import make_callable
from interp.cache.api import as_task, cache, load_cache
from interp.cache.disk import DiskCache, StoredActivation
from interp.cache.names import resolve_names, short_form

__all__ = [
    "DiskCache",
    "StoredActivation",
    "as_task",
    "cache",
    "load_cache",
    "resolve_names",
    "short_form",
]

make_callable(__name__, cache)
