"""How well attribution patching ranks components: its agreement with exact patching."""

from __future__ import annotations

from typing import Any

import torch

from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import Result
from interp.results.patching import AtPResult
from interp.stats import spearman


@checked
def agreement(atp: AtPResult, exact: Result, k: int = 10) -> dict[str, Any]:
    """Spearman (signed scores) and top-k recall (largest |exact| among AtP's top k).

    Also stores them in ``atp.meta['agreement']`` and the exact scores in ``atp.extras['exact']``.
    """
    if exact.values.shape != atp.values.shape:
        raise InterpError(
            f"Shapes differ: AtP {tuple(atp.values.shape)} vs exact {tuple(exact.values.shape)}; "
            "compare the same target, per_position and direction."
        )
    n = atp.values.numel()
    k = min(k, n)
    top_exact = set(torch.argsort(exact.values.abs().reshape(-1), descending=True)[:k].tolist())
    top_atp = set(torch.argsort(atp.ranking_score.reshape(-1), descending=True)[:k].tolist())
    out = {
        "spearman": spearman(atp.values, exact.values),
        "spearman_abs": spearman(atp.ranking_score, exact.values.abs()),
        "top_k_recall": len(top_exact & top_atp) / k,
        "k": k,
        "n_components": n,
    }
    atp.meta["agreement"] = out
    atp.extras["exact"] = exact.values.detach().clone()
    return out
