"""Helpers shared by the task generators: single-token filtering (their arguments are checked
by `interp.checks.checked`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp.errors import InterpError


def single_token_words(model: Any, words: Sequence[str], what: str, need: int) -> list[str]:
    """The words that are one token for this model *with a leading space* (as they appear
    mid-sentence); raises if fewer than `need` survive."""
    model.require(f"Building a task from {what}", "tokenizer")
    keep = []
    for w in words:
        ids = model.tokenizer.encode(" " + w, add_special_tokens=False)
        if len(ids) == 1:
            keep.append(w)
    if len(keep) < need:
        raise InterpError(
            f"Only {len(keep)} of the {what} are single tokens for {model.name} (need {need}); "
            f"pass your own list with {what}=[...]."
        )
    return keep
