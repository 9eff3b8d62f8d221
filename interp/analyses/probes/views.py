"""The 2-D view of a probe's examples: the probe direction, and the top principal component
orthogonal to it, for many units at once."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

BLOCK = 8  # vectors iterated together: the top one converges at rate lambda_9 / lambda_1
TOL = 1e-12  # relative residual ||G v - lambda v|| / lambda of a converged top eigenpair
MAX_ITER = 40


def top_eigenpair(
    G: Float[Tensor, "unit s s"],
) -> tuple[Float[Tensor, " unit"], Float[Tensor, "unit s"]]:
    """Largest eigenvalue and a unit eigenvector of each symmetric positive semi-definite G.

    Block power iteration with Rayleigh-Ritz from a fixed start (deterministic): activations
    usually have a dominant direction, so it converges in a few matrix products where a full
    eigendecomposition costs ``s^3``. Units that have not converged after `MAX_ITER` steps (no
    clear gap below the top eigenvalue) get the exact decomposition.
    """
    U, s, _ = G.shape
    if s <= 4 * BLOCK:
        lam, vec = torch.linalg.eigh(G)
        return lam[:, -1], vec[..., -1]
    start = torch.randn(s, BLOCK, generator=torch.Generator().manual_seed(0), dtype=G.dtype)
    V = torch.linalg.qr(start).Q.to(G.device).expand(U, s, BLOCK)  # one start for every unit
    for _ in range(MAX_ITER):
        GV = torch.bmm(G, V)
        theta, E = torch.linalg.eigh(V.mT @ GV)  # Ritz values, ascending
        e = E[..., -1:]
        lam, v, Gv = theta[:, -1], torch.bmm(V, e)[..., 0], torch.bmm(GV, e)[..., 0]
        converged = (Gv - lam[:, None] * v).norm(dim=-1) <= TOL * lam.abs().clamp_min(1e-300)
        if bool(converged.all()):
            return lam, v
        V = torch.linalg.qr(GV).Q
    slow = ~converged
    exact_lam, exact_vec = torch.linalg.eigh(G[slow])
    lam, v = lam.clone(), v.clone()
    lam[slow], v[slow] = exact_lam[:, -1], exact_vec[..., -1]
    return lam, v


def project(
    X: Float[Tensor, "unit n d"], direction: Float[Tensor, "unit d"]
) -> Float[Tensor, "unit n 2"]:
    """Per unit, each example's coordinate along the (unit) probe direction and along the top
    principal component orthogonal to it (sign: the example farthest out along it is positive).

    The component is the top eigenvector of the smaller of ``R^T R`` and ``R R^T`` (``R`` the
    centred examples minus their direction part), not an SVD of ``R``.
    """
    Xc = X - X.mean(1, keepdim=True)
    a = torch.einsum("und,ud->un", Xc, direction)
    rest = Xc - a[..., None] * direction[:, None]
    n, d = rest.shape[1:]
    if d <= n:
        _, v = top_eigenpair(rest.mT @ rest)
        b = torch.einsum("und,ud->un", rest, v)
    else:  # R v = sigma u for the top left singular vector u, eigenvalue sigma^2 of R R^T
        lam, u = top_eigenpair(rest @ rest.mT)
        b = u * lam[:, None].clamp_min(0).sqrt()
    far = b.abs().argmax(-1, keepdim=True)
    b = b * torch.where(b.gather(-1, far) < 0, -1.0, 1.0)
    return torch.stack([a, b], -1)
