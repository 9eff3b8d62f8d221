"""`evaluate`: what each direction does at each strength, beside random directions.

For every (direction, strength) and every random control (same site, same sigma, so the same
added norm), on the steered prompts of the task's objective: the change of the target-minus-
other logit difference, the fraction preferring the target answer, the fraction whose preferred
answer changed, the target's probability, the KL from the unsteered next-token distribution;
on neutral text: mean KL and next-token loss change over the positions steering can reach.
All configurations run through the stacked `Runner`; intervals bootstrap over prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.steering.engine import Config, Group, Runner
from interp.analyses.steering.objective import Toward, neutral_task, objective, word_objective
from interp.analyses.steering.steer import (
    Directions,
    Positions,
    PositionSpec,
    as_directions,
    finite_strength,
)
from interp.analyses.steering.vector import SteeringDirection
from interp.budget import DEFAULT_BUDGET, parse_budget
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.meta import make_meta
from interp.results.steering import METRICS, SteeringResult
from interp.stats import bootstrap_mean
from interp.tasks.task import Task

DEFAULT_ALPHAS = (1.0, 2.0, 4.0, 8.0, 16.0)


def check_alphas(alphas: Sequence[float]) -> list[float]:
    values = [alphas] if isinstance(alphas, int | float) else list(alphas)
    if not values:
        raise InterpError("alphas is empty: give at least one strength (sigma units).")
    return [finite_strength(a) for a in values]


def task_positions(spec: PositionSpec, task: Task) -> Positions:
    """Steering positions on `task`'s prompts, checked against them (``"last"`` = each
    prompt's answer position)."""
    pos = Positions.parse(spec)
    if pos.spec == "generated":
        raise InterpError(
            "positions='generated' applies to generation (interp.steering.generate); "
            "evaluate reads next-token predictions: use 'all', 'last' or positions."
        )
    if pos.spec == "last":
        return Positions(task.answer_pos.clone())
    pos.check(task.seq_len, len(task))
    if isinstance(pos.spec, list):
        # Negative positions count from the end of the (padded) prompts.
        pos = Positions(sorted({p % task.seq_len for p in pos.spec}))
        short = [i for i, p in enumerate(task.answer_pos.tolist()) if min(pos.spec) > p]
        if short:
            raise InterpError(
                f"Steering positions {pos.spec} start after the answer position of prompts "
                f"{short[:5]} (positions {[int(task.answer_pos[i]) for i in short[:5]]}): "
                "steering there cannot change the answer."
            )
    return pos


@checked
def evaluate(
    model: Model | Any,
    task: Task | Sequence[str],
    directions: Directions,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    neutral: Task | Sequence[str] | None = None,
    kl: bool = True,
    toward: Toward = "positive",
    positions: PositionSpec = "all",
    n_random: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
    answer_sets: tuple[Sequence[str], Sequence[str]] | None = None,
) -> SteeringResult:
    """Measure each direction's effect at each strength, its side effects, and its controls.

    Args:
        model: the model (a handle, or anything `interp.load_model` accepts).
        task: the task whose objective is measured (see `interp.steering.objective`): the
            facts statements steer false statements towards " true"; a task with corrupted
            prompts steers them towards the clean answer.
        directions: one `SteeringDirection` or several.
        alphas: strengths in sigma units.
        neutral: neutral text (prompts, or another Task) for side effects: mean KL from the
            unsteered next-token distribution and the next-token loss change.
        kl: measure side effects on `neutral` (False: skip; `task_kl` is still measured).
        toward: ``"negative"`` subtracts the directions from the positive prompts instead.
        positions: where steering adds: ``"all"``, ``"last"`` (each prompt's answer
            position; on neutral text its second-to-last token) or positions.
        n_random: random directions per direction (same site and sigma): the control.
        n_boot, seed: bootstrap intervals over prompts, and the seed of the random directions.
        memory_budget: activation memory per stacked forward (bytes or ``"512MiB"``).
        answer_sets: two word lists (single tokens): steer the task's prompts (or a list of
            prompts) towards the first list's probability mass; the metric becomes
            ``log P(first) - log P(second)`` at the answer position and ``target_prob`` the
            first list's mass (e.g. sentiment words on neutral prompts).
    """
    model = load_model(model)
    model.require("Steering evaluation", "logits")
    dirs = as_directions(directions)
    for d in dirs:
        d.check(model)
    strengths = check_alphas(alphas)
    if n_random < 0:
        raise InterpError(f"n_random must be >= 0, got {n_random}.")
    budget = parse_budget(memory_budget)
    if answer_sets is not None:
        obj = word_objective(model, task, answer_sets, toward)
    elif isinstance(task, Task):
        obj = objective(model, task, toward)
    else:
        raise InterpError(
            "A list of prompts has no answers to measure: give a Task, or answer_sets=(words "
            "to steer towards, words to steer away from)."
        )
    pos = task_positions(positions, obj.task)
    neutral_t = None
    if kl:
        if neutral is None:
            raise InterpError(
                "Side effects are measured on neutral text: pass neutral=[...] prompts (or "
                "another Task, e.g. interp.steering.neutral_prompts(model)), or kl=False."
            )
        neutral_t = neutral_task(model, neutral)
    configs, shape = _configs(dirs, strengths, n_random, obj.sign, seed)
    layers = sorted({d.site.layer for d in dirs})
    runner = Runner(model, obj.task, pos, "answer", layers, budget, progress, "steer task")
    tgt, oth = (t.to(model.device) for t in obj.answer_sets())

    def task_score(logits: Tensor, g: Group) -> Tensor:
        rows = g.rows.to(model.device)
        return _task_scores(logits, g.base_logits, tgt[rows], oth[rows])

    base = runner.base(task_score)
    task_vals = runner.run(configs, task_score)
    per_prompt = _task_metrics(task_vals, base.cpu())  # [config, prompt, 5]
    neutral_vals = None
    base_loss = float("nan")
    if neutral_t is not None:
        # Per-prompt positions belong to the task's prompts: neutral text is then steered at
        # its last position.
        nspec = "last" if isinstance(positions, Tensor) else positions
        npos = task_positions(nspec, neutral_t) if pos.spec != "all" else Positions("all")
        nrun = Runner(model, neutral_t, npos, "window", layers, budget, progress, "steer neutral")
        text = neutral_t.clean_tokens

        def neutral_score(logits: Tensor, g: Group) -> Tensor:
            nxt = text[g.rows, g.start + 1 : g.T + 1].to(logits.device)
            return _neutral_scores(logits, g.base_logits, nxt, g.window())

        nbase = nrun.base(neutral_score)
        base_loss = float(nbase[:, 1].mean())
        nv = nrun.run(configs, neutral_score)
        neutral_vals = torch.stack([nv[..., 0], nv[..., 1] - nbase[:, 1].cpu()], dim=-1)
    D, A, S = shape
    values, lo, hi, rand = _aggregate(per_prompt, neutral_vals, D, A, S, n_boot, seed)
    labels = [d.label for d in dirs]
    # The same label twice (two seeds, two tasks) would make ambiguous coordinates.
    coords_dir = [f"{i}: {lab}" for i, lab in enumerate(labels)] if len(set(labels)) < D else labels
    base_cpu = base.cpu()
    return SteeringResult(
        values=values,
        dims=("direction", "alpha", "metric"),
        coords={"direction": [*coords_dir], "alpha": [*strengths], "metric": [*METRICS]},
        ci_low=lo,
        ci_high=hi,
        sites=[str(d.site) for d in dirs],
        sigmas=[d.sigma for d in dirs],
        objective=obj.description,
        positions=_positions_label(positions),
        toward=toward,
        baseline={
            "logit_diff": float(base_cpu[:, 0].mean()),
            "target_rate": float((base_cpu[:, 0] > 0).float().mean()),
            "target_prob": float(base_cpu[:, 1].mean()),
            "loss": base_loss,
        },
        n_prompts=len(obj.task),
        n_neutral=0 if neutral_t is None else len(neutral_t),
        random=rand,
        prompt_effects=per_prompt[: D * A, :, 0].reshape(D, A, -1).clone(),
        meta=make_meta(
            model,
            obj.task,
            metric="logit_diff (target - other)" if answer_sets is None else "log P(words) diff",
            params={
                "alphas": strengths,
                "n_random": n_random,
                "positions": _positions_label(positions),
                "toward": toward,
                "n_boot": n_boot,
                "kl_on": "neutral" if neutral_t is not None else "none",
                "directions": [d.label for d in dirs],
            },
            seed=seed,
        ),
        title=f"Steering on {obj.task.name}: {obj.description}",
    )


def _positions_label(spec: PositionSpec) -> str | int | list[int]:
    if isinstance(spec, Tensor):
        return "per prompt"
    if isinstance(spec, str | int):
        return spec
    return [int(p) for p in spec]


def _configs(
    dirs: list[SteeringDirection], alphas: list[float], n_random: int, sign: float, seed: int
) -> tuple[list[Config], tuple[int, int, int]]:
    """Real configurations first (direction-major), then the random controls
    (direction, alpha, seed); a random direction is shared across strengths."""
    real = [Config(d.site, d.added(sign * a)) for d in dirs for a in alphas]
    rand = []
    for i, d in enumerate(dirs):
        controls = [d.random(seed * 1_000_003 + i * 1009 + s) for s in range(n_random)]
        rand += [Config(d.site, r.added(sign * a)) for a in alphas for r in controls]
    return real + rand, (len(dirs), len(alphas), n_random)


def _task_scores(
    logits: Float[Tensor, "n batch 1 vocab"], base: Tensor, target: Tensor, other: Tensor
) -> Float[Tensor, "n batch 3"]:
    """Per run and prompt: the target-minus-other logit difference (single answers) or
    log-probability-mass difference (word lists), the target's probability (mass), and
    KL(unsteered || run)."""
    lg = logits[:, :, 0].float()
    n = lg.shape[0]
    lp = lg.log_softmax(-1)
    t_lp = lp.gather(2, target[None].expand(n, -1, -1)).logsumexp(-1)
    if target.shape[1] == 1 and other.shape[1] == 1:
        # Single answers: the raw logit difference (the task metric patching also uses).
        diff = (
            lg.gather(2, target[None].expand(n, -1, -1))
            - lg.gather(2, other[None].expand(n, -1, -1))
        )[..., 0]
    else:
        diff = t_lp - lp.gather(2, other[None].expand(n, -1, -1)).logsumexp(-1)
    lp0 = base[:, 0].float().log_softmax(-1)[None]
    kl = (lp0.exp() * (lp0 - lp)).sum(-1)
    return torch.stack([diff, t_lp.exp(), kl], dim=-1)


def _task_metrics(vals: Tensor, base: Tensor) -> Float[Tensor, "n batch 5"]:
    """effect, target_rate, flip_rate, target_prob, task_kl per run and prompt."""
    md, md0 = vals[..., 0], base[None, :, 0]
    return torch.stack(
        [
            md - md0,
            (md > 0).float(),
            ((md > 0) != (md0 > 0)).float(),
            vals[..., 1],
            vals[..., 2],
        ],
        dim=-1,
    )


def _neutral_scores(
    logits: Float[Tensor, "n batch pos vocab"], base: Tensor, nxt: Tensor, window: Tensor
) -> Float[Tensor, "n batch 2"]:
    """Per run and text: mean KL(unsteered || run) and mean next-token loss over the window."""
    lp = logits.float().log_softmax(-1)
    lp0 = base.float().log_softmax(-1)[None]
    kl = (lp0.exp() * (lp0 - lp)).sum(-1)  # [n, B, P]
    loss = -lp.gather(3, nxt[None, :, :, None].expand(lp.shape[0], -1, -1, 1))[..., 0]
    w = window[None].float()
    count = w.sum(-1).clamp_min(1.0)
    return torch.stack([(kl * w).sum(-1) / count, (loss * w).sum(-1) / count], dim=-1)


def _aggregate(
    task: Tensor, neutral: Tensor | None, D: int, A: int, S: int, n_boot: int, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Means and bootstrap intervals ``[D, A, metric]`` of the real configurations, and the
    random controls' means ``[D, A, S, metric]``."""
    n_real = D * A
    B = task.shape[1]
    samples = task[:n_real].reshape(D, A, B, -1).permute(2, 0, 1, 3)  # [prompt, D, A, 5]
    mean, lo, hi = bootstrap_mean(samples, n_boot=n_boot, seed=seed)
    if neutral is not None:
        ns = neutral[:n_real].reshape(D, A, neutral.shape[1], 2).permute(2, 0, 1, 3)
        nm, nlo, nhi = bootstrap_mean(ns, n_boot=n_boot, seed=seed)
    else:
        nm = nlo = nhi = torch.full((D, A, 2), float("nan"))
    values = torch.cat([mean, nm], dim=-1)
    low = torch.cat([lo, nlo], dim=-1)
    high = torch.cat([hi, nhi], dim=-1)
    rand = None
    if S:
        r = task[n_real:].reshape(D, A, S, B, -1).mean(3)
        if neutral is not None:
            rn = neutral[n_real:].reshape(D, A, S, neutral.shape[1], 2).mean(3)
        else:
            rn = torch.full((D, A, S, 2), float("nan"))
        rand = torch.cat([r, rn], dim=-1)
    return values, low, high, rand
