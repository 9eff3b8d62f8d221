"""Metadata every result records: model, task, metric, parameters, seed, versions, time."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
from importlib import metadata
from typing import Any

from interp.calls import current_call


def versions() -> dict[str, str]:
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    # Looking up installed distributions scans sys.path (milliseconds): once per process.
    out = {"python": platform.python_version()}
    for pkg in ("interp", "torch", "transformer-lens", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return tuple(out.items())


def make_meta(
    model: Any = None,
    task: Any = None,
    metric: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "model": getattr(model, "name", model) if model is not None else None,
        "task": task.describe() if hasattr(task, "describe") else task,
        "metric": metric,
        "params": params or {},
        "seed": seed,
        "versions": versions(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    dtype = getattr(model, "dtype", None)
    if dtype is not None:
        # Tolerances of exactness checks (DLA's sum to total) depend on the model's precision.
        meta["model_dtype"] = str(dtype).removeprefix("torch.")
    call = current_call()
    if call is not None:
        meta["call"] = call  # the public call that made this result (interp.calls)
    meta.update(extra)
    return meta
