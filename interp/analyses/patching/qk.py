"""AtP*'s QK fix (Kramar et al. 2024): attention probabilities recomputed exactly with a patched
query or key, linearised only from the pattern on (METHODS.md section 4).

A linear estimate through the softmax misses saturation; for a query at t only row t of the
pattern changes, for a key at s every row changes through column s, which has a closed form per
(t, s).
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.errors import InterpError
from interp.models import Model
from interp.models.kv import attention_scale


def qk_targets(model: Model) -> tuple[str, str]:
    """The query and key activations attention scores are made of (after rotary, if any)."""
    return ("rot_q", "rot_k") if model.positional_embedding_type == "rotary" else ("q", "k")


def qk_names(model: Model) -> list[str]:
    """Every hook the QK fix reads: queries, keys and patterns of every layer."""
    q, k = qk_targets(model)
    return [model.hook_name(t, l) for l in range(model.n_layers) for t in (q, k, "pattern")]


def qk_fix(
    model: Model,
    layer: int,
    target: str,
    base: dict[str, Tensor],
    src: dict[str, Tensor],
    grads: dict[str, Tensor],
) -> Tensor:
    """Exact attention probabilities with the patched query (or key), linearised from there.

    Returns [batch, pos, head] (kv heads for k): for a query at t only row t changes; for a key
    at s, every row's softmax changes through column s, which has a closed form per (t, s).
    """
    qn, kn = (model.hook_name(t, layer) for t in qk_targets(model))
    pn = model.hook_name("pattern", layer)
    q_b, k_b = base[qn].double(), base[kn].double()
    q_s, k_s = src[qn].double(), src[kn].double()
    pattern = base[pn].double()  # [b, h, t, s]
    g = grads[pn].double()
    scale = attention_scale(model, layer)
    group = model.n_heads // model.n_key_value_heads
    k_b_rep = k_b.repeat_interleave(group, dim=2)
    k_s_rep = k_s.repeat_interleave(group, dim=2)
    T = pattern.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=pattern.device).tril()

    def probs(q: Tensor, k: Tensor) -> Tensor:
        scores = torch.einsum("bthd,bshd->bhts", q, k) / scale
        return scores.masked_fill(~causal, float("-inf")).softmax(-1)

    recomputed = probs(q_b, k_b_rep)
    if not torch.allclose(recomputed, pattern, atol=1e-4):
        raise InterpError(
            f"AtP*'s QK fix could not reproduce layer {layer}'s attention pattern from q and k "
            "(this attention variant is not supported); use star=False."
        )
    if target == "q":
        delta = probs(q_s, k_b_rep) - pattern  # only row t depends on q_t
        return (delta * g).sum(-1).permute(0, 2, 1)  # [b, t, h]
    # Key at s replaced: row t's scores change in column s only.
    sc = torch.einsum("bthd,bshd->bhts", q_b, k_b_rep) / scale
    sc_new = torch.einsum("bthd,bshd->bhts", q_b, k_s_rep) / scale
    r = torch.exp((sc_new - sc).clamp(max=80.0))
    a = pattern
    d = 1 - a + a * r
    a_new = a * r / d
    g_row = (a * g).sum(-1, keepdim=True)  # sum_j A_tj g_tj
    contrib = (1 / d - 1) * (g_row - a * g) + (a_new - a) * g
    contrib = contrib.masked_fill(~causal, 0.0)
    per_key = contrib.sum(2)  # [b, h, s]
    b, h, s = per_key.shape
    per_kv = per_key.reshape(b, h // group, group, s).sum(2)  # shared keys: sum their heads
    return per_kv.permute(0, 2, 1)  # [b, s, kv_head]
