"""Tasks: the Task type, metrics, and generators for the organism's behaviours."""

from interp.tasks.induction import induction
from interp.tasks.metrics import (
    denoise_score,
    get_metric,
    kl_to,
    log_prob,
    logit_diff,
    noise_score,
    prob,
)
from interp.tasks.task import Task

__all__ = [
    "Task",
    "denoise_score",
    "get_metric",
    "induction",
    "kl_to",
    "log_prob",
    "logit_diff",
    "noise_score",
    "prob",
]
