"""Attention patterns of chosen heads on one prompt, with an offline circuitsvis view."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from interp.cache.api import as_task
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.attribution import AttentionResult
from interp.results.meta import make_meta
from interp.tasks.task import Task

ANALYSIS = "attention_patterns"


@torch.inference_mode()
def attention_patterns(
    model: Model,
    prompt_or_task: str | Task | Sequence[str] | Int[Tensor, "batch seq"] | Int[Tensor, " seq"],
    heads: Sequence[tuple[int, int]],
    index: int = 0,
) -> AttentionResult:
    """Attention probabilities ``[head, query, key]`` of `heads` on one prompt.

    Args:
        model: the model.
        prompt_or_task: a prompt string, a list of prompts, a Task, or token ids (``[seq]``
            or ``[batch, seq]``; without a tokenizer, tokens are labelled ``#id``).
        heads: ``(layer, head)`` pairs to show.
        index: which prompt of a list or Task.
    """
    model = load_model(model)
    model.require(ANALYSIS, "attention")
    if isinstance(prompt_or_task, str):
        prompt_or_task = [prompt_or_task]
    elif isinstance(prompt_or_task, Tensor) and prompt_or_task.ndim == 1:
        prompt_or_task = prompt_or_task[None]
    task = as_task(model, prompt_or_task)
    if not heads:
        raise InterpError("Give at least one (layer, head) pair to show.")
    for pair in heads:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise InterpError(f"heads: {pair!r} is not a (layer, head) pair; give [(0, 1), ...].")
    for l, h in heads:
        if not (0 <= l < model.n_layers and 0 <= h < model.n_heads):
            raise InterpError(f"Head ({l}, {h}) does not exist in {model.name}.")
    if not 0 <= index < len(task):
        raise InterpError(f"index={index} is not a prompt index (0..{len(task) - 1}).")
    length = int(task.answer_pos[index]) + 1
    tokens = task.clean_tokens[index : index + 1, :length].to(model.device)
    names = {model.hook_name("pattern", l) for l, _ in heads}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    pats = torch.stack([cache[model.hook_name("pattern", l)][0, h] for l, h in heads]).cpu()
    toks = model.to_str_tokens(tokens[0])
    head_names = [f"L{l}H{h}" for l, h in heads]
    return AttentionResult(
        values=pats,
        dims=("head", "query", "key"),
        coords={"head": list(head_names), "query": list(range(length)), "key": list(range(length))},
        labels={
            "query": [f"{i}: {t}" for i, t in enumerate(toks)],
            "key": [f"{i}: {t}" for i, t in enumerate(toks)],
        },
        meta=make_meta(
            model=model,
            params={"heads": [list(p) for p in heads], "index": index},
            tokens=toks,
            show_top=False,
            description="Attention patterns (query rows attend to key columns).",
        ),
        title="Attention patterns: " + ", ".join(head_names),
    )
