"""Per-prompt effects summarised the one way DLA and ablations report them."""

from __future__ import annotations

from typing import Any, TypeVar

from jaxtyping import Float
from torch import Tensor

from interp.results.attribution import AblationResult, DLAResult
from interp.stats import bootstrap_mean

R = TypeVar("R", DLAResult, AblationResult)


def averaged(
    cls: type[R], per_prompt: Float[Tensor, "prompt ..."], n_boot: int, seed: int, **fields: Any
) -> R:
    """A `cls` result of the mean over prompts (the leading axis) with 95% bootstrap intervals;
    `per_prompt` is kept beside it. `fields` are the result's other fields."""
    mean, lo, hi = bootstrap_mean(per_prompt, n_boot=n_boot, seed=seed)
    return cls(values=mean, ci_low=lo, ci_high=hi, per_prompt=per_prompt, **fields)
