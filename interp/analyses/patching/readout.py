"""What a patched run is scored by: the metric readout (the memory budget is `interp.budget`).

Built-in metrics read the answer position only, so a readout unembeds just those rows; custom
metrics get full logits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from jaxtyping import Float
from torch import Tensor

# The memory budget is shared with steering's stacked runs: it lives a level down (re-exported).
from interp.budget import DEFAULT_BUDGET as DEFAULT_BUDGET
from interp.budget import parse_budget as parse_budget
from interp.errors import InterpError
from interp.models import Model
from interp.tasks.metrics import Metric, get_metric, require_finite
from interp.tasks.task import Task


@dataclass
class Readout:
    """Turns final residuals into the metric, reading logits only where the metric needs them.

    Built-in metrics read the answer position only, so only those rows are unembedded (and the
    sequence is cut after the last answer position). A custom metric gets full logits: positions
    before the patch come from the base run, which the patch cannot change.
    """

    task: Task
    metric: Metric
    answer_only: bool
    seq_len: int  # positions that can matter

    def __call__(self, logits: Tensor, task: Task) -> Tensor:
        out = self.metric(logits, task)
        if out.ndim != 1 or out.shape[0] != len(task):
            raise InterpError(
                "The metric must return one value per prompt (shape [batch]); got shape "
                f"{tuple(out.shape)}. Reduce inside your metric only over positions/vocab."
            )
        return out


def make_readout(
    model: Model, task: Task, metric: str | Metric, clean_logits: Tensor | None
) -> Readout:
    """Built-in metrics read only the answer position: the readout hands them [rows, 1, vocab]
    logits with answer position 0 (the KL reference is cut the same way)."""
    answer_only = isinstance(metric, str)
    if answer_only and metric == "kl":
        if clean_logits is None:
            raise InterpError("The 'kl' metric needs the clean run's logits as its reference.")
        rows = torch.arange(len(task), device=clean_logits.device)
        ref = clean_logits[rows, task.answer_pos.to(clean_logits.device)][:, None]
        fn = get_metric("kl", reference_logits=ref)
    else:
        fn = get_metric(metric)
    # Later positions cannot reach the answer under causal attention: cut them off.
    cut = answer_only and model.is_causal
    seq_len = int(task.answer_pos.max()) + 1 if cut else task.seq_len
    return Readout(task, fn, answer_only, seq_len)


def run_metric(readout: Readout, logits: Float[Tensor, "batch seq vocab"], run: str) -> Tensor:
    """Metric per prompt of an unpatched run's logits (stays on the device).

    Every normalised score divides by the unpatched runs' metrics, so a NaN/inf there is an
    error here, before any patched run (`run` names the run in the message).
    """
    task = readout.task
    if readout.answer_only:
        rows = torch.arange(len(task), device=logits.device)
        logits = logits[rows, task.answer_pos.to(logits.device)][:, None]
        task = replace(task, answer_pos=torch.zeros(len(task), dtype=torch.long))
    out = readout(logits, task)
    require_finite(out, run)
    return out


def resid_metric(
    model: Model, readout: Readout, resid: Float[Tensor, "batch seq d_model"], run: str
) -> Float[Tensor, " batch"]:
    """Metric per prompt from an unpatched run's final residual stream, unembedding only the
    answer rows for built-in metrics (differentiable: attribution patching backpropagates it);
    non-finite values are an error, as in `run_metric`."""
    task = readout.task
    if readout.answer_only:
        rows = torch.arange(len(task), device=resid.device)
        logits = model.unembed(resid[rows, task.answer_pos.to(resid.device)][:, None])
        task = replace(task, answer_pos=torch.zeros(len(task), dtype=torch.long))
        out = readout(logits, task)
    else:
        out = readout(model.unembed(resid), task)
    require_finite(out, run)
    return out
