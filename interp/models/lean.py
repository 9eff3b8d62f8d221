"""Unhooked transformer blocks on a frozen KV cache, without TransformerLens' per-call overhead.

A patched run spends most of its time in the layers after the patch, where nothing is hooked:
those layers only have to compute what TransformerLens' blocks compute. On small models one
block call on a few positions costs about a millisecond of Python (hook points, einops
rearranges, cache objects) for microseconds of arithmetic. `LeanBlocks` runs the same
arithmetic directly from the model's weights for standard pre-norm blocks:

- GPT-2 shaped: LayerNorm (or its folded form), one fused QKV projection, learned absolute
  positions (nothing to do inside the block), GELU/ReLU MLP;
- Llama shaped: RMSNorm (or its folded form, TransformerLens' ``RMSPre``), rotary embeddings
  on queries and keys at their absolute positions, grouped-query attention (each key-value
  head serves ``n_heads / n_key_value_heads`` query heads), a gated MLP
  (``act(x W_gate) * (x W_in) + b_in``).

Attention runs against the base run's cached keys and values of earlier positions (shared by
every stacked patch, not copied per patch). TransformerLens caches keys *before* rotary and
rotates every key by its absolute position when attending; so do the lean blocks. Anything else
(parallel blocks, soft-capping, post-norm, local attention, other classes) returns None from
`LeanBlocks.build`, and the caller keeps TransformerLens' forward. The patching engine also
checks the first lean result of every run against TransformerLens' own forward and falls back
if they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens.components import (
    MLP,
    Attention,
    GatedMLP,
    GroupedQueryAttention,
    LayerNorm,
    LayerNormPre,
    RMSNorm,
    RMSNormPre,
    TransformerBlock,
)
from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

MAX_QKV_COPY = 256 << 20  # bytes: larger models keep TransformerLens' forward
_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}
# Config switches that change the block's arithmetic; each must be off (falsy).
_OFF = (
    "attn_only",
    "parallel_attn_mlp",
    "use_attn_in",
    "use_split_qkv_input",
    "use_attn_result",
    "use_normalization_before_and_after",
    "scale_attn_by_inverse_layer_idx",
    "use_qk_norm",
    "use_logn_attn",
    "use_attention_sinks",
    "use_dynamic_ntk_rope",
    "clip_qkv",
    "attn_types",
    "load_in_4bit",
)
_NORMS = (LayerNorm, LayerNormPre, RMSNorm, RMSNormPre)

# (weight or None, bias or None, eps, centred: LayerNorm vs RMSNorm)
_Norm = tuple[Tensor | None, Tensor | None, float, bool]


@dataclass(frozen=True)
class _Layer:
    ln1: _Norm
    # Weights in F.linear's [out, in] layout.
    w_qkv: Tensor  # [(n_heads + 2 * n_kv_heads) * d_head, d_model]
    b_qkv: Tensor
    w_o: Tensor  # [d_model, n_heads * d_head]
    b_o: Tensor
    scale: float
    rotary: tuple[Tensor, Tensor] | None  # (cos, sin) [n_ctx, rotary_dim]
    ln2: _Norm
    w_in: Tensor  # [d_mlp, d_model]
    b_in: Tensor
    w_gate: Tensor | None  # [d_mlp, d_model]
    w_out: Tensor  # [d_model, d_mlp]
    b_out: Tensor


def _norm(module: Any) -> _Norm:
    centred = isinstance(module, (LayerNorm, LayerNormPre))
    return getattr(module, "w", None), getattr(module, "b", None), float(module.eps), centred


def _apply_norm(x: Tensor, norm: _Norm) -> Tensor:
    w, b, eps, centred = norm
    shape = (x.shape[-1],)
    if centred:
        return F.layer_norm(x, shape, w, b, eps)
    return F.rms_norm(x, shape, w, eps)


def unsupported(tl: Any) -> str | None:
    """Why the lean blocks cannot run `tl`'s blocks, or None when they can."""
    cfg = tl.cfg
    if cfg.positional_embedding_type not in ("standard", "rotary"):
        return f"positional embeddings {cfg.positional_embedding_type!r}"
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
    if cfg.is_layer_norm_activation():
        return f"activation {cfg.act_fn!r} with a norm inside the MLP"
    attn_kinds = (GroupedQueryAttention,) if cfg.n_key_value_heads else (Attention,)
    mlp_kind = GatedMLP if cfg.gated_mlp else MLP
    for block in tl.blocks:
        if type(block) is not TransformerBlock or type(block.attn) not in attn_kinds:
            return "a block or attention class other than TransformerLens' standard ones"
        if type(block.mlp) is not mlp_kind:
            return "an MLP class other than TransformerLens' MLP / GatedMLP"
        if not all(type(n) in _NORMS for n in (block.ln1, block.ln2)):
            return "norms other than LayerNorm / RMSNorm (folded or not)"
    return None


class LeanBlocks:
    """The standard pre-norm blocks of a HookedTransformer, run from their weights."""

    def __init__(self, tl: Any) -> None:
        cfg = tl.cfg
        self.n_heads, self.d_head = int(cfg.n_heads), int(cfg.d_head)
        grouped = bool(cfg.n_key_value_heads) and not cfg.ungroup_grouped_query_attention
        self.n_kv = int(cfg.n_key_value_heads) if grouped else self.n_heads
        self.rotary_dim = int(cfg.rotary_dim or 0)
        self.adjacent = bool(getattr(cfg, "rotary_adjacent_pairs", False))
        self.act = _ACTS[cfg.act_fn]
        self.layers = [self._layer(block, grouped) for block in tl.blocks]

    @classmethod
    def build(cls, model: Any) -> LeanBlocks | None:
        """Lean blocks for `model` (an interp Model or a HookedTransformer), or None where its
        blocks are not a kind covered here or the model is large (there compute dominates, and
        the fused QKV weights are a copy)."""
        tl = getattr(model, "tl", model)
        cfg = tl.cfg
        qkv_bytes = 3 * cfg.n_layers * cfg.d_model * cfg.n_heads * cfg.d_head * cfg.dtype.itemsize
        if qkv_bytes > MAX_QKV_COPY or unsupported(tl) is not None:
            return None
        return cls(tl)

    def _layer(self, block: Any, grouped: bool) -> _Layer:
        a, m = block.attn, block.mlp
        d = a.W_Q.shape[1]

        def rows(w: Tensor) -> Tensor:  # [head, d_model, d_head] -> [head * d_head, d_model]
            return w.detach().permute(0, 2, 1).reshape(-1, d)

        w_k, w_v = (a._W_K, a._W_V) if grouped else (a.W_K, a.W_V)
        b_k, b_v = (a._b_K, a._b_V) if grouped else (a.b_K, a.b_V)
        rotary = None
        if self.rotary_dim:
            rotary = (a.rotary_cos.detach(), a.rotary_sin.detach())
        gate = getattr(m, "W_gate", None)
        return _Layer(
            ln1=_norm(block.ln1),
            w_qkv=torch.cat([rows(a.W_Q), rows(w_k), rows(w_v)]).contiguous(),
            b_qkv=torch.cat([a.b_Q.reshape(-1), b_k.reshape(-1), b_v.reshape(-1)]).detach(),
            # Transposed views, not copies: matmul reads them with BLAS's transpose flag.
            w_o=a.W_O.detach().reshape(-1, d).T,
            b_o=a.b_O.detach(),
            scale=float(a.attn_scale),
            rotary=rotary,
            ln2=_norm(block.ln2),
            w_in=m.W_in.detach().T,
            b_in=m.b_in.detach(),
            w_gate=None if gate is None else gate.detach().T,
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
        base run's keys (before rotary, as TransformerLens caches them) and values
        ``[B, s, kv_head, d_head]`` of the s earlier positions at layer ``layers[i]``, shared by
        all copies. With `last_only`, the final layer computes its output for the last position
        only (the others still give keys and values).
        """
        for i, layer in enumerate(layers):
            only = last_only and layer == layers[-1]
            x = self._block(self.layers[layer], x, past[i], n, only)
        return x

    def _rotate(self, x: Tensor, rotary: tuple[Tensor, Tensor], offset: int) -> Tensor:
        """TransformerLens' `apply_rotary` for x ``[..., pos, d_head]`` at positions
        offset, offset + 1, ..."""
        cos, sin = rotary
        t, rd = x.shape[-2], self.rotary_dim
        if offset + t > cos.shape[0]:
            raise ValueError(
                f"positions up to {offset + t} exceed the rotary table ({cos.shape[0]})"
            )
        x_rot, x_pass = x[..., :rd], x[..., rd:]
        if self.adjacent:
            flip = torch.stack([-x_rot[..., 1::2], x_rot[..., ::2]], -1).flatten(-2)
        else:
            half = rd // 2
            flip = torch.cat([-x_rot[..., half:], x_rot[..., :half]], -1)
        out = x_rot * cos[offset : offset + t] + flip * sin[offset : offset + t]
        return torch.cat([out, x_pass], -1) if x_pass.shape[-1] else out

    def _block(
        self, p: _Layer, x: Tensor, past: tuple[Tensor, Tensor], n: int, last_only: bool
    ) -> Tensor:
        nb, t, _ = x.shape
        B, h, kvh, dh = nb // n, self.n_heads, self.n_kv, self.d_head
        g = h // kvh
        qkv = F.linear(_apply_norm(x, p.ln1), p.w_qkv, p.b_qkv).view(n, B, t, h + 2 * kvh, dh)
        q = qkv[:, :, :, :h].permute(0, 1, 3, 2, 4)  # [n, B, head, t, d_head]
        k = qkv[:, :, :, h : h + kvh].permute(0, 1, 3, 2, 4)  # [n, B, kv_head, t, d_head]
        v = qkv[:, :, :, h + kvh :].permute(0, 1, 3, 2, 4)
        pk, pv = (c.permute(0, 2, 1, 3)[None] for c in past)  # [1, B, kv_head, s, d_head]
        s = pk.shape[-2]
        if last_only:
            q, x = q[..., -1:, :], x[:, -1:]
        tq = q.shape[-2]
        if p.rotary is not None:
            # Keys are cached before rotary: rotate every key by its absolute position.
            q = self._rotate(q, p.rotary, s + t - tq)
            k = self._rotate(k, p.rotary, s)
            pk = self._rotate(pk, p.rotary, 0)
        # Query head j reads key-value head j // g (TransformerLens' repeat_interleave).
        qg = q.reshape(n, B, kvh, g, tq, dh)
        pk, pv, k, v = (c[:, :, :, None] for c in (pk, pv, k, v))  # [., B, kv_head, 1, ., dh]
        scores = torch.cat([qg @ pk.transpose(-1, -2), qg @ k.transpose(-1, -2)], -1) / p.scale
        # Query j (at position s + t - tq + j) sees the cached positions and new ones up to it.
        new = torch.arange(t, device=x.device)
        seen = new[None, :] <= (new[t - tq :, None])
        mask = torch.cat([torch.ones(tq, s, dtype=torch.bool, device=x.device), seen], 1)
        pattern = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
        z = pattern[..., :s] @ pv + pattern[..., s:] @ v  # [n, B, kv_head, g, tq, d_head]
        z = z.reshape(n, B, h, tq, dh).permute(0, 1, 3, 2, 4).reshape(nb, tq, h * dh)
        mid = x + F.linear(z, p.w_o, p.b_o)
        normed = _apply_norm(mid, p.ln2)
        if p.w_gate is None:
            hidden = self.act(F.linear(normed, p.w_in, p.b_in))
        else:
            hidden = self.act(F.linear(normed, p.w_gate)) * F.linear(normed, p.w_in) + p.b_in
        return mid + F.linear(hidden, p.w_out, p.b_out)
