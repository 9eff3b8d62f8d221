"""Linear probes trained for many units (layers or heads) at once, in torch.

Every probe takes features ``X`` of shape ``[unit, n, d]`` (or ``[n, d]`` for one unit) and labels
``y`` of shape ``[n]`` shared by all units, and follows scikit-learn's estimator shape:
hyperparameters in the constructor, ``fit`` / ``predict`` / ``score``, learned state with a
trailing underscore. Learned weights are always expressed in the raw feature space (any
standardisation is folded back in), so ``coef_`` is a direction in the residual stream.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.probes.newton import cholesky, cholesky_solve, logistic_newton
from interp.checks import checked
from interp.errors import InterpError

Features = Float[Tensor, "*unit n d"]  # [n, d] is one unit
Labels = Float[Tensor, " n"]  # 0/1 classes or regression targets (shapes are what is checked)
DEFAULT_BUDGET = 512 << 20  # bytes for the per-unit Hessians of one chunk


def spd_solve(A: Float[Tensor, "unit k k"], b: Float[Tensor, "unit k"]) -> Tensor:
    """Solve symmetric positive definite systems by Cholesky.

    (Not ``torch.linalg.solve``: with torch 2.13's MKL build it hangs on batched float64 systems
    once ``torch.set_num_threads`` has been called, which test runners and users do.)
    """
    return cholesky_solve(cholesky(A), b[..., None])[..., 0]


NOT_FINITE = (
    "Features contain NaN or inf: check the cache (dtype overflow in float16?) "
    "or drop the affected examples."
)


def as_units(X: Tensor, check_finite: bool = True) -> Tensor:
    """``[n, d]`` -> ``[1, n, d]``; checks shape and (unless told not to) finiteness."""
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3:
        raise InterpError(f"Features must be [n, d] or [unit, n, d], got shape {tuple(X.shape)}.")
    if X.shape[1] == 0:
        raise InterpError("Features have no examples.")
    if check_finite and not torch.isfinite(X).all():
        raise InterpError(NOT_FINITE)
    return X


def check_labels(y: Tensor, n: int, binary: bool) -> Tensor:
    y = torch.as_tensor(y)
    if y.ndim != 1 or len(y) != n:
        raise InterpError(
            f"Labels must be a vector of {n} entries (one per example), got {tuple(y.shape)}."
        )
    if binary:
        classes = torch.unique(y)
        if len(classes) != 2 or not set(classes.tolist()) <= {0, 1}:
            raise InterpError(
                f"Binary probes need labels 0 and 1, both present; got classes {classes.tolist()}."
            )
    elif not torch.isfinite(y.double()).all():
        raise InterpError("Regression targets contain NaN or inf.")
    return y


class _Standardizer:
    """Per-unit, per-feature z-scoring fitted on the training examples."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def fit(self, X: Tensor) -> Tensor:
        """The z-scored features (a new tensor when on). A NaN or inf anywhere in X makes its
        feature's mean or spread non-finite, so checking those [unit, d] numbers checks X."""
        if self.on:
            self.mean_ = X.mean(1, keepdim=True)
            Z = X - self.mean_
            std = torch.linalg.vector_norm(Z, dim=1, keepdim=True) / X.shape[1] ** 0.5
            if not (torch.isfinite(self.mean_).all() and torch.isfinite(std).all()):
                raise InterpError(NOT_FINITE)
            # Features that are constant up to float noise stay unscaled (scaling would turn
            # the noise into unit-variance features), as scikit-learn's StandardScaler does.
            tiny = std <= 1e-7 * std.amax(-1, keepdim=True).clamp_min(1e-30)
            self.scale_ = torch.where(tiny, torch.ones_like(std), std)
            return Z.div_(self.scale_)
        if not torch.isfinite(X).all():
            raise InterpError(NOT_FINITE)
        self.mean_ = torch.zeros_like(X[:, :1])
        self.scale_ = torch.ones_like(X[:, :1])
        return X

    def raw(self, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Weights on standardised features -> weights and intercept on raw features."""
        w_raw = w / self.scale_[:, 0]
        return w_raw, b - (w_raw * self.mean_[:, 0]).sum(-1)


class _Linear:
    coef_: Tensor
    intercept_: Tensor
    standardize: bool

    def _standardized(self, X: Features, y: Tensor, binary: bool) -> tuple[Tensor, Tensor]:
        """Checked float64 features z-scored per unit (scaler kept for `raw`), and labels."""
        X = as_units(X, check_finite=False).double()  # the scaler checks it
        y = check_labels(y, X.shape[1], binary=binary).to(X.device).double()
        self._scaler = _Standardizer(self.standardize)
        return self._scaler.fit(X), y

    def decision_function(self, X: Tensor) -> Float[Tensor, "unit n"]:
        X = as_units(X).to(self.coef_.dtype)
        if X.shape[0] != self.coef_.shape[0] and X.shape[0] != 1:
            raise InterpError(f"Fitted for {self.coef_.shape[0]} units, got {X.shape[0]}.")
        return torch.einsum("und,ud->un", X, self.coef_) + self.intercept_[:, None]


class _Classifier(_Linear):
    """Binary probes: class 1 where the decision function is positive."""

    def predict(self, X: Tensor) -> Tensor:
        return (self.decision_function(X) > 0).long()

    def score(self, X: Tensor, y: Tensor) -> Float[Tensor, " unit"]:
        """Accuracy per unit."""
        pred = self.predict(X)
        y = check_labels(y, pred.shape[1], binary=True).to(pred.device)
        return (pred == y).double().mean(-1)


@checked
class LogisticProbe(_Classifier):
    """L2-regularised logistic regression, one per unit, solved by batched Newton steps
    (`interp.analyses.probes.newton`).

    Minimises ``sum_i logloss_i + ||w||^2 / (2 C)`` (intercept not penalised): the objective of
    scikit-learn's ``LogisticRegression(C=C)``, on z-scored features when ``standardize``.
    With ``warm_start``, a refit starts from the previous solution (same units and features),
    as scikit-learn's ``warm_start``: same optimum, fewer iterations on similar data.
    """

    def __init__(
        self,
        C: float = 1.0,
        fit_intercept: bool = True,
        standardize: bool = True,
        max_iter: int = 50,
        tol: float = 1e-8,
        memory_budget: int = DEFAULT_BUDGET,
        warm_start: bool = False,
    ) -> None:
        if C <= 0:
            raise InterpError(f"C must be positive, got {C}.")
        if max_iter < 1 or tol <= 0:
            raise InterpError(f"max_iter must be >= 1 and tol > 0, got {max_iter} and {tol}.")
        self.C, self.fit_intercept, self.standardize = C, fit_intercept, standardize
        self.max_iter, self.tol, self.memory_budget = max_iter, tol, memory_budget
        self.warm_start = warm_start

    @checked
    def fit(self, X: Features, y: Labels) -> LogisticProbe:
        Z, y = self._standardized(X, y, binary=True)
        U, n, d = Z.shape
        init = self._init(U, d)
        k = d + int(self.fit_intercept)
        m = min(n, k)  # side of the Newton systems (example space when d > n)
        chunk = max(1, self.memory_budget // (4 * (n * k + 3 * m * m)))
        ws, iters = [], []
        for s in range(0, U, chunk):
            w, it = logistic_newton(
                Z[s : s + chunk],
                y,
                self.C,
                self.fit_intercept,
                self.tol,
                self.max_iter,
                None if init is None else init[s : s + chunk],
            )
            ws.append(w)
            iters.append(it)
        w = torch.cat(ws)
        b = w[:, d] if self.fit_intercept else torch.zeros(U, dtype=w.dtype, device=w.device)
        self.coef_, self.intercept_ = self._scaler.raw(w[:, :d], b)
        self.n_iter_ = max(iters)
        return self

    def _init(self, U: int, d: int) -> Tensor | None:
        """The previous solution in the new standardised coordinates (warm start), if any."""
        if not self.warm_start or getattr(self, "coef_", None) is None:
            return None
        if tuple(self.coef_.shape) != (U, d):
            raise InterpError(
                f"warm_start: fitted for {tuple(self.coef_.shape)} (units, features), got "
                f"{(U, d)}; use a new probe for different features."
            )
        mean, scale = self._scaler.mean_[:, 0], self._scaler.scale_[:, 0]
        w = self.coef_.to(mean) * scale
        if not self.fit_intercept:
            return w
        b = self.intercept_.to(mean) + (self.coef_.to(mean) * mean).sum(-1)
        return torch.cat([w, b[:, None]], -1)

    def predict_proba(self, X: Tensor) -> Float[Tensor, "unit n"]:
        return torch.sigmoid(self.decision_function(X))


class MassMeanProbe(_Classifier):
    """Direction ``mu_1 - mu_0`` (raw features), threshold halfway between the class means.

    The mass-mean probe of ITI and Marks & Tegmark: no optimisation, and the direction used to
    steer. ``predict_proba`` squashes the projection by its training spread (a ranking score).
    """

    @checked
    def fit(self, X: Features, y: Labels) -> MassMeanProbe:
        X = as_units(X).double()
        y = check_labels(y, X.shape[1], binary=True).to(X.device)
        mu1, mu0 = X[:, y == 1].mean(1), X[:, y == 0].mean(1)
        self.coef_ = mu1 - mu0
        self.intercept_ = -(self.coef_ * (mu1 + mu0) / 2).sum(-1)
        self.scale_ = self.decision_function(X).std(-1).clamp_min(1e-12)
        return self

    def predict_proba(self, X: Tensor) -> Float[Tensor, "unit n"]:
        return torch.sigmoid(self.decision_function(X) / self.scale_[:, None])


@checked
class RidgeProbe(_Linear):
    """Ridge regression for continuous targets, closed form (primal or dual, whichever is
    smaller): ``min ||y - Zw - b||^2 + alpha ||w||^2`` on z-scored features when ``standardize``
    (scikit-learn's ``Ridge(alpha)`` objective)."""

    def __init__(self, alpha: float = 1.0, standardize: bool = True) -> None:
        if alpha <= 0:
            raise InterpError(f"alpha must be positive, got {alpha}.")
        self.alpha, self.standardize = alpha, standardize

    @checked
    def fit(self, X: Features, y: Labels) -> RidgeProbe:
        Z, y = self._standardized(X, y, binary=False)
        U, n, d = Z.shape
        zm = Z.mean(1, keepdim=True)
        Zc, yc = Z - zm, y - y.mean()
        if d <= n:
            G = torch.einsum("und,une->ude", Zc, Zc) + self.alpha * torch.eye(
                d, dtype=Z.dtype, device=Z.device
            )
            w = spd_solve(G, torch.einsum("und,n->ud", Zc, yc))
        else:  # dual: w = Zc^T (Zc Zc^T + alpha I)^-1 yc
            K = torch.einsum("und,umd->unm", Zc, Zc) + self.alpha * torch.eye(
                n, dtype=Z.dtype, device=Z.device
            )
            a = spd_solve(K, yc.expand(U, n).contiguous())
            w = torch.einsum("und,un->ud", Zc, a)
        b = y.mean() - (w * zm[:, 0]).sum(-1)
        self.coef_, self.intercept_ = self._scaler.raw(w, b)
        return self

    def predict(self, X: Tensor) -> Float[Tensor, "unit n"]:
        return self.decision_function(X)

    def score(self, X: Tensor, y: Tensor) -> Float[Tensor, " unit"]:
        """R^2 per unit."""
        pred = self.predict(X)
        y = check_labels(y, pred.shape[1], binary=False).to(pred.device).double()
        ss_res = ((y - pred) ** 2).sum(-1)
        return 1 - ss_res / ((y - y.mean()) ** 2).sum().clamp_min(1e-300)


def make_probe(kind: str, **params: Any) -> LogisticProbe | MassMeanProbe | RidgeProbe:
    if kind == "logistic":
        return LogisticProbe(**params)
    if kind == "mass_mean":
        return MassMeanProbe()
    if kind == "ridge":
        return RidgeProbe(**params)
    raise InterpError(f"Unknown probe {kind!r}: use 'logistic', 'mass_mean', 'ridge' or 'ccs'.")
