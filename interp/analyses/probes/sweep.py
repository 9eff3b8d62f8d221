"""`interp.probes.sweep`: train a probe on every layer (or head) and evaluate it honestly.

Protocol (METHODS.md section 7): a stratified held-out split or k-fold cross-validation; accuracy,
F1 and ROC-AUC on held-out examples with bootstrap intervals; a control task with random labels
per input type and ``selectivity = acc(task) - acc(control)`` with the same probe and split; the
layer where accuracy first jumps and where it plateaus. Directions come from the probe refitted on
all examples, as unit vectors in the raw activation space pointing towards label 1.

The supervised probes live in `supervised`, CCS in `contrastive`, the result's assembly in
`build`; this module checks the arguments and composes them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

from torch import Tensor

from interp.activations.capture import Positions
from interp.analyses.probes import protocol as P
from interp.analyses.probes.build import ProbeSpec, build_result
from interp.analyses.probes.contrastive import ccs_sweep
from interp.analyses.probes.data import Over, binary_labels, from_cache, from_model, labels_of
from interp.analyses.probes.supervised import fit_supervised
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model
from interp.results.probes import ProbeResult
from interp.tasks.task import Task

ProbeKind = Literal["logistic", "mass_mean", "ridge", "ccs"]


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
            ridge strength `alpha`) or ``"ccs"`` (unsupervised, on contrast pairs; labels only
            score it).
        positions: ``"last"`` (each prompt's last token) or an int position.
        split: ``"holdout"`` (stratified, `test_size`) or k >= 2 folds.
        control_types: the input type of each example for the control task (Hewitt & Liang);
            each type gets a random label. Default: every example is its own type (random labels).
        n_boot: bootstrap resamples of the evaluated examples for the intervals.
        contrast: CCS only: the two completions of each prompt; default: the task's own
            (``task.metadata["contrast"]``, ``(" true", " false")`` for the facts statements).
        distractor: CCS only: two words put at the start of the pairs' sides in random
            orientation, a salient feature unrelated to the label; adds how well each method
            predicts that orientation.
    """
    if probe != "ccs" and (contrast is not None or distractor is not None):
        raise InterpError(
            f"contrast= and distractor= build CCS's contrast pairs; probe={probe!r} does not use "
            "them. Pass probe='ccs', or drop them."
        )
    opts = P.SweepOptions(
        over=over,
        positions=positions,
        split=split,
        test_size=test_size,
        n_boot=n_boot,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    model = model_or_cache if isinstance(model_or_cache, Model) else _maybe_model(model_or_cache)
    task = task_or_labels if isinstance(task_or_labels, Task) else None
    if probe == "ccs":
        if model is None or task is None:
            raise InterpError("CCS builds contrast pairs from prompts: give a model and a Task.")
        return ccs_sweep(model, task, contrast, distractor, ccs_restarts, ccs_steps, opts)
    if model is not None:
        if task is None:
            raise InterpError("With a model, give a Task (prompts and labels) to probe.")
        feats = from_model(model, task, over, positions, batch_size, progress)
    else:
        answer = task.answer_pos if task is not None else None
        feats = from_cache(model_or_cache, None, over, positions, answer)
    regression = probe == "ridge"
    y = labels_of(task_or_labels, feats.n)
    if not regression:
        y = binary_labels(y)
    control = P.control_labels(y, control_types, seed)
    spl = P.make_split(y, split, test_size, seed, stratify=not regression)
    params: dict[str, Any] = (
        {"C": C} if probe == "logistic" else {"alpha": alpha} if regression else {}
    )
    spec = ProbeSpec(
        probe=probe,
        params=params,
        control="random label per example"
        if control_types is None
        else "random label per given type",
        direction_sign="positive projection = larger target"
        if regression
        else "positive projection = label 1",
    )
    measured = fit_supervised(feats, y, control, spl, probe, params, opts)
    return build_result(
        feats=feats,
        measured=measured,
        spec=spec,
        labels=y,
        split=spl,
        opts=opts,
        model=model,
        task=task,
    )


def _maybe_model(obj: Any) -> Model | None:
    from interp.activations.disk import DiskCache

    # An activation cache (TransformerLens' keeps its tensors in ``cache_dict``), not a model.
    if isinstance(obj, DiskCache | Mapping) or hasattr(obj, "cache_dict"):
        return None
    from interp.models import load_model

    return load_model(obj)
