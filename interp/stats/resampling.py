"""Percentile bootstrap over examples, vectorised: one matrix of resample counts, no Python loop.

Every bootstrap in the package draws its resamples here (`resample_counts`), so the same seed
gives the same resamples whichever analysis asks. A statistic of a resample is computed from the
counts, not from a gathered copy: a mean is a matrix product ``counts @ x / n``, and the weighted
metrics of `interp.stats.metrics` take the counts as example weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.checks import checked
from interp.deprecation import renamed
from interp.errors import InterpError

CHUNK = 100  # resamples evaluated at once by `bootstrap` (bounds ROC-AUC's [B, U, m] sums)


@checked
def resample_counts(n: int, n_boot: int, seed: int) -> Float[Tensor, "n_boot n"]:
    """How often each of ``n`` examples is drawn in each of ``n_boot`` resamples with
    replacement (float64, rows sum to ``n``), from ``torch.Generator().manual_seed(seed)``."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=gen)
    counts = torch.zeros(n_boot, n, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return counts


def tail_mass(confidence: float, where: str) -> float:
    """The mass left outside a ``confidence`` interval (0.95 -> 0.05), refusing levels outside
    (0, 1) (every bootstrap's interval goes through `percentile_interval`, which calls this).

    Levels are decimals: rounding to 12 places removes the binary error of ``1 - 0.95``, so the
    quantiles are exactly 0.025 and 0.975 as written."""
    bad = isinstance(confidence, bool) or not isinstance(confidence, int | float)
    if bad or not 0 < confidence < 1:
        raise InterpError(f"{where}: confidence must be in (0, 1), got {confidence!r}.")
    if isinstance(confidence, _FromTail):
        return confidence.tail
    return round(1.0 - confidence, 12)


class _FromTail(float):
    """A level given as its old tail mass (``alpha=``): the tail is kept exactly, so old calls
    give bit-identical intervals whatever the digits (``1 - (1 - a)`` is not always ``a``)."""

    tail: float

    def __new__(cls, tail: float) -> _FromTail:
        level = super().__new__(cls, 1.0 - tail)
        level.tail = float(tail)
        return level


def _from_alpha(alpha: float) -> float:
    # An invalid old value stays invalid as a level (tail_mass refuses it by name).
    if isinstance(alpha, int | float) and not isinstance(alpha, bool) and 0 < alpha < 1:
        return _FromTail(alpha)
    return 1.0 - alpha if isinstance(alpha, int | float) and not isinstance(alpha, bool) else alpha


#: `alpha=` (the tail mass) was the interval's old keyword; `confidence=` is the level. It is
#: keyword-only, so an old positional tail mass (``percentile_interval(b, 0.05)``) fails loudly
#: instead of reading as a 5% interval.
_OLD_ALPHA = renamed(alpha=("confidence", _from_alpha))


@_OLD_ALPHA
@checked
def percentile_interval(
    boots: Float[Tensor, "n_boot ..."],
    *,
    confidence: float = 0.95,
    nan: Literal["propagate", "omit"] = "propagate",
) -> tuple[Tensor, Tensor]:
    """The ``(1 - confidence) / 2`` and ``1 - (1 - confidence) / 2`` quantiles over resamples
    (axis 0), interpolated linearly as `torch.quantile` does.

    ``nan="propagate"``: a NaN among a cell's resamples makes its bounds NaN (`torch.quantile`);
    without NaNs the bounds come from one sort of contiguous rows (``quantile`` on dim 0 is
    ~1.5x slower). ``nan="omit"``: NaN resamples are left out (`torch.nanquantile`), for
    statistics undefined on some resamples, such as ROC-AUC of a resample with one class.
    """
    alpha = tail_mass(confidence, "percentile_interval")
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    if nan == "omit":
        lo, hi = torch.nanquantile(boots.double(), q, dim=0)
        return lo, hi
    if torch.isnan(boots).any():  # quantile's NaN handling (sort would move NaNs to the end)
        lo, hi = torch.quantile(boots, q, dim=0)
        return lo, hi
    shape = boots.shape[1:]
    s = boots.reshape(boots.shape[0], -1).T.contiguous().sort(-1).values
    pos = q * (s.shape[-1] - 1)
    below = pos.floor().long()
    above = pos.ceil().long()
    w = pos - below
    both = s[:, below] * (1 - w) + s[:, above] * w  # [m, 2]
    return both[:, 0].reshape(shape), both[:, 1].reshape(shape)


@_OLD_ALPHA
@checked
def bootstrap(
    fn: Callable[[Tensor], Tensor],
    n_eval: int,
    n_boot: int,
    seed: int,
    *,
    confidence: float = 0.95,
) -> tuple[Tensor, Tensor]:
    """Percentile interval of ``fn(weights)`` over resamples of ``n_eval`` evaluated examples.

    ``fn`` maps resample counts ``[B, n_eval]`` to values ``[B, *shape]`` (a weighted metric
    of `interp.stats.metrics`); returns (low, high) of shape ``shape``, NaN resamples left out.
    Every value computed from the same counts shares the resamples, so a difference of two
    metrics gets its interval from paired resamples."""
    counts = resample_counts(n_eval, n_boot, seed)
    vals = torch.cat([fn(counts[s : s + CHUNK]) for s in range(0, n_boot, CHUNK)])
    return percentile_interval(vals, confidence=confidence, nan="omit")


@_OLD_ALPHA
@checked
def bootstrap_mean(
    samples: Float[Tensor, "n ..."],
    n_boot: int = 1000,
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean over axis 0 with a percentile bootstrap interval.

    Returns (mean, ci_low, ci_high), each of shape ``samples.shape[1:]``. With a single sample
    the interval collapses to the mean (there is no spread to resample).
    """
    if samples.ndim == 0 or samples.shape[0] == 0:
        raise InterpError("bootstrap_mean needs at least one sample along axis 0.")
    x = samples.detach().double()
    mean = x.mean(0)
    n = x.shape[0]
    if n == 1:
        tail_mass(confidence, "bootstrap_mean")  # no interval to compute; a bad level is still bad
        return mean.float(), mean.float(), mean.float()
    counts = resample_counts(n, n_boot, seed)
    flat = x.reshape(n, -1).cpu()
    # Mean of each resample as a matrix product with the resample counts (memory n_boot x n).
    boots = counts @ flat / n
    lo, hi = percentile_interval(boots, confidence=confidence)
    shape = x.shape[1:]
    dt = samples.dtype if samples.is_floating_point() else torch.float32
    return mean.to(dt), lo.reshape(shape).to(dt), hi.reshape(shape).to(dt)


@_OLD_ALPHA
@checked
def bootstrap_ratio(
    numerator: Float[Tensor, "n ..."],
    denominator: Float[Tensor, " n"],
    n_boot: int = 1000,
    *,
    confidence: float = 0.95,
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
        tail_mass(confidence, "bootstrap_ratio")
        r = ratio.reshape(shape).float()
        return r, r, r
    counts = resample_counts(n, n_boot, seed)
    boots = (counts @ flat) / (counts @ den)[:, None]
    lo, hi = percentile_interval(boots, confidence=confidence)
    return ratio.reshape(shape).float(), lo.reshape(shape).float(), hi.reshape(shape).float()
