"""Attribution patching's first-order estimate of every component at once (METHODS.md section 4).

``effect(n) ~= (a_n(source) - a_n(base)) . dM/da_n`` on the base run: two forwards (source and
base) and one backward. AtP* adds GradDrop, one extra backward pass per layer with that layer's
residual contribution cut from the gradient, and the QK fix for query and key nodes (`qk`).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.patching.nodes import HEAD_TARGETS, RESID_TARGETS, PerPosition
from interp.analyses.patching.qk import qk_fix, qk_names
from interp.analyses.patching.readout import Readout, resid_metric
from interp.analyses.patching.runs import Input
from interp.models import Model


@torch.inference_mode()
def activations(
    model: Model, inp: Input, names: list[str]
) -> tuple[dict[str, Tensor], Float[Tensor, "batch seq d_model"]]:
    """Named activations and the final residual stream (before the final norm)."""
    store: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: Any) -> None:
        store[hook.name] = act.detach().clone()

    with model.hooks([*inp.hooks, *((n, keep) for n in names)]):
        resid = model.forward(inp.tokens, stop_at_layer=model.n_layers)
    return store, resid


def effects(
    model: Model,
    base: Input,
    src: dict[str, Tensor],
    readout: Readout,
    targets: list[str],
    per_position: PerPosition,
    star: bool,
) -> tuple[dict[str, dict[str, Tensor]], Tensor]:
    """Per target: the linear (or QK-fixed) estimate per prompt, and GradDrop's |.| sum; and
    the base run's metric per prompt."""
    L = model.n_layers
    wanted = {n for t in targets for n in model.hook_names_for(t)}
    qk = star and any(t in ("q", "k") for t in targets)
    if qk:
        wanted |= set(qk_names(model))
    acts: dict[str, Tensor] = {}
    drop: dict[str, int | None] = {"layer": None}

    def keep(act: Tensor, hook: Any) -> None:
        acts[hook.name] = act

    def cut(layer: int) -> Any:
        def hook(act: Tensor, hook: Any) -> None:
            if act.requires_grad:
                act.register_hook(lambda g: torch.zeros_like(g) if drop["layer"] == layer else g)

        return hook

    hooks: list[tuple[str, Any]] = [*base.hooks, *((n, keep) for n in sorted(wanted))]
    if star:
        hooks += [
            (model.hook_name(t, l), cut(l))
            for l in range(L)
            for t in ("attn_out", "mlp_out")
            if model.has_hook(model.hook_name(t, l))
        ]
    with torch.enable_grad(), model.hooks(hooks):
        m = resid_metric(
            model, readout, model.forward(base.tokens, stop_at_layer=L), "the unpatched base run"
        )
        total = m.sum()  # prompts are independent, so d(total)/d(a_b) = dM_b/d(a_b)
        names = sorted(acts)
        passes: list[int | None] = [None, *(range(L) if star else [])]
        grads_per_pass = []
        for i, layer in enumerate(passes):
            drop["layer"] = layer
            g = torch.autograd.grad(
                total,
                [acts[n] for n in names],
                retain_graph=i < len(passes) - 1,
                allow_unused=True,
            )
            grads_per_pass.append(
                {
                    n: (torch.zeros_like(acts[n]) if gi is None else gi)
                    for n, gi in zip(names, g, strict=True)
                }
            )
    base_acts = {n: a.detach() for n, a in acts.items()}
    out: dict[str, dict[str, Tensor]] = {}
    for t in targets:
        per = [
            _estimate(model, t, per_position, base_acts, src, grads, star)
            for grads in grads_per_pass
        ]
        res = {"linear": per[0].float().cpu()}
        if star:
            # |estimate of the mean effect| per cut layer, averaged as in AtP*: / (L - 1).
            cut_layers = torch.stack([p.double().mean(0).abs() for p in per[1:]])
            res["graddrop"] = (cut_layers.sum(0) / max(1, L - 1)).float().cpu()
        out[t] = res
    return out, m.detach().float().cpu()


def _estimate(
    model: Model,
    target: str,
    per_position: PerPosition,
    base: dict[str, Tensor],
    src: dict[str, Tensor],
    grads: dict[str, Tensor],
    star: bool,
) -> Tensor:
    """Per prompt, in the sweep's axis order (see nodes.sweep)."""
    L = model.n_layers
    layers = []
    for l in range(L):
        name = model.hook_name(target, l)
        if star and target in ("q", "k"):
            e = qk_fix(model, l, target, base, src, grads)  # [b, pos, head]
        else:
            diff = src[name] - base[name]
            e = diff * grads[name]
            if target in RESID_TARGETS:
                e = e.sum(-1)  # [b, pos]
            elif target in HEAD_TARGETS:
                e = e.sum(-1)  # [b, pos, head]
            else:  # pattern [b, head, dest, src]
                e = e if per_position == "dest_src" else e.sum(-1)  # [b, head, dest]
        if not per_position:
            e = e.sum(1) if target != "pattern" else e.sum(-1)
        layers.append(e)
    return torch.stack(layers, dim=1)
