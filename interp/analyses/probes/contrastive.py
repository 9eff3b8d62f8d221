"""CCS on every unit, beside its PCA and k-means baselines: contrast pairs built from the task's
prompts, out-of-fold predictions oriented fold by fold, and sign-free accuracies with bootstrap
intervals (against the labels and, with a distractor, against its orientation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.probes.build import (
    Measured,
    ProbeSpec,
    build_result,
    gather_units,
    unit_direction,
)
from interp.analyses.probes.ccs import (
    CCSProbe,
    KMeansBaseline,
    PCABaseline,
    contrast_differences,
)
from interp.analyses.probes.data import (
    binary_labels,
    contrast_of,
    contrast_tasks,
    from_model,
    labels_of,
)
from interp.analyses.probes.protocol import Split, SweepOptions, make_split
from interp.analyses.probes.views import project
from interp.models import Model
from interp.results.probes import ProbeResult
from interp.stats import accuracy, bootstrap
from interp.tasks.task import Task

METHODS = ("ccs", "pca", "kmeans")


def ccs_sweep(
    model: Model,
    task: Task,
    contrast: tuple[str, str] | None,
    distractor: tuple[str, str] | None,
    restarts: int,
    steps: int,
    opts: SweepOptions,
) -> ProbeResult:
    """CCS and its baselines on the contrast pairs of `task`'s prompts, per unit."""
    contrast = contrast_of(task, contrast)
    y = binary_labels(labels_of(task))
    pos_task, neg_task, orient = contrast_tasks(model, task, contrast, distractor, opts.seed)
    fp = from_model(model, pos_task, opts.over, opts.positions, opts.batch_size, opts.progress)
    fn = from_model(model, neg_task, opts.over, opts.positions, opts.batch_size, opts.progress)
    split = make_split(y, opts.split, opts.test_size, opts.seed)
    preds, losses, dirs, projs = [], [], [], []
    bar = tqdm(total=len(fp.units), desc="probe (ccs)", disable=not opts.progress, unit="unit")
    for (idx, Xp), (_, Xn) in zip(fp.chunks(), fn.chunks(), strict=True):
        pred, loss = _out_of_fold(Xp, Xn, split, restarts, steps, opts.seed)
        full = CCSProbe(n_restarts=restarts, n_steps=steps, seed=opts.seed).fit(Xp, Xn)
        w = full.coef_
        # Orient each direction so that "+ completion true" agrees with the labels.
        agree = (full.predict(Xp, Xn) == y).double().mean(-1)
        w = torch.where((agree < 0.5)[:, None], -w, w)
        unit_dirs = unit_direction(w)
        preds.append((idx, pred.transpose(0, 1)))  # [unit, method, example]
        losses.append((idx, loss))
        dirs.append((idx, unit_dirs))
        projs.append((idx, project(contrast_differences(Xp, Xn), unit_dirs).float()))
        bar.update(len(idx))
    bar.close()
    measured = _measure(
        gather_units(preds, torch.long).transpose(0, 1),
        y,
        orient,
        split,
        opts,
        directions=gather_units(dirs, torch.float32),
        projection=gather_units(projs, torch.float32),
    )
    spec = ProbeSpec(
        probe="ccs",
        params={"restarts": restarts, "steps": steps},
        control=None,
        direction_sign="oriented so that a positive projection of x+ - x- means label 1",
        contrast=contrast,
        distractor=distractor,
        ccs_loss=gather_units(losses, torch.float32).tolist(),
    )
    return build_result(
        feats=fp,
        measured=measured,
        spec=spec,
        labels=y,
        split=split,
        opts=opts,
        model=model,
        task=task,
    )


def _out_of_fold(
    Xp: Tensor, Xn: Tensor, split: Split, restarts: int, steps: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Per method, each unit's held-out predictions fold after fold ``[method, unit, example]``,
    and CCS's training loss per unit averaged over folds."""
    parts: list[list[Tensor]] = [[] for _ in METHODS]
    losses = []
    for train, test in split.folds:
        ccs = CCSProbe(n_restarts=restarts, n_steps=steps, seed=seed)
        ccs.fit(Xp[:, train], Xn[:, train])
        parts[0].append(ccs.predict(Xp[:, test], Xn[:, test]))
        losses.append(ccs.loss_)
        mp, mn = Xp[:, train].mean(1, keepdim=True), Xn[:, train].mean(1, keepdim=True)
        d_tr = contrast_differences(Xp[:, train], Xn[:, train], mp, mn)
        d_te = contrast_differences(Xp[:, test], Xn[:, test], mp, mn)
        parts[1].append(PCABaseline().fit(d_tr).predict(d_te))
        parts[2].append(KMeansBaseline(seed=seed).fit(d_tr).predict(d_te))
    pred = torch.stack([torch.cat(p, -1) for p in parts])
    return pred, torch.stack(losses).mean(0)


def _measure(
    preds: Tensor,
    y: Tensor,
    orient: Tensor | None,
    split: Split,
    opts: SweepOptions,
    directions: Tensor,
    projection: Tensor,
) -> Measured:
    """Sign-free accuracies ``[unit, metric]`` of every method against the labels (and the
    distractor's orientation), with bootstrap intervals over the evaluated examples."""
    ev = split.eval_index
    targets = [("", y[ev])]
    if orient is not None:
        targets.append(("distractor_", orient[ev]))
    names = [
        f"{t}{'accuracy' if m == 'ccs' else m + '_accuracy'}" for t, _ in targets for m in METHODS
    ]
    # Each fold's direction has its own arbitrary sign: orient every fold before pooling (one
    # flipped fold would otherwise pull the pooled accuracy towards 0.5), then bootstrap plain
    # accuracy of the oriented predictions (no max(acc, 1 - acc) inside a resample).
    sizes = [len(test) for _, test in split.folds]
    oriented = [orient_folds(preds, target, sizes) for _, target in targets]

    def compute(w: Tensor | None) -> Tensor:
        out = []
        for o, (_, target) in zip(oriented, targets, strict=True):
            for m in range(len(METHODS)):
                out.append(accuracy(o[m], target, w))
        return torch.stack(out, -1)

    values = compute(None)
    lo, hi = bootstrap(compute, len(ev), opts.n_boot, opts.seed)
    return Measured(names, values, lo, hi, directions, projection)


def orient_folds(pred: Tensor, y: Tensor, sizes: Sequence[int]) -> Tensor:
    """Binary out-of-fold predictions ``[..., m]`` of directions whose sign is arbitrary,
    concatenated fold by fold (``sizes`` examples each), with every fold's predictions flipped
    where they agree with ``y`` on fewer than half of that fold's examples.

    The accuracy of the result is the mean over folds (weighted by size) of each fold's
    ``max(acc, 1 - acc)`` (METHODS section 7); with one fold (holdout) it is that fold's."""
    out = []
    for p, t in zip(pred.split(list(sizes), -1), y.split(list(sizes)), strict=True):
        acc = (p == t).double().mean(-1, keepdim=True)
        out.append(torch.where(acc < 0.5, 1 - p, p))
    return torch.cat(out, -1)
