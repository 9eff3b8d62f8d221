"""`interp.probes.sweep`: train a probe on every layer (or head) and evaluate it honestly.

Protocol (METHODS.md section 7): a stratified held-out split or k-fold cross-validation; accuracy,
F1 and ROC-AUC on held-out examples with bootstrap intervals; a control task with random labels
per input type and ``selectivity = acc(task) - acc(control)`` with the same probe and split; the
layer where accuracy first jumps and where it plateaus. Directions come from the probe refitted on
all examples, as unit vectors in the raw activation space pointing towards label 1.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.probes import protocol as P
from interp.analyses.probes.ccs import (
    CCSProbe,
    KMeansBaseline,
    PCABaseline,
    contrast_differences,
)
from interp.analyses.probes.data import (
    Features,
    Over,
    contrast_tasks,
    from_cache,
    from_model,
    labels_of,
)
from interp.analyses.probes.linear import make_probe
from interp.analyses.probes.views import project
from interp.cache.capture import Positions
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model
from interp.results.meta import make_meta
from interp.results.probes import ProbeResult
from interp.stats import accuracy, bootstrap, f1, r2, roc_auc
from interp.tasks.task import Task

ProbeKind = Literal["logistic", "mass_mean", "ridge", "ccs"]
CLASSIFICATION = ("accuracy", "f1", "auroc", "control_accuracy", "selectivity")
REGRESSION = ("r2", "control_r2", "selectivity")


@checked
def sweep(
    model_or_cache: Model | Any,
    task_or_labels: Task | Tensor | Sequence[Any],
    over: Over = "layers",
    probe: ProbeKind = "logistic",
    positions: Positions = "last",
    split: Literal["holdout"] | int = "holdout",
    test_size: float = 0.25,
    control_types: Sequence[Hashable] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    C: float = 1.0,
    alpha: float = 1.0,
    contrast: tuple[str, str] | None = None,
    distractor: tuple[str, str] | None = None,
    ccs_restarts: int = 10,
    ccs_steps: int = 1000,
    batch_size: int = 32,
    progress: bool = True,
) -> ProbeResult:
    """Probe every layer (``over="layers"``) or every head (``over="heads"``) at once.

    Args:
        model_or_cache: a model (representations are cached at `positions` for the task's
            prompts), or an activation cache holding ``resid_pre``/``resid_post`` (layers) or
            ``z`` (heads): TransformerLens' ActivationCache, a dict, or an on-disk DiskCache
            (read one hook at a time).
        task_or_labels: a Task with ``labels`` (e.g. ``interp.tasks.facts(model,
            kind="statements")``), or, with a cache, the labels themselves.
        probe: ``"logistic"`` (L2, `C`), ``"mass_mean"``, ``"ridge"`` (continuous targets,
            `alpha`) or ``"ccs"`` (unsupervised, on contrast pairs; labels only score it).
        positions: ``"last"`` (each prompt's last token) or an int position.
        split: ``"holdout"`` (stratified, `test_size`) or k >= 2 folds.
        control_types: the input type of each example for the control task (Hewitt & Liang);
            each type gets a random label. Default: every example is its own type (random labels).
        n_boot: bootstrap resamples of the evaluated examples for the intervals.
        contrast: CCS only: the two completions of each prompt (default ``(" true", " false")``
            for the facts task).
        distractor: CCS only: two words put at the start of the pairs' sides in random
            orientation, a salient feature unrelated to the label; adds how well each method
            predicts that orientation.
    """
    if probe != "ccs" and (contrast is not None or distractor is not None):
        raise InterpError(
            f"contrast= and distractor= build CCS's contrast pairs; probe={probe!r} does not use "
            "them. Pass probe='ccs', or drop them."
        )
    model = model_or_cache if isinstance(model_or_cache, Model) else _maybe_model(model_or_cache)
    task = task_or_labels if isinstance(task_or_labels, Task) else None
    if probe == "ccs":
        return _ccs_sweep(
            model,
            task,
            over,
            positions,
            split,
            test_size,
            n_boot,
            seed,
            contrast,
            distractor,
            ccs_restarts,
            ccs_steps,
            batch_size,
            progress,
        )
    if model is not None:
        if task is None:
            raise InterpError("With a model, give a Task (prompts and labels) to probe.")
        feats = from_model(model, task, over, positions, batch_size, progress)
    else:
        answer = task.answer_pos if task is not None else None
        feats = from_cache(model_or_cache, None, over, positions, answer)
    y = labels_of(task_or_labels, feats.n)
    regression = probe == "ridge"
    if not regression:
        y = _binary(y)
    ctrl = P.control_labels(y, control_types, seed)
    spl = P.make_split(y, split, test_size, seed, stratify=not regression)
    params: dict[str, Any] = (
        {"C": C} if probe == "logistic" else {"alpha": alpha} if regression else {}
    )

    warm = {"warm_start": True} if probe == "logistic" else {}
    U = len(feats.units)
    ev = spl.eval_index
    y_ev, c_ev = y[ev], ctrl[ev]
    scores = torch.zeros(U, len(ev), dtype=torch.float64)
    cscores = torch.zeros_like(scores)
    directions: list[Tensor] = [torch.empty(0)] * U
    projections = torch.zeros(U, feats.n, 2)
    bar = tqdm(total=U, desc=f"probe ({probe})", disable=not progress, unit="unit")
    for idx, X in feats.chunks():
        X = X.double()
        s_parts, c_parts = [], []
        # Logistic fits start from the previous fold's solution, the refit on all examples
        # from the last fold's (same optimum, fewer Newton iterations).
        task_probe = make_probe(probe, **params, **warm)
        for train, test in spl.folds:
            task_probe.fit(X[:, train], y[train])
            s_parts.append(task_probe.decision_function(X[:, test]).double())
            c_parts.append(_fit_score(probe, params, X[:, train], ctrl[train], X[:, test]))
        full = task_probe.fit(X, y)
        w = full.coef_
        unit_dirs = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        proj = project(X, unit_dirs).float()
        for j, i in enumerate(idx):
            scores[i] = torch.cat([p[j] for p in s_parts])
            cscores[i] = torch.cat([p[j] for p in c_parts])
            directions[i] = unit_dirs[j].float()
            projections[i] = proj[j]
        bar.update(len(idx))
    bar.close()

    names = REGRESSION if regression else CLASSIFICATION
    values, lo, hi = _metrics(scores, cscores, y_ev, c_ev, regression, n_boot, seed)
    res = _result(
        feats,
        over,
        names,
        values,
        lo,
        hi,
        torch.stack(directions),
        projections,
        y,
        model,
        task,
        probe,
        spl,
        positions,
        seed,
        params,
        control_types,
    )
    return res


def _binary(y: Tensor) -> Tensor:
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise InterpError(
            f"All labels are {classes[0]!r}: a probe needs both classes. Check the task or use "
            "probe='ridge' for continuous targets."
        )
    if len(classes) > 2:
        raise InterpError(
            f"Labels have {len(classes)} classes {classes[:5]}: classification probes are binary "
            "(use probe='ridge' for continuous targets, or relabel one-vs-rest)."
        )
    return (y == classes[1]).long()


def _maybe_model(obj: Any) -> Model | None:
    from interp.cache.disk import DiskCache

    # An activation cache (TransformerLens' keeps its tensors in ``cache_dict``), not a model.
    if isinstance(obj, DiskCache | Mapping) or hasattr(obj, "cache_dict"):
        return None
    from interp.models import load_model

    return load_model(obj)


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


def _result(
    feats: Features,
    over: Over,
    names: Sequence[str],
    values: Tensor,
    lo: Tensor,
    hi: Tensor,
    directions: Tensor,
    projections: Tensor,
    y: Tensor,
    model: Model | None,
    task: Task | None,
    probe: str,
    spl: P.Split,
    positions: Positions,
    seed: int,
    params: dict[str, Any],
    control_types: Sequence[Hashable] | None,
) -> ProbeResult:
    layers = sorted({u[0] for u in feats.units})
    M = len(names)
    if over == "heads":
        H = max(int(u[1] or 0) for u in feats.units) + 1
        shape: tuple[int, ...] = (len(layers), H)
        dims: tuple[str, ...] = ("layer", "head", "metric")
        coords: dict[str, list[Any]] = {"layer": layers, "head": list(range(H))}
    else:
        shape, dims, coords = (len(layers),), ("layer", "metric"), {"layer": layers}
    coords["metric"] = list(names)
    meta = make_meta(model, task) if model is not None else {}
    meta.update(
        {
            "analysis": "probe",
            "probe": probe,
            "over": over,
            "positions": positions,
            "split": spl.description,
            "params": {**params, "seed": seed},
            "control": "random label per example"
            if control_types is None
            else "random label per given type",
            "n_examples": feats.n,
            "class_balance": float(y.double().mean()) if probe != "ridge" else None,
            "hooks": feats.hooks,
            "direction_sign": "positive projection = label 1"
            if probe != "ridge"
            else "positive projection = larger target",
        }
    )
    if over == "layers":
        main = values[:, 0]
        chance = (
            0.0 if probe == "ridge" else max(float(y.double().mean()), 1 - float(y.double().mean()))
        )
        j, p = P.jump_and_plateau(main, chance=chance)
        meta["jump_layer"], meta["plateau_layer"] = layers[j], layers[p]
        meta["best_layer"] = layers[int(main.argmax())]
    labels = {"layer": ["embed" if l == 0 and over == "layers" else str(l) for l in layers]}
    return ProbeResult(
        values=values.reshape(*shape, M).float(),
        dims=dims,
        coords=coords,
        labels=labels,
        ci_low=lo.reshape(*shape, M).float(),
        ci_high=hi.reshape(*shape, M).float(),
        extras={
            "directions": directions.reshape(*shape, -1),
            "projection": projections.reshape(*shape, feats.n, 2),
            "labels": y.float(),
            "eval_index": spl.eval_index,
        },
        meta=meta,
        title=f"{probe} probe by {over[:-1]}",
    )


def _ccs_sweep(
    model: Model | None,
    task: Task | None,
    over: Over,
    positions: Positions,
    split: str | int,
    test_size: float,
    n_boot: int,
    seed: int,
    contrast: tuple[str, str] | None,
    distractor: tuple[str, str] | None,
    restarts: int,
    steps: int,
    batch_size: int,
    progress: bool,
) -> ProbeResult:
    if model is None or task is None:
        raise InterpError("CCS builds contrast pairs from prompts: give a model and a Task.")
    if contrast is None:
        if task.name != "facts":
            raise InterpError(
                "CCS needs the two completions of each prompt: pass contrast=(' yes', ' no')."
            )
        contrast = (" true", " false")
    y = _binary(labels_of(task))
    pos_task, neg_task, orient = contrast_tasks(model, task, contrast, distractor, seed)
    fp = from_model(model, pos_task, over, positions, batch_size, progress)
    fn = from_model(model, neg_task, over, positions, batch_size, progress)
    spl = P.make_split(y, split, test_size, seed)
    U = len(fp.units)
    ev = spl.eval_index
    methods = ("ccs", "pca", "kmeans")
    preds = torch.zeros(len(methods), U, len(ev), dtype=torch.long)
    loss = torch.zeros(U)
    directions: list[Tensor] = [torch.empty(0)] * U
    projections = torch.zeros(U, fp.n, 2)
    bar = tqdm(total=U, desc="probe (ccs)", disable=not progress, unit="unit")
    for (idx, Xp), (_, Xn) in zip(fp.chunks(), fn.chunks(), strict=True):
        parts: list[list[Tensor]] = [[], [], []]
        losses = []
        for train, test in spl.folds:
            ccs = CCSProbe(n_restarts=restarts, n_steps=steps, seed=seed)
            ccs.fit(Xp[:, train], Xn[:, train])
            parts[0].append(ccs.predict(Xp[:, test], Xn[:, test]))
            losses.append(ccs.loss_)
            mp, mn = Xp[:, train].mean(1, keepdim=True), Xn[:, train].mean(1, keepdim=True)
            d_tr = contrast_differences(Xp[:, train], Xn[:, train], mp, mn)
            d_te = contrast_differences(Xp[:, test], Xn[:, test], mp, mn)
            parts[1].append(PCABaseline().fit(d_tr).predict(d_te))
            parts[2].append(KMeansBaseline(seed=seed).fit(d_tr).predict(d_te))
        full = CCSProbe(n_restarts=restarts, n_steps=steps, seed=seed).fit(Xp, Xn)
        w = full.coef_
        # Orient each direction so that "+ completion true" agrees with the labels.
        agree = (full.predict(Xp, Xn) == y).double().mean(-1)
        w = torch.where((agree < 0.5)[:, None], -w, w)
        unit_dirs = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        proj = project(contrast_differences(Xp, Xn), unit_dirs).float()
        for j, i in enumerate(idx):
            for m in range(3):
                preds[m, i] = torch.cat([p[j] for p in parts[m]])
            loss[i] = torch.stack([lo[j] for lo in losses]).mean()
            directions[i] = unit_dirs[j].float()
            projections[i] = proj[j]
        bar.update(len(idx))
    bar.close()

    targets = [("", y[ev])]
    if orient is not None:
        targets.append(("distractor_", orient[ev]))
    names = [
        f"{t}{'accuracy' if m == 'ccs' else m + '_accuracy'}" for t, _ in targets for m in methods
    ]

    # Each fold's direction has its own arbitrary sign: orient every fold before pooling (one
    # flipped fold would otherwise pull the pooled accuracy towards 0.5), then bootstrap plain
    # accuracy of the oriented predictions (no max(acc, 1 - acc) inside a resample).
    sizes = [len(test) for _, test in spl.folds]
    oriented = [orient_folds(preds, target, sizes) for _, target in targets]

    def compute(w: Tensor | None) -> Tensor:
        out = []
        for o, (_, target) in zip(oriented, targets, strict=True):
            for m in range(3):
                out.append(accuracy(o[m], target, w))
        return torch.stack(out, -1)

    values = compute(None)
    lo, hi = bootstrap(compute, len(ev), n_boot, seed)
    res = _result(
        fp,
        over,
        names,
        values,
        lo,
        hi,
        torch.stack(directions),
        projections,
        y,
        model,
        task,
        "ccs",
        spl,
        positions,
        seed,
        {"restarts": restarts, "steps": steps},
        None,
    )
    res.meta.update(
        {
            "contrast": list(contrast),
            "distractor": None if distractor is None else list(distractor),
            "ccs_loss": loss.tolist(),
            "control": None,
            "direction_sign": "oriented so that a positive projection of x+ - x- means label 1",
        }
    )
    return res


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
