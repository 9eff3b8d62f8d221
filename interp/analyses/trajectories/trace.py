"""One sampled answer with its hidden-state trajectory."""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from interp.checks import checked


@checked
@dataclass
class Trace:
    """One sampled answer and its trajectory.

    ``chunks`` holds the mean of every block's ``hook_resid_post`` over consecutive chunks of
    ``chunk`` generated tokens (the last chunk may be shorter); per-token states are never kept.
    """

    prompt_index: int
    sample_index: int
    tokens: list[int]  # generated ids, end-of-text excluded
    text: str
    logprobs: Float[Tensor, " T"]  # log p(token) under the model (temperature 1)
    margins: Float[Tensor, " T"]  # top-1 minus top-2 logit before each token
    entropies: Float[Tensor, " T"]  # entropy of the next-token distribution before each token
    chunks: Float[Tensor, "N L d"]
    correct: bool | None
    chunk: int = 1  # tokens per chunk
    answer: str = ""  # the final answer the text commits to (what majority vote compares)
