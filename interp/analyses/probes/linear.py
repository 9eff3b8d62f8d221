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

from interp.errors import InterpError

Features = Float[Tensor, "unit n d"]
DEFAULT_BUDGET = 512 << 20  # bytes for the per-unit Hessians of one chunk


def spd_solve(A: Float[Tensor, "unit k k"], b: Float[Tensor, "unit k"]) -> Tensor:
    """Solve symmetric positive definite systems by Cholesky.

    (Not ``torch.linalg.solve``: with torch 2.13's MKL build it hangs on batched float64 systems
    once ``torch.set_num_threads`` has been called, which test runners and users do.)
    """
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info > 0).any()):  # numerically semi-definite: a relative jitter restores it
        jitter = 1e-10 * A.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-30)
        L = torch.linalg.cholesky(A + jitter[:, None, None] * torch.eye(A.shape[-1], dtype=A.dtype))
    return torch.cholesky_solve(b[..., None], L)[..., 0]


def as_units(X: Tensor) -> Tensor:
    """``[n, d]`` -> ``[1, n, d]``; checks shape and finiteness."""
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3:
        raise InterpError(f"Features must be [n, d] or [unit, n, d], got shape {tuple(X.shape)}.")
    if X.shape[1] == 0:
        raise InterpError("Features have no examples.")
    if not torch.isfinite(X).all():
        raise InterpError(
            "Features contain NaN or inf: check the cache (dtype overflow in float16?) "
            "or drop the affected examples."
        )
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
        if self.on:
            self.mean_ = X.mean(1, keepdim=True)
            std = X.std(1, unbiased=False, keepdim=True)
            # Features that are constant up to float noise stay unscaled (scaling would turn
            # the noise into unit-variance features), as scikit-learn's StandardScaler does.
            tiny = std <= 1e-7 * std.amax(-1, keepdim=True).clamp_min(1e-30)
            self.scale_ = torch.where(tiny, torch.ones_like(std), std)
            return (X - self.mean_) / self.scale_
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
        X = as_units(X).double()
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


class LogisticProbe(_Classifier):
    """L2-regularised logistic regression, one per unit, solved by batched Newton steps.

    Minimises ``sum_i logloss_i + ||w||^2 / (2 C)`` (intercept not penalised): the objective of
    scikit-learn's ``LogisticRegression(C=C)``, on z-scored features when ``standardize``.
    """

    def __init__(
        self,
        C: float = 1.0,
        fit_intercept: bool = True,
        standardize: bool = True,
        max_iter: int = 50,
        tol: float = 1e-8,
        memory_budget: int = DEFAULT_BUDGET,
    ) -> None:
        if C <= 0:
            raise InterpError(f"C must be positive, got {C}.")
        self.C, self.fit_intercept, self.standardize = C, fit_intercept, standardize
        self.max_iter, self.tol, self.memory_budget = max_iter, tol, memory_budget

    def fit(self, X: Features, y: Tensor) -> LogisticProbe:
        Z, y = self._standardized(X, y, binary=True)
        U, n, d = Z.shape
        k = d + int(self.fit_intercept)
        chunk = max(1, self.memory_budget // (8 * (k * k + n * k)))
        ws, iters = [], []
        for s in range(0, U, chunk):
            w, it = self._newton(Z[s : s + chunk], y)
            ws.append(w)
            iters.append(it)
        w = torch.cat(ws)
        b = w[:, d] if self.fit_intercept else torch.zeros(U, dtype=w.dtype, device=w.device)
        self.coef_, self.intercept_ = self._scaler.raw(w[:, :d], b)
        self.n_iter_ = max(iters)
        return self

    def _newton(self, Z: Tensor, y: Tensor) -> tuple[Tensor, int]:
        U, n, _ = Z.shape
        A = (
            torch.cat([Z, torch.ones(U, n, 1, dtype=Z.dtype, device=Z.device)], -1)
            if self.fit_intercept
            else Z
        )
        k = A.shape[-1]
        pen = torch.full((k,), 1.0 / self.C, dtype=Z.dtype, device=Z.device)
        if self.fit_intercept:
            pen[-1] = 0.0
        w = torch.zeros(U, k, dtype=Z.dtype, device=Z.device)

        def loss(w: Tensor) -> Tensor:
            z = torch.einsum("unk,uk->un", A, w)
            return (torch.nn.functional.softplus(z) - y * z).sum(-1) + 0.5 * (pen * w * w).sum(-1)

        current = loss(w)
        eye = torch.eye(k, dtype=Z.dtype, device=Z.device)
        # More features than examples: solve Newton systems in the n x n example space.
        K = torch.bmm(Z, Z.transpose(1, 2)) if n < Z.shape[-1] else None
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007 (reported as n_iter_)
            z = torch.einsum("unk,uk->un", A, w)
            p = torch.sigmoid(z)
            g = torch.einsum("unk,un->uk", A, p - y) + pen * w
            if not torch.isfinite(g).all():
                raise InterpError(
                    "Logistic probe diverged (non-finite gradient): the features may be badly "
                    "scaled; try standardize=True or a smaller C."
                )
            W = p * (1 - p)
            if K is None:
                H = torch.bmm((A * W[..., None]).transpose(1, 2), A) + torch.diag_embed(pen)
                # A tiny ridge keeps the intercept direction invertible on separable data.
                step = spd_solve(H + 1e-10 * eye, g)
            else:
                step = self._dual_step(Z, K, W, g)
            decrement = (g * step).sum(-1)  # Newton decrement squared, >= 0
            # Converged units take the full step without a line search: there Armijo's test
            # would only compare rounding noise (and halve the step thirty times).
            settled = 0.5 * decrement <= self.tol * current.abs().clamp_min(1.0)
            # Backtracking: the largest of 1, 1/2, 1/4 ... that satisfies Armijo's condition.
            t = torch.ones(U, dtype=Z.dtype, device=Z.device)
            new = loss(w - t[:, None] * step)
            for _ in range(30):
                bad = (new > current - 1e-4 * t * decrement) & ~settled
                if not bad.any():
                    break
                t = torch.where(bad, t / 2, t)
                new = torch.where(bad, loss(w - t[:, None] * step), new)
            w = w - t[:, None] * step
            current = new
            if settled.all():
                break
        return w, it

    def _dual_step(self, Z: Tensor, K: Tensor, W: Tensor, g: Tensor) -> Tensor:
        """The exact Newton step when d > n, by Woodbury on the weight block,
        ``(Z^T W Z + I/C)^-1 = C I - C^2 Z^T S (I + C S K S)^-1 S Z`` with ``S = W^1/2`` and
        ``K = Z Z^T``, and a Schur complement for the unpenalised intercept."""
        _, n, d = Z.shape
        C = self.C
        s = W.sqrt()
        M = C * s[:, :, None] * K * s[:, None, :] + torch.eye(n, dtype=Z.dtype, device=Z.device)
        chol = torch.linalg.cholesky(M)

        def inv_ww(V: Tensor) -> Tensor:  # V [U, d, m]
            T = s[..., None] * torch.bmm(Z, V)
            X = torch.cholesky_solve(T, chol)
            return C * V - C * C * torch.bmm(Z.transpose(1, 2), s[..., None] * X)

        gw = g[:, :d]
        if not self.fit_intercept:
            return inv_ww(gw[..., None])[..., 0]
        h = torch.einsum("und,un->ud", Z, W)  # cross term of weights and intercept
        both = inv_ww(torch.stack([gw, h], -1))
        a, c = both[..., 0], both[..., 1]
        schur = W.sum(-1) + 1e-10 - (h * c).sum(-1)
        db = (g[:, d] - (h * a).sum(-1)) / schur
        return torch.cat([a - c * db[:, None], db[:, None]], -1)

    def predict_proba(self, X: Tensor) -> Float[Tensor, "unit n"]:
        return torch.sigmoid(self.decision_function(X))


class MassMeanProbe(_Classifier):
    """Direction ``mu_1 - mu_0`` (raw features), threshold halfway between the class means.

    The mass-mean probe of ITI and Marks & Tegmark: no optimisation, and the direction used to
    steer. ``predict_proba`` squashes the projection by its training spread (a ranking score).
    """

    def fit(self, X: Features, y: Tensor) -> MassMeanProbe:
        X = as_units(X).double()
        y = check_labels(y, X.shape[1], binary=True).to(X.device)
        mu1, mu0 = X[:, y == 1].mean(1), X[:, y == 0].mean(1)
        self.coef_ = mu1 - mu0
        self.intercept_ = -(self.coef_ * (mu1 + mu0) / 2).sum(-1)
        self.scale_ = self.decision_function(X).std(-1).clamp_min(1e-12)
        return self

    def predict_proba(self, X: Tensor) -> Float[Tensor, "unit n"]:
        return torch.sigmoid(self.decision_function(X) / self.scale_[:, None])


class RidgeProbe(_Linear):
    """Ridge regression for continuous targets, closed form (primal or dual, whichever is
    smaller): ``min ||y - Zw - b||^2 + alpha ||w||^2`` on z-scored features when ``standardize``
    (scikit-learn's ``Ridge(alpha)`` objective)."""

    def __init__(self, alpha: float = 1.0, standardize: bool = True) -> None:
        if alpha <= 0:
            raise InterpError(f"alpha must be positive, got {alpha}.")
        self.alpha, self.standardize = alpha, standardize

    def fit(self, X: Features, y: Tensor) -> RidgeProbe:
        Z, y = self._standardized(X, y, binary=False)
        U, n, d = Z.shape
        zm = Z.mean(1, keepdim=True)
        Zc, yc = Z - zm, y - y.mean()
        if d <= n:
            G = torch.einsum("und,une->ude", Zc, Zc) + self.alpha * torch.eye(d, dtype=Z.dtype)
            w = spd_solve(G, torch.einsum("und,n->ud", Zc, yc))
        else:  # dual: w = Zc^T (Zc Zc^T + alpha I)^-1 yc
            K = torch.einsum("und,umd->unm", Zc, Zc) + self.alpha * torch.eye(n, dtype=Z.dtype)
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
