"""Rank correlation: exact average ranks from one sort, no loop over tied values."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def ranks(v: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """0-based ranks of a 1-D tensor; tied values share the mean of their ranks (exact: the
    mean of ranks ``a..b`` is ``(a + b) / 2``). NaNs rank after every number, each on its own."""
    n = len(v)
    order = torch.argsort(v, stable=True)
    srt = v[order]
    # A tie group starts where the sorted value differs from the one before (NaN != NaN).
    start = torch.ones(n, dtype=torch.bool)
    start[1:] = srt[1:] != srt[:-1]
    group = start.cumsum(0) - 1
    end = torch.ones(n, dtype=torch.bool)
    end[:-1] = start[1:]
    first, last = torch.nonzero(start).flatten(), torch.nonzero(end).flatten()
    mean_rank = (first + last).to(v.dtype) / 2
    out = torch.empty_like(v)
    out[order] = mean_rank[group]
    return out


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two equally sized tensors, flattened (average ranks for
    ties); NaN when either is constant."""
    x, y = ranks(a.reshape(-1).double()), ranks(b.reshape(-1).double())
    x, y = x - x.mean(), y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else float("nan")
