"""Exact patching as work units: each stacked forward of `Patcher.plan` is one unit.

The driver plans the sweep, then hands the units to an executor (`interp.executors`): locally
they run on the driver's own `Patcher`; elsewhere each worker builds its own from the same
arguments (its own clean and corrupted runs, once) and returns each unit's metric values. With
``store=`` every finished unit is written to disk as it arrives, so a sweep stopped anywhere
resumes with any executor.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.engine import Patcher, PatchUnit
from interp.analyses.patching.nodes import Node
from interp.analyses.patching.readout import make_readout
from interp.analyses.patching.runs import Corruption
from interp.analyses.patching.store import (
    PatchStore,
    check_store,
    params_for_store,
    sweep_header,
)
from interp.executors import Executor, Job, Local
from interp.kernels import fused
from interp.models import Model
from interp.results.patching import Mode
from interp.tasks.metrics import Metric
from interp.tasks.task import Task


@dataclass(frozen=True)
class PatchSpec:
    """Everything a worker needs to build the driver's `Patcher` again."""

    task: Task
    corruption: Corruption
    mode: Mode
    metric: str | Metric
    hooks: tuple[str, ...]
    budget: int

    def build(
        self, model: Model, progress: bool = False, desc: str = ""
    ) -> tuple[Contrast, Patcher]:
        contrast = Contrast.of(model, self.task, self.corruption, self.mode)
        ref = contrast.reference_logits(model, self.metric)
        readout = make_readout(model, self.task, self.metric, ref)
        patcher = Patcher(
            model, readout, contrast.base, contrast.source, self.hooks,
            budget=self.budget, progress=progress, desc=desc,
        )  # fmt: skip
        return contrast, patcher


class PatchJob(Job[tuple[PatchUnit, list[list[Node]]], Tensor]):
    """A unit is a `PatchUnit` with its node sets; the result its metric [sets, batch]."""

    def __init__(self, spec: PatchSpec, patcher: Patcher | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.patcher = patcher  # the driver's, for the local loop; never sent to a worker

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "patcher": None}

    def context(self, model: Model) -> AbstractContextManager[Any]:
        # A worker keeps the fused kernels (and their laid-out weights) for all its units; the
        # local loop runs inside the caller's own block.
        return contextlib.nullcontext() if self.patcher is not None else fused(model)

    def prepare(self, model: Model) -> Patcher:
        return self.patcher or self.spec.build(model)[1]

    def run(self, state: Patcher, model: Model, unit: tuple[PatchUnit, list[list[Node]]]) -> Tensor:
        u, nodes = unit
        vals = state.forward(u, nodes)
        # Local values stay on the device (no host sync per unit); a worker's go back on the CPU.
        return vals if self.patcher is not None else vals.float().cpu()


def check_early(
    model: Model, spec: PatchSpec, store: str | os.PathLike[str] | None, params: dict[str, Any]
) -> None:
    """Refuse a store that cannot hold this sweep before its first forward pass."""
    if store is not None:
        settings = params_for_store(**params)
        check_store(store, sweep_header(model, spec.task, spec.corruption, settings))


def run_units(
    model: Model,
    spec: PatchSpec,
    patcher: Patcher,
    sets: Sequence[Sequence[Node]],
    executor: Executor,
    store: str | os.PathLike[str] | None,
    params: dict[str, Any],
) -> Tensor:
    """Metric per prompt for every node set [sets, batch] on the CPU, through `executor`."""
    units, kept = patcher.plan(sets)
    out = patcher.base_metric[None].repeat(len(sets), 1).clone()  # on the model's device
    local = isinstance(executor, Local)
    job = PatchJob(spec, patcher if local else None)
    work = [(u, [kept[i] for i in u.rows]) for u in units]
    bar = tqdm(
        total=sum(len(u.rows) for u in units),
        desc=patcher.desc,
        disable=not patcher.progress,
        unit="patch",
    )

    def put(i: int, vals: Tensor) -> None:
        rows = torch.tensor(units[i].rows, device=out.device)
        out[rows] = vals.to(out.device, out.dtype)
        bar.update(len(units[i].rows))

    with bar, fused(model) if local else contextlib.nullcontext():
        if store is None:
            executor.map(model, job, work, put)
            return out.float().cpu()
        header = sweep_header(model, spec.task, spec.corruption, params_for_store(**params), units)
        with PatchStore(store, header, units) as disk:
            done = disk.done()
            for i, vals in done.items():
                put(i, vals)
            todo = [i for i in range(len(units)) if i not in done]

            def keep(j: int, vals: Tensor) -> None:
                disk.write(todo[j], vals)
                put(todo[j], vals)

            executor.map(model, job, [work[i] for i in todo], keep)
    return out.float().cpu()
