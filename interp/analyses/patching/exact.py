"""Exact activation patching: every component of a target, or chosen node sets patched together."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from interp.analyses.patching.build import build_result
from interp.analyses.patching.nodes import Node, PerPosition, latent_sae, node_sets, sweep
from interp.analyses.patching.readout import DEFAULT_BUDGET, parse_budget
from interp.analyses.patching.runs import Corruption
from interp.analyses.patching.units import PatchSpec, check_early, run_units
from interp.checks import checked
from interp.deprecation import renamed, warn_renamed
from interp.errors import InterpError
from interp.executors import Executor, ExecutorName, Local, executor_for
from interp.models import Model, load_model
from interp.results.base import Coord
from interp.results.patching import Mode, PatchResult
from interp.tasks.metrics import Metric
from interp.tasks.task import Task

#: Node sets as users write them: one set (``["L3H2", "L3H6"]``) or several (``[["L3H2"], ...]``);
#: a node is a `Node`, its string form, or a ``(layer, head)`` pair (see `interp.nodes`).
NodeSets = Sequence[Any]


@renamed(direction="mode")
@checked
def activation_patch(
    model: Model | Any,
    task: Task,
    target: str | NodeSets = "z",
    per_position: PerPosition = False,
    mode: Mode = "denoise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
    nodes: NodeSets | None = None,
    sae: Any = None,
    latents: Sequence[int] | None = None,
    executor: ExecutorName | Executor = "local",
    store: str | os.PathLike[str] | None = None,
) -> PatchResult:
    """Patch activations between the clean and corrupted runs and measure the metric.

    Args:
        model: the model (a handle, or anything `interp.load_model` accepts).
        task: clean prompts, answers and corrupted prompts of the same token length.
        target: a TransformerLens activation swept over every component: ``resid_pre``,
            ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out`` (per layer, or per layer and
            position), ``z``, ``q``, ``k``, ``v`` (per head, or per head and position; k/v per
            key-value head), ``pattern`` (per head, per head and destination, or
            ``per_position="dest_src"``).
        per_position: sweep positions separately too.
        mode: ``"denoise"`` (run corrupted, patch clean in: is it sufficient?) or
            ``"noise"`` (run clean, patch corrupted in: is it necessary?).
        metric: ``logit_diff`` (default), ``log_prob``, ``prob``, ``kl`` (to the clean run) or a
            callable ``(logits [batch, seq, vocab], task) -> [batch]``.
        corruption: ``"task"`` (the task's corrupted prompts) or `GaussianNoise` on the clean
            prompts' embeddings.
        n_boot / seed: bootstrap confidence intervals over prompts.
        memory_budget: activation memory per stacked forward (bytes or ``"512MiB"``).
        progress: show a progress bar.
        nodes: node sets patched together instead of a sweep: ``["L3H2", "L3H6"]`` (one set) or
            ``[["L3H2"], ["L3H2", (3, 6)]]`` (several); see `Node.parse`. (A list given as
            ``target`` still means this, with a DeprecationWarning.) With ``target="latents"``,
            lists of latent indices patched together.
        sae / latents: ``target="latents"`` patches the latents of an sae-lens SAE
            (`interp.sae.activation_patch`): each of `latents` alone (default every latent), or
            the sets in `nodes`.
        executor: where the stacked patched forwards run: ``"local"`` (this process),
            ``"processes"`` (a local process pool), ``"ray"`` (a Ray cluster), or an
            `interp.executors` executor. Every executor gives the local loop's numbers.
        store: a directory that keeps each finished unit of the sweep, so an interrupted call
            resumes (with any executor) where it stopped; None keeps nothing.

    Returns:
        A `PatchResult`: normalised scores with bootstrap intervals; ``.raw`` is the mean raw
        metric per component (what TransformerLens' `patching` module returns).
    """
    model = load_model(model)
    if target == "latents" or sae is not None or latents is not None:
        if not (executor == "local" or isinstance(executor, Local)) or store is not None:
            raise InterpError(
                "Latent patching runs in this process only: drop executor= and store= with "
                "target='latents'."
            )
        from interp.analyses.patching.latents import activation_patch as patch_latents

        return patch_latents(
            model, task, latent_sae(target, sae), latents=latents, sets=nodes, mode=mode,
            metric=metric, corruption=corruption, n_boot=n_boot, seed=seed,
            memory_budget=memory_budget, progress=progress,
        )  # fmt: skip
    model.require("activation_patch", "logits", "hooked")
    if not isinstance(target, str):
        # stacklevel 5: past warn_renamed, this function and its two decorators, to the caller.
        warn_renamed("a list target=", "nodes=", "activation_patch", stacklevel=5)
        target, nodes = "z", target
    params: dict[str, Any]
    if nodes is None:
        swept, dims, coords_int = sweep(model, target, per_position, task.seq_len)
        sets = [[n] for n in swept]
        coords: dict[str, list[Coord]] = {k: list(v) for k, v in coords_int.items()}
        what, params = target, {"target": target}
    else:
        if target != "z":
            raise InterpError("Give target= (a sweep) or nodes= (node sets), not both.")
        if per_position:
            raise InterpError("per_position applies to a swept target, not to node sets.")
        sets = node_sets(model, nodes)
        dims = ("set",)
        coords = {"set": [" + ".join(map(str, s)) for s in sets]}
        what = f"{len(sets)} node set(s)"
        params = {"nodes": [[str(n) for n in s] for s in sets]}
    _check_positions(sets, task.seq_len)
    spec = PatchSpec(
        task, corruption, mode, metric, tuple(sorted({n.hook for s in sets for n in s})),
        parse_budget(memory_budget),
    )  # fmt: skip
    what_ran = {**params, "per_position": per_position, "mode": mode, "metric": metric}
    what_ran |= {"memory_budget": spec.budget}
    run_on, own = executor_for(executor)
    try:
        run_on.check(model, spec)  # before any forward pass or write
        check_early(model, spec, store, what_ran)
        contrast, patcher = spec.build(
            model, progress, desc=f"patch {target if nodes is None else 'sets'} ({mode})"
        )
        contrast = contrast.measured(base=patcher.base_metric, source=patcher.source_metric)
        patched = run_units(model, spec, patcher, sets, run_on, store, what_ran)
    finally:
        if own:
            run_on.close()
    per_prompt = patched.T.reshape(len(task), *[len(coords[d]) for d in dims])
    return build_result(
        PatchResult,
        model=model,
        task=task,
        contrast=contrast,
        per_prompt=per_prompt,
        dims=dims,
        coords=coords,
        metric=metric,
        corruption=corruption,
        n_boot=n_boot,
        seed=seed,
        params={**params, "per_position": per_position},
        title=f"Activation patching ({mode}): {what}",
    )


def _check_positions(sets: list[list[Node]], seq_len: int) -> None:
    for s in sets:
        for n in s:
            if n.pos is not None and n.pos >= seq_len:
                raise InterpError(f"{n}: position {n.pos} is past the prompts ({seq_len}).")
