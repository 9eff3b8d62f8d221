"""Unhooked transformer blocks on a frozen KV cache, without TransformerLens' per-call overhead.

A patched run spends most of its time in the layers after the patch, where nothing is hooked:
those layers only have to compute what TransformerLens' blocks compute. On small models one
block call on a few positions costs about a millisecond of Python (hook points, einops
rearranges, cache objects) for microseconds of arithmetic. `LeanBlocks` runs the same
arithmetic directly from the model's weights for the standard pre-norm block (GPT-2 and models
shaped like it): norm, one fused QKV projection, causal attention against the base run's cached
keys and values of earlier positions (shared by every stacked patch, not copied per patch), the
output projection, norm, MLP. Anything else (rotary, grouped-query attention, gated MLPs,
parallel blocks, soft-capping, other classes) returns None from `LeanBlocks.build`, and the
caller keeps TransformerLens' forward. The patching engine also checks the first lean result
of every run against TransformerLens' own forward and falls back if they differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens.components import (
    MLP,
    Attention,
    LayerNorm,
    LayerNormPre,
    TransformerBlock,
)
from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

MAX_QKV_COPY = 256 << 20  # bytes: larger models keep TransformerLens' forward
_ACTS = {"gelu_new": lambda x: F.gelu(x, approximate="tanh"), "gelu": F.gelu, "relu": F.relu}
# Config switches that change the block's arithmetic; each must be off (falsy).
_OFF = (
    "attn_only",
    "parallel_attn_mlp",
    "gated_mlp",
    "use_attn_in",
    "use_split_qkv_input",
    "use_attn_result",
    "use_normalization_before_and_after",
    "scale_attn_by_inverse_layer_idx",
    "use_qk_norm",
    "use_logn_attn",
    "use_attention_sinks",
    "clip_qkv",
    "attn_types",
)


@dataclass(frozen=True)
class _Layer:
    ln1: tuple[Tensor | None, Tensor | None, float]
    # Weights in F.linear's [out, in] layout.
    w_qkv: Tensor  # [3 * n_heads * d_head, d_model]
    b_qkv: Tensor
    w_o: Tensor  # [d_model, n_heads * d_head]
    b_o: Tensor
    scale: float
    ln2: tuple[Tensor | None, Tensor | None, float]
    w_in: Tensor  # [d_mlp, d_model]
    b_in: Tensor
    w_out: Tensor  # [d_model, d_mlp]
    b_out: Tensor


def _norm(module: Any) -> tuple[Tensor | None, Tensor | None, float]:
    return getattr(module, "w", None), getattr(module, "b", None), float(module.eps)


def _unsupported(tl: Any) -> str | None:
    cfg = tl.cfg
    if cfg.positional_embedding_type not in ("standard",):
        return f"positional embeddings {cfg.positional_embedding_type!r}"
    if cfg.n_key_value_heads not in (None, cfg.n_heads):
        return "grouped-query attention"
    if cfg.act_fn not in _ACTS:
        return f"activation {cfg.act_fn!r}"
    if cfg.attention_dir != "causal" or cfg.dtype not in (torch.float32, torch.float64):
        return "non-causal attention or half precision"
    for name in _OFF:
        if getattr(cfg, name, None):
            return name
    if getattr(cfg, "attn_scores_soft_cap", -1.0) > 0:
        return "soft-capped attention scores"
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        return "post-norm blocks"
    for block in tl.blocks:
        kinds = (type(block), type(block.attn), type(block.mlp), type(block.ln1), type(block.ln2))
        if kinds[:3] != (TransformerBlock, Attention, MLP):
            return "a block, attention or MLP class other than TransformerLens' standard ones"
        if not all(k in (LayerNorm, LayerNormPre) for k in kinds[3:]):
            return "norms other than LayerNorm / LayerNormPre"
    return None


class LeanBlocks:
    """The standard pre-norm blocks of a HookedTransformer, run from their weights."""

    def __init__(self, tl: Any) -> None:
        cfg = tl.cfg
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.act = _ACTS[cfg.act_fn]
        self.layers = [self._layer(block) for block in tl.blocks]

    @classmethod
    def build(cls, tl: Any) -> LeanBlocks | None:
        """Lean blocks for `tl`, or None where its blocks are not the standard kind or the
        model is large (there compute dominates, and the fused QKV weights are a copy)."""
        cfg = tl.cfg
        qkv_bytes = 3 * cfg.n_layers * cfg.d_model * cfg.n_heads * cfg.d_head * cfg.dtype.itemsize
        if qkv_bytes > MAX_QKV_COPY or _unsupported(tl) is not None:
            return None
        return cls(tl)

    def _layer(self, block: Any) -> _Layer:
        a, m = block.attn, block.mlp
        d = a.W_Q.shape[1]

        def rows(w: Tensor) -> Tensor:  # [head, d_model, d_head] -> [head * d_head, d_model]
            return w.detach().permute(0, 2, 1).reshape(-1, d)

        return _Layer(
            ln1=_norm(block.ln1),
            w_qkv=torch.cat([rows(a.W_Q), rows(a.W_K), rows(a.W_V)]).contiguous(),
            b_qkv=torch.cat([a.b_Q.reshape(-1), a.b_K.reshape(-1), a.b_V.reshape(-1)]).detach(),
            # Transposed views, not copies: matmul reads them with BLAS's transpose flag.
            w_o=a.W_O.detach().reshape(-1, d).T,
            b_o=a.b_O.detach(),
            scale=float(a.attn_scale),
            ln2=_norm(block.ln2),
            w_in=m.W_in.detach().T,
            b_in=m.b_in.detach(),
            w_out=m.W_out.detach().T,
            b_out=m.b_out.detach(),
        )

    def run(
        self,
        x: Float[Tensor, "nb t d_model"],
        layers: range,
        past: list[tuple[Tensor, Tensor]],
        n: int,
        last_only: bool = False,
    ) -> Float[Tensor, "nb t_out d_model"]:
        """Residual after `layers`, for inputs at the positions right after the cached ones.

        `x` stacks `n` patched copies of a batch of B prompts (copy-major); `past[i]` holds the
        base run's keys and values ``[B, s, head, d_head]`` of the s earlier positions at layer
        ``layers[i]``, shared by all copies. With `last_only`, the final layer computes its
        output for the last position only (the others still give keys and values).
        """
        for i, layer in enumerate(layers):
            only = last_only and layer == layers[-1]
            x = self._block(self.layers[layer], x, past[i], n, only)
        return x

    def _block(
        self, p: _Layer, x: Tensor, past: tuple[Tensor, Tensor], n: int, last_only: bool
    ) -> Tensor:
        nb, t, d = x.shape
        B, h, dh = nb // n, self.n_heads, self.d_head
        w1, b1, eps1 = p.ln1
        qkv = F.linear(F.layer_norm(x, (d,), w1, b1, eps1), p.w_qkv, p.b_qkv)
        # [n, B, head, t, d_head] each
        q, k, v = qkv.view(n, B, t, 3, h, dh).permute(3, 0, 1, 4, 2, 5).unbind(0)
        if last_only:
            q, x = q[..., -1:, :], x[:, -1:]
        tq = q.shape[-2]
        pk, pv = (c.permute(0, 2, 1, 3)[None] for c in past)  # [1, B, head, s, d_head]
        s = pk.shape[-2]
        scores = torch.cat([q @ pk.transpose(-1, -2), q @ k.transpose(-1, -2)], -1) / p.scale
        # Query j (at position s + t - tq + j) sees the cached positions and new ones up to it.
        new = torch.arange(t, device=x.device)
        seen = new[None, :] <= (new[t - tq :, None])
        mask = torch.cat([torch.ones(tq, s, dtype=torch.bool, device=x.device), seen], 1)
        pattern = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
        z = pattern[..., :s] @ pv + pattern[..., s:] @ v  # [n, B, head, tq, d_head]
        z = z.permute(0, 1, 3, 2, 4).reshape(nb, tq, h * dh)
        mid = x + F.linear(z, p.w_o, p.b_o)
        w2, b2, eps2 = p.ln2
        hidden = self.act(F.linear(F.layer_norm(mid, (d,), w2, b2, eps2), p.w_in, p.b_in))
        return mid + F.linear(hidden, p.w_out, p.b_out)


def hooked_layers(tl: Any) -> set[int]:
    """Layers with any forward hook on one of their hook points (ours or the user's)."""
    out = set()
    for name, hp in tl.hook_dict.items():
        if name.startswith("blocks.") and (hp._forward_hooks or hp._forward_pre_hooks):
            out.add(int(name.split(".")[1]))
    return out
