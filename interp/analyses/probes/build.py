"""From what a sweep measured per unit to a ProbeResult: axes, coordinates, and the summary of
the curve over layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from interp.analyses.probes.data import Features
from interp.analyses.probes.protocol import Split, SweepOptions, jump_and_plateau
from interp.models import Model
from interp.results.meta import make_meta
from interp.results.probes import ProbeResult
from interp.tasks.task import Task


@dataclass(frozen=True)
class Measured:
    """One row per unit (in `Features.units` order): metrics with intervals, and the probe
    refitted on all examples (its unit direction, and the examples projected on it)."""

    names: Sequence[str]  # the metric axis
    values: Tensor  # [unit, metric]
    ci_low: Tensor
    ci_high: Tensor
    directions: Tensor  # [unit, d]
    projection: Tensor  # [unit, example, 2]


@dataclass(frozen=True)
class ProbeSpec:
    """Which probe ran, with which hyperparameters, and how to read what it found."""

    probe: str
    params: dict[str, Any]
    control: str | None  # how the control labels were drawn; None: no control task
    direction_sign: str
    contrast: tuple[str, str] | None = None  # CCS's completions
    distractor: tuple[str, str] | None = None
    ccs_loss: list[float] | None = field(default=None)

    @property
    def regression(self) -> bool:
        return self.probe == "ridge"


def build_result(
    *,
    feats: Features,
    measured: Measured,
    spec: ProbeSpec,
    labels: Tensor,
    split: Split,
    opts: SweepOptions,
    model: Model | None,
    task: Task | None,
) -> ProbeResult:
    """The ProbeResult: ``values [layer, (head,) metric]`` and the declared fields."""
    over = opts.over
    layers = sorted({u[0] for u in feats.units})
    if over == "heads":
        H = max(int(u[1] or 0) for u in feats.units) + 1
        shape: tuple[int, ...] = (len(layers), H)
        dims: tuple[str, ...] = ("layer", "head", "metric")
        coords: dict[str, list[Any]] = {"layer": layers, "head": list(range(H))}
    else:
        shape, dims, coords = (len(layers),), ("layer", "metric"), {"layer": layers}
    coords["metric"] = list(measured.names)
    meta = make_meta(model, task) if model is not None else {}
    meta.update({"analysis": "probe", "params": {**spec.params, "seed": opts.seed}})
    balance = None if spec.regression else float(labels.double().mean())
    jump = plateau = best = None
    if over == "layers":
        main = measured.values[:, 0]
        chance = 0.0 if balance is None else max(balance, 1 - balance)
        j, p = jump_and_plateau(main, chance=chance)
        jump, plateau, best = layers[j], layers[p], layers[int(main.argmax())]
    M = len(measured.names)
    return ProbeResult(
        values=measured.values.reshape(*shape, M).float(),
        dims=dims,
        coords=coords,
        labels={"layer": ["embed" if l == 0 and over == "layers" else str(l) for l in layers]},
        ci_low=measured.ci_low.reshape(*shape, M).float(),
        ci_high=measured.ci_high.reshape(*shape, M).float(),
        meta=meta,
        title=f"{spec.probe} probe by {over[:-1]}",
        probe=spec.probe,
        over=over,
        positions=opts.positions,
        split=split.description,
        control=spec.control,
        n_examples=feats.n,
        class_balance=balance,
        hooks=list(feats.hooks),
        direction_sign=spec.direction_sign,
        contrast=None if spec.contrast is None else list(spec.contrast),
        distractor=None if spec.distractor is None else list(spec.distractor),
        ccs_loss=spec.ccs_loss,
        directions=measured.directions.reshape(*shape, -1),
        projection=measured.projection.reshape(*shape, feats.n, 2),
        example_labels=labels.float(),
        eval_index=split.eval_index,
        jump_layer=jump,
        plateau_layer=plateau,
        best_layer=best,
    )


def unit_direction(w: Tensor) -> Tensor:
    """Rows of `w` scaled to unit norm (a zero row stays zero)."""
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def gather_units(chunks: Sequence[tuple[Sequence[int], Tensor]], dtype: torch.dtype) -> Tensor:
    """The sweep's ``[unit, ...]`` table, on the CPU, from each chunk's (unit indices, rows)."""
    n = sum(len(idx) for idx, _ in chunks)
    out = torch.empty(n, *chunks[0][1].shape[1:], dtype=dtype)
    for idx, rows in chunks:
        # Rows computed on an accelerator come back here: results live on the CPU.
        out[torch.as_tensor(list(idx), dtype=torch.long)] = rows.detach().to("cpu", dtype)
    return out
