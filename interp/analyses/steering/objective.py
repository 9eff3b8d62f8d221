"""What steering is asked to do on a task, and which examples a direction is computed from.

One rule, used by `direction`, `evaluate` and `targets`, so a direction always points from the
examples `evaluate` steers towards the behaviour it measures:

1. a Task with binary ``labels`` and two answer words in ``metadata["contrast"]`` (the facts
   statements: ``(" true", " false")``): positives are label 1, negatives label 0; steering
   moves negatives towards the first word;
2. a Task with corrupted prompts: positives are the clean prompts, negatives their corrupted
   partners (paired); steering moves the corrupted run towards the clean run's answer;
3. ``(positive, negative)`` prompt pairs: a direction only (`evaluate` needs a Task).

``toward="negative"`` reverses it: positives are steered with the negated direction towards
the other answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from interp.errors import InterpError
from interp.models import Model
from interp.tasks.task import Task

Toward = Literal["positive", "negative"]
Source = Task | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Sources:
    """Positive and negative examples (paired: row i of each belong together)."""

    positive: Task
    negative: Task
    paired: bool
    description: str


@dataclass(frozen=True)
class Objective:
    """The steered prompts, with answers ``(target, other)``, and the sign strengths get."""

    task: Task
    sign: float
    description: str
    #: ``[batch, k]`` ids whose probability mass is the target, and the other side's; from the
    #: task's answers (k = 1) or from word lists (`word_objective`).
    target_ids: Tensor | None = None
    other_ids: Tensor | None = None

    def answer_sets(self) -> tuple[Tensor, Tensor]:
        if self.target_ids is not None and self.other_ids is not None:
            return self.target_ids, self.other_ids
        answers = self.task._need_answers()
        return answers[:, :1], answers[:, 1:]


def _labelled(task: Task) -> bool:
    if task.labels is None:
        return False
    values = set(torch.as_tensor(task.labels).reshape(-1).tolist())
    return values <= {0, 1} and len(values) == 2


def _contrast_words(task: Task) -> tuple[str, str] | None:
    c = task.metadata.get("contrast")
    return (str(c[0]), str(c[1])) if isinstance(c, list | tuple) and len(c) == 2 else None


def _corrupt_side(task: Task) -> Task:
    """The corrupted prompts as a task of their own (same answers and answer positions)."""
    return replace(
        task,
        clean_tokens=task.need_corrupt(),
        corrupt_tokens=None,
        clean_prompts=list(task.corrupt_prompts or []),
        corrupt_prompts=None,
    )


def sources(model: Model, source: Source) -> Sources:
    """The two sets of examples a direction is computed from (see the module docstring)."""
    if isinstance(source, Task):
        if _labelled(source):
            y = torch.as_tensor(source.labels).reshape(-1)
            words = _contrast_words(source)
            what = f"label 1{f' ({words[0]!r})' if words else ''} minus label 0"
            return Sources(
                source[(y == 1).nonzero()[:, 0]],
                source[(y == 0).nonzero()[:, 0]],
                False,
                f"{source.name}: {what}",
            )
        if source.corrupt_tokens is not None:
            return Sources(source, _corrupt_side(source), True, f"{source.name}: clean - corrupt")
        raise InterpError(
            f"Task {source.name!r} has neither binary labels nor corrupted prompts, so there are "
            "no two sets of examples to take a direction from. Give a Task with labels (0/1), "
            "one with corrupted prompts, or (positive, negative) prompt pairs."
        )
    pairs = list(source)
    if not pairs or not all(isinstance(p, list | tuple) and len(p) == 2 for p in pairs):
        raise InterpError(
            "Give a Task, or (positive prompt, negative prompt) pairs: [('I love it', 'I hate "
            "it'), ...]."
        )
    pos = Task.from_prompts(model, [str(p) for p, _ in pairs], name="positive")
    neg = Task.from_prompts(model, [str(n) for _, n in pairs], name="negative")
    return Sources(pos, neg, True, f"{len(pairs)} prompt pairs: positive - negative")


def objective(model: Model, task: Task, toward: Toward = "positive") -> Objective:
    """The prompts steering is evaluated on and the answer it should move them to."""
    if toward not in ("positive", "negative"):
        raise InterpError(f"toward={toward!r}: use 'positive' or 'negative'.")
    sign = 1.0 if toward == "positive" else -1.0
    if _labelled(task):
        words = _contrast_words(task)
        if words is None:
            raise InterpError(
                f"Task {task.name!r} has labels but no answer words to steer towards: set "
                "task.metadata['contrast'] = (' yes', ' no') (the label-1 word first)."
            )
        ids = [model.to_single_token(w) for w in words]
        y = torch.as_tensor(task.labels).reshape(-1)
        rows = (y == (0 if toward == "positive" else 1)).nonzero()[:, 0]
        if len(rows) == 0:
            raise InterpError(
                f"Task {task.name!r} has no label-{int(toward == 'negative')} prompts."
            )
        pair = ids if toward == "positive" else ids[::-1]
        sub = task[rows]
        answers = torch.tensor([pair] * len(sub), dtype=torch.long)
        shown = words if toward == "positive" else words[::-1]
        what = f"label-{int(toward != 'positive')} prompts towards {shown[0]!r} over {shown[1]!r}"
        return Objective(replace(sub, answers=answers), sign, what)
    answers = task._need_answers()
    if task.corrupt_tokens is not None:
        if toward == "positive":
            return Objective(
                _corrupt_side(task), sign, "corrupted prompts towards the clean answer"
            )
        swapped = replace(task, answers=answers.flip(1), corrupt_tokens=None, corrupt_prompts=None)
        return Objective(swapped, sign, "clean prompts towards the corrupted answer")
    if toward == "positive":
        return Objective(task, sign, "prompts towards the correct answer")
    return Objective(
        replace(task, answers=answers.flip(1)), sign, "prompts towards the incorrect answer"
    )


def word_objective(
    model: Model,
    prompts: Task | Sequence[str],
    words: tuple[Sequence[str], Sequence[str]],
    toward: Toward = "positive",
) -> Objective:
    """Steer `prompts` towards the first word list's probability mass and away from the
    second's (each word a single token): the metric is ``log P(first) - log P(second)``."""
    if toward not in ("positive", "negative"):
        raise InterpError(f"toward={toward!r}: use 'positive' or 'negative'.")
    if not (isinstance(words, list | tuple) and len(words) == 2 and all(words)):
        raise InterpError(
            "answer_sets must be two non-empty word lists: ([' good', ' great'], [' bad'])."
        )
    if isinstance(words[0], str) or isinstance(words[1], str):
        raise InterpError("answer_sets takes two lists of words, not two words.")
    task = prompts if isinstance(prompts, Task) else Task.from_prompts(model, list(prompts))
    first, second = ([model.to_single_token(w) for w in side] for side in words)
    if set(first) & set(second):
        raise InterpError("The two word lists share a token; make them disjoint.")
    if toward == "negative":
        first, second = second, first
    n = len(task)
    return Objective(
        task,
        1.0 if toward == "positive" else -1.0,
        f"prompts towards {len(first)} words over {len(second)} words",
        torch.tensor([first] * n, dtype=torch.long),
        torch.tensor([second] * n, dtype=torch.long),
    )


def neutral_task(model: Model, neutral: Task | Sequence[str]) -> Task:
    """Neutral text for side effects, as a Task whose ``answer_pos`` is each text's
    second-to-last token: every position up to it has a real next token (the loss target),
    and it is where ``positions="last"`` steers neutral text."""
    if isinstance(neutral, Task):
        base = neutral
    else:
        texts = [neutral] if isinstance(neutral, str) else list(neutral)
        if not texts:
            raise InterpError(
                "neutral=[] is empty: give neutral prompts, another Task, or kl=False."
            )
        base = Task.from_prompts(model, [str(t) for t in texts], name="neutral")
    short = (base.answer_pos < 1).nonzero()[:, 0].tolist()
    if short:
        raise InterpError(
            f"Neutral text {short[:5]} has a single token: side effects need at least two "
            "(a position and its next token)."
        )
    return replace(
        base,
        answer_pos=base.answer_pos - 1,
        corrupt_tokens=None,
        corrupt_prompts=None,
        answers=None,
        labels=None,
        name=f"neutral ({base.name})",
    )


def neutral_prompts(
    model: Model, n: int = 32, seed: int = 0, exclude: str | None = None
) -> list[str]:
    """Neutral text for side effects: prompts of the other built-in tasks (IOI, induction,
    arithmetic, facts recall), about `n` in all, leaving out the task named `exclude`.
    Generators whose words are not single tokens for `model` are skipped."""
    from interp.tasks import arithmetic, facts, induction, ioi

    makers = {
        "ioi": lambda k: ioi(model, n=k, seed=seed),
        "induction": lambda k: induction(model, n=k, seed=seed),
        "arithmetic": lambda k: arithmetic(model, n=k, seed=seed),
        "facts": lambda k: facts(model, n=k, seed=seed, kind="recall"),
    }
    makers.pop(exclude or "", None)
    each = max(1, n // len(makers))
    out: list[str] = []
    for make in makers.values():
        try:
            out += make(each).clean_prompts
        except InterpError:
            continue  # this generator's words are not single tokens for the model
    if not out:
        raise InterpError(
            f"None of the built-in tasks tokenises for {model.name}: give neutral=[...] texts."
        )
    return out
