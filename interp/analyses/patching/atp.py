"""Attribution patching, AtP and AtP* (Kramar et al. 2024): every component at once.

``effect(n) ~= (a_n(source) - a_n(base)) . dM/da_n`` on the base run (METHODS.md section 4). AtP*
replaces the linearisation through the softmax for query and key nodes by the exact attention
probabilities recomputed with the patched query or key (QK fix), and adds GradDrop: one extra
backward pass per layer with that layer's residual contribution cut from the gradient, scored as
``sum_l |effect_l(n)| / (L - 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.patching.engine import Patcher
from interp.analyses.patching.exact import build_result
from interp.analyses.patching.nodes import (
    HEAD_TARGETS,
    RESID_TARGETS,
    Node,
    PerPosition,
    canonical,
    check_target,
    sweep,
)
from interp.analyses.patching.readout import (
    DEFAULT_BUDGET,
    Readout,
    make_readout,
    parse_budget,
    resid_metric,
)
from interp.analyses.patching.runs import Corruption, Direction, Input, base_and_source, inputs
from interp.checks import checked
from interp.errors import InterpError
from interp.kernels import fused
from interp.models import Model, load_model
from interp.models.kv import attention_scale
from interp.results.base import Coord
from interp.results.patching import AtPResult
from interp.tasks.metrics import Metric
from interp.tasks.task import Task


@overload
def attribution_patch(
    model: Model | Any,
    task: Task,
    target: str = ...,
    per_position: PerPosition = ...,
    direction: Direction = ...,
    metric: str | Metric = ...,
    corruption: Corruption = ...,
    star: bool = ...,
    verify_top_k: int | None = ...,
    n_boot: int = ...,
    seed: int = ...,
    memory_budget: int | str = ...,
    progress: bool = ...,
) -> AtPResult: ...
@overload
def attribution_patch(
    model: Model | Any,
    task: Task,
    target: list[str] | tuple[str, ...],
    per_position: PerPosition = ...,
    direction: Direction = ...,
    metric: str | Metric = ...,
    corruption: Corruption = ...,
    star: bool = ...,
    verify_top_k: int | None = ...,
    n_boot: int = ...,
    seed: int = ...,
    memory_budget: int | str = ...,
    progress: bool = ...,
) -> dict[str, AtPResult]: ...


@checked
def attribution_patch(
    model: Model | Any,
    task: Task,
    target: str | Sequence[str] = "z",
    per_position: PerPosition = False,
    direction: Direction = "denoise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    star: bool = False,
    verify_top_k: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
) -> AtPResult | dict[str, AtPResult]:
    """Estimate every component's patching effect at once.

    Args:
        model, task, per_position, direction, metric, corruption, n_boot, seed: as in
            `activation_patch` (scores are in the same normalised units).
        target: one target (returns an `AtPResult`) or several (returns a dict of them, all from
            the same forward and backward passes).
        star: AtP*: QK fix for ``q``/``k`` targets and GradDrop scores (``extras['graddrop']``).
        verify_top_k: re-measure the k highest-ranked components by exact patching
            (``extras['verified']``, NaN elsewhere; ``meta['verified']`` lists them).
        memory_budget / progress: for the verification runs.
    """
    model = load_model(model)
    given = [target] if isinstance(target, str) else list(target)
    targets = list(dict.fromkeys(canonical(t) for t in given))
    if not targets:
        raise InterpError("target is empty: give e.g. 'z' or ['z', 'mlp_out'].")
    sweeps = {}
    for t in targets:
        check_target(model, t, per_position)
        sweeps[t] = sweep(model, t, per_position, task.seq_len)
    model.require("attribution_patch", "logits", "hooked")
    clean, corrupt = inputs(model, task, corruption)
    base, source = base_and_source(clean, corrupt, direction)
    names = sorted({n for t in targets for n in model.hook_names_for(t)})
    qk = star and any(t in ("q", "k") for t in targets)
    # Two forwards and one backward: the source run gives the activations and its metric, the
    # base run (with gradients) its metric and the gradients. Built-in metrics read only the
    # answer position, so only those rows are unembedded (a large vocabulary costs a third of a
    # small model's forward).
    with fused(model):  # one-pass GELU and norms, forward and backward
        src_acts, src_resid = _activations(model, source, names + (_qk_names(model) if qk else []))
        clean_logits: Tensor | None = None
        if metric == "kl":  # the KL reference must exist before the base run
            clean_logits = (
                model.unembed(src_resid)
                if direction == "denoise"
                else model.unembed(_activations(model, clean, [])[1])
            )
        readout = make_readout(model, task, metric, clean_logits)
        source_m = resid_metric(model, readout, src_resid, "the source run")
        effects, base_metric = _effects(model, base, src_acts, readout, targets, per_position, star)
    source_m = source_m.float().cpu()
    base_metric = base_metric.detach()  # the gradients are in `effects`; keep no graph
    clean_m, corrupt_m = (
        (source_m, base_metric) if direction == "denoise" else (base_metric, source_m)
    )
    out: dict[str, AtPResult] = {}
    for t in targets:
        nodes, dims, coords_int = sweeps[t]
        coords: dict[str, list[Coord]] = {k: list(v) for k, v in coords_int.items()}
        per_prompt = effects[t]["linear"]
        base_m = corrupt_m if direction == "denoise" else clean_m
        extras: dict[str, Tensor] = {}
        if star:
            gap = (clean_m - corrupt_m).double().mean()
            extras["graddrop"] = (effects[t]["graddrop"].double() / gap.abs()).float()
        res = build_result(
            AtPResult,
            model=model,
            task=task,
            per_prompt=per_prompt + base_m.reshape((-1,) + (1,) * (per_prompt.ndim - 1)),
            clean=clean_m,
            corrupt=corrupt_m,
            dims=dims,
            coords=coords,
            direction=direction,
            metric=metric,
            corruption=corruption,
            n_boot=n_boot,
            seed=seed,
            params={"target": t, "per_position": per_position, "star": star},
            title=f"{'AtP*' if star else 'AtP'} ({direction}): {t}",
            extras=extras,
        )
        if verify_top_k:
            _verify(
                model,
                res,
                nodes,
                verify_top_k,
                base,
                source,
                readout,
                memory_budget,
                progress,
                direction,
                clean_m,
                corrupt_m,
            )
        out[t] = res
    if isinstance(target, str):
        return out[canonical(target)]
    return {t: out[canonical(t)] for t in given}


def _qk_targets(model: Model) -> tuple[str, str]:
    """The query and key activations attention scores are made of (after rotary, if any)."""
    return ("rot_q", "rot_k") if model.positional_embedding_type == "rotary" else ("q", "k")


def _qk_names(model: Model) -> list[str]:
    q, k = _qk_targets(model)
    return [model.hook_name(t, l) for l in range(model.n_layers) for t in (q, k, "pattern")]


@torch.inference_mode()
def _activations(
    model: Model, inp: Input, names: list[str]
) -> tuple[dict[str, Tensor], Float[Tensor, "batch seq d_model"]]:
    """Named activations and the final residual stream (before the final norm)."""
    store: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: Any) -> None:
        store[hook.name] = act.detach().clone()

    with model.hooks([*inp.hooks, *((n, keep) for n in names)]):
        resid = model.forward(inp.tokens, stop_at_layer=model.n_layers)
    return store, resid


def _effects(
    model: Model,
    base: Input,
    src: dict[str, Tensor],
    readout: Readout,
    targets: list[str],
    per_position: PerPosition,
    star: bool,
) -> tuple[dict[str, dict[str, Tensor]], Tensor]:
    """Per target: the linear (or QK-fixed) estimate per prompt, and GradDrop's |.| sum."""
    L = model.n_layers
    wanted = {n for t in targets for n in model.hook_names_for(t)}
    qk = star and any(t in ("q", "k") for t in targets)
    if qk:
        wanted |= set(_qk_names(model))
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
            e = _qk_fix(model, l, target, base, src, grads)  # [b, pos, head]
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


def _qk_fix(
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
    qn, kn = (model.hook_name(t, layer) for t in _qk_targets(model))
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


def _verify(
    model: Model,
    res: AtPResult,
    nodes: list[Node],
    k: int,
    base: Input,
    source: Input,
    readout: Readout,
    budget: int | str,
    progress: bool,
    direction: Direction,
    clean_m: Tensor,
    corrupt_m: Tensor,
) -> None:
    if k < 1:
        raise InterpError(f"verify_top_k must be at least 1, got {k}.")
    order = torch.argsort(res.ranking_score.reshape(-1), descending=True)[:k].tolist()
    chosen = [nodes[i] for i in order]
    patcher = Patcher(
        model,
        readout,
        base,
        source,
        sorted({n.hook for n in chosen}),
        budget=parse_budget(budget),
        progress=progress,
        desc="verify top-k",
    )
    raw = patcher.run([[n] for n in chosen]).double().mean(1)
    base_m = (corrupt_m if direction == "denoise" else clean_m).double().mean()
    exact = (raw - base_m) / (clean_m - corrupt_m).double().mean()
    verified = torch.full((res.values.numel(),), float("nan"))
    verified[order] = exact.float()
    res.extras["verified"] = verified.reshape(res.values.shape)
    res.meta["verified"] = [
        {"node": str(n), "atp": float(res.values.reshape(-1)[i]), "exact": float(e)}
        for n, i, e in zip(chosen, order, exact.tolist(), strict=True)
    ]
