"""Batched Newton's method for L2-regularised logistic regression: many units, one label vector.

Minimises, per unit, ``sum_i softplus(z_i) - y_i z_i + sum_j pen_j w_j^2 / 2`` with margins
``z = Z w + b`` (the intercept ``b``, if fitted, is the last entry of ``w`` and unpenalised).

Why it is built this way:

* The Newton systems (Hessian, its Cholesky factor, the solves) are formed in float32, which
  halves their cost; the gradient, the objective and the line search stay in float64, so the
  iteration still converges to the float64 optimum. Steps near the optimum get one round of
  iterative refinement against the float64 Hessian (Newton's quadratic convergence is kept).
  Where float32 is too coarse for the system (a solve leaves over half the gradient as residual:
  raw, badly scaled features or a large ``C``) the fit goes on in float64.
* With more features than examples (``d > n``) the systems are solved in the ``n x n`` example
  space (Woodbury), from the kernel matrix ``K = Z Z^T`` computed once.
* The step length comes from two 1-D Newton iterations on the exact objective along the step
  (cheap: the margins of the step are computed once), with Armijo backtracking as a safeguard.
* Units that have converged leave the batch once at least half of it has.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError

FAST = torch.float32  # dtype of the Newton systems while it is precise enough
PRECISE_ENOUGH = 0.5  # largest relative residual of a float32 solve that refinement fixes
REFINE_BELOW = 1e-4  # relative Newton decrement below which steps are refined
ARMIJO = 1e-4

Solver = Callable[[Tensor], Tensor]  # gradient-like [u, k] float64 -> step [u, k] float64


def cholesky(M: Tensor) -> Tensor:
    """Cholesky factors; a relative jitter rescues numerically semi-definite systems."""
    L, info = torch.linalg.cholesky_ex(M)
    if bool((info > 0).any()):
        rel = max(1e-10, 10 * torch.finfo(M.dtype).eps)
        jitter = rel * M.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-30)
        eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
        L = torch.linalg.cholesky(M + jitter[:, None, None] * eye)
    return L


def cholesky_solve(L: Tensor, B: Tensor) -> Tensor:
    """``(L L^T)^-1 B`` by two triangular solves (torch's ``cholesky_solve`` copies the factors
    and is several times slower on CPU batches)."""
    x = torch.linalg.solve_triangular(L, B, upper=False)
    return torch.linalg.solve_triangular(L.mT, x, upper=True)


class _Systems:
    """The active units' features in the systems' dtype, and per iteration the Newton solver."""

    def __init__(self, Z: Tensor, C: float, fit_intercept: bool, dtype: torch.dtype) -> None:
        self.C, self.fit_intercept, self.dtype = C, fit_intercept, dtype
        # A tiny ridge keeps the intercept direction invertible on separable data.
        self.ridge = 1e-10 if dtype == torch.float64 else 1e-6
        U, n, d = Z.shape
        self.d, self.dual = d, n < d
        Zs = Z.to(dtype)
        if self.dual:
            self.Zs, self.K = Zs, torch.bmm(Zs, Zs.mT)
        else:
            ones = torch.ones(U, n, 1, dtype=dtype, device=Z.device)
            self.Zs = torch.cat([Zs, ones], -1) if fit_intercept else Zs

    def keep(self, mask: Tensor) -> None:
        self.Zs = self.Zs[mask]
        if self.dual:
            self.K = self.K[mask]

    def solver(self, W: Tensor) -> Solver:
        """Solves with the Hessian ``Z^T diag(W) Z + diag(pen)`` of the current iterate."""
        Ws, dt = W.to(self.dtype), self.dtype
        if not self.dual:
            A = self.Zs
            H = torch.bmm((A * Ws[..., None]).mT, A)
            diag = torch.full((A.shape[-1],), 1.0 / self.C, dtype=dt, device=A.device)
            if self.fit_intercept:
                diag[-1] = 0.0
            H.diagonal(dim1=-2, dim2=-1).add_(diag + self.ridge)
            L = cholesky(H)
            return lambda g: cholesky_solve(L, g.to(dt)[..., None])[..., 0].to(g.dtype)
        return self._dual_solver(Ws)

    def _dual_solver(self, W: Tensor) -> Solver:
        """The Newton step when d > n, by Woodbury on the weight block,
        ``(Z^T W Z + I/C)^-1 = C I - C^2 Z^T S (I + C S K S)^-1 S Z`` with ``S = W^1/2``,
        and a Schur complement for the unpenalised intercept."""
        C, d, Z, dt = self.C, self.d, self.Zs, self.dtype
        s = W.sqrt()
        M = (C * s[:, :, None]) * self.K * s[:, None, :]
        M.diagonal(dim1=-2, dim2=-1).add_(1.0)
        L = cholesky(M)

        def inv_ww(V: Tensor) -> Tensor:  # V [u, d, m]
            T = cholesky_solve(L, s[..., None] * torch.bmm(Z, V))
            return C * V - C * C * torch.bmm(Z.mT, s[..., None] * T)

        if not self.fit_intercept:
            return lambda g: inv_ww(g.to(dt)[..., None])[..., 0].to(g.dtype)
        h = torch.bmm(W[:, None, :], Z)[:, 0]  # cross term of weights and intercept
        c = inv_ww(h[..., None])[..., 0]
        schur = W.sum(-1) + self.ridge - (h * c).sum(-1)

        def solve(g: Tensor) -> Tensor:
            gs = g.to(dt)
            a = inv_ww(gs[:, :d, None])[..., 0]
            db = (gs[:, d] - (h * a).sum(-1)) / schur
            return torch.cat([a - c * db[:, None], db[:, None]], -1).to(g.dtype)

        return solve


def logistic_newton(
    Z: Float[Tensor, "unit n d"],
    y: Float[Tensor, " n"],
    C: float,
    fit_intercept: bool,
    tol: float,
    max_iter: int,
    init: Float[Tensor, "unit k"] | None = None,
) -> tuple[Float[Tensor, "unit k"], int]:
    """Minimiser per unit (``k = d + fit_intercept``; float64) and the iterations taken.

    Stops a unit when half its Newton decrement falls below ``tol`` times its objective.
    """
    U, _, d = Z.shape
    k = d + int(fit_intercept)
    pen = torch.full((k,), 1.0 / C, dtype=Z.dtype, device=Z.device)
    pen[d:] = 0.0
    w = torch.zeros(U, k, dtype=Z.dtype, device=Z.device) if init is None else init.to(Z).clone()
    out = torch.empty_like(w)
    idx = torch.arange(U, device=Z.device)  # units still in the batch
    live = torch.ones(U, dtype=torch.bool, device=Z.device)  # ... and still iterating
    systems = _Systems(Z, C, fit_intercept, FAST)

    def margins(v: Tensor) -> Tensor:
        z = torch.bmm(Z, v[:, :d, None])[..., 0]
        return z + v[:, d:] if fit_intercept else z

    def objective(z: Tensor, v: Tensor) -> Tensor:
        return (torch.nn.functional.softplus(z) - y * z).sum(-1) + 0.5 * (pen * v * v).sum(-1)

    def hess_vec(W: Tensor, v: Tensor) -> Tensor:  # the float64 Hessian times v
        r = W * margins(v)
        Hv = torch.bmm(r[:, None, :], Z)[:, 0]
        if fit_intercept:
            Hv = torch.cat([Hv, r.sum(-1, keepdim=True)], -1)
        return Hv + pen * v

    z = margins(w)
    f = objective(z, w)
    it = 0
    for it in range(1, max_iter + 1):
        p = torch.sigmoid(z)
        r = p - y
        g = torch.bmm(r[:, None, :], Z)[:, 0]
        if fit_intercept:
            g = torch.cat([g, r.sum(-1, keepdim=True)], -1)
        g = g + pen * w
        if not torch.isfinite(g).all():
            raise InterpError(
                "Logistic probe diverged (non-finite gradient): the features may be badly "
                "scaled; try standardize=True or a smaller C."
            )
        W = p * (1 - p)
        solve = systems.solver(W)
        step = solve(g)
        decrement = (g * step).sum(-1)  # Newton decrement squared, >= 0
        scale = f.abs().clamp_min(1.0)
        # Refined steps on the first iteration (the Hessian's largest weights: its worst
        # conditioning, where float32 is checked) and near the optimum (quadratic convergence).
        if it == 1 or bool((0.5 * decrement <= REFINE_BELOW * scale).any()):
            residual = g - hess_vec(W, step)
            coarse = residual.norm(dim=-1) > PRECISE_ENOUGH * g.norm(dim=-1)
            if systems.dtype != torch.float64 and bool(coarse.any()):
                systems = _Systems(Z, C, fit_intercept, torch.float64)
                solve = systems.solver(W)
                step = solve(g)
                residual = g - hess_vec(W, step)
            step = step + solve(residual)
            decrement = (g * step).sum(-1)
        # Converged units take the full step without a line search: there the objective's
        # changes are rounding noise.
        settled = (0.5 * decrement.abs() <= tol * scale) | ~live
        zs = margins(step)
        t, new = _step_length(z, zs, w, step, y, pen, decrement, f, settled)
        t, f = torch.where(live, t, torch.zeros_like(t)), torch.where(live, new, f)
        w = w - t[:, None] * step
        z = z - t[:, None] * zs
        live = live & ~settled
        if not bool(live.any()):
            break
        if 2 * int((~live).sum()) >= len(idx):  # shrink the batch to the live units
            out[idx[~live]] = w[~live]
            idx, w, z, f, Z = idx[live], w[live], z[live], f[live], Z[live]
            systems.keep(live)
            live = live[live]
    else:
        warnings.warn(
            f"LogisticProbe: {int(live.sum())} unit(s) did not converge in {max_iter} Newton "
            "iterations; raise max_iter, standardise the features or lower C.",
            RuntimeWarning,
            stacklevel=3,
        )
    out[idx] = w
    return out, it


def _step_length(
    z: Tensor,
    zs: Tensor,
    w: Tensor,
    step: Tensor,
    y: Tensor,
    pen: Tensor,
    decrement: Tensor,
    f: Tensor,
    fixed: Tensor,
) -> tuple[Tensor, Tensor]:
    """Step length along ``-step`` (1 where ``fixed``) and the objective there."""
    ps, pw = (pen * step * step).sum(-1), (pen * w * step).sum(-1)
    t = torch.ones_like(f)
    for _ in range(2):  # 1-D Newton on phi(t) = objective(w - t step), from t = 1
        q = torch.sigmoid(z - t[:, None] * zs)
        d1 = -((q - y) * zs).sum(-1) - pw + t * ps
        d2 = (q * (1 - q) * zs * zs).sum(-1) + ps
        t = torch.where(fixed, t, (t - d1 / d2.clamp_min(1e-300)).clamp(1e-3, 10.0))

    def phi(t: Tensor) -> Tensor:
        zt = z - t[:, None] * zs
        v = w - t[:, None] * step
        return (torch.nn.functional.softplus(zt) - y * zt).sum(-1) + 0.5 * (pen * v * v).sum(-1)

    new = phi(t)
    # A converged unit's full step may not raise the objective beyond rounding.
    worse = fixed & (new > f + 1e-12 * f.abs().clamp_min(1.0))
    t, new = torch.where(worse, torch.zeros_like(t), t), torch.where(worse, f, new)
    for _ in range(30):  # Armijo backtracking, the safeguard
        bad = (new > f - ARMIJO * t * decrement) & ~fixed
        if not bool(bad.any()):
            break
        t = torch.where(bad, t.clamp_max(1.0) / 2, t)
        new = torch.where(bad, phi(t), new)
    return t, new
