"""Bootstrap confidence intervals over prompts (vectorised: one gather, no Python loop)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError


def _percentiles(boots: Float[Tensor, "n_boot m"], alpha: float) -> tuple[Tensor, Tensor]:
    """The alpha/2 and 1 - alpha/2 quantiles over resamples, interpolated linearly as
    `torch.quantile` does, from one sort of contiguous rows (`quantile` on dim 0 is ~1.5x
    slower)."""
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    if torch.isnan(boots).any():  # quantile's NaN handling (sort would move NaNs to the end)
        lo, hi = torch.quantile(boots, q, dim=0)
        return lo, hi
    s = boots.T.contiguous().sort(-1).values
    pos = q * (s.shape[-1] - 1)
    below = pos.floor().long()
    above = pos.ceil().long()
    w = pos - below
    both = s[:, below] * (1 - w) + s[:, above] * w  # [m, 2]
    return both[:, 0], both[:, 1]


@checked
def bootstrap_mean(
    samples: Float[Tensor, "n ..."],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean over axis 0 with a percentile bootstrap interval.

    Returns (mean, ci_low, ci_high), each of shape ``samples.shape[1:]``. With a single sample
    the interval collapses to the mean (there is no spread to resample).
    """
    if samples.ndim == 0 or samples.shape[0] == 0:
        raise InterpError("bootstrap_mean needs at least one sample along axis 0.")
    if not 0 < alpha < 1:
        raise InterpError(f"alpha must be in (0, 1), got {alpha}.")
    x = samples.detach().double()
    mean = x.mean(0)
    n = x.shape[0]
    if n == 1:
        return mean.float(), mean.float(), mean.float()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=gen)
    flat = x.reshape(n, -1).cpu()
    # Mean of each resample as a matrix product with the resample counts (memory n_boot x n).
    counts = torch.zeros(n_boot, n, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    boots = counts @ flat / n
    lo, hi = _percentiles(boots, alpha)
    shape = x.shape[1:]
    dt = samples.dtype if samples.is_floating_point() else torch.float32
    return mean.to(dt), lo.reshape(shape).to(dt), hi.reshape(shape).to(dt)


def bootstrap_ratio(
    numerator: Float[Tensor, "n ..."],
    denominator: Float[Tensor, " n"],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """``mean(numerator) / mean(denominator)`` with a percentile bootstrap interval.

    Normalised patching scores divide a mean effect by the mean clean-corrupt gap; resampling
    prompts resamples both, so the interval reflects the uncertainty of the gap as well.
    """
    if numerator.shape[0] != denominator.shape[0] or denominator.ndim != 1:
        raise InterpError(
            f"bootstrap_ratio: numerator {tuple(numerator.shape)} and denominator "
            f"{tuple(denominator.shape)} need the same prompt axis."
        )
    num = numerator.detach().double().cpu()
    den = denominator.detach().double().cpu()
    n = num.shape[0]
    flat = num.reshape(n, -1)
    ratio = flat.mean(0) / den.mean()
    shape = num.shape[1:]
    if n == 1:
        r = ratio.reshape(shape).float()
        return r, r, r
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=gen)
    counts = torch.zeros(n_boot, n, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    boots = (counts @ flat) / (counts @ den)[:, None]
    lo, hi = _percentiles(boots, alpha)
    return ratio.reshape(shape).float(), lo.reshape(shape).float(), hi.reshape(shape).float()


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    x, y = _ranks(a.reshape(-1).double()), _ranks(b.reshape(-1).double())
    x, y = x - x.mean(), y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else float("nan")


def _ranks(v: Tensor) -> Tensor:
    order = torch.argsort(v, stable=True)
    ranks = torch.empty_like(v)
    ranks[order] = torch.arange(len(v), dtype=v.dtype)
    for value in torch.unique(v):  # ties share their mean rank
        same = v == value
        if int(same.sum()) > 1:
            ranks[same] = ranks[same].mean()
    return ranks
