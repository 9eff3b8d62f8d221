"""Fused kernels for TransformerLens' hand-written elementwise code, for interp's own runs.

TransformerLens writes GPT-2's ``gelu_new`` and its layer norms as chains of elementwise torch
ops (``gelu_new`` alone is eight passes over the MLP activations), which on CPU cost more than
the matmuls beside them once patched runs are stacked on the batch axis. Inside ``fused(model)``
they run as ``F.gelu(approximate="tanh")`` and ``F.layer_norm`` / ``F.rms_norm``: the same
functions, one pass each, equal up to float rounding (about 1e-7 relative). A norm whose hook
points carry a hook (someone reads or edits ``hook_scale`` / ``hook_normalized``) keeps its
original code for that call, so hooks always see what they expect. Everything is restored on
exit, also when the block raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.components import LayerNorm, LayerNormPre, RMSNorm, RMSNormPre
from transformer_lens.utilities.activation_functions import gelu_new

from interp import weights


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def _hooked(module: Any) -> bool:
    return any(
        hp._forward_hooks or hp._backward_hooks or hp._forward_pre_hooks
        for hp in (module.hook_scale, module.hook_normalized)
    )


def _fused_norm(module: Any, original: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    eps = module.eps
    centred = isinstance(module, (LayerNorm, LayerNormPre))
    weight = getattr(module, "w", None)
    bias = getattr(module, "b", None)

    def forward(x: Tensor) -> Tensor:
        if _hooked(module) or x.dtype not in (torch.float32, torch.float64):
            return original(x)
        shape = (x.shape[-1],)
        if centred:
            return F.layer_norm(x, shape, weight, bias, eps)
        return F.rms_norm(x, shape, weight, eps)

    return forward


@contextlib.contextmanager
def fused(model: Any) -> Iterator[None]:
    """Run `model` (an interp Model or a HookedTransformer) with fused GELU and norms."""
    tl = getattr(model, "tl", model)
    dtype = getattr(getattr(tl, "cfg", None), "dtype", None)
    if not isinstance(tl, torch.nn.Module) or dtype not in (torch.float32, torch.float64):
        yield  # other backends and half precision (where TransformerLens upcasts) as they are
        return
    swapped: list[tuple[Any, str, Any]] = []
    stack = contextlib.ExitStack()
    try:
        # TransformerLens lays some weights out afresh on every call (a transposed copy of the
        # unembedding, 113 MB for SmolLM2): inside the block each copy is made once.
        stack.enter_context(weights.laid_out(tl))
        for module in tl.modules():
            # A forward already set on the instance is an enclosing `fused` (or the user's own
            # patch): leave it, so nested blocks restore only what they changed.
            norm = type(module) in (LayerNorm, LayerNormPre, RMSNorm, RMSNormPre)
            if norm and "forward" not in module.__dict__:
                swapped.append((module, "forward", None))
                setattr(module, "forward", _fused_norm(module, module.forward))  # noqa: B010
            elif getattr(module, "act_fn", None) is gelu_new:
                swapped.append((module, "act_fn", gelu_new))
                setattr(module, "act_fn", _gelu_tanh)  # noqa: B010
        yield
    finally:
        for module, attr, old in reversed(swapped):
            if attr == "forward":
                del module.forward  # back to the class's method
            else:
                setattr(module, attr, old)
        stack.close()
