"""Task metrics on logits at the answer position, and the normalised patching scores.

Every metric maps ``logits [batch, seq, vocab]`` and a Task to one value per prompt ``[batch]``;
analyses average over prompts themselves (so they can bootstrap). See METHODS.md section 3.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from interp.checks import checked, one_of
from interp.errors import InterpError

if TYPE_CHECKING:
    from interp.tasks.task import Task

Metric = Callable[[Tensor, "Task"], Tensor]


def require_finite(values: Tensor, what: str) -> None:
    """Refuse NaN/inf metric values of an unpatched run: every score is normalised by them, so
    one NaN would turn the whole result into NaN without a word."""
    bad = (~torch.isfinite(values.detach())).nonzero()[:, 0].tolist()
    if bad:
        raise InterpError(
            f"The metric is not finite on {what} for {len(bad)} of {values.shape[0]} prompts "
            f"(prompts {bad[:10]}, values {[float(values[i]) for i in bad[:3]]}). A metric must "
            "return finite numbers; check a custom metric for log(0) or 0/0, or a model in low "
            "precision for overflow."
        )


def warn_nonfinite(values: Tensor, what: str, where: Sequence[str] = ()) -> None:
    """Warn (naming how many and where) when patched or ablated runs give NaN/inf metrics.

    Args:
        values: ``[prompt, cell...]`` metric values.
        what: what the cells are (``"patched runs"``).
        where: the label of each cell (flattened order), to name the first affected ones.
    """
    finite = torch.isfinite(values.detach())
    if bool(finite.all()):
        return
    cells = (~finite).reshape(values.shape[0], -1).any(0).nonzero()[:, 0].tolist()
    names = [where[c] if c < len(where) else str(c) for c in cells[:5]]
    warnings.warn(
        f"The metric is NaN/inf in {int((~finite).sum())} of {values.numel()} {what} "
        f"({len(cells)} cells, first {names}); their scores and intervals are NaN.",
        RuntimeWarning,
        stacklevel=3,
    )


@checked
def answer_logits(
    logits: Float[Tensor, "batch seq vocab"], task: Task
) -> Float[Tensor, "batch vocab"]:
    """Logits at each prompt's answer position."""
    if logits.ndim != 3:
        raise InterpError(f"Expected logits [batch, seq, vocab], got shape {tuple(logits.shape)}.")
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, task.answer_pos.to(logits.device)]


@checked
def logit_diff(logits: Float[Tensor, "batch seq vocab"], task: Task) -> Float[Tensor, " batch"]:
    """``logit[correct] - logit[incorrect]`` at the answer position (the default metric)."""
    final = answer_logits(logits, task)
    answers = task._need_answers().to(final.device)
    picked = final.gather(1, answers)
    return picked[:, 0] - picked[:, 1]


@checked
def log_prob(logits: Float[Tensor, "batch seq vocab"], task: Task) -> Float[Tensor, " batch"]:
    """Log-probability of the correct answer."""
    lp = answer_logits(logits, task).log_softmax(-1)
    return lp.gather(1, task.correct.to(lp.device)[:, None])[:, 0]


@checked
def prob(logits: Float[Tensor, "batch seq vocab"], task: Task) -> Float[Tensor, " batch"]:
    """Probability of the correct answer."""
    return log_prob(logits, task).exp()


@checked
def kl_to(reference_logits: Float[Tensor, "batch seq vocab"]) -> Metric:
    """Metric ``KL(p_reference || p)`` at the answer position (e.g. reference = clean run)."""
    ref = reference_logits.detach()

    def kl(logits: Float[Tensor, "batch seq vocab"], task: Task) -> Float[Tensor, " batch"]:
        b = ref.shape[0]
        if logits.shape[0] % b:
            raise InterpError(
                f"KL metric: {logits.shape[0]} rows of logits for {b} reference prompts."
            )
        # Patched runs stack several copies of the batch (copy-major): repeat the reference.
        reps = logits.shape[0] // b
        rows = torch.arange(b, device=logits.device)
        pos = task.answer_pos[:b].to(logits.device)
        p_ref = ref.to(logits.device)[rows, pos].log_softmax(-1).repeat(reps, 1)
        p = answer_logits(logits, task).log_softmax(-1)
        return (p_ref.exp() * (p_ref - p)).sum(-1)

    kl.__name__ = "kl"
    return kl


METRICS: dict[str, Metric] = {
    "logit_diff": logit_diff,
    "log_prob": log_prob,
    "prob": prob,
}


def get_metric(metric: str | Metric, reference_logits: Tensor | None = None) -> Metric:
    """Resolve a metric name (``logit_diff``, ``log_prob``, ``prob``, ``kl``) or pass a callable."""
    if callable(metric):
        return metric
    if metric == "kl":
        if reference_logits is None:
            raise InterpError("The 'kl' metric needs reference logits (usually the clean run).")
        return kl_to(reference_logits)
    one_of("metric", metric, [*METRICS, "kl"], also="a callable (logits, task) -> [batch]")
    return METRICS[metric]


def metric_name(metric: str | Metric) -> str:
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")


def denoise_score(patched: Tensor, clean: Tensor, corrupt: Tensor) -> Tensor:
    """``(M_patched - M_corrupt) / (M_clean - M_corrupt)``: 0 no recovery, 1 full recovery."""
    return (patched - corrupt) / _gap(clean, corrupt)


def noise_score(patched: Tensor, clean: Tensor, corrupt: Tensor) -> Tensor:
    """``(M_patched - M_clean) / (M_clean - M_corrupt)``: 0 no effect, -1 fully destroyed."""
    return (patched - clean) / _gap(clean, corrupt)


def _gap(clean: Tensor, corrupt: Tensor) -> Tensor:
    gap = torch.as_tensor(clean - corrupt)
    if bool((gap.abs() < 1e-12).any()):
        raise InterpError(
            "The clean and corrupted metric values are equal, so the normalised score is "
            "undefined: the corruption does not change the behaviour. Use a stronger corruption."
        )
    return gap
