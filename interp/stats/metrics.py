"""Metrics over examples, weighted by resample counts, for many units at once.

Every metric takes per-unit predictions or scores ``[U, m]`` (or one unit, ``[m]``), labels
``[m]`` shared by the units, and optional example weights ``[B, m]``: resample counts from
`interp.stats.resampling.resample_counts`, so a bootstrap is ``B`` weighted evaluations of the
same predictions (matrix products and one cumulative sum, no gather of resampled copies).
Without weights the result has shape ``[U]`` (``[]`` for one unit); with them ``[B, U]``
(``[B]``).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.checks import checked

PAIRWISE_MAX = 1 << 23  # entries of the [unit, positive, negative] comparison table (64 MB)


def _weights(w: Tensor | None, like: Tensor) -> Tensor:
    """Example weights ``[B, m]`` on `like`'s device: all ones (one resample) when not given."""
    m = like.shape[-1]
    return torch.ones(1, m, dtype=torch.float64, device=like.device) if w is None else w.double()


def _unweighted(out: Tensor, w: Tensor | None) -> Tensor:
    return out[0] if w is None else out


def _units(x: Tensor) -> Tensor:
    return x[None] if x.ndim == 1 else x


def _shaped(out: Tensor, x: Tensor, w: Tensor | None) -> Tensor:
    """``[B, U]`` -> the documented shape for ``x`` (one unit or many) and ``w`` (or None)."""
    return _unweighted(out, w) if x.ndim > 1 else _unweighted(out, w)[..., 0]


@checked
def accuracy(
    pred: Int[Tensor, "*unit m"], y: Int[Tensor, "*yunit m"], w: Float[Tensor, "*B m"] | None = None
) -> Tensor:
    """Fraction of (weighted) examples predicted right."""
    p = _units(pred)
    ww = _weights(w, p)
    out = ww @ (p == y).double().T / ww.sum(-1, keepdim=True)
    return _shaped(out, pred, w)


@checked
def f1(
    pred: Int[Tensor, "*unit m"], y: Int[Tensor, "*yunit m"], w: Float[Tensor, "*B m"] | None = None
) -> Tensor:
    """Binary F1 of class 1 (0 when nothing is predicted positive and nothing is positive)."""
    p = _units(pred)
    ww = _weights(w, p)
    tp = ww @ ((p == 1) & (y == 1)).double().T
    fp = ww @ ((p == 1) & (y == 0)).double().T
    fn = ww @ ((p == 0) & (y == 1)).double().T
    den = 2 * tp + fp + fn
    out = torch.where(den > 0, 2 * tp / den.clamp_min(1e-300), torch.zeros_like(den))
    return _shaped(out, pred, w)


@checked
def r2(
    pred: Float[Tensor, "*unit m"], y: Float[Tensor, " m"], w: Float[Tensor, "*B m"] | None = None
) -> Tensor:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (weighted)."""
    p = _units(pred).double()
    ww = _weights(w, p)
    yd = y.double()
    total = ww.sum(-1, keepdim=True)
    mean = ww @ yd[:, None] / total
    ss_tot = ww @ (yd**2)[:, None] - total * mean**2
    ss_res = ww @ ((yd - p) ** 2).T
    out = 1 - ss_res / ss_tot.clamp_min(1e-300)
    return _shaped(out, pred, w)


@checked
def roc_auc(
    score: Float[Tensor, "*unit m"], y: Int[Tensor, " m"], w: Float[Tensor, "B m"] | None = None
) -> Tensor:
    """ROC-AUC as the (weighted) Mann-Whitney statistic, ties counted as half; NaN without both
    classes. ``y`` is 1 for positives and 0 for negatives.

    Two exact ways to the same number: while the table of every positive-negative comparison
    per unit fits `PAIRWISE_MAX` entries, the weighted statistic of all resamples is one matrix
    product with that table (the bootstrap's case: many resamples, a few hundred examples);
    otherwise the scores are sorted once per unit and weights enter through cumulative sums."""
    s = _units(score).double()
    pos, neg = y == 1, y == 0
    ww = _weights(w, s)
    if s.shape[0] * int(pos.sum()) * int(neg.sum()) <= PAIRWISE_MAX:
        u = _wins_pairs(s, pos, neg, ww)
    else:
        u = _wins_sorted(s, pos.double(), neg.double(), ww)
    n1, n0 = ww[:, pos].sum(-1, keepdim=True), ww[:, neg].sum(-1, keepdim=True)
    out = torch.where((n1 > 0) & (n0 > 0), u / (n1 * n0).clamp_min(1e-300), torch.nan)
    return _shaped(out, score, w)


def _wins_pairs(s: Tensor, pos: Tensor, neg: Tensor, ww: Tensor) -> Tensor:
    """Weighted count of (positive, negative) pairs ranked right, ties half: [B, U]."""
    sp, sn = s[:, pos], s[:, neg]  # [U, m1], [U, m0]
    U, m1, m0 = sp.shape[0], sp.shape[1], sn.shape[1]
    wins = (sn[:, None, :] < sp[:, :, None]).double()
    wins += 0.5 * (sn[:, None, :] == sp[:, :, None]).double()  # [U, m1, m0]
    wp, wn = ww[:, pos], ww[:, neg]  # [B, m1], [B, m0]
    # u[b, unit] = wp[b] @ wins[unit] @ wn[b], for all units in one product
    t = (wp @ wins.permute(1, 0, 2).reshape(m1, U * m0)).view(ww.shape[0], U, m0)
    return (t * wn[:, None, :]).sum(-1)


def _wins_sorted(s: Tensor, pos: Tensor, neg: Tensor, ww: Tensor) -> Tensor:
    """The same count from one sort per unit and cumulative sums of the negatives' weights."""
    U, m = s.shape
    order = s.argsort(-1)
    srt = s.gather(-1, order)
    lo = torch.searchsorted(srt, s, right=False)  # examples scoring strictly lower
    hi = torch.searchsorted(srt, s, right=True)  # ... lower or equal
    wneg = (ww * neg)[:, order]  # [B, U, m] in each unit's sorted order
    cum = torch.nn.functional.pad(wneg.cumsum(-1), (1, 0))
    B = ww.shape[0]
    below = cum.gather(-1, lo.expand(B, U, m))
    upto = cum.gather(-1, hi.expand(B, U, m))
    return ((ww * pos)[:, None, :] * (below + 0.5 * (upto - below))).sum(-1)


@checked
def roc_curve(
    score: Float[Tensor, " m"], y: Float[Tensor, " m"]
) -> tuple[Float[Tensor, " k"], Float[Tensor, " k"]]:
    """False- and true-positive rates over all thresholds, from (0, 0); examples with equal
    scores move together, so the trapezoidal area under the curve is `roc_auc`."""
    order = torch.argsort(-score, stable=True)
    s, t = score[order], y[order].double()
    last = torch.tensor([len(s) - 1], device=score.device)
    distinct = torch.cat([torch.nonzero(s.diff()).flatten(), last])
    tp = t.cumsum(0)[distinct]
    fp = (1 - t).cumsum(0)[distinct]
    zero = torch.zeros(1, dtype=torch.float64, device=score.device)
    return (
        torch.cat([zero, fp / max(1.0, float(fp[-1]))]),
        torch.cat([zero, tp / max(1.0, float(tp[-1]))]),
    )
