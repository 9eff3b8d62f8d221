"""Attention internals that exact patching relies on: key-value cache entries, keys and values
as a block computes them, the attention scale, and whether a cached run can seed the KV cache.

TransformerLens caches keys *before* rotary (``hook_k``) and rotates every key by its absolute
position when attending, so a run's ``hook_k`` / ``hook_v`` are exactly what its KV cache holds
(for grouped-query models: one entry per key-value head). These functions take interp's `Model`
handle; this module and `interp.models.lean` are the only places that build TransformerLens
cache objects.
"""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from interp.models.handle import Model

KV = tuple[Float[Tensor, "batch pos kv_head d_head"], Float[Tensor, "batch pos kv_head d_head"]]


def frozen_cache(model: Model, entries: dict[int, KV]) -> list[Any]:
    """A `past_kv_cache` for `model.forward`: per layer, frozen keys/values of earlier positions
    (layers not given hold None: the run must not go through them)."""
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

    out: list[Any] = [None] * model.n_layers
    for layer, (k, v) in entries.items():
        out[layer] = TransformerLensKeyValueCacheEntry(past_keys=k, past_values=v, frozen=True)
    return out


def block_keys_values(model: Model, layer: int, resid: Float[Tensor, "batch pos d_model"]) -> KV:
    """Keys (before rotary) and values block `layer` computes from its input `resid`."""
    block = model.block(layer)
    h = block.ln1(resid)
    _, k, v = block.attn.calculate_qkv_matrices(h, h, h)
    return k, v


def attention_scale(model: Model, layer: int) -> float:
    """What block `layer` divides attention scores by (sqrt(d_head) unless configured)."""
    return float(model.attention(layer).attn_scale)


def seeds_kv_cache(model: Model) -> bool:
    """Whether a run can start at position p from a cached run's ``hook_k`` / ``hook_v`` of
    positions < p: causal attention, positions the KV cache offsets correctly, and keys and
    values cached as the hooks see them."""
    cfg = model.cfg
    return (
        model.backend == "HookedTransformer"
        and model.is_causal
        and model.positional_embedding_type in ("standard", "rotary")
        and not any(t == "local" for t in (getattr(cfg, "attn_types", None) or []))
        and not getattr(cfg, "use_qk_norm", False)
        and getattr(cfg, "clip_qkv", None) is None
    )


def starts_mid_model(model: Model) -> bool:
    """Whether a run can start at a block from cached residuals (``start_at_layer``): the
    HookedTransformer backend, with positions not added inside every block (shortformer)."""
    return model.backend == "HookedTransformer" and model.positional_embedding_type != "shortformer"


def keys_from_normed_input(model: Model) -> bool:
    """Whether every block computes keys and values from its normalised input in one piece
    (not split per head), so `block_keys_values` applies."""
    cfg = model.cfg
    return (
        not cfg.use_split_qkv_input
        and not cfg.use_attn_in
        and not getattr(cfg, "load_in_4bit", False)
    )
