"""Multi-digit addition where the model writes its column steps before the answer.

    prompt:      "347 + 589 ="
    solution:    " 7 + 9 = 16 , 4 + 8 + 1 = 13 , 3 + 5 + 1 = 9 , so 936"

Each step adds one column (right to left) plus the carry, so a small model can learn it, and
sampling at temperature 1 makes some chains go wrong, which trajectory analyses need.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp.checks import checked
from interp.errors import InterpError
from interp.tasks.task import Task

_ANSWER = re.compile(r"so\s*((?:\d\s*)+)")


@dataclass(frozen=True)
class Sum:
    a: int
    b: int

    @property
    def prompt(self) -> str:
        return f"{self.a} + {self.b} ="

    @property
    def target(self) -> str:
        return str(self.a + self.b)

    @property
    def solution(self) -> str:
        """The worked steps and the final answer, as the organism is trained to write them."""
        da, db = str(self.a)[::-1], str(self.b)[::-1]
        steps, carry = [], 0
        for i in range(max(len(da), len(db))):
            x = int(da[i]) if i < len(da) else 0
            y = int(db[i]) if i < len(db) else 0
            total = x + y + carry
            steps.append(f"{x} + {y}" + (" + 1" if carry else "") + f" = {total}")
            carry = total // 10
        return " " + " , ".join(steps) + f" , so {self.target}"


def final_answer(generated: str) -> str:
    """The number written after the last "so" (spaces removed), or "" when there is none."""
    found = _ANSWER.findall(generated)
    return re.sub(r"\s+", "", found[-1]) if found else ""


def check_answer(generated: str, target: str) -> bool:
    """True when the text after the last "so" is exactly the target number (spaces ignored)."""
    answer = final_answer(generated)
    return bool(answer) and answer == target


def sample_sums(n: int, seed: int, digits: Sequence[int] = (3,)) -> list[Sum]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.choice(list(digits))
        lo, hi = (0 if k == 1 else 10 ** (k - 1)), 10**k - 1
        out.append(Sum(rng.randint(lo, hi), rng.randint(lo, hi)))
    return out


@checked
def arithmetic(model: Any, n: int = 64, seed: int = 0, digits: int | Sequence[int] = 3) -> Task:
    """Addition prompts ``"a + b ="`` with targets and a checker for generated answers.

    The task has no single answer token (the model writes steps first), so logit metrics do not
    apply; use generation with ``task.checker(generated_text, target)``.

    Args:
        model: model handle.
        n: number of problems.
        seed: random seed.
        digits: number of digits per operand, or several to mix (e.g. ``(2, 3)``).
    """
    ks = [digits] if isinstance(digits, int) else list(digits)
    if not ks or any(not isinstance(k, int) or not 1 <= k <= 9 for k in ks):
        raise InterpError(f"arithmetic: digits must be integers in 1..9, got {digits!r}.")
    sums = sample_sums(n, seed, ks)
    task = Task.from_prompts(
        model,
        clean=[s.prompt for s in sums],
        name="arithmetic",
        metadata={"generator": "arithmetic", "seed": seed, "digits": ks},
    )
    task.targets = [s.target for s in sums]
    task.checker = check_answer
    task.answer_of = final_answer
    return task
