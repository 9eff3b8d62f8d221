"""Rank correlation: exact average ranks from one sort, no loop over tied values."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from interp.checks import checked


@checked
def ranks(v: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """0-based float64 ranks of a 1-D tensor (any dtype), on its device; tied values share the
    mean of their ranks (exact: the mean of ranks ``a..b`` is ``(a + b) / 2``). NaNs rank after
    every number, each on its own."""
    n = len(v)
    order = torch.argsort(v, stable=True)
    srt = v[order]
    # A tie group starts where the sorted value differs from the one before (NaN != NaN).
    start = torch.ones(n, dtype=torch.bool, device=v.device)
    start[1:] = srt[1:] != srt[:-1]
    group = start.cumsum(0) - 1
    end = torch.ones(n, dtype=torch.bool, device=v.device)
    end[:-1] = start[1:]
    first, last = torch.nonzero(start).flatten(), torch.nonzero(end).flatten()
    mean_rank = (first + last).double() / 2
    out = torch.empty(n, dtype=torch.float64, device=v.device)
    out[order] = mean_rank[group]
    return out


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two equally sized tensors, flattened (average ranks for
    ties); NaN when either is constant or holds a NaN (a NaN has no rank among numbers)."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    if bool(torch.isnan(a).any() | torch.isnan(b).any()):
        return float("nan")
    x, y = ranks(a), ranks(b)
    x, y = x - x.mean(), y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else float("nan")
