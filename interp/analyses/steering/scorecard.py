"""`targets` and `verify`: steering targets ranked by evidence, then checked by steering.

`targets` ranks every unit by each evidence source (`interp.analyses.steering.evidence`) and
by a merged rank: the mean of a unit's ranks over the sources, ranked again (ties share the
average rank). `verify` steers the top k units and k random others, one at a time, along each
unit's mean-difference direction at one strength in sigma units, and reports the realised
effect, its KL cost, the effect per unit KL, and each source's Spearman correlation with the
realised effect (METHODS.md section 9).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from interp.analyses.steering.evaluate import DEFAULT_ALPHAS, check_alphas, evaluate
from interp.analyses.steering.evidence import EVIDENCE, Over, PatchingKind, gather, units
from interp.analyses.steering.objective import Sources, objective, sources
from interp.analyses.steering.steer import PositionSpec
from interp.analyses.steering.vector import SteeringDirection
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.nodes import Node
from interp.results.meta import make_meta
from interp.results.steering import ScorecardResult
from interp.stats import ranks, spearman
from interp.tasks.task import Task

MERGE_RULE = "mean of the unit's ranks over the evidence sources, ranked (ties: average rank)"
#: `verify` measures every unit (so the correlations use them all) up to this many units.
EVERY_UNIT_MAX = 64
#: KL (nats) below which `effect_per_kl` is left undefined (NaN).
MIN_KL = 1e-3


@checked
def targets(
    model: Model | Any,
    task: Task,
    over: Over = "heads",
    evidence: Sequence[str] = EVIDENCE,
    detectors: Sequence[str] = (),
    patching: PatchingKind = "exact",
    neutral: Task | Sequence[str] | None = None,
    positions: PositionSpec = "last",
    n_boot: int = 200,
    seed: int = 0,
    progress: bool = True,
) -> ScorecardResult:
    """Rank steering targets by each evidence source and by a merged rank.

    Args:
        model: the model (a handle, or anything `interp.load_model` accepts).
        task: the task (its objective and examples as in `interp.steering.objective`).
        over: ``"heads"`` (each head's ``z``) or ``"layers"`` (the residual stream after
            each block).
        evidence: any of ``"dla"``, ``"patching"`` (denoise and noise), ``"probes"``.
        detectors: head detector kinds to add as evidence (``"induction"`` ...).
        patching: ``"exact"`` or ``"atp"``.
        neutral: neutral text `verify` measures KL on (default: the task's own next-token
            distribution).
        positions: where `verify` steers (default ``"last"``: the answer position, where
            the evidence is read).
        n_boot, seed: bootstrap resamples of the analyses, and the seed of everything random.

    Returns a `ScorecardResult`; ``.verify(k=5)`` steers the top units.
    """
    if isinstance(positions, Tensor) or positions == "generated":
        raise InterpError(
            "targets steers every unit at the same positions: give 'last' (default), 'all' or "
            "a list of positions."
        )
    model = load_model(model)
    model.require("Steering targets", "logits", "hooked")
    obj = objective(model, task)  # checks the task has something to steer towards
    src = sources(model, task)
    scores, about = gather(
        model, task, src, over, evidence, detectors, patching, n_boot, seed, progress
    )
    sites = units(model, over)
    names = list(scores)
    S = torch.stack([scores[n] for n in names], dim=1)  # [unit, source]
    R = torch.stack([len(sites) - ranks(S[:, k].double()) for k in range(len(names))], dim=1)
    merged = 1 + ranks(R.mean(1))
    values = torch.cat([R, merged[:, None]], dim=1).float()
    vectors, sigmas = _unit_directions(model, src, sites, progress)
    labels = [s.label for s in sites]
    card = ScorecardResult(
        values=values,
        dims=("unit", "source"),
        coords={"unit": [*labels], "source": [*names, "merged"]},
        over=over,
        scores=S.float(),
        sources=about,
        merge_rule=MERGE_RULE,
        sites=[str(s) for s in sites],
        vectors=vectors,
        sigmas=sigmas,
        objective=obj.description,
        meta=make_meta(
            model,
            task,
            metric="logit_diff",
            params={
                "over": over,
                "evidence": list(evidence),
                "detectors": list(detectors),
                "patching": patching,
                "positions": positions if isinstance(positions, str | int) else list(positions),
                "n_boot": n_boot,
            },
            seed=seed,
        ),
        title=f"Steering targets on {task.name} ({over})",
    )
    card._context = (model, task, neutral)
    return card


def _unit_directions(
    model: Model, src: Sources, sites: list[Node], progress: bool
) -> tuple[Tensor, Tensor]:
    """Each unit's unit mean-difference vector ``[unit, width]`` and sigma ``[unit]``, from
    one cached pass over the positives and one over the negatives (all sites at once)."""
    from interp.activations.api import cache

    hooks = sorted({model.hook_name(s.target, s.layer) for s in sites})
    pos = cache(model, src.positive, names=hooks, positions="last", progress=progress)
    neg = cache(model, src.negative, names=hooks, positions="last", progress=progress)
    vecs, sigmas = [], []
    for s in sites:
        hook = model.hook_name(s.target, s.layer)
        p, n = pos[hook].float().cpu(), neg[hook].float().cpu()
        if s.head is not None:
            p, n = p[:, s.head], n[:, s.head]
        raw = p.double().mean(0).float() - n.double().mean(0).float()
        unit = raw / raw.norm().clamp_min(1e-30)
        vecs.append(unit)
        sigmas.append(float((torch.cat([p, n]) @ unit).std()))
    return torch.stack(vecs), torch.tensor(sigmas)


def unit_direction(card: ScorecardResult, i: int, model_name: str) -> SteeringDirection:
    """Unit `i`'s steering direction from the scorecard."""
    assert card.vectors is not None and card.sigmas is not None
    return SteeringDirection(
        vector=card.vectors[i],
        site=Node.parse(card.sites[i]),
        sigma=float(card.sigmas[i]),
        method="mean_diff",
        model=model_name,
        provenance={"scorecard": card.title, "unit": card.coords["unit"][i]},
    )


@checked
def verify(
    card: ScorecardResult,
    k: int = 5,
    alpha: float | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    kl_budget: float = 1.0,
    every_unit: bool | None = None,
    model: Model | Any = None,
    task: Task | None = None,
    neutral: Task | Sequence[str] | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    progress: bool = True,
) -> ScorecardResult:
    """Steer the top `k` units and `k` random others at one strength; a new scorecard.

    Args:
        card: a scorecard from `targets`.
        k: how many top units (and random units) to steer.
        alpha: the strength in sigma units; default calibrated: the largest of `alphas` at
            which the top units' mean KL stays within `kl_budget` (the smallest if none does).
        alphas: the strengths measured (every unit's effect curve is kept).
        kl_budget: nats of KL (neutral text, else the task's answer position) the calibration
            allows.
        every_unit: also steer every other unit, so the correlations use all units (default:
            when there are at most 64 units).
        model, task, neutral: needed for a scorecard loaded from disk.
    """
    ctx = card._context or (None, None, None)
    model = load_model(model if model is not None else ctx[0]) if (model or ctx[0]) else None
    task = task if task is not None else ctx[1]
    neutral = neutral if neutral is not None else ctx[2]
    if model is None or task is None:
        raise InterpError(
            "This scorecard has no model and task attached (it was loaded from disk): pass "
            "verify(model=..., task=...)."
        )
    labels = [str(u) for u in card.coords["unit"]]
    n = len(labels)
    if not 1 <= k <= n // 2:
        raise InterpError(f"k={k}: give 1 <= k <= {n // 2} (half of the {n} units).")
    grid = sorted(set(check_alphas(alphas) + ([] if alpha is None else check_alphas([alpha]))))
    order = list(card.ranking()["unit"])
    top = order[:k]
    rng = random.Random(seed)
    rand = sorted(rng.sample(order[k:], k), key=order.index)
    every = n <= EVERY_UNIT_MAX if every_unit is None else every_unit
    chosen = order if every else top + rand
    idx = [labels.index(u) for u in chosen]
    dirs = [unit_direction(card, i, model.name) for i in idx]
    positions = card.meta.get("params", {}).get("positions", "last")
    res = evaluate(
        model,
        task,
        dirs,
        alphas=grid,
        neutral=neutral,
        kl=neutral is not None,
        positions=positions,
        n_random=0,
        n_boot=n_boot,
        seed=seed,
        progress=progress,
    )
    kl_name = "kl" if neutral is not None else "task_kl"
    cost = res.metric(kl_name)
    top_rows = [chosen.index(u) for u in top]
    within = [j for j in range(len(grid)) if float(cost[top_rows, j].mean()) <= kl_budget]
    if alpha is None:
        j = within[-1] if within else 0
    else:
        j = grid.index(float(alpha))
    if alpha is None and not within:
        warnings.warn(
            f"Even the smallest strength ({grid[0]:g} sigma) costs the top units "
            f"{float(cost[top_rows, 0].mean()):.3g} nats of KL, over kl_budget={kl_budget}: "
            "verification uses it anyway (verify_summary['within_budget'] is False). Give "
            "smaller alphas= or a larger kl_budget=.",
            RuntimeWarning,
            stacklevel=2,
        )
    table = _table(card, res, chosen, top, rand, j, kl_name)
    cors = {
        str(src): spearman(
            torch.tensor(table[f"score_{src}"].to_numpy()), torch.tensor(table["effect"].to_numpy())
        )
        for src in card.coords["source"][:-1]
    }
    cors["merged"] = spearman(
        -torch.tensor(table["rank_merged"].to_numpy()), torch.tensor(table["effect"].to_numpy())
    )
    t_eff = table[table.group == "top"]["effect"].mean()
    r_eff = table[table.group == "random"]["effect"].mean()
    # Steerability is the size of the effect: random units move the metric by about zero, in
    # either direction, so a ratio of signed means would divide by noise.
    t_abs = table[table.group == "top"]["effect"].abs().mean()
    r_abs = table[table.group == "random"]["effect"].abs().mean()
    summary = {
        "alpha": grid[j],
        "calibrated": alpha is None,
        "kl_budget": kl_budget,
        "within_budget": j in within,
        "kl_on": "neutral text" if neutral is not None else "the task's answer position",
        "k": k,
        "top": top,
        "random": rand,
        "top_effect": float(t_eff),
        "random_effect": float(r_eff),
        "top_abs_effect": float(t_abs),
        "random_abs_effect": float(r_abs),
        "top_over_random": float(t_abs / r_abs) if r_abs > 0 else float("nan"),
        "top_kl": float(table[table.group == "top"]["kl"].mean()),
        "random_kl": float(table[table.group == "random"]["kl"].mean()),
        "seed": seed,
    }
    out = replace(card, verification=table, correlations=cors, verify_summary=summary)
    out._context = (model, task, neutral)
    out.extras["effect_curves"] = res.values[..., 0].clone()
    return out


def _table(
    card: ScorecardResult,
    res: Any,
    chosen: list[str],
    top: list[str],
    rand: list[str],
    j: int,
    kl_name: str,
) -> pd.DataFrame:
    ranking = card.ranking().set_index("unit")
    m = res.coords["metric"]
    rows = []
    for i, u in enumerate(chosen):
        e, kl = (
            float(res.values[i, j, m.index("effect")]),
            float(res.values[i, j, m.index(kl_name)]),
        )
        row: dict[str, Any] = {
            "unit": u,
            "site": ranking.loc[u, "site"],
            "group": "top" if u in top else "random" if u in rand else "other",
            "alpha": float(res.coords["alpha"][j]),
            "effect": e,
            "ci_low": float(res.ci_low[i, j, m.index("effect")]),
            "ci_high": float(res.ci_high[i, j, m.index("effect")]),
            "kl": kl,
            # Below MIN_KL nats the KL is rounding, and the ratio would be noise over noise.
            "effect_per_kl": e / kl if kl >= MIN_KL else float("nan"),
            "flip_rate": float(res.values[i, j, m.index("flip_rate")]),
            "target_rate": float(res.values[i, j, m.index("target_rate")]),
        }
        for col in ranking.columns:
            if col.startswith(("rank_", "score_")):
                row[col] = float(ranking.loc[u, col])
        rows.append(row)
    return pd.DataFrame(rows)
