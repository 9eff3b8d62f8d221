"""Activations over datasets: `interp.cache(model, task, names=..., store=...)` and its readers.

In memory, or streamed to disk (`DiskCache`) and read lazily. This package was ``interp.cache``
before the public function `interp.cache` took that name; the old import path still works for
one release (`interp._moved`).
"""

from __future__ import annotations

from interp.activations.api import as_task, cache, load_cache
from interp.activations.disk import DiskCache, StoredActivation
from interp.activations.names import resolve_names, short_form

__all__ = [
    "DiskCache",
    "StoredActivation",
    "as_task",
    "cache",
    "load_cache",
    "resolve_names",
    "short_form",
]
