"""Attention patterns of chosen heads on one prompt, with an offline circuitsvis view."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from interp.analyses.attribution.heads import model_heads
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.nodes import HeadLike
from interp.results.attribution import AttentionResult
from interp.results.meta import make_meta
from interp.tasks.task import Task, as_task

ANALYSIS = "attention_patterns"


@torch.inference_mode()
@checked
def attention_patterns(
    model: Model,
    prompt_or_task: str | Task | Sequence[str] | Int[Tensor, "batch seq"] | Int[Tensor, " seq"],
    heads: Sequence[HeadLike],
    index: int = 0,
) -> AttentionResult:
    """Attention probabilities ``[head, query, key]`` of `heads` on one prompt.

    Args:
        model: the model.
        prompt_or_task: a prompt string, a list of prompts, a Task, or token ids (``[seq]``
            or ``[batch, seq]``; without a tokenizer, tokens are labelled ``#id``).
        heads: the heads to show, each ``(layer, head)``, ``"L3H5"``, ``"3.5"`` or a `Node`.
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
    nodes = model_heads(model, heads, "; give [(0, 1), ...] or ['L0H1', ...]")
    if not 0 <= index < len(task):
        raise InterpError(f"index={index} is not a prompt index (0..{len(task) - 1}).")
    length = int(task.answer_pos[index]) + 1
    tokens = task.clean_tokens[index : index + 1, :length].to(model.device)
    names = {model.hook_name("pattern", node.layer) for node in nodes}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    pats = torch.stack(
        [cache[model.hook_name("pattern", node.layer)][0, node.head] for node in nodes]
    ).cpu()
    toks = model.to_str_tokens(tokens[0])
    head_names = [node.label for node in nodes]
    return AttentionResult(
        values=pats,
        dims=("head", "query", "key"),
        coords={"head": list(head_names), "query": list(range(length)), "key": list(range(length))},
        labels={
            "query": [f"{i}: {t}" for i, t in enumerate(toks)],
            "key": [f"{i}: {t}" for i, t in enumerate(toks)],
        },
        tokens=toks,
        meta=make_meta(
            model=model,
            params={"heads": [[node.layer, node.head] for node in nodes], "index": index},
            description="Attention patterns (query rows attend to key columns).",
        ),
        title="Attention patterns: " + ", ".join(head_names),
    )
