"""Verifying attribution patching: the top-ranked components re-measured by exact patching."""

from __future__ import annotations

from dataclasses import replace

import torch

from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.engine import Patcher
from interp.analyses.patching.nodes import Node
from interp.analyses.patching.readout import Readout, parse_budget
from interp.errors import InterpError
from interp.models import Model
from interp.results.patching import AtPResult


def verify(
    model: Model,
    res: AtPResult,
    nodes: list[Node],
    k: int,
    contrast: Contrast,
    readout: Readout,
    budget: int | str,
    progress: bool,
) -> AtPResult:
    """A new result whose ``verified`` holds the exact scores of AtP's k highest-ranked
    components (NaN elsewhere); `res` is left as it is. `nodes` are the result's components
    in the order of its flattened values."""
    if k < 1:
        raise InterpError(f"verify_top_k must be at least 1, got {k}.")
    order = torch.argsort(res.ranking_score.reshape(-1), descending=True)[:k].tolist()
    chosen = [nodes[i] for i in order]
    patcher = Patcher(
        model,
        readout,
        contrast.base,
        contrast.source,
        sorted({n.hook for n in chosen}),
        budget=parse_budget(budget),
        progress=progress,
        desc="verify top-k",
    )
    exact = contrast.mean_scores(patcher.run([[n] for n in chosen]).double().mean(1))
    verified = torch.full((res.values.numel(),), float("nan"))
    verified[order] = exact.float()
    return replace(res, verified=verified.reshape(res.values.shape))
