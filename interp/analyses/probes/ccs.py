"""Contrast-Consistent Search (Burns et al. 2022) and the sanity baselines of Farquhar et al. 2023.

A contrast pair is the same input completed both ways (``x+`` = "... true", ``x-`` = "... false").
CCS fits ``p(x) = sigmoid(w.x + b)`` without labels by minimising
``(p(x+) - (1 - p(x-)))^2 + min(p(x+), p(x-))^2`` on mean-normalised pairs, keeping the best of
several random restarts. Its sign is arbitrary, so accuracy is ``max(acc, 1 - acc)``. Farquhar et
al. showed CCS finds the most prominent binary feature, not necessarily truth: compare it against
the first principal component and 2-means clustering of the contrast differences.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.probes.linear import as_units
from interp.checks import checked
from interp.errors import InterpError


@checked
class CCSProbe:
    """CCS for many units at once: restarts x units are optimised together by Adam."""

    def __init__(
        self,
        n_restarts: int = 10,
        n_steps: int = 1000,
        lr: float = 1e-2,
        weight_decay: float = 0.01,
        seed: int = 0,
    ) -> None:
        if n_restarts < 1 or n_steps < 1:
            raise InterpError("CCS needs n_restarts >= 1 and n_steps >= 1.")
        self.n_restarts, self.n_steps, self.lr = n_restarts, n_steps, lr
        self.weight_decay, self.seed = weight_decay, seed

    def _normalise(self, x_pos: Tensor, x_neg: Tensor, fit: bool) -> tuple[Tensor, Tensor]:
        """Mean-normalised sides in float64, x+ written as x- plus the contrast differences, so
        that pairs whose sides differ only by rounding give p(x+) == p(x-) exactly."""
        if fit:
            self.mean_pos_ = x_pos.double().mean(1, keepdim=True)
            self.mean_neg_ = x_neg.double().mean(1, keepdim=True)
        xn = x_neg.double() - self.mean_neg_
        return xn + contrast_differences(x_pos, x_neg, self.mean_pos_, self.mean_neg_), xn

    @checked
    def fit(self, x_pos: Float[Tensor, "*unit n d"], x_neg: Float[Tensor, "*unit n d"]) -> CCSProbe:
        xp, xn = _pairs(x_pos, x_neg)
        xp, xn = (x.float() for x in self._normalise(xp, xn, fit=True))
        U, _, d = xp.shape
        R = self.n_restarts
        gen = torch.Generator().manual_seed(self.seed)
        w0 = torch.randn(R, U, d, generator=gen) / d**0.5
        w = w0.to(xp.device).requires_grad_(True)
        b = torch.zeros(R, U, device=xp.device, requires_grad=True)
        opt = torch.optim.AdamW([w, b], lr=self.lr, weight_decay=self.weight_decay)
        with torch.enable_grad():
            for _ in range(self.n_steps):
                opt.zero_grad()
                loss = _ccs_loss(xp, xn, w, b)  # [R, U]
                loss.sum().backward()
                opt.step()
        with torch.no_grad():
            final = _ccs_loss(xp, xn, w, b)
            best = final.argmin(0)  # [U]
            units = torch.arange(U)
            self.coef_ = w.detach()[best, units].double()
            self.intercept_ = b.detach()[best, units].double()
            self.loss_ = final[best, units].double()
        return self

    @checked
    def predict_proba(
        self, x_pos: Float[Tensor, "*unit n d"], x_neg: Float[Tensor, "*unit n d"]
    ) -> Float[Tensor, "unit n"]:
        """``(p(x+) + 1 - p(x-)) / 2``: the probability that the "+" completion is the true one
        (up to CCS's arbitrary sign)."""
        xp, xn = self._normalise(*_pairs(x_pos, x_neg), fit=False)
        pp = torch.sigmoid(torch.einsum("und,ud->un", xp, self.coef_) + self.intercept_[:, None])
        pn = torch.sigmoid(torch.einsum("und,ud->un", xn, self.coef_) + self.intercept_[:, None])
        return 0.5 + (pp - pn) / 2  # exactly 0.5 where the two sides are equal

    def predict(self, x_pos: Tensor, x_neg: Tensor) -> Tensor:
        return (self.predict_proba(x_pos, x_neg) > 0.5).long()


def _pairs(x_pos: Tensor, x_neg: Tensor) -> tuple[Tensor, Tensor]:
    xp, xn = as_units(x_pos), as_units(x_neg)
    if xp.shape != xn.shape:
        raise InterpError(
            f"Contrast pairs need equal shapes, got {tuple(xp.shape)} and {tuple(xn.shape)}."
        )
    return xp, xn


def _ccs_loss(xp: Tensor, xn: Tensor, w: Tensor, b: Tensor) -> Tensor:
    pp = torch.sigmoid(torch.einsum("und,rud->run", xp, w) + b[..., None])
    pn = torch.sigmoid(torch.einsum("und,rud->run", xn, w) + b[..., None])
    consistency = (pp - (1 - pn)) ** 2
    confidence = torch.minimum(pp, pn) ** 2
    return (consistency + confidence).mean(-1)


def sign_free_accuracy(pred: Tensor, y: Tensor) -> Tensor:
    """``max(acc, 1 - acc)`` per unit: for unsupervised directions whose sign is arbitrary."""
    acc = (pred == y.to(pred.device)).double().mean(-1)
    return torch.maximum(acc, 1 - acc)


def contrast_differences(
    x_pos: Tensor, x_neg: Tensor, mean_pos: Tensor | None = None, mean_neg: Tensor | None = None
) -> Tensor:
    """Mean-normalised ``x+ - x-`` in float64 (the baselines' features); means from training if
    given.

    Differences no larger than the inputs' rounding are set to zero. Where the two completions
    differ only by a constant (at the embedding, by one fixed token) the differences are rounding
    noise, and a direction fitted to them would report a spurious accuracy instead of a tie.
    """
    xp, xn = _pairs(x_pos, x_neg)
    eps = torch.finfo(xp.dtype).eps if xp.dtype.is_floating_point else 0.0
    xp, xn = xp.double(), xn.double()
    mp = xp.mean(1, keepdim=True) if mean_pos is None else mean_pos.double()
    mn = xn.mean(1, keepdim=True) if mean_neg is None else mean_neg.double()
    diffs = (xp - mp) - (xn - mn)
    # A float rounds by at most eps/2 of its size; 4x that covers each side's value and the
    # rounding its mean averages over (the size of the values, not of the mean, which may be 0).
    size = xp.abs() + xn.abs()
    noise = 2 * eps * (size + size.mean(1, keepdim=True))
    return diffs.masked_fill(diffs.abs() <= noise, 0.0)


class PCABaseline:
    """Sign of the projection on the first principal component of the contrast differences."""

    @checked
    def fit(self, diffs: Float[Tensor, "unit n d"]) -> PCABaseline:
        self.center_ = diffs.mean(1, keepdim=True)
        _, _, vh = torch.linalg.svd(diffs - self.center_, full_matrices=False)
        self.component_ = vh[:, 0]  # [U, d]
        return self

    def predict(self, diffs: Tensor) -> Tensor:
        return (torch.einsum("und,ud->un", diffs - self.center_, self.component_) > 0).long()


@checked
class KMeansBaseline:
    """2-means on the contrast differences (k-means++ start, Lloyd iterations, per unit)."""

    def __init__(self, n_iter: int = 50, seed: int = 0) -> None:
        self.n_iter, self.seed = n_iter, seed

    @checked
    def fit(self, diffs: Float[Tensor, "unit n d"]) -> KMeansBaseline:
        U, n, _ = diffs.shape
        gen = torch.Generator().manual_seed(self.seed)
        units = torch.arange(U)
        first = torch.randint(0, n, (U,), generator=gen)
        c0 = diffs[units, first]
        # k-means++: the second centre is drawn with probability proportional to squared distance.
        dist = ((diffs - c0[:, None]) ** 2).sum(-1).cpu() + 1e-30
        second = torch.multinomial(dist / dist.sum(-1, keepdim=True), 1, generator=gen)[:, 0]
        centres = torch.stack([c0, diffs[units, second.to(diffs.device)]], 1)  # [U, 2, d]
        for _ in range(self.n_iter):
            assign = self._assign(diffs, centres)
            new = centres.clone()
            for k in (0, 1):
                m = (assign == k).double()
                cnt = m.sum(-1, keepdim=True)
                mean = torch.einsum("un,und->ud", m, diffs) / cnt.clamp_min(1)
                new[:, k] = torch.where(cnt > 0, mean, centres[:, k])
            if torch.allclose(new, centres):
                break
            centres = new
        self.centres_ = centres
        return self

    @staticmethod
    def _assign(diffs: Tensor, centres: Tensor) -> Tensor:
        d = ((diffs[:, :, None] - centres[:, None]) ** 2).sum(-1)  # [U, n, 2]
        return d.argmin(-1)

    def predict(self, diffs: Tensor) -> Tensor:
        return self._assign(diffs, self.centres_)
