"""Canonical TransformerLens hook names, and attaching hooks without TransformerLens' overhead.

Every hook-name string interp builds comes from the tables here: analyses ask for a target at a
layer (``hook_name("z", 3)``), never format ``blocks.{l}...`` themselves. The context manager
reaches into TransformerLens' hook dictionary and context levels, which are private; this is
the one module that does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from interp.errors import InterpError

HookFn = Callable[..., Any]
Hooks = Sequence[tuple[str | Callable[[str], bool], HookFn]]

# Per-layer activation sites ("targets", DESIGN.md's vocabulary) and their hook name templates.
LAYER_HOOKS: dict[str, str] = {
    "resid_pre": "blocks.{l}.hook_resid_pre",
    "resid_mid": "blocks.{l}.hook_resid_mid",
    "resid_post": "blocks.{l}.hook_resid_post",
    "attn_out": "blocks.{l}.hook_attn_out",
    "mlp_out": "blocks.{l}.hook_mlp_out",
    "mlp_post": "blocks.{l}.mlp.hook_post",
    "z": "blocks.{l}.attn.hook_z",
    "q": "blocks.{l}.attn.hook_q",
    "k": "blocks.{l}.attn.hook_k",
    "v": "blocks.{l}.attn.hook_v",
    "rot_q": "blocks.{l}.attn.hook_rot_q",
    "rot_k": "blocks.{l}.attn.hook_rot_k",
    "pattern": "blocks.{l}.attn.hook_pattern",
    "attn_scores": "blocks.{l}.attn.hook_attn_scores",
    "result": "blocks.{l}.attn.hook_result",
    "q_input": "blocks.{l}.hook_q_input",
    "k_input": "blocks.{l}.hook_k_input",
    "v_input": "blocks.{l}.hook_v_input",
    "ln1_scale": "blocks.{l}.ln1.hook_scale",
}
# Sites outside the blocks.
MODEL_HOOKS: dict[str, str] = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "final_scale": "ln_final.hook_scale",
}

_LAYER = re.compile(r"^blocks\.(\d+)\.")


def hook_name(target: str, layer: int | None = None) -> str:
    """The canonical hook name of `target` at `layer` (``hook_name("z", 3)``)."""
    if target in LAYER_HOOKS:
        if layer is None:
            raise InterpError(f"Target {target!r} lives in a block: give its layer.")
        return LAYER_HOOKS[target].format(l=int(layer))
    if target in MODEL_HOOKS:
        return MODEL_HOOKS[target]
    known = sorted({*LAYER_HOOKS, *MODEL_HOOKS})
    raise InterpError(f"Unknown target {target!r}; known targets: {', '.join(known)}.")


def layer_of(name: str) -> int | None:
    """The block index a hook belongs to, or None for hooks outside the blocks."""
    m = _LAYER.match(name)
    return int(m.group(1)) if m else None


def layer_pattern(name: str) -> str:
    """``blocks.3.attn.hook_z`` -> ``blocks.{l}.attn.hook_z``."""
    return _LAYER.sub("blocks.{l}.", name)


def short_form(name: str) -> str:
    """``blocks.3.attn.hook_z`` -> ``z``; ``hook_embed`` -> ``embed``."""
    last = name.rsplit(".", 1)[-1]
    return last[5:] if last.startswith("hook_") else last


def hook_points(tl: Any) -> dict[str, Any]:
    """Name -> HookPoint of a TransformerLens model (HookedTransformer or bridge)."""
    return dict(getattr(tl, "hook_dict", {}) or {})


def hooked_layers(tl: Any) -> set[int]:
    """Layers with any forward hook on one of their hook points (ours or the user's)."""
    out = set()
    for name, hp in hook_points(tl).items():
        layer = layer_of(name)
        if layer is not None and (hp._forward_hooks or hp._forward_pre_hooks):
            out.add(layer)
    return out


def active_hooks(tl: Any) -> list[str]:
    """Names of hook points with any forward or backward hook attached."""
    return [
        name
        for name, hp in hook_points(tl).items()
        if hp._forward_hooks or hp._forward_pre_hooks or hp._backward_hooks
    ]


@contextlib.contextmanager
def attached(tl: Any, fwd_hooks: Hooks = (), bwd_hooks: Hooks = ()) -> Iterator[None]:
    """Attach hooks for the duration of the block; removed even if the block raises.

    Hooks go on at a fresh context level and only that level is removed on exit, so hooks the
    caller attached outside the block (or an enclosing block) stay in place.
    """
    fwd, bwd = list(fwd_hooks), list(bwd_hooks)
    points = getattr(tl, "hook_dict", None)
    if (
        bwd
        or points is None
        or not hasattr(tl, "context_level")
        or not all(isinstance(n, str) and n in points for n, _ in fwd)
    ):
        # Name filters, backward hooks, other backends: TransformerLens' own context.
        with tl.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
            yield
        return
    # Fast path: TransformerLens' context resets every hook point of the model on exit, which
    # dominates short patched forwards; only the points used here are touched.
    tl.context_level += 1
    level = tl.context_level
    used = []
    try:
        for name, fn in fwd:
            hp = points[name]
            hp.add_hook(fn, dir="fwd", level=level)
            used.append(hp)
        yield
    finally:
        for hp in dict.fromkeys(used):
            hp.remove_hooks("fwd", including_permanent=False, level=level)
        tl.context_level -= 1
