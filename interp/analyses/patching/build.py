"""From patched metrics per prompt to a typed patching result (exact, AtP and path patching)."""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

from torch import Tensor

from interp.analyses.patching.contrast import Contrast, describe_corruption
from interp.analyses.patching.runs import Corruption
from interp.models import Model
from interp.nodes import head_axis_label
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.results.patching import PatchResult
from interp.tasks.metrics import Metric, metric_name, warn_nonfinite
from interp.tasks.task import Task

R = TypeVar("R", bound=PatchResult)


def _cell_names(dims: tuple[str, ...], coords: dict[str, list[Coord]]) -> list[str]:
    """``layer=3 head=5``-style names of every cell after the prompt axis, flattened."""
    axes = [[f"{d}={c}" for c in coords[d]] for d in dims]
    return [" ".join(cell) for cell in itertools.product(*axes)]


def _labels(
    model: Model, task: Task, dims: tuple[str, ...], coords: dict[str, list[Coord]]
) -> dict[str, list[str]]:
    """Display labels: positions with their token (of the first prompt), heads as ``H5``."""
    labels: dict[str, list[str]] = {}
    toks = model.to_str_tokens(task.clean_tokens[0])
    for d in ("pos", "dest_pos", "src_pos"):
        if d in dims:
            pos = [int(p) for p in coords[d]]
            labels[d] = [f"{p} {toks[p]!r}" if p < len(toks) else str(p) for p in pos]
    for d in ("head", "kv_head"):
        if d in dims:
            labels[d] = [head_axis_label(int(h)) for h in coords[d]]
    return labels


def build_result(
    cls: type[R],
    *,
    model: Model,
    task: Task,
    contrast: Contrast,
    per_prompt: Tensor,
    dims: tuple[str, ...],
    coords: dict[str, list[Coord]],
    metric: str | Metric,
    corruption: Corruption,
    n_boot: int,
    seed: int,
    params: dict[str, Any],
    title: str,
    warn_nan: bool = True,
    **fields: Any,
) -> R:
    """Normalise per-prompt metric values into scores with bootstrap intervals; `fields` are
    the result type's own declared fields (AtP's GradDrop scores ...)."""
    # AtP hands over metric values from its gradient passes: results carry no graph.
    per_prompt = per_prompt.detach()
    contrast.check_gap()
    if warn_nan:  # path patching's grid leaves cells NaN by design and checks its own runs
        warn_nonfinite(per_prompt, "patched runs", _cell_names(dims, coords))
    values, lo, hi = contrast.scores(per_prompt, n_boot=n_boot, seed=seed)
    clean, corrupt = contrast.metrics
    return cls(
        values=values,
        dims=dims,
        coords=coords,
        labels=_labels(model, task, dims, coords),
        ci_low=lo,
        ci_high=hi,
        mode=contrast.mode,
        patched=per_prompt,
        clean=clean,
        corrupt=corrupt,
        meta=make_meta(
            model=model,
            task=task,
            metric=metric_name(metric),
            params={**params, "mode": contrast.mode, "corruption": describe_corruption(corruption)},
            seed=seed,
        ),
        title=title,
        **fields,
    )
