"""Evidence about steering targets, each from an existing analysis on the same task.

Per unit (attention head, or the residual stream after a block), a score where larger means
stronger evidence that steering the unit moves the task's behaviour:

- ``dla``: |direct logit attribution| towards the task's answers (heads; a block's attention
  plus MLP for layers);
- ``denoise`` / ``noise``: |exact activation patching score| of the head's output (a block's
  attention and MLP outputs together for layers), or AtP's estimate with ``patching="atp"``;
- ``probe``: held-out accuracy of a logistic probe separating the positive from the negative
  examples at the unit (per-head ``z`` or the residual stream);
- a detector name (``induction``, ``previous_token`` ...): the head detector's score.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.steering.objective import Sources
from interp.errors import InterpError
from interp.models import Model
from interp.nodes import Node
from interp.tasks.task import Task

Over = Literal["heads", "layers"]
PatchingKind = Literal["exact", "atp"]
EVIDENCE = ("dla", "patching", "probes")


def units(model: Model, over: Over) -> list[Node]:
    """The steering sites of a scorecard: every head's ``z``, or every block's ``resid_post``."""
    if over == "heads":
        return [Node("z", l, h) for l in range(model.n_layers) for h in range(model.n_heads)]
    return [Node("resid_post", l) for l in range(model.n_layers)]


def gather(
    model: Model,
    task: Task,
    src: Sources,
    over: Over,
    evidence: Sequence[str],
    detectors: Sequence[str],
    patching: PatchingKind,
    n_boot: int,
    seed: int,
    progress: bool,
) -> tuple[dict[str, Float[Tensor, " unit"]], dict[str, str]]:
    """Scores ``[unit]`` per evidence source, and a description of each."""
    unknown = sorted(set(evidence) - set(EVIDENCE))
    if unknown:
        raise InterpError(f"Unknown evidence {unknown}; use any of {list(EVIDENCE)}.")
    if detectors and over != "heads":
        raise InterpError("Head detectors score heads: use them with over='heads'.")
    scores: dict[str, Tensor] = {}
    about: dict[str, str] = {}
    if "dla" in evidence:
        scores["dla"], about["dla"] = _dla(model, task, over, n_boot, seed)
    if "patching" in evidence:
        if task.corrupt_tokens is None:
            warnings.warn(
                f"Task {task.name!r} has no corrupted prompts: the scorecard has no patching "
                "evidence.",
                stacklevel=3,
            )
        else:
            for mode in ("denoise", "noise"):
                scores[mode], about[mode] = _patching(
                    model, task, over, mode, patching, n_boot, seed, progress
                )
    if "probes" in evidence:
        scores["probe"], about["probe"] = _probe(model, src, over, seed, progress)
    for kind in detectors:
        from interp.analyses.attribution import detect_heads

        res = detect_heads(model, kind, seed=seed)
        scores[kind] = res.values.reshape(-1).float()
        about[kind] = f"{kind} head detector score"
    if not scores:
        raise InterpError("No evidence to rank by: give evidence= and/or detectors=.")
    return scores, about


def _dla(model: Model, task: Task, over: Over, n_boot: int, seed: int) -> tuple[Tensor, str]:
    from interp.analyses.attribution import direct_logit

    res = direct_logit(model, task, over=over, n_boot=n_boot, seed=seed)
    v = res.values.float()
    if over == "layers":
        v = v.sum(-1)  # the block's attention + MLP: what it adds to the residual stream
    return v.reshape(-1).abs(), "|direct logit attribution| towards the answers"


def _patching(
    model: Model,
    task: Task,
    over: Over,
    mode: Literal["denoise", "noise"],
    kind: PatchingKind,
    n_boot: int,
    seed: int,
    progress: bool,
) -> tuple[Tensor, str]:
    from interp.analyses.patching import activation_patch, attribution_patch

    what = "exact activation patching" if kind == "exact" else "attribution patching (AtP)"
    if over == "heads":
        if kind == "exact":
            r = activation_patch(
                model, task, target="z", mode=mode, n_boot=n_boot, seed=seed, progress=progress
            )
        else:
            r = attribution_patch(model, task, target="z", mode=mode, n_boot=n_boot, seed=seed)
        return r.values.reshape(-1).abs().float(), f"|{mode} score| of the head output ({what})"
    if kind == "exact":
        sets = [[Node("attn_out", l), Node("mlp_out", l)] for l in range(model.n_layers)]
        r = activation_patch(
            model, task, nodes=sets, mode=mode, n_boot=n_boot, seed=seed, progress=progress
        )
        v = r.values.reshape(-1)
    else:
        both = attribution_patch(
            model, task, targets=["attn_out", "mlp_out"], mode=mode, n_boot=n_boot, seed=seed
        )
        v = both["attn_out"].values.reshape(-1) + both["mlp_out"].values.reshape(-1)
    return v.abs().float(), f"|{mode} score| of the block's attention + MLP outputs ({what})"


def _probe(model: Model, src: Sources, over: Over, seed: int, progress: bool) -> tuple[Tensor, str]:
    from interp.analyses.probes import sweep

    both = _labelled_union(src, model.pad_id)
    res = sweep(model, both, over=over, seed=seed, n_boot=100, progress=progress)
    acc = res.metric("accuracy").float()
    if over == "layers":
        acc = acc[1:]  # coordinate 0 is the embedding (resid_pre of block 0)
    return acc.reshape(-1), "held-out accuracy of a logistic probe (positives vs negatives)"


def _labelled_union(src: Sources, pad_id: int) -> Task:
    """Positives (label 1) and negatives (label 0) as one labelled task."""
    pos, neg = src.positive, src.negative
    width = max(pos.seq_len, neg.seq_len)

    def padded(t: Task) -> Tensor:
        pad = torch.full((len(t), width - t.seq_len), pad_id)
        return torch.cat([t.clean_tokens, pad.to(t.clean_tokens.dtype)], dim=1)

    return Task(
        clean_tokens=torch.cat([padded(pos), padded(neg)]),
        answer_pos=torch.cat([pos.answer_pos, neg.answer_pos]),
        labels=torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long(),
        clean_prompts=[*pos.clean_prompts, *neg.clean_prompts],
        name=f"{pos.name} vs {neg.name}",
    )
