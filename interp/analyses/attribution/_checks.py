"""Checks shared by the attribution analyses: one clear error before any forward pass."""

from __future__ import annotations

from interp.errors import InterpError
from interp.models import Model


def check_heads(model: Model, analysis: str) -> None:
    """Raise InterpError naming `analysis` when `model` has no attention heads."""
    if model.n_heads < 1 or not model.has_attention:
        raise InterpError(
            f"{analysis} cannot run on {model.name}: it reads attention heads, and "
            f"{model.name} has no attention heads."
        )
