"""Head detectors (METHODS.md section 6): score every head against a target attention pattern.

All kinds run on ``[prefix, r_1..r_T, r_1..r_T]`` with random whole-word tokens ``r``:

* induction: from position i of the second half to i - T + 1 (the token after the earlier copy);
* previous_token: from i to i - 1;   next_token: from i to i + 1 (bidirectional models only);
* duplicate_token: from i in the second half to i - T (the earlier copy of the same token);
* first_token: to position 0 (attention sink).

A head's score is its mean attention mass on the target positions, over the query positions
where the target is defined. A custom kind is a ``[seq, seq]`` 0/1 tensor or a function
``f(prefix_len, T) -> tensor`` giving the target pattern.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.attribution import HeadScores
from interp.results.meta import make_meta
from interp.tasks.vocab import repeated_tokens

KINDS = ("induction", "previous_token", "next_token", "duplicate_token", "first_token")
Target = str | Tensor | Callable[[int, int], Tensor]


def target_pattern(kind: str, p0: int, seq_len: int) -> Tensor:
    """0/1 ``[seq, seq]`` pattern (query x key) for a named detector."""
    n = p0 + 2 * seq_len
    tgt = torch.zeros(n, n)
    second = range(p0 + seq_len, n)
    if kind == "induction":
        for i in second:
            tgt[i, i - seq_len + 1] = 1
    elif kind == "duplicate_token":
        for i in second:
            tgt[i, i - seq_len] = 1
    elif kind == "previous_token":
        for i in range(1, n):
            tgt[i, i - 1] = 1
    elif kind == "next_token":
        for i in range(n - 1):
            tgt[i, i + 1] = 1
    elif kind == "first_token":
        tgt[:, 0] = 1
    else:
        raise InterpError(
            f"Unknown detector {kind!r}: use one of {list(KINDS)}, a [seq, seq] target tensor, "
            "or a function (prefix_len, T) -> tensor."
        )
    return tgt


def score_patterns(patterns: list[Tensor], target: Tensor) -> Tensor:
    """``[layer, head]`` mean attention on the target keys, over the batch and over the query
    positions where the target is defined; `patterns` are per layer ``[batch, head, q, k]``."""
    tgt = target.to(patterns[0].device, patterns[0].dtype)
    rows = tgt.sum(-1) > 0
    return torch.stack([(p * tgt).sum(-1)[..., rows].mean(dim=(0, 2)) for p in patterns]).cpu()


@torch.inference_mode()
def detect_heads(
    model: Model,
    kind: Target = "induction",
    n: int = 32,
    seq_len: int = 16,
    seed: int = 0,
    batch_size: int = 16,
) -> HeadScores:
    """Score every head by its attention to the detector's target positions.

    Args:
        model: any model with attention patterns (decoders and encoders alike).
        kind: a name in ``KINDS`` (snake_case), a ``[seq, seq]`` target tensor with
            ``seq = prefix + 2 * seq_len``, or a function ``(prefix_len, seq_len) -> tensor``.
        n: random sequences to average over.
        seq_len: T, the length of the random sequence that is repeated.
        seed: seed for the random tokens.
        batch_size: sequences per forward pass.
    """
    model = load_model(model)
    if model.n_heads < 1 or not any(h.endswith("attn.hook_pattern") for h in model.hook_names):
        raise InterpError(f"{model.name} has no attention heads: there is nothing to detect.")
    if n < 1 or seq_len < 2:
        raise InterpError(f"detect_heads needs n >= 1 and seq_len >= 2, got {n}, {seq_len}.")
    prefix = model.prefix_ids
    p0 = len(prefix)
    total = p0 + 2 * seq_len
    if total > model.n_ctx:
        raise InterpError(f"seq_len {seq_len} gives {total} tokens > context {model.n_ctx}.")
    if isinstance(kind, str):
        if kind == "next_token" and model.is_causal:
            raise InterpError(
                "next_token heads cannot exist in a causal model (no position attends forward); "
                "use it on bidirectional encoders."
            )
        target, label = target_pattern(kind, p0, seq_len), kind
    else:
        target = kind(p0, seq_len) if callable(kind) else kind
        label = "custom"
    target = torch.as_tensor(target, dtype=torch.float32)
    if target.shape != (total, total):
        raise InterpError(f"Target pattern must be [{total}, {total}], got {tuple(target.shape)}.")
    if not bool((target.sum(-1) > 0).any()):
        raise InterpError("The target pattern is empty: mark at least one (query, key) pair.")
    tokens = repeated_tokens(model, n, seq_len, seed)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.n_layers)]
    sums = torch.zeros(model.n_layers, model.n_heads)
    for start in range(0, n, batch_size):
        batch = tokens[start : start + batch_size].to(model.device)
        _, cache = model.run_with_cache(batch, names_filter=lambda nm: nm in names)
        sums += score_patterns([cache[name] for name in names], target) * len(batch)
    scores = sums / n
    return HeadScores(
        values=scores,
        dims=("layer", "head"),
        coords={"layer": list(range(model.n_layers)), "head": list(range(model.n_heads))},
        labels={"head": [f"H{h}" for h in range(model.n_heads)]},
        meta=make_meta(
            model=model,
            params={"kind": label, "n": n, "seq_len": seq_len},
            seed=seed,
            value_label=f"{label} score",
            description=(
                f"{label.replace('_', '-')} score: mean attention on the target positions over "
                f"{n} repeated random sequences of {seq_len} tokens."
            ),
        ),
        title=f"Head detector: {label.replace('_', ' ')}",
    )
