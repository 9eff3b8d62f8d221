"""Weights laid out once per block of interp's runs, where TransformerLens lays them out per call.

TransformerLens 3's unembedding and gated MLP call ``F.linear(x, W.T.contiguous())`` and its
attention ``F.linear(x, rearrange(W_Q, "h m d -> (h d) m"))``: a fresh copy of the weight on
every forward, which on a CPU costs more than the matrix product itself for small batches (the
unembedding of SmolLM2 is 113 MB). Inside `interp.kernels.fused` these modules use a copy made
once (the same values in the same layout, so the same numbers bit for bit). The copies are
detached: gradients still flow to activations (attribution patching), not to the weights.

The replacement forwards repeat TransformerLens' own code, so they are used only with the
version they were checked against (`CHECKED`); any other version runs as it is. Models whose
parameters exceed `MAX_BYTES` run as they are too (the copies would double their memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import einops
import torch
import torch.nn.functional as F
from torch import Tensor

#: TransformerLens versions whose Unembed / GatedMLP / simple_attn_linear code is mirrored here.
CHECKED = ("3.9.0",)
#: Largest model (parameter bytes) whose weights are copied.
MAX_BYTES = 2 << 30

_CACHE: dict[int, dict[tuple[Any, ...], Tensor]] = {}  # id(model) -> laid-out weights
_PATCHED: dict[str, Any] = {}  # originals of the module-level attention function
_DEPTH = [0]


def _version() -> str:
    try:
        return metadata.version("transformer-lens")
    except metadata.PackageNotFoundError:
        return ""


_ENABLED = _version() in CHECKED


def _laid_out(
    store: dict[tuple[Any, ...], Tensor], w: Tensor, kind: str, make: Callable[[Tensor], Tensor]
) -> Tensor:
    key = (kind, w.data_ptr(), w._version, tuple(w.shape), w.dtype, w.device)
    out = store.get(key)
    if out is None:
        # A normal tensor (not an inference tensor), so backward passes may use it.
        with torch.inference_mode(False), torch.no_grad():
            out = make(w.detach()).contiguous()
        store[key] = out
    return out


def _transposed(w: Tensor) -> Tensor:
    return w.T


def _heads_rows(w: Tensor) -> Tensor:
    return einops.rearrange(w, "head_index d_model d_head -> (head_index d_head) d_model")


def _unembed(module: Any, store: dict[tuple[Any, ...], Tensor]) -> Callable[[Tensor], Tensor]:
    def forward(residual: Tensor) -> Tensor:
        residual = module.hook_in(residual)
        w = _laid_out(store, module.W_U, "T", _transposed)
        return module.hook_out(F.linear(residual, w, module.b_U))

    return forward


def _gated_mlp(
    module: Any, store: dict[tuple[Any, ...], Tensor], original: Callable[[Tensor], Tensor]
) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        if module.W_gate.device != x.device or (
            module.cfg.is_layer_norm_activation()
            and getattr(module, "hook_mid", None) is not None
            and getattr(module, "ln", None) is not None
        ):
            return original(x)
        pre_act = module.hook_pre(F.linear(x, _laid_out(store, module.W_gate, "T", _transposed)))
        pre_linear = module.hook_pre_linear(
            F.linear(x, _laid_out(store, module.W_in, "T", _transposed))
        )
        post_act = module.hook_post((module.act_fn(pre_act) * pre_linear) + module.b_in)
        return F.linear(post_act, _laid_out(store, module.W_out, "T", _transposed), module.b_out)

    return forward


def _attn_linear(original: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def simple_attn_linear(input: Tensor, w: Tensor, b: Tensor) -> Tensor:
        store = _CACHE.get(_owner(w))
        if store is None or input.device != w.device or input.device != b.device:
            return original(input, w, b)
        rows = _laid_out(store, w, "heads", _heads_rows)
        b_ = einops.rearrange(b, "head_index d_head -> (head_index d_head)")
        out = F.linear(input, rows, b_)
        return out.reshape(input.shape[0], input.shape[1], b.shape[0], b.shape[1])

    return simple_attn_linear


_OWNERS: dict[int, int] = {}  # data_ptr of an attention weight -> id(model)


def _owner(w: Tensor) -> int:
    return _OWNERS.get(w.data_ptr(), -1)


@contextlib.contextmanager
def laid_out(tl: Any) -> Iterator[None]:
    """Run `tl` with weights laid out once for the block (see the module docstring); nested
    blocks for the same model share the outer block's copies. Restored on exit, also when the
    block raises."""
    from transformer_lens.components import Unembed
    from transformer_lens.components.mlps.gated_mlp import GatedMLP

    size = sum(p.numel() * p.element_size() for p in tl.parameters())
    if not _ENABLED or size > MAX_BYTES or id(tl) in _CACHE:
        yield
        return
    store: dict[tuple[Any, ...], Tensor] = {}
    _CACHE[id(tl)] = store
    swapped: list[Any] = []
    patched = False
    try:
        for module in tl.modules():
            for name in ("W_Q", "W_K", "W_V", "_W_K", "_W_V"):
                w = module.__dict__.get("_parameters", {}).get(name)
                if isinstance(w, Tensor):
                    _OWNERS[w.data_ptr()] = id(tl)
            if "forward" in module.__dict__:
                continue  # someone else's patch: leave it
            if type(module) is Unembed:
                setattr(module, "forward", _unembed(module, store))  # noqa: B010
                swapped.append(module)
            elif type(module) is GatedMLP:
                setattr(module, "forward", _gated_mlp(module, store, module.forward))  # noqa: B010
                swapped.append(module)
        _patch_attention()
        patched = True
        yield
    finally:
        for module in swapped:
            del module.forward  # back to the class's method
        _release(tl, patched)


def _patch_attention() -> None:
    from transformer_lens.components import abstract_attention, grouped_query_attention

    _DEPTH[0] += 1
    if _DEPTH[0] > 1:
        return
    for mod in (abstract_attention, grouped_query_attention):
        _PATCHED[mod.__name__] = original = getattr(mod, "simple_attn_linear")  # noqa: B009
        setattr(mod, "simple_attn_linear", _attn_linear(original))  # noqa: B010


def _release(tl: Any, patched: bool) -> None:
    """Drop `tl`'s laid-out weights and, after the last block, restore the attention function."""
    from transformer_lens.components import abstract_attention, grouped_query_attention

    _CACHE.pop(id(tl), None)
    for ptr in [p for p, owner in _OWNERS.items() if owner == id(tl)]:
        del _OWNERS[ptr]
    if not patched:
        return  # failed before patching the attention function
    _DEPTH[0] -= 1
    if _DEPTH[0] == 0:
        for mod in (abstract_attention, grouped_query_attention):
            setattr(mod, "simple_attn_linear", _PATCHED.pop(mod.__name__))  # noqa: B010
