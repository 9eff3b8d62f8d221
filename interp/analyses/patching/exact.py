"""Exact activation patching: every TransformerLens target, or chosen node sets patched together."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from interp.analyses.patching.engine import Patcher
from interp.analyses.patching.nodes import PerPosition, node_sets, sweep
from interp.analyses.patching.readout import DEFAULT_BUDGET, make_readout, parse_budget
from interp.analyses.patching.runs import (
    Corruption,
    Direction,
    GaussianNoise,
    base_and_source,
    inputs,
)
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.results.patching import PatchResult
from interp.stats import bootstrap_ratio
from interp.tasks.metrics import Metric, metric_name, warn_nonfinite
from interp.tasks.task import Task

Target = str | Sequence[Any]


@checked
def activation_patch(
    model: Model | Any,
    task: Task,
    target: Target = "z",
    per_position: PerPosition = False,
    direction: Direction = "denoise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
) -> PatchResult:
    """Patch activations between the clean and corrupted runs and measure the metric.

    Args:
        model: the model (a handle, or anything `interp.load_model` accepts).
        task: clean prompts, answers and corrupted prompts of the same token length.
        target: a TransformerLens activation swept over every component: ``resid_pre``,
            ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out`` (per layer, or per layer and
            position), ``z``, ``q``, ``k``, ``v`` (per head, or per head and position; k/v per
            key-value head), ``pattern`` (per head, per head and destination, or
            ``per_position="dest_src"``). Or node sets patched together: ``["L3H2", "L3H6"]``
            (one set) or ``[["L3H2"], ["L3H2", "L3H6"]]`` (several); see `Node.parse`.
        per_position: sweep positions separately too.
        direction: ``"denoise"`` (run corrupted, patch clean in: is it sufficient?) or
            ``"noise"`` (run clean, patch corrupted in: is it necessary?).
        metric: ``logit_diff`` (default), ``log_prob``, ``prob``, ``kl`` (to the clean run) or a
            callable ``(logits [batch, seq, vocab], task) -> [batch]``.
        corruption: ``"task"`` (the task's corrupted prompts) or `GaussianNoise` on the clean
            prompts' embeddings.
        n_boot / seed: bootstrap confidence intervals over prompts.
        memory_budget: activation memory per stacked forward (bytes or ``"512MiB"``).
        progress: show a progress bar.

    Returns:
        A `PatchResult`: normalised scores with bootstrap intervals; ``.raw`` is the mean raw
        metric per component (what TransformerLens' `patching` module returns).
    """
    model = load_model(model)
    model.require("activation_patch", "logits", "hooked")
    clean, corrupt = inputs(model, task, corruption)
    base, source = base_and_source(clean, corrupt, direction)
    if isinstance(target, str):
        nodes, dims, coords_int = sweep(model, target, per_position, task.seq_len)
        sets = [[n] for n in nodes]
        coords: dict[str, list[Coord]] = {k: list(v) for k, v in coords_int.items()}
        target_desc: Any = target
    else:
        if per_position:
            raise InterpError("per_position applies to a swept target, not to node sets.")
        sets = node_sets(model, target)
        dims = ("set",)
        coords = {"set": [" + ".join(map(str, s)) for s in sets]}
        target_desc = [[str(n) for n in s] for s in sets]
    for s in sets:
        for n in s:
            if n.pos is not None and n.pos >= task.seq_len:
                raise InterpError(f"{n}: position {n.pos} is past the prompts ({task.seq_len}).")
    readout = make_readout(model, task, metric, clean_logits_for(model, clean, metric))
    patcher = Patcher(
        model,
        readout,
        base,
        source,
        sorted({n.hook for s in sets for n in s}),
        budget=parse_budget(memory_budget),
        progress=progress,
        desc=f"patch {target if isinstance(target, str) else 'sets'} ({direction})",
    )
    clean_m, corrupt_m = patcher.endpoints(direction)
    patched = patcher.run(sets)  # [n_sets, batch]
    per_prompt = patched.T.reshape(len(task), *[len(coords[d]) for d in dims])
    return build_result(
        PatchResult,
        model=model,
        task=task,
        per_prompt=per_prompt,
        clean=clean_m,
        corrupt=corrupt_m,
        dims=dims,
        coords=coords,
        direction=direction,
        metric=metric,
        corruption=corruption,
        n_boot=n_boot,
        seed=seed,
        params={"target": target_desc, "per_position": per_position},
        title=f"Activation patching ({direction}): {_target_title(target_desc)}",
    )


def _target_title(target: Any) -> str:
    if isinstance(target, str):
        return target
    return f"{len(target)} node set(s)"


def clean_logits_for(model: Model, clean: Any, metric: str | Metric) -> Tensor | None:
    """The KL metric's reference (the clean run's logits); other metrics need none up front."""
    if metric != "kl":
        return None
    with torch.inference_mode(), model.hooks(clean.hooks):
        logits: Tensor = model(clean.tokens)
    return logits


def _cell_names(dims: tuple[str, ...], coords: dict[str, list[Coord]]) -> list[str]:
    """``layer=3 head=5``-style names of every cell after the prompt axis, flattened."""
    axes = [[f"{d}={c}" for c in coords[d]] for d in dims]
    return [" ".join(cell) for cell in itertools.product(*axes)]


def build_result(
    cls: type[PatchResult],
    *,
    model: Model,
    task: Task,
    per_prompt: Tensor,
    clean: Tensor,
    corrupt: Tensor,
    dims: tuple[str, ...],
    coords: dict[str, list[Coord]],
    direction: Direction,
    metric: str | Metric,
    corruption: Corruption,
    n_boot: int,
    seed: int,
    params: dict[str, Any],
    title: str,
    extras: dict[str, Tensor] | None = None,
    warn_nan: bool = True,
    **meta: Any,
) -> Any:
    """Normalise per-prompt metric values into scores with bootstrap intervals."""
    # AtP hands over metric values from its gradient passes: results carry no graph.
    per_prompt, clean, corrupt = per_prompt.detach(), clean.detach(), corrupt.detach()
    base = corrupt if direction == "denoise" else clean
    shape = (len(task),) + (1,) * (per_prompt.ndim - 1)
    gap = clean - corrupt
    if abs(float(gap.double().mean())) < 1e-9:
        raise InterpError(
            "The clean and corrupted runs give the same mean metric, so normalised scores are "
            "undefined: the corruption does not change the behaviour. Use a stronger corruption."
        )
    if warn_nan:  # path patching's grid leaves cells NaN by design and checks its own runs
        warn_nonfinite(per_prompt, "patched runs", _cell_names(dims, coords))
    values, lo, hi = bootstrap_ratio(
        per_prompt - base.reshape(shape), gap, n_boot=n_boot, seed=seed
    )
    name = metric_name(metric)
    labels: dict[str, list[str]] = {}
    toks = model.to_str_tokens(task.clean_tokens[0])
    for d in ("pos", "dest_pos", "src_pos"):
        if d in dims:
            pos = [int(p) for p in coords[d]]
            labels[d] = [f"{p} {toks[p]!r}" if p < len(toks) else str(p) for p in pos]
    for d in ("head", "kv_head"):
        if d in dims:
            labels[d] = [f"H{h}" for h in coords[d]]
    return cls(
        values=values,
        dims=dims,
        coords=coords,
        labels=labels,
        ci_low=lo,
        ci_high=hi,
        extras={"patched": per_prompt, "clean": clean, "corrupt": corrupt, **(extras or {})},
        meta=make_meta(
            model=model,
            task=task,
            metric=name,
            params={
                **params,
                "direction": direction,
                "corruption": corruption
                if isinstance(corruption, str)
                else {"gaussian_noise": _noise_params(corruption)},
            },
            seed=seed,
            direction=direction,
            clean_metric_mean=float(clean.mean()),
            corrupt_metric_mean=float(corrupt.mean()),
            value_label=f"{direction} score ({name})",
            **meta,
        ),
        title=title,
    )


def _noise_params(noise: GaussianNoise) -> dict[str, Any]:
    pos = noise.positions
    return {
        "positions": pos.int().tolist() if isinstance(pos, Tensor) else list(pos),
        "scale": noise.scale,
        "seed": noise.seed,
    }
