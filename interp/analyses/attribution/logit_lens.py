"""Logit lens (METHODS.md section 2): decode every layer's residual with the model's final norm.

The final norm is recomputed for each layer's residual (TransformerLens issue #1076: reusing the
last layer's cached scale for earlier layers is wrong). The last row decodes the final residual
and therefore equals the model's own logits. Models without normalisation decode with the
identity in place of the norm; soft-capped logits are capped as the model caps them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.checks import checked
from interp.deprecation import renamed
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.nodes import layer_label
from interp.results.attribution import LogitLensResult
from interp.results.meta import make_meta
from interp.tasks.task import Task, as_task

ANALYSIS = "logit_lens"


def _decode(model: Model, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab_out"]:
    """Logits of residual states through a fresh final norm (the identity for models without
    normalisation), the unembedding and any logit soft-cap: how the model's forward ends."""
    return model.unembed(resid)


@torch.inference_mode()
@renamed(target="token")
@checked
def logit_lens(
    model: Model,
    prompts_or_task: Task | Sequence[str] | Int[Tensor, "batch seq"],
    token: str | int | None = None,
    k: int = 5,
    show: int = 0,
    batch_size: int = 16,
) -> LogitLensResult:
    """Per layer and position: KL to the final distribution, entropy, and the tracked token's
    probability, log-probability and rank; plus the top-k tokens of one prompt.

    Rows are ``embed`` (the input to block 0) and the output of every block. Positions are
    aligned at each prompt's answer position, keeping the last ``min(length)`` positions, so
    tasks with different prompt lengths still average meaningfully.

    Args:
        model: a model with an LM head.
        prompts_or_task: a Task, a list of prompts, or a ``[batch, seq]`` tensor of token ids
            (read at each sequence's last position; the way in for models without a
            tokenizer, with ``Task.from_tokens`` for answers).
        token: a single token (string, or id) to track; default the task's correct answer
            per prompt (formerly ``target=``, deprecated). Its rows keep the metric names
            ``target_prob``, ``target_logprob`` and ``target_rank``.
        k: number of top tokens kept per cell.
        show: which prompt's tokens and top-k predictions label the figure.
        batch_size: prompts per forward pass.
    """
    model = load_model(model)
    model.require(ANALYSIS, "logits", "hooked")
    task = as_task(model, prompts_or_task)
    if not 0 <= show < len(task):
        raise InterpError(f"show={show} is not a prompt index (0..{len(task) - 1}).")
    if k > model.d_vocab_out:
        raise InterpError(
            f"k={k} is more top tokens than {model.name} has ({model.d_vocab_out}); "
            f"use k <= {model.d_vocab_out}."
        )
    n_pos = int(task.answer_pos.min()) + 1
    tracked: Tensor | None = None  # per prompt, the token whose probability is read
    if token is not None:
        tid = token if isinstance(token, int) else model.to_single_token(token)
        if not 0 <= tid < model.d_vocab_out:
            raise InterpError(
                f"Token id {tid} is outside the vocabulary (0..{model.d_vocab_out - 1})."
            )
        tracked = torch.full((len(task),), tid, dtype=torch.long)
    elif task.answers is not None:
        tracked = task.answers[:, 0]
    L = model.n_layers
    names = model.residual_names()  # input to block 0, then the output of every block
    sums: dict[str, Tensor] = {}
    top_ids = top_probs = None
    max_err = 0.0
    for start in range(0, len(task), batch_size):
        sub = task[start : start + batch_size]
        logits, cache = model.run_with_cache(
            sub.clean_tokens.to(model.device), names_filter=lambda n: n in names
        )
        # Align positions at the answer: offset o means answer_pos - (n_pos - 1 - o).
        offs = (
            sub.answer_pos[:, None].to(model.device)
            - (n_pos - 1)
            + torch.arange(n_pos, device=model.device)
        )
        rows = torch.arange(len(sub), device=model.device)[:, None]
        final = logits[rows, offs].log_softmax(-1)  # [b, P, vocab]
        p_final = final.exp()
        t = None
        if tracked is not None:
            t = tracked[start : start + len(sub)].to(model.device)[:, None, None]
            t = t.expand(-1, n_pos, 1)
        per_layer: dict[str, list[Tensor]] = {}
        shown: list[tuple[Tensor, Tensor]] = []
        # One layer at a time bounds memory at [batch, positions, vocab].
        for i, name in enumerate(names):
            lens = _decode(model, cache[name][rows, offs]).log_softmax(-1)
            if i == len(names) - 1:
                max_err = max(max_err, float((lens - final).abs().max()))
            metrics = {
                "kl_to_final": (p_final * (final - lens)).sum(-1),
                "entropy": -(lens.exp() * lens).sum(-1),
            }
            if t is not None:
                lp = lens.gather(-1, t)[..., 0]
                metrics["target_prob"] = lp.exp()
                metrics["target_logprob"] = lp
                metrics["target_rank"] = (lens > lp[..., None]).sum(-1).float()
            for key, val in metrics.items():
                per_layer.setdefault(key, []).append(val.sum(0).cpu())
            if start <= show < start + len(sub):
                probs, ids = lens[show - start].exp().topk(k, dim=-1)
                shown.append((ids.cpu(), probs.cpu()))
        for key, vals in per_layer.items():
            sums[key] = sums.get(key, 0) + torch.stack(vals)  # [L+1, P]
        if shown:
            top_ids = torch.stack([ids for ids, _ in shown])
            top_probs = torch.stack([p for _, p in shown])
    assert top_ids is not None and top_probs is not None
    metric_names = list(sums)
    values = torch.stack([sums[m] / len(task) for m in metric_names]).float()
    show_pos = int(task.answer_pos[show]) - (n_pos - 1) + torch.arange(n_pos)
    toks = model.to_str_tokens(task.clean_tokens[show])
    top_tokens = [
        [[model.token_str(int(i)) for i in top_ids[layer, p]] for p in range(n_pos)]
        for layer in range(L + 1)
    ]
    return LogitLensResult(
        values=values,
        dims=("metric", "layer", "pos"),
        coords={
            "metric": list(metric_names),
            "layer": ["embed", *range(L)],
            "pos": list(range(-(n_pos - 1), 1)),
        },
        labels={
            "layer": ["embed"] + [layer_label(i) for i in range(L)],
            "pos": [f"{toks[int(p)]!s}" for p in show_pos],
        },
        top_ids=top_ids,
        top_probs=top_probs,
        top_tokens=top_tokens,
        final_layer_max_abs_logprob_error=max_err,
        meta=make_meta(
            model=model,
            task=task,
            params={"token": token, "k": k, "show": show},
            description=(
                "Each layer's residual stream decoded with the final norm (recomputed per "
                "layer) and the unembedding; cells show the top token of the shown prompt."
            ),
        ),
        title="Logit lens",
    )
