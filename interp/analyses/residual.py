"""Residual-stream norms per layer and position, computed from any activation cache."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from interp.activations.names import layer_of, short_form
from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.results.residual import ResidualNorms
from interp.stats import bootstrap_mean


@checked
def residual_norms(
    acts: Mapping[str, Any], model: Any = None, seed: int = 0, chunk: int = 256
) -> ResidualNorms:
    """Mean ``||resid_post||`` per layer and position over the cached examples.

    Args:
        acts: an in-memory ``ActivationCache`` or a ``DiskCache`` holding every layer's
            ``resid_post`` at all positions. Disk caches are read ``chunk`` examples at a time.
        model: optional, recorded in the metadata.
    """
    names = sorted(
        (n for n in acts if short_form(n) == "resid_post"), key=lambda n: layer_of(n) or 0
    )
    if not names:
        raise InterpError(
            "residual_norms needs resid_post in the cache: cache names=['resid_post']."
        )
    rows = []
    lows, highs = [], []
    for name in names:
        stored = acts[name]
        n = len(stored)
        norms = torch.cat([stored[i : i + chunk].float().norm(dim=-1) for i in range(0, n, chunk)])
        if norms.ndim != 2:
            raise InterpError("residual_norms needs every position: cache with positions=None.")
        mean, lo, hi = bootstrap_mean(norms, seed=seed)
        rows.append(mean)
        lows.append(lo)
        highs.append(hi)
    values = torch.stack(rows)
    layers = [int(layer_of(n) or 0) for n in names]
    return ResidualNorms(
        values=values,
        dims=("layer", "pos"),
        coords={"layer": list[Coord](layers), "pos": list[Coord](range(values.shape[1]))},
        ci_low=torch.stack(lows),
        ci_high=torch.stack(highs),
        meta=make_meta(
            model=model,
            params={"n_examples": n},
            seed=seed,
            description="Mean L2 norm of the residual stream after each block.",
        ),
        title="Residual stream norm by layer and position",
    )
