"""Decompose the answer logit (difference) into the direct effects of every component.

METHODS.md section 1: ``x_final = embed + pos_embed + sum heads + sum attn biases + sum MLPs``
and ``DLA(c) = (c_t / sigma_t) . u`` with the cached final-norm scale ``sigma_t``. Each component
is centred first under LayerNorm (a no-op when TransformerLens has centred the writing weights,
exact either way), and the final norm's own weight and bias are applied when they are not folded.
RMSNorm does not centre, so components are used as they are (TransformerLens issue #523: centring
them would break the sum). A model without normalisation has scale 1. Under grouped-query
attention, query head ``h`` reads key-value head ``model.kv_head(h)``. The decomposition is exact:
the components sum to the model's actual logit difference. On models with logit soft-capping
(Gemma 2) they sum to the logits before the cap, which is nonlinear and has no additive split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model
from interp.nodes import head_label, layer_label
from interp.tasks.task import Task

ANALYSIS = "direct_logit_attribution"


@checked  # the prompt axis of values, total and by_source must agree
@dataclass
class Decomposition:
    """Direct logit attribution of every component, per prompt.

    ``values[:, i]`` is the direct effect of component ``labels[i]``; the sum over components is
    ``total``, the actual logit difference (or logit) the model produced.
    """

    labels: list[str]
    kinds: list[str]
    layers: list[int]  # -1 for components outside the blocks
    heads: list[int]  # -1 for non-head components
    values: Float[Tensor, "prompt component"]
    total: Float[Tensor, " prompt"]
    by_source: Float[Tensor, "prompt layer head pos"] | None = None

    def sum_error(self) -> Tensor:
        """Per prompt, |sum of components - actual| / max(1, |actual|)."""
        diff = (self.values.double().sum(-1) - self.total.double()).abs()
        return diff / self.total.double().abs().clamp_min(1.0)


def answer_directions(
    model: Model, task: Task, token: str | int | None
) -> tuple[Float[Tensor, "prompt d_model"], Tensor, str]:
    """Unembedding direction per prompt: W_U[:, correct] - W_U[:, incorrect], or W_U[:, token]."""
    W_U, b_U = model.W_U.detach(), model.b_U.detach()
    if token is None:
        ans = task._need_answers().to(W_U.device)
        u = W_U[:, ans[:, 0]].T - W_U[:, ans[:, 1]].T
        return u, b_U[ans[:, 0]] - b_U[ans[:, 1]], "logit difference (correct - incorrect)"
    tid = token if isinstance(token, int) else model.to_single_token(token)
    if not 0 <= tid < model.d_vocab_out:
        raise InterpError(f"Token id {tid} is outside the vocabulary (0..{model.d_vocab_out - 1}).")
    n = len(task)
    return W_U[:, tid].expand(n, -1), b_U[tid].expand(n), f"logit of {token!r}"


def check_components_add_up(model: Model, resid: Tensor, final: Tensor, n_terms: int) -> None:
    """The summed components must equal the final residual stream up to rounding.

    The model added them one by one in its own dtype, so the allowed error grows with that
    dtype's epsilon and the number of terms (float16 rounds ~8000x coarser than float32); a
    missing residual term (an architecture this decomposition does not know) is far larger.
    """
    scale = 1 + float(final.abs().max())
    tol = max(1e-4, 4 * n_terms * torch.finfo(final.dtype).eps) * scale
    err = float((resid - final).abs().max())
    if err > tol:
        raise InterpError(
            f"The components of {model.name} miss its final residual stream by {err:.3g} "
            f"(allowed {tol:.3g} for {str(final.dtype).removeprefix('torch.')}): an "
            "architecture with residual terms this decomposition does not know, or a hook "
            "that adds to the residual stream (steering at resid_* / attn_out / mlp_out), so "
            "direct logit attribution would not be exact and is refused. Steer a head's z "
            "instead (it is then part of that head's term), or, if the model runs in low "
            "precision, load it with dtype=torch.float32 and retry."
        )


@torch.inference_mode()
@checked
def decompose(
    model: Model,
    task: Task,
    token: str | int | None = None,
    batch_size: int = 32,
    by_source: bool = False,
) -> Decomposition:
    """Direct effects of embeddings, every head, attention biases, MLPs and the unembedding bias.

    Args:
        model: a HookedTransformer-backed model with an LM head.
        task: prompts; the readout is each prompt's answer position.
        token: None for the logit difference of the task's answers, else a single target token.
        batch_size: prompts per forward pass.
        by_source: also split each head's effect by source position (``A[t, s] v_s W_O``).
    """
    model.require(ANALYSIS, "attention")
    model.require(ANALYSIS, "logits", "hooked")
    w_ln, b_ln, centre = model.final_norm_params()
    u_all, const_all, _ = answer_directions(model, task, token)
    L, H = model.n_layers, model.n_heads
    embed, pos_embed = model.hook_name("embed"), model.hook_name("pos_embed")
    has_pos = model.adds_pos_embed and model.has_hook(pos_embed)
    has_mlp = model.has_mlp
    scale_hook = model.final_scale_hook  # None without normalisation: the scale is 1
    z_names = model.hook_names_for("z")
    mlp_names = model.hook_names_for("mlp_out") if has_mlp else []
    last = model.hook_name("resid_post", L - 1)
    names = {embed, last, *z_names, *mlp_names}
    if scale_hook is not None:
        names.add(scale_hook)
    if has_pos:
        names.add(pos_embed)
    pattern_names, v_names = model.hook_names_for("pattern"), model.hook_names_for("v")
    if by_source:
        names |= {*pattern_names, *v_names}
    # GQA: query head h reads key-value head kv_head(h) (TransformerLens issue #980).
    kv_of = torch.tensor([model.kv_head(h) for h in range(H)], device=model.device)
    W_O = [model.W_O(layer).detach() for layer in range(L)]
    b_O = [model.b_O(layer).detach() for layer in range(L)]
    values, totals, sources = [], [], []
    for start in range(0, len(task), batch_size):
        sub = task[start : start + batch_size]
        rows = torch.arange(len(sub))
        tokens = sub.clean_tokens.to(model.device)
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        pos = sub.answer_pos.to(model.device)
        u = u_all[start : start + len(sub)]
        const = const_all[start : start + len(sub)]
        if w_ln is not None:
            u = u * w_ln  # unfolded final norm weight scales the direction
        if b_ln is not None:
            const = const + (b_ln * (u_all[start : start + len(sub)])).sum(-1)
        if scale_hook is None:
            scale = torch.ones(len(sub), 1, device=model.device, dtype=u.dtype)
        else:
            scale = cache[scale_hook][rows, pos]  # [b, 1]

        def dla(vec: Tensor, scale: Tensor = scale, u: Tensor = u) -> Tensor:
            """[b, ..., d_model] component outputs -> [b, ...] direct effects."""
            if centre:
                vec = vec - vec.mean(-1, keepdim=True)
            middle = (1,) * (vec.ndim - 2)
            u_b = u.reshape(vec.shape[0], *middle, vec.shape[-1])
            return (vec * u_b).sum(-1) / scale.reshape(vec.shape[0], *middle)

        parts: list[Tensor] = [dla(cache[embed][rows, pos])]
        resid = cache[embed][rows, pos]
        if has_pos:
            parts.append(dla(cache[pos_embed][rows, pos]))
            resid = resid + cache[pos_embed][rows, pos]
        src_layers = []
        for layer in range(L):
            z = cache[z_names[layer]][rows, pos]  # [b, H, d_head]
            per_head = torch.einsum("bhd,hdm->bhm", z, W_O[layer])
            b_o = b_O[layer].expand(len(sub), -1)
            parts += [dla(per_head), dla(b_o)[:, None]]
            resid = resid + per_head.sum(1) + b_o
            if has_mlp:
                mlp = cache[mlp_names[layer]][rows, pos]
                parts.append(dla(mlp)[:, None])
                resid = resid + mlp
            if by_source:
                pat = cache[pattern_names[layer]][rows, :, pos]  # [b, H, src]
                v = cache[v_names[layer]]  # [b, src, kv_heads, d_head]
                v = v[:, :, kv_of]  # [b, src, H, d_head]
                per_src = torch.einsum("bhs,bshd,hdm->bhsm", pat, v, W_O[layer])
                src_layers.append(dla(per_src))
        final = cache[last][rows, pos]
        check_components_add_up(model, resid, final, n_terms=len(parts))
        parts.append(const[:, None])
        values.append(torch.cat([p if p.ndim == 2 else p[:, None] for p in parts], dim=1))
        final_logits = logits[rows, pos]
        if model.logit_soft_cap > 0:
            # The cap is nonlinear: what adds up exactly is the logits before it.
            final_logits = model.unembed(final, soft_cap=False)
        if token is None:
            ans = sub._need_answers().to(final_logits.device)
            totals.append(
                final_logits.gather(1, ans[:, :1])[:, 0] - final_logits.gather(1, ans[:, 1:])[:, 0]
            )
        else:
            tid = token if isinstance(token, int) else model.to_single_token(token)
            totals.append(final_logits[:, tid])
        if by_source:
            sources.append(torch.stack(src_layers, dim=1))
    labels, kinds, layers, heads = component_labels(L, H, has_pos, has_mlp)
    return Decomposition(
        labels=labels,
        kinds=kinds,
        layers=layers,
        heads=heads,
        values=torch.cat(values).float().cpu(),
        total=torch.cat(totals).float().cpu(),
        by_source=torch.cat(sources).float().cpu() if by_source else None,
    )


def component_labels(
    n_layers: int, n_heads: int, has_pos: bool, has_mlp: bool = True
) -> tuple[list[str], list[str], list[int], list[int]]:
    labels, kinds, layers, heads = ["embed"], ["embed"], [-1], [-1]
    if has_pos:
        labels.append("pos_embed")
        kinds.append("pos_embed")
        layers.append(-1)
        heads.append(-1)
    for layer in range(n_layers):
        for h in range(n_heads):
            labels.append(head_label(layer, h))
            kinds.append("head")
            layers.append(layer)
            heads.append(h)
        labels.append(f"{layer_label(layer)} attn bias")
        kinds.append("attn_bias")
        layers.append(layer)
        heads.append(-1)
        if has_mlp:
            labels.append(f"{layer_label(layer)} MLP")
            kinds.append("mlp")
            layers.append(layer)
            heads.append(-1)
    labels.append("unembed bias")
    kinds.append("bias")
    layers.append(-1)
    heads.append(-1)
    return labels, kinds, layers, heads
