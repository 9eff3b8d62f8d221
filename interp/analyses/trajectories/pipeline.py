"""`evaluate`: sample (or take) traces, score every signal, and gather the evidence in one result.

One call runs METHODS.md section 8's protocol: per-trace signals at chunk size k (all chunks and
the first `early` chunks), ROC-AUC of each against correctness with bootstrap intervals, a
shuffled-label null and the change signals on a random projection; best-of-n selection by each
signal against majority vote (full and early, with tokens spent); sequential acceptance with a
threshold calibrated on held-out prompts; and each trace's path in a 2-D PCA plane per layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.trajectories import sampling as S
from interp.analyses.trajectories.acceptance import sequential_acceptance
from interp.analyses.trajectories.sampling import sample
from interp.analyses.trajectories.scoring import (
    CHANGE,
    EARLY,
    ORIENTATION,
    auroc_table,
    orientation,
    per_layer_column,
    regroup,
    selection,
    signals,
    with_answers,
)
from interp.analyses.trajectories.trace import Trace
from interp.checks import checked
from interp.errors import InterpError
from interp.executors import Executor, ExecutorName
from interp.models import Model, load_model
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.results.trajectories import METRICS, TRACE_COLUMNS, TrajectoryResult
from interp.tasks.task import Task


def projected_paths(
    traces: Sequence[Trace], chunk_factor: int = 1
) -> tuple[Float[Tensor, "L trace N 2"], list[list[float]]]:
    """Every trace's chunk means in the plane of the top two principal components of all chunks
    (per layer), NaN-padded to the longest trace; and each layer's explained-variance ratios."""
    hs = [regroup(t.chunks.double(), chunk_factor) for t in traces]
    L = hs[0].shape[1]
    N = max(len(h) for h in hs)
    out = torch.full((L, len(hs), N, 2), float("nan"), dtype=torch.float64)
    explained = []
    for l in range(L):
        X = torch.cat([h[:, l] for h in hs if len(h)])
        mu = X.mean(0)
        _, s, Vh = torch.linalg.svd(X - mu, full_matrices=False)
        var = s**2
        ratio = (var[:2] / var.sum().clamp_min(1e-300)).tolist()
        explained.append([*ratio, 0.0, 0.0][:2])
        basis = torch.zeros(X.shape[1], 2, dtype=X.dtype)  # [d, 2]; fewer PCs: zeros
        basis[:, : min(2, len(Vh))] = Vh[:2].T
        for i, h in enumerate(hs):
            if len(h):
                out[l, i, : len(h)] = (h[:, l] - mu) @ basis
    return out.float(), explained


def _auroc_values(
    full: pd.DataFrame, early: pd.DataFrame, projected: pd.DataFrame, n_boot: int, seed: int
) -> tuple[list[str], Tensor, Tensor, Tensor]:
    """[signal, metric] ROC-AUC, null ROC-AUC and random-projection ROC-AUC with intervals."""
    main = auroc_table(full, n_boot=n_boot, seed=seed)
    e = auroc_table(early, n_boot=n_boot, seed=seed, signals=CHANGE)
    e["signal"] = EARLY + e["signal"]
    proj = auroc_table(projected, n_boot=n_boot, seed=seed, signals=CHANGE).set_index("signal")
    table = pd.concat([main, e], ignore_index=True)
    names = list(table["signal"])
    shape = (len(names), len(METRICS))
    vals, lo, hi = (torch.full(shape, float("nan"), dtype=torch.float64) for _ in range(3))
    for i, row in table.iterrows():
        for j, metric in enumerate(("auroc", "null_auroc")):
            vals[i, j], lo[i, j], hi[i, j] = (
                row[metric],
                row[f"{metric}_low"],
                row[f"{metric}_high"],
            )
        if row["signal"] in proj.index:
            p = proj.loc[row["signal"]]
            vals[i, 2], lo[i, 2], hi[i, 2] = p["auroc"], p["auroc_low"], p["auroc_high"]
    return names, vals, lo, hi


def _layer_auroc(
    full: pd.DataFrame, L: int, n_boot: int, seed: int
) -> Float[Tensor, "signal layer 3"]:
    """ROC-AUC of each change signal at each layer: [signal, layer, (value, low, high)]."""
    names = [per_layer_column(c, l) for c in CHANGE for l in range(L)]
    tab = auroc_table(full, n_boot=n_boot, seed=seed, signals=names).set_index("signal")
    out = torch.full((len(CHANGE), L, 3), float("nan"), dtype=torch.float64)
    for i, c in enumerate(CHANGE):
        for l in range(L):
            if per_layer_column(c, l) in tab.index:
                row = tab.loc[per_layer_column(c, l)]
                out[i, l] = torch.tensor([row["auroc"], row["auroc_low"], row["auroc_high"]])
    return out


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """The per-trace table with fixed column types: a signal undefined on every trace is an
    all-None object column otherwise, and the saved table should not depend on that."""
    signals = [c for c in table.columns if c not in TRACE_COLUMNS and c != "answer"]
    return table.astype({**TRACE_COLUMNS, **dict.fromkeys(signals, "float64"), "answer": "str"})


@checked
def evaluate(
    source: Model | Any | Sequence[Trace],
    task: Task | None = None,
    *,
    n: int = S.DEFAULT_N,
    max_new_tokens: int | None = S.DEFAULT_MAX_NEW_TOKENS,
    temperature: float = S.DEFAULT_TEMPERATURE,
    chunk: int = S.DEFAULT_CHUNK,
    k: int | None = None,
    early: int = 3,
    projection_dim: int = 16,
    calibration: float = 0.5,
    answer_of: Callable[[str], str] | None = None,
    n_boot: int = 1000,
    seed: int = S.DEFAULT_SEED,
    store: str | Path | None = None,
    progress: bool = True,
    executor: ExecutorName | Executor = "local",
) -> TrajectoryResult:
    """Do latent-trajectory signals predict whether a generated answer is right?

    Args:
        source: a model (sampled on `task`) or traces from ``sample`` / ``load_traces``.
        task: prompts with a checker (e.g. ``interp.tasks.arithmetic``); needed with a model.
        n, max_new_tokens, temperature, chunk, seed, store, executor: passed to ``sample``
            (the same defaults; max_new_tokens=None fits the model's context after the longest
            prompt).
        k: chunk size of the signals in tokens, a multiple of the sampled chunk (default: the
            sampled chunk).
        early: the early signals and early selection use the first `early` chunks.
        projection_dim: the null control computes the change signals on a random Gaussian
            projection of the states to this many dimensions.
        calibration: fraction of prompts that calibrates the sequential-acceptance thresholds.
        answer_of: maps a generated text to its final answer for majority vote (default: the
            task's ``answer_of``, recorded on each trace at sampling).
        n_boot: bootstrap resamples for the ROC-AUC intervals.

    Returns:
        A ``TrajectoryResult``: ROC-AUC per signal (``auroc``, ``null_auroc``,
        ``projection_auroc``) with intervals, and the per-trace ``table``, ``selection``,
        ``acceptance``, per-layer ROC-AUC and 2-D ``paths`` for its views.
    """
    start = time.time()
    # Arguments first: a mistake should not cost a sampling run.
    if early < 2:
        raise InterpError(f"early must be at least 2 chunks, got {early}.")
    if not 0 < calibration < 1:
        raise InterpError(f"calibration must be a fraction in (0, 1), got {calibration}.")
    if isinstance(source, Sequence) and not isinstance(source, str):
        traces = list(source)
        if not traces or not all(isinstance(t, Trace) for t in traces):
            raise InterpError("Give a model and a task, or a non-empty list of Trace objects.")
        model_name, task_name = "traces", task.name if task is not None else "traces"
        sampled_here = False
    else:
        if task is None:
            raise InterpError("evaluate(model, task): give the task to sample answers for.")
        if k is not None and (k < chunk or k % chunk):
            raise InterpError(f"k={k} must be a multiple of the sampling chunk={chunk}.")
        if len(task) < 2:
            raise InterpError(
                "evaluate needs at least 2 prompts (calibration and test prompts for "
                "sequential acceptance); use a larger task."
            )
        model = load_model(source)
        max_new_tokens = S.new_token_budget(model, task, max_new_tokens)  # recorded as used
        traces = sample(
            model, task, n, max_new_tokens, temperature, chunk, seed, progress, store, executor
        )
        model_name, task_name = model.name, task.name
        sampled_here = True
    if any(t.correct is None for t in traces):
        raise InterpError("Some traces have no verdict (correct is None): score them first.")
    base = traces[0].chunk
    k = k or base
    full = signals(traces, chunk=k, per_layer=True)
    first = signals(traces, chunk=k, early=early)
    projected = signals(traces, chunk=k, projection_dim=projection_dim, seed=seed)
    names, vals, lo, hi = _auroc_values(full, first, projected, n_boot, seed)
    layer_auroc = _layer_auroc(full, traces[0].chunks.shape[1], n_boot, seed)

    table = with_answers(traces, full, answer_of)
    for name in CHANGE:
        table[EARLY + name] = first[name]
    table = _typed(table)
    sel = selection(traces, full, answer_of=answer_of)
    early_sel = selection(
        traces, first, signals=CHANGE, answer_of=answer_of, early_tokens=early * k
    )
    early_sel = early_sel[early_sel["method"] != "majority_vote"]
    early_sel = early_sel.assign(method=EARLY + early_sel["method"])
    sel = pd.concat([sel, early_sel], ignore_index=True)
    acc = sequential_acceptance(
        table, [*ORIENTATION, *(EARLY + c for c in CHANGE)], calibration, seed
    )
    paths, explained = projected_paths(traces, k // base)

    right = float(table["correct"].mean())
    meta = make_meta(
        model=model_name,
        task=task if task is not None else task_name,
        metric="ROC-AUC against correctness",
        params={
            "n_traces": len(traces),
            "n_prompts": int(table["prompt"].nunique()),
            "sampled_chunk": base,
            "k": k,
            "early": early,
            "projection_dim": projection_dim,
            "calibration": calibration,
            "n_boot": n_boot,
            **(
                {}
                if sampled_here is False
                else {"n": n, "max_new_tokens": max_new_tokens, "temperature": temperature}
            ),
        },
        seed=seed,
        seconds=round(time.time() - start, 2),
    )
    meta["description"] = (
        f"{len(traces)} sampled answers, {right:.0%} right. ROC-AUC of each signal against "
        "correctness (oriented: above 0.5 = predicts right answers in the expected direction), "
        "with the same on shuffled labels and, for the change signals, on a random projection "
        "of the states (null baselines)."
    )
    calibration_prompts = acc.attrs["calibration_prompts"]
    acc.attrs = {}  # the prompts are a field of their own; the table holds the rows only
    return TrajectoryResult(
        values=vals,
        dims=("signal", "metric"),
        coords={"signal": list[Coord](names), "metric": list[Coord](METRICS)},
        ci_low=lo,
        ci_high=hi,
        meta=meta,
        title=f"Trajectory signals vs correctness ({task_name}, {right:.0%} right)",
        table=table,
        selection=sel,
        acceptance=acc,
        paths=paths,
        layer_auroc=layer_auroc,
        path_explained=explained,
        orientation={s: orientation(s) for s in names},
        calibration_prompts=calibration_prompts,
        fraction_right=right,
    )
