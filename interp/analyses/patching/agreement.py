"""How well attribution patching ranks components: its agreement with exact patching."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import Result
from interp.results.patching import AtPResult
from interp.stats import spearman


def rank_agreement(atp: AtPResult, exact: Tensor, k: int) -> dict[str, Any]:
    """Spearman of the signed scores and of AtP's ranking score against |exact|, and top-k
    recall: the share of the k largest |exact| among AtP's top k."""
    n = atp.values.numel()
    k = min(k, n)
    top_exact = set(torch.argsort(exact.abs().reshape(-1), descending=True)[:k].tolist())
    top_atp = set(torch.argsort(atp.ranking_score.reshape(-1), descending=True)[:k].tolist())
    return {
        "spearman": spearman(atp.values, exact),
        "spearman_abs": spearman(atp.ranking_score, exact.abs()),
        "top_k_recall": len(top_exact & top_atp) / k,
        "k": k,
        "n_components": n,
    }


@checked
def agreement(atp: AtPResult, exact: Result, k: int = 10) -> AtPResult:
    """AtP's agreement with exact patching of the same components.

    Returns a new `AtPResult` (`atp` is left as it is) whose ``agreement`` holds Spearman
    (signed scores; ``spearman_abs`` for the ranking score against |exact|) and top-k recall
    (largest |exact| among AtP's top k), and whose ``exact`` holds the exact scores, so
    ``.scatter()`` draws the comparison.
    """
    if exact.values.shape != atp.values.shape:
        raise InterpError(
            f"Shapes differ: AtP {tuple(atp.values.shape)} vs exact {tuple(exact.values.shape)}; "
            "compare the same target, per_position and mode."
        )
    scores = exact.values.detach().clone()
    return replace(atp, exact=scores, agreement=rank_agreement(atp, scores, k))
