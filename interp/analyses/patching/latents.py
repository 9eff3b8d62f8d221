"""Causal mediation in the latent basis: exact patching of latents and latent sets, and
attribution patching over every latent at once (Marks et al. 2024; METHODS.md section 11).

Scores are in the units of `interp.patching` (denoising: 1 = the clean behaviour restored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from interp.analyses.patching.build import build_result
from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.latent_runs import LatentRuns
from interp.analyses.patching.readout import make_readout, resid_metric
from interp.analyses.patching.runs import Corruption
from interp.budget import DEFAULT_BUDGET
from interp.checks import checked
from interp.errors import InterpError
from interp.latents import latent_labels
from interp.models import Model, load_model
from interp.models.saes import ensure_attached, latent_hook
from interp.results.base import Coord
from interp.results.patching import AtPResult, Mode, PatchResult
from interp.tasks.metrics import Metric
from interp.tasks.task import Task

if TYPE_CHECKING:
    from sae_lens import SAE


def _setup(
    model: Model, task: Task, site: str, mode: Mode, metric: str | Metric, corruption: Corruption
) -> tuple[Contrast, Any]:
    model.require("Latent patching", "logits", "hooked")
    contrast = Contrast.of(model, task, corruption, mode)
    readout = make_readout(model, task, metric, contrast.reference_logits(model, metric))
    return contrast, readout


def _latent_sets(
    latents: Sequence[int] | None, sets: Sequence[Sequence[int]] | None, d_sae: int
) -> tuple[list[list[int]], bool]:
    if latents is not None and sets is not None:
        raise InterpError(
            "Give latents= (each patched alone) or sets= (patched together), not both."
        )
    if sets is not None:
        if sets and all(isinstance(i, int) for i in sets):
            sets = [sets]  # type: ignore[list-item]  # a flat list is one set, as for nodes
        chosen = [[int(i) for i in s] for s in sets]
        if not chosen or any(not s for s in chosen):
            raise InterpError("sets must be a non-empty list of non-empty latent lists.")
    else:
        chosen = [[int(i)] for i in (range(d_sae) if latents is None else latents)]
        if not chosen:
            raise InterpError("latents is empty: give latent indices, or None for all.")
    bad = sorted({i for s in chosen for i in s if not 0 <= i < d_sae})
    if bad:
        raise InterpError(f"Latent(s) {bad[:5]} do not exist: this SAE has latents 0..{d_sae - 1}.")
    return chosen, sets is not None


@checked
def activation_patch(
    model: Model,
    task: Task,
    sae: SAE,
    latents: Sequence[int] | None = None,
    sets: Sequence[Sequence[int]] | None = None,
    mode: Mode = "denoise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
) -> PatchResult:
    """Exact patching of SAE latents: each latent (or each set) set to the source run's value
    at every position, with the SAE's error term kept, so nothing else changes.

    Args:
        latents: latent indices patched one at a time (None: every latent).
        sets: latent lists, each patched together (a ``set`` axis instead of ``latent``).
        mode, metric, corruption, n_boot, seed, memory_budget, progress: as in
            `interp.patching.activation_patch`.
    """
    model = load_model(model)
    d_sae = int(sae.cfg.d_sae)
    chosen, as_sets = _latent_sets(latents, sets, d_sae)
    with ensure_attached(model, sae) as site:
        contrast, readout = _setup(model, task, site, mode, metric, corruption)
        runs = LatentRuns(model, site, contrast, readout, memory_budget, progress)
        contrast = runs.measured()
        patched = runs.run(chosen).T  # [prompt, set]
    names = latent_labels(site, d_sae)
    if as_sets:
        dims: tuple[str, ...] = ("set",)
        coords: dict[str, list[Coord]] = {"set": list(range(len(chosen)))}
    else:
        dims, coords = ("latent",), {"latent": [s[0] for s in chosen]}
    res = build_result(
        PatchResult, model=model, task=task, contrast=contrast, per_prompt=patched, dims=dims,
        coords=coords, metric=metric, corruption=corruption, n_boot=n_boot, seed=seed,
        params={"target": "latents", "sae": site, "sets": chosen if as_sets else None},
        title=f"Latent patching ({contrast.mode}): {site}",
    )  # fmt: skip
    labels = [" + ".join(names[i] for i in s) for s in chosen]
    return replace(res, labels={**res.labels, dims[0]: labels})


@checked
def attribution_patch(
    model: Model,
    task: Task,
    sae: SAE,
    mode: Mode = "denoise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    verify_top_k: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
) -> AtPResult:
    """Attribution patching over every latent of `sae` at once: ``sum_pos (f_i(source) -
    f_i(base)) * dM/df_i`` at the base run, the error term held fixed (three forwards, one
    backward).

    verify_top_k: re-measure the k highest-ranked latents by exact patching (``.verified``).
    """
    model = load_model(model)
    with ensure_attached(model, sae) as site:
        contrast, readout = _setup(model, task, site, mode, metric, corruption)
        runs = LatentRuns(model, site, contrast, readout, memory_budget, progress=False)
        grads = _gradients(model, site, contrast, readout)
        estimate = ((runs.source - runs.base) * grads).sum(1)  # [prompt, latent]
        contrast = runs.measured()
        base_m = runs.base_metric
        d_sae = estimate.shape[1]
        res = build_result(
            AtPResult, model=model, task=task, contrast=contrast,
            per_prompt=(estimate + base_m[:, None]).float().cpu(), dims=("latent",),
            coords={"latent": list(range(d_sae))}, metric=metric, corruption=corruption,
            n_boot=n_boot, seed=seed, params={"target": "latents", "sae": site},
            title=f"AtP over latents ({contrast.mode}): {site}",
        )  # fmt: skip
        res = replace(res, labels={**res.labels, "latent": latent_labels(site, d_sae)})
        if verify_top_k:
            order = torch.argsort(res.ranking_score, descending=True)[:verify_top_k].tolist()
            runs.progress = progress
            exact = contrast.mean_scores(
                runs.run([[i] for i in order], "verify top-k").double().mean(1)
            )
            verified = torch.full((d_sae,), float("nan"))
            verified[order] = exact.float()
            res = replace(res, verified=verified)
    return res


def _gradients(model: Model, site: str, contrast: Contrast, readout: Any) -> Tensor:
    """dM/df at the base run (the metric summed over prompts: each prompt's own gradient)."""
    held: list[Tensor] = []

    def leaf(f: Tensor, hook: Any) -> Tensor:
        f = f.detach().requires_grad_(True)
        held.append(f)
        return f

    base = contrast.base
    with torch.enable_grad(), model.hooks([*base.hooks, (latent_hook(site), leaf)]):
        resid = model.forward(base.tokens[:, : readout.seq_len], stop_at_layer=model.n_layers)
        metric = resid_metric(model, readout, resid, "the base run")
        (grad,) = torch.autograd.grad(metric.sum(), held[0])
    return grad.detach()
