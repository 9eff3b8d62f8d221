"""Tasks: the Task type, metrics, and generators for the organism's behaviours."""

from interp.tasks.arithmetic import arithmetic
from interp.tasks.facts import facts
from interp.tasks.induction import induction, repeat_loss
from interp.tasks.ioi import ioi
from interp.tasks.metrics import (
    denoise_score,
    get_metric,
    kl_to,
    log_prob,
    logit_diff,
    noise_score,
    prob,
)
from interp.tasks.task import Task, as_task
from interp.tasks.word_arithmetic import word_arithmetic

__all__ = [
    "Task",
    "arithmetic",
    "as_task",
    "denoise_score",
    "facts",
    "get_metric",
    "induction",
    "ioi",
    "kl_to",
    "log_prob",
    "logit_diff",
    "noise_score",
    "prob",
    "repeat_loss",
    "word_arithmetic",
]
