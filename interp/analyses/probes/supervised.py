"""Supervised probes (logistic, mass-mean, ridge) on every unit: out-of-fold scores for the task
and for the control task, their metrics with bootstrap intervals, and the probe refitted on all
examples for each unit's direction."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.probes.build import Measured, gather_units, unit_direction
from interp.analyses.probes.data import Features
from interp.analyses.probes.linear import make_probe
from interp.analyses.probes.protocol import Split, SweepOptions
from interp.analyses.probes.views import project
from interp.stats import accuracy, bootstrap, f1, r2, roc_auc

CLASSIFICATION = ("accuracy", "f1", "auroc", "control_accuracy", "selectivity")
REGRESSION = ("r2", "control_r2", "selectivity")


def fit_supervised(
    feats: Features,
    y: Tensor,
    control: Tensor,
    split: Split,
    probe: str,
    params: dict[str, Any],
    opts: SweepOptions,
) -> Measured:
    """Fit `probe` on every unit of `feats` for labels `y` and `control` labels, fold by fold."""
    regression = probe == "ridge"
    warm = {"warm_start": True} if probe == "logistic" else {}
    ev = split.eval_index
    scores, cscores, dirs, projs = [], [], [], []
    bar = tqdm(
        total=len(feats.units), desc=f"probe ({probe})", disable=not opts.progress, unit="unit"
    )
    for idx, X in feats.chunks():
        X = X.double()
        s_parts, c_parts = [], []
        # Logistic fits start from the previous fold's solution, the refit on all examples
        # from the last fold's (same optimum, fewer Newton iterations).
        task_probe = make_probe(probe, **params, **warm)
        for train, test in split.folds:
            task_probe.fit(X[:, train], y[train])
            s_parts.append(task_probe.decision_function(X[:, test]).double())
            c_parts.append(_fit_score(probe, params, X[:, train], control[train], X[:, test]))
        unit_dirs = unit_direction(task_probe.fit(X, y).coef_)
        scores.append((idx, torch.cat(s_parts, -1)))
        cscores.append((idx, torch.cat(c_parts, -1)))
        dirs.append((idx, unit_dirs))
        projs.append((idx, project(X, unit_dirs).float()))
        bar.update(len(idx))
    bar.close()
    s, c = gather_units(scores, torch.float64), gather_units(cscores, torch.float64)
    values, lo, hi = _metrics(s, c, y[ev], control[ev], regression, opts.n_boot, opts.seed)
    return Measured(
        names=REGRESSION if regression else CLASSIFICATION,
        values=values,
        ci_low=lo,
        ci_high=hi,
        directions=gather_units(dirs, torch.float32),
        projection=gather_units(projs, torch.float32),
    )


def _fit_score(probe: str, params: dict[str, Any], Xtr: Tensor, ytr: Tensor, Xte: Tensor) -> Tensor:
    """Held-out scores per unit: decision values (classification) or predictions (ridge)."""
    if probe != "ridge" and len(torch.unique(ytr)) < 2:
        # A control label drawn the same for every training type: predict that class.
        return torch.full((Xtr.shape[0], Xte.shape[1]), 1.0 if int(ytr[0]) == 1 else -1.0)
    return make_probe(probe, **params).fit(Xtr, ytr).decision_function(Xte).double()


def _metrics(
    scores: Tensor, cscores: Tensor, y: Tensor, c: Tensor, regression: bool, n_boot: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Values and bootstrap intervals [U, metric] on the evaluated examples."""

    def compute(w: Tensor | None) -> Tensor:  # -> [U, M], or [B, U, M] for resample weights
        if regression:
            task_r2, ctrl_r2 = r2(scores, y, w), r2(cscores, c, w)
            return torch.stack([task_r2, ctrl_r2, task_r2 - ctrl_r2], -1)
        pred, cpred = (scores > 0).long(), (cscores > 0).long()
        acc, cacc = accuracy(pred, y, w), accuracy(cpred, c, w)
        return torch.stack([acc, f1(pred, y, w), roc_auc(scores, y, w), cacc, acc - cacc], -1)

    values = compute(None)
    lo, hi = bootstrap(compute, scores.shape[1], n_boot, seed)
    return values, lo, hi
