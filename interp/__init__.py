"""interp: mechanistic interpretability on TransformerLens.

    import interp
    model = interp.load_model("organism")
    task = interp.tasks.induction(model, n=64, seed=0)
    acts = interp.cache(model, task, names=["resid_post"], store="acts/")

Attributes load lazily, so ``import interp`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from interp import _moved

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("interp.models", "load_model"),
    "Model": ("interp.models", "Model"),
    "InterpError": ("interp.errors", "InterpError"),
    "Task": ("interp.tasks.task", "Task"),
    "load_result": ("interp.results.io", "load_result"),
    "Result": ("interp.results.base", "Result"),
    "cache": ("interp.activations.api", "cache"),
    "report": ("interp.viz.report", "report"),
    "load_cache": ("interp.activations.api", "load_cache"),
}
_SUBMODULES = {"tasks", "activations", "nodes", "results", "stats", "viz", "analyses", "executors"}
# Analysis families are reached as interp.attribution, interp.patching, ...
_FAMILIES = {
    "attribution": "interp.analyses.attribution",
    "patching": "interp.analyses.patching",
    "probes": "interp.analyses.probes",
    "trajectories": "interp.analyses.trajectories",
    "steering": "interp.analyses.steering",
    "sae": "interp.analyses.sae",
}

if TYPE_CHECKING:  # static names for type checkers and IDEs; runtime loads them lazily
    from interp import (  # noqa: F401
        activations,
        analyses,
        executors,
        nodes,
        results,
        stats,
        tasks,
        viz,
    )
    from interp.activations.api import cache, load_cache  # noqa: F401
    from interp.analyses import (  # noqa: F401
        attribution,
        patching,
        probes,
        sae,
        steering,
        trajectories,
    )
    from interp.errors import InterpError  # noqa: F401
    from interp.models import Model, load_model  # noqa: F401
    from interp.results.base import Result  # noqa: F401
    from interp.results.io import load_result  # noqa: F401
    from interp.tasks.task import Task  # noqa: F401
    from interp.viz.report import report  # noqa: F401

__all__ = [*_LAZY, *_SUBMODULES, *_FAMILIES]

# The modules that held `interp.cache` and `interp.report` moved (see _moved.py); old imports work.
_moved.install()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"interp.{name}")
    elif name in _FAMILIES:
        value = importlib.import_module(_FAMILIES[name])
    else:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    globals()[name] = value
    return value
