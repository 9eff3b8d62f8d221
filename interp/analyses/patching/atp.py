"""Attribution patching, AtP and AtP* (Kramar et al. 2024): every component at once.

``effect(n) ~= (a_n(source) - a_n(base)) . dM/da_n`` on the base run (METHODS.md section 4),
computed in `estimate`. AtP* replaces the linearisation through the softmax for query and key
nodes by the exact attention probabilities recomputed with the patched query or key (`qk`), and
adds GradDrop: one extra backward pass per layer with that layer's residual contribution cut from
the gradient, scored as ``sum_l |effect_l(n)| / (L - 1)``. `verify` re-measures the top-ranked
components exactly; `agreement` compares a whole sweep with exact patching.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from interp.analyses.patching.build import build_result
from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.estimate import activations, effects
from interp.analyses.patching.nodes import PerPosition, canonical, check_target, latent_sae, sweep
from interp.analyses.patching.qk import qk_names
from interp.analyses.patching.readout import DEFAULT_BUDGET, make_readout, resid_metric
from interp.analyses.patching.runs import Corruption
from interp.analyses.patching.verify import verify
from interp.checks import checked
from interp.deprecation import renamed, warn_renamed
from interp.errors import InterpError
from interp.kernels import fused
from interp.models import Model, load_model
from interp.results.base import Coord
from interp.results.patching import AtPResult, Mode
from interp.tasks.metrics import Metric
from interp.tasks.task import Task


@overload
def attribution_patch(
    model: Model | Any,
    task: Task,
    target: str = ...,
    per_position: PerPosition = ...,
    mode: Mode = ...,
    metric: str | Metric = ...,
    corruption: Corruption = ...,
    star: bool = ...,
    verify_top_k: int | None = ...,
    n_boot: int = ...,
    seed: int = ...,
    memory_budget: int | str = ...,
    progress: bool = ...,
    targets: None = ...,
    sae: Any = ...,
) -> AtPResult: ...
@overload
def attribution_patch(
    model: Model | Any,
    task: Task,
    target: str = ...,
    per_position: PerPosition = ...,
    mode: Mode = ...,
    metric: str | Metric = ...,
    corruption: Corruption = ...,
    star: bool = ...,
    verify_top_k: int | None = ...,
    n_boot: int = ...,
    seed: int = ...,
    memory_budget: int | str = ...,
    progress: bool = ...,
    *,
    targets: Sequence[str],
    sae: None = ...,
) -> dict[str, AtPResult]: ...


@renamed(direction="mode")
@checked
def attribution_patch(
    model: Model | Any,
    task: Task,
    target: str | Sequence[str] = "z",
    per_position: PerPosition = False,
    mode: Mode = "denoise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    star: bool = False,
    verify_top_k: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
    targets: Sequence[str] | None = None,
    sae: Any = None,
) -> AtPResult | dict[str, AtPResult]:
    """Estimate every component's patching effect at once.

    Args:
        model, task, per_position, mode, metric, corruption, n_boot, seed: as in
            `activation_patch` (scores are in the same normalised units).
        target: the activation to estimate (returns an `AtPResult`).
        targets: several activations instead (returns a dict of results by target, all from
            the same forward and backward passes). A list given as ``target`` still means this,
            with a DeprecationWarning.
        star: AtP*: QK fix for ``q``/``k`` targets and GradDrop scores (``.graddrop``).
        verify_top_k: re-measure the k highest-ranked components by exact patching
            (``.verified``, NaN elsewhere; ``.verified_table`` lists them).
        memory_budget / progress: for the verification runs.
        sae: with ``target="latents"``, AtP over every latent of an sae-lens SAE
            (`interp.sae.attribution_patch`; ``star`` does not apply).
    """
    model = load_model(model)
    if target == "latents" or sae is not None:
        if star or targets is not None:
            raise InterpError("Latent AtP takes one SAE: no star= or targets=.")
        from interp.analyses.patching.latents import attribution_patch as atp_latents

        return atp_latents(
            model, task, latent_sae(target, sae), mode=mode, metric=metric,
            corruption=corruption, verify_top_k=verify_top_k, n_boot=n_boot, seed=seed,
            memory_budget=memory_budget, progress=progress,
        )  # fmt: skip
    given, several = _requested(target, targets)
    wanted = list(dict.fromkeys(canonical(t) for t in given))
    if not wanted:
        raise InterpError("targets is empty: give e.g. target='z' or targets=['z', 'mlp_out'].")
    sweeps = {}
    for t in wanted:
        check_target(model, t, per_position)
        sweeps[t] = sweep(model, t, per_position, task.seq_len)
    model.require("attribution_patch", "logits", "hooked")
    contrast = Contrast.of(model, task, corruption, mode)
    names = sorted({n for t in wanted for n in model.hook_names_for(t)})
    qk = star and any(t in ("q", "k") for t in wanted)
    # Two forwards and one backward: the source run gives the activations and its metric, the
    # base run (with gradients) its metric and the gradients. Built-in metrics read only the
    # answer position, so only those rows are unembedded (a large vocabulary costs a third of a
    # small model's forward).
    with fused(model):  # one-pass GELU and norms, forward and backward
        src_acts, src_resid = activations(
            model, contrast.source, names + (qk_names(model) if qk else [])
        )
        clean_logits = None
        if metric == "kl":  # the KL reference (the clean run) must exist before the base run
            clean_resid = (
                src_resid if contrast.source_is_clean else activations(model, contrast.clean, [])[1]
            )
            clean_logits = model.unembed(clean_resid)
        readout = make_readout(model, task, metric, clean_logits)
        source_m = resid_metric(model, readout, src_resid, "the source run")
        estimates, base_m = effects(
            model, contrast.base, src_acts, readout, wanted, per_position, star
        )
    contrast = contrast.measured(base=base_m, source=source_m)
    out: dict[str, AtPResult] = {}
    for t in wanted:
        nodes, dims, coords_int = sweeps[t]
        coords: dict[str, list[Coord]] = {k: list(v) for k, v in coords_int.items()}
        linear = estimates[t]["linear"]
        graddrop = None
        if star:
            graddrop = (estimates[t]["graddrop"].double() / contrast.mean_gap().abs()).float()
        res = build_result(
            AtPResult,
            model=model,
            task=task,
            contrast=contrast,
            per_prompt=linear + contrast.base_metric.reshape((-1,) + (1,) * (linear.ndim - 1)),
            dims=dims,
            coords=coords,
            metric=metric,
            corruption=corruption,
            n_boot=n_boot,
            seed=seed,
            params={"target": t, "per_position": per_position, "star": star},
            title=f"{'AtP*' if star else 'AtP'} ({mode}): {t}",
            graddrop=graddrop,
        )
        if verify_top_k:
            res = verify(
                model, res, nodes, verify_top_k, contrast, readout, memory_budget, progress
            )
        out[t] = res
    if not several:
        return out[wanted[0]]
    return {t: out[canonical(t)] for t in given}


def _requested(
    target: str | Sequence[str], targets: Sequence[str] | None
) -> tuple[list[str], bool]:
    """The targets asked for, and whether several were (then a dict is returned)."""
    if targets is not None:
        if isinstance(targets, str):
            raise InterpError(f"targets={targets!r}: give a list, or one target as target=.")
        if target != "z":
            raise InterpError("Give target= (one activation) or targets= (several), not both.")
        return list(targets), True
    if isinstance(target, str):
        return [target], False
    # stacklevel 6: past warn_renamed, this helper, the function and its two decorators.
    warn_renamed("a list target=", "targets=", "attribution_patch", stacklevel=6)
    return list(target), True
