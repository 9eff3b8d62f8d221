"""`direction`: a steering direction from two sets of examples (METHODS.md section 9).

Methods: ``"mean_diff"`` (CAA / ITI's mass-mean: mean positive minus mean negative
activation), ``"pca"`` (repeng: first principal component of the paired differences, sign so
that most pairs project positively), ``"probe"`` (the weight vector of an L2 logistic probe on
the site's activations, in the raw space), ``"act_add"`` (one prompt pair's difference).
``sigma`` is the standard deviation of all source activations projected on the unit vector.
"""

from __future__ import annotations

import operator
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.steering.objective import Source, sources
from interp.analyses.steering.vector import SITE_TARGETS, SteeringDirection
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.nodes import HeadLike, Node, as_head, is_index
from interp.tasks.task import Task

Method = Literal["mean_diff", "pca", "probe", "act_add"]
ReadAt = Literal["last", "mean"] | int


def site_of(model: Model, at: str, layer: int | None, head: int | HeadLike | None) -> Node:
    """The `Node` a direction acts on, checked against the model."""
    if at not in SITE_TARGETS:
        raise InterpError(f"at={at!r}: steer at one of {', '.join(SITE_TARGETS)}.")
    head_index: int | None = None
    if head is not None and not is_index(head):
        node = as_head(head)  # type: ignore[arg-type]  # "L3H5", (3, 5): names its layer
        if layer is not None and int(layer) != node.layer:
            raise InterpError(f"head={head!r} is in layer {node.layer}, not layer={layer}.")
        layer, head_index = node.layer, node.head
    elif head is not None:
        head_index = operator.index(head)  # type: ignore[arg-type]
    if layer is None or not is_index(layer):
        raise InterpError(f"Give the layer to steer at (an int), got layer={layer!r}.")
    L = model.n_layers
    if not -L <= int(layer) < L:
        raise InterpError(f"layer={layer} does not exist: {model.name} has layers 0..{L - 1}.")
    layer = int(layer) % L
    if at == "z":
        if head_index is None:
            raise InterpError("at='z' steers one head's output: give head= (e.g. head=5).")
        if not 0 <= head_index < model.n_heads:
            raise InterpError(
                f"head={head} does not exist: {model.name} has heads 0..{model.n_heads - 1}."
            )
        return Node("z", layer, head_index)
    if head is not None:
        raise InterpError(f"head= applies to at='z' (a head's output), not at={at!r}.")
    return Node(at, layer)


def site_activations(
    model: Model,
    task: Task,
    site: Node,
    positions: ReadAt,
    batch_size: int = 32,
    progress: bool = False,
) -> Float[Tensor, "n width"]:
    """Each prompt's activation at `site`: at its last token, its mean over real tokens, or at
    a fixed position."""
    from interp.activations.api import cache

    hook = model.hook_name(site.target, site.layer)
    if positions == "mean":
        acts = cache(model, task, names=[hook], batch_size=batch_size, progress=progress)[hook]
        n, t = acts.shape[0], acts.shape[1]
        real = torch.arange(t)[None, :] <= task.answer_pos.cpu()[:, None]  # [n, t]
        w = real.to(acts.dtype).reshape(n, t, *([1] * (acts.ndim - 2)))
        x = (acts * w).sum(1) / w.sum(1)
    else:
        if isinstance(positions, int) and not -task.seq_len <= positions < task.seq_len:
            raise InterpError(
                f"positions={positions} is beyond the prompts, which have {task.seq_len} tokens."
            )
        x = cache(
            model, task, names=[hook], positions=positions, batch_size=batch_size, progress=progress
        )[hook]
    if site.head is not None:
        x = x[:, site.head]
    return x.float().cpu()


@checked
def direction(
    model: Model | Any,
    task_or_pairs: Source,
    at: str = "resid_post",
    layer: int | None = None,
    head: int | HeadLike | None = None,
    method: Method = "mean_diff",
    positions: ReadAt = "last",
    C: float = 1.0,
    batch_size: int = 32,
    progress: bool = False,
) -> SteeringDirection:
    """A steering direction at one site, from positive and negative examples.

    Args:
        model: the model (a handle, or anything `interp.load_model` accepts).
        task_or_pairs: a Task with binary labels (positives = label 1), a Task with corrupted
            prompts (positives = clean, paired with their corrupted partners), or
            ``(positive, negative)`` prompt pairs.
        at: the site: ``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out``,
            or ``z`` (a head's output; give `head`).
        layer: the block; with `head` as ``"L3H5"`` or ``(3, 5)`` the head names it.
        head: the head, for ``at="z"``.
        method: ``"mean_diff"``, ``"pca"`` (paired examples), ``"probe"`` or ``"act_add"``
            (exactly one pair).
        positions: where each example is read: ``"last"`` (its last token), ``"mean"`` (mean
            over its tokens) or a position.
        C: inverse L2 strength of the probe (``method="probe"``).

    Returns a `SteeringDirection` whose positive strengths move towards the positives.
    """
    model = load_model(model)
    site = site_of(model, at, layer, head)
    src = sources(model, task_or_pairs)
    if method in ("pca", "act_add") and not src.paired:
        raise InterpError(
            f"method={method!r} needs paired examples (a Task with corrupted prompts, or "
            "prompt pairs); these are two groups by label: use method='mean_diff' or 'probe'."
        )
    if method == "act_add" and len(src.positive) != 1:
        raise InterpError(
            f"ActAdd takes one prompt pair, got {len(src.positive)}; for several pairs use "
            "method='mean_diff' (CAA: the mean of the pair differences)."
        )
    pos = site_activations(model, src.positive, site, positions, batch_size, progress)
    neg = site_activations(model, src.negative, site, positions, batch_size, progress)
    raw = _raw_vector(method, pos, neg, C)
    unit = raw / raw.norm().clamp_min(1e-30)
    both = torch.cat([pos, neg]) @ unit
    sigma = float(both.std()) if len(both) > 1 else float(raw.norm())
    return SteeringDirection(
        vector=raw,
        site=site,
        sigma=sigma,
        norm=float(raw.norm()),
        class_means=(float((pos @ unit).mean()), float((neg @ unit).mean())),
        method=method,
        sign=f"positive strength = towards the positives ({src.description})",
        model=model.name,
        provenance={
            "source": src.description,
            "n_positive": len(src.positive),
            "n_negative": len(src.negative),
            "positions": positions,
            "sigma_from": "all source activations" if len(both) > 1 else "one pair: raw norm",
        },
    )


def _raw_vector(
    method: str, pos: Float[Tensor, "n d"], neg: Float[Tensor, "m d"], C: float
) -> Tensor:
    if method == "mean_diff":
        return pos.double().mean(0).float() - neg.double().mean(0).float()
    if method == "act_add":
        return pos[0] - neg[0]
    if method == "pca":
        diffs = (pos - neg).double()
        # Uncentred: the first right singular vector of the differences is the axis they share
        # (repeng's PCA on randomly oriented pairs finds the same axis).
        _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
        v = vh[0]
        if int(((diffs @ v) > 0).sum()) < len(diffs) / 2:
            v = -v
        return v.float()
    from interp.analyses.probes import LogisticProbe  # the probes family's public estimator

    X = torch.cat([pos, neg])
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    probe = LogisticProbe(C=C).fit(X, y)
    return probe.coef_.reshape(-1).float()
