"""The probing protocol: splits, metrics with bootstrap intervals, control tasks, curve summary.

Metrics are computed for every unit at once. Bootstrap intervals resample the evaluated examples
(the held-out set, or all examples' out-of-fold predictions under k-fold) with one shared index
matrix, so a difference such as selectivity gets its interval from the same resamples.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError


@dataclass(frozen=True)
class Split:
    """Which examples train which fold's probe, and which it is evaluated on."""

    folds: list[tuple[Tensor, Tensor]]  # (train index, test index) per fold
    kind: str  # "holdout" or "kfold"
    description: dict[str, object]

    @property
    def eval_index(self) -> Tensor:
        """Evaluated examples in the order the out-of-fold predictions are concatenated."""
        return torch.cat([te for _, te in self.folds])


def make_split(
    y: Tensor, split: str | int, test_size: float = 0.25, seed: int = 0, stratify: bool = True
) -> Split:
    """``"holdout"`` (stratified, `test_size`) or an int k >= 2 (stratified k-fold)."""
    n = len(y)
    rng = random.Random(seed)
    if stratify:
        strata = [[i for i in range(n) if int(y[i]) == c] for c in sorted(set(y.tolist()))]
    else:
        strata = [list(range(n))]
    for s in strata:
        rng.shuffle(s)
    if split == "holdout":
        if not 0 < test_size < 1:
            raise InterpError(f"test_size must be in (0, 1), got {test_size}.")
        if stratify and min(len(s) for s in strata) < 2:
            raise InterpError(
                "A held-out split needs at least 2 examples of each class (one to train on, "
                "one to test); the smallest class has 1. Give more examples."
            )
        test = sorted(i for s in strata for i in s[: max(1, round(len(s) * test_size))])
        train = sorted(set(range(n)) - set(test))
        if not train:
            raise InterpError(f"{n} examples leave nothing to train on; give more examples.")
        folds = [(torch.tensor(train), torch.tensor(test))]
        desc: dict[str, object] = {
            "kind": "holdout",
            "test_size": test_size,
            "n_train": len(train),
            "n_test": len(test),
            "stratified": stratify,
            "seed": seed,
        }
        return Split(folds, "holdout", desc)
    if isinstance(split, int) and not isinstance(split, bool) and split >= 2:
        k = split
        if stratify and min(len(s) for s in strata) < k:
            raise InterpError(
                f"{k}-fold cross-validation needs at least {k} examples of each class; the "
                f"smallest class has {min(len(s) for s in strata)}. Use fewer folds or 'holdout'."
            )
        fold_of = {}
        for s in strata:
            for j, i in enumerate(s):
                fold_of[i] = j % k
        folds = []
        for f in range(k):
            test = [i for i in range(n) if fold_of[i] == f]
            train = [i for i in range(n) if fold_of[i] != f]
            folds.append((torch.tensor(train), torch.tensor(test)))
        desc = {"kind": "kfold", "k": k, "n": n, "stratified": stratify, "seed": seed}
        return Split(folds, "kfold", desc)
    raise InterpError(f"split={split!r}: use 'holdout' or a number of folds k >= 2.")


def control_labels(y: Tensor, types: Sequence[Hashable] | None, seed: int = 0) -> Tensor:
    """Hewitt & Liang's control task: each input type gets a label drawn once from the empirical
    label distribution; all examples of a type share it. ``types=None`` makes every example its
    own type (a random-label control)."""
    n = len(y)
    keys: Sequence[Hashable] = list(range(n)) if types is None else types
    if len(keys) != n:
        raise InterpError(f"control types has {len(keys)} entries for {n} examples.")
    rng = random.Random(seed)
    pool = y.tolist()
    table: dict[Hashable, object] = {}
    out = []
    for key in keys:
        if key not in table:
            table[key] = rng.choice(pool)
        out.append(table[key])
    return torch.tensor(out, dtype=y.dtype)


# ---------------------------------------------------------------- metrics (vectorised)
#
# Every metric takes per-unit predictions or scores [U, m], labels [m] shared by the units, and
# optional example weights [B, m]: resample counts, so a bootstrap is B weighted evaluations of
# the same predictions (matrix products and one cumulative sum, no gather of resampled copies).
# Without weights the result has shape [U]; with them [B, U].


def _weights(w: Tensor | None, m: int) -> Tensor:
    return torch.ones(1, m, dtype=torch.float64) if w is None else w.double()


def _unweighted(out: Tensor, w: Tensor | None) -> Tensor:
    return out[0] if w is None else out


def _units(x: Tensor) -> Tensor:
    return x[None] if x.ndim == 1 else x


def accuracy(pred: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
    p = _units(pred)
    ww = _weights(w, p.shape[-1])
    out = ww @ (p == y).double().T / ww.sum(-1, keepdim=True)
    return _unweighted(out, w) if pred.ndim > 1 else _unweighted(out, w)[..., 0]


def f1(pred: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
    """Binary F1 of class 1 (0 when nothing is predicted positive and nothing is positive)."""
    p = _units(pred)
    ww = _weights(w, p.shape[-1])
    tp = ww @ ((p == 1) & (y == 1)).double().T
    fp = ww @ ((p == 1) & (y == 0)).double().T
    fn = ww @ ((p == 0) & (y == 1)).double().T
    den = 2 * tp + fp + fn
    out = torch.where(den > 0, 2 * tp / den.clamp_min(1e-300), torch.zeros_like(den))
    return _unweighted(out, w) if pred.ndim > 1 else _unweighted(out, w)[..., 0]


PAIRWISE_MAX = 1 << 23  # entries of the [unit, positive, negative] comparison table (64 MB)


def auroc(score: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
    """ROC-AUC as the (weighted) Mann-Whitney statistic, ties counted as half; NaN without both
    classes.

    Two exact ways to the same number: while the table of every positive-negative comparison
    per unit fits `PAIRWISE_MAX` entries, the weighted statistic of all resamples is one matrix
    product with that table (the bootstrap's case: many resamples, a few hundred examples);
    otherwise the scores are sorted once per unit and weights enter through cumulative sums."""
    s = _units(score).double()
    pos, neg = y == 1, y == 0
    ww = _weights(w, s.shape[1])
    if s.shape[0] * int(pos.sum()) * int(neg.sum()) <= PAIRWISE_MAX:
        u = _wins_pairs(s, pos, neg, ww)
    else:
        u = _wins_sorted(s, pos.double(), neg.double(), ww)
    n1, n0 = ww[:, pos].sum(-1, keepdim=True), ww[:, neg].sum(-1, keepdim=True)
    out = torch.where((n1 > 0) & (n0 > 0), u / (n1 * n0).clamp_min(1e-300), torch.nan)
    return _unweighted(out, w) if score.ndim > 1 else _unweighted(out, w)[..., 0]


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


def r2(pred: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
    p = _units(pred).double()
    ww = _weights(w, p.shape[-1])
    yd = y.double()
    total = ww.sum(-1, keepdim=True)
    mean = ww @ yd[:, None] / total
    ss_tot = ww @ (yd**2)[:, None] - total * mean**2
    ss_res = ww @ ((yd - p) ** 2).T
    out = 1 - ss_res / ss_tot.clamp_min(1e-300)
    return _unweighted(out, w) if pred.ndim > 1 else _unweighted(out, w)[..., 0]


def bootstrap(
    fn: object,
    n_eval: int,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> tuple[Tensor, Tensor]:
    """Percentile interval of ``fn(weights)`` over resamples of the evaluated examples.

    ``fn`` maps resample counts ``[B, m]`` to values ``[B, *shape]``; returns (low, high)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n_eval, (n_boot, n_eval), generator=gen)
    counts = torch.zeros(n_boot, n_eval, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    # Resamples in chunks bound the [resamples, units, examples] cumulative sums of ROC-AUC.
    vals = torch.cat([fn(counts[s : s + 100]) for s in range(0, n_boot, 100)])  # type: ignore[operator]
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    lo, hi = torch.nanquantile(vals.double(), q, dim=0)
    return lo, hi


# ---------------------------------------------------------------- curve summary


def jump_and_plateau(
    acc: Float[Tensor, " layer"], chance: float = 0.5, tol: float = 0.02
) -> tuple[int, int]:
    """Indices of the layer where accuracy jumps, the first one reaching halfway from `chance`
    to the best accuracy (robust to noise below chance), and where it plateaus, the first one
    within `tol` of the best accuracy."""
    a = acc.double()
    best = float(a.max())
    # Below chance everywhere: the threshold falls back to the best layer itself.
    jump = int((a >= min(best, chance + 0.5 * (best - chance))).nonzero()[0])
    plateau = int((a >= best - tol).nonzero()[0])
    return jump, plateau
