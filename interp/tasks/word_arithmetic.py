"""Arithmetic questions asked in words, answered freely: a generation task for real chat models.

    question:   "What is seven plus five minus three?"
    target:     "9"
    accepted:   "7 + 5 - 3 = 9", "The answer is nine.", "Nine."

The model writes whatever it likes; the checker reads the *last* number in the text, written in
digits or in words ("twelve", "twenty-one", "one hundred and four"), and compares it with the
target. With a chat template (SmolLM2-Instruct, any tokenizer that has one) the question is
wrapped as a user turn and the model answers as the assistant, so generation ends at the
template's end-of-turn token. `steps` and `max_operand` set the difficulty: pick them so the
model is right sometimes but not always, as the trajectory analyses need both classes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from interp.checks import checked
from interp.errors import InterpError
from interp.tasks.task import Task

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUE = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_TIMES_FIRST = {"times": 0, "plus": 1, "minus": 1}.__getitem__
_SIGNS = {"plus": "+", "minus": "-", "times": "*"}
_OPS = {"plus": lambda x, y: x + y, "minus": lambda x, y: x - y, "times": lambda x, y: x * y}


# A number in digits (with an optional sign), or number words as English writes one number:
# "six", "nineteen", "twenty-one" / "twenty one", "one hundred and four". "and" joins only after
# "hundred", so "nine and six" is two numbers (the last is six), not fifteen. Words are matched
# whole, so "someone" or "often" never count.
def _alt(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_DIGIT_WORD = _alt(_UNITS[1:10])
_SMALL = _alt(_UNITS)
_TENS_WORD = _alt(_TENS)
_BELOW_100 = rf"(?:{_TENS_WORD})(?:[\s-]+(?:{_DIGIT_WORD}))?|(?:{_SMALL})"
_NUMBER = re.compile(
    rf"(?<![\w)])-?\d+(?:,\d{{3}})*|\d+(?:,\d{{3}})*"
    rf"|\b(?:(?:{_DIGIT_WORD})\s+hundred(?:\s+(?:and\s+)?(?:{_BELOW_100}))?|{_BELOW_100})\b",
    flags=re.I,
)


def number_words(n: int) -> str:
    """English words for 0 <= n < 1000 ("twenty-one", "one hundred and four")."""
    if not 0 <= n < 1000:
        raise InterpError(f"number_words covers 0..999, got {n}.")
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens - 2] + (f"-{_UNITS[unit]}" if unit else "")
    hundreds, rest = divmod(n, 100)
    return f"{_UNITS[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")


def _words_value(text: str) -> int | None:
    total, current = 0, 0
    for w in re.split(r"[\s-]+", text.lower()):
        if w in ("", "and"):
            continue
        if w == "hundred":
            current = max(current, 1) * 100
        elif w in _WORD_VALUE:
            current += _WORD_VALUE[w]
        else:
            return None
    return total + current


def final_number(generated: str) -> str:
    """The last number in the text, in digits ("9" for "... is nine."), or "" when there is none."""
    found = list(_NUMBER.finditer(generated))
    if not found:
        return ""
    text = found[-1].group(0)
    if re.fullmatch(r"-?\d+(?:,\d{3})*", text):
        return str(int(text.replace(",", "")))
    value = _words_value(text)
    return "" if value is None else str(value)


def check_number(generated: str, target: str) -> bool:
    """True when the last number in the text (digits or words) equals the target."""
    answer = final_number(generated)
    return bool(answer) and answer == target


@dataclass(frozen=True)
class Question:
    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def value(self) -> int:
        out = self.operands[0]
        for op, x in zip(self.ops, self.operands[1:], strict=True):
            out = _OPS[op](out, x)  # left to right, as the words are read
        return out

    @property
    def text(self) -> str:
        """The question in words: "What is seven plus five?"."""
        words = [number_words(self.operands[0])]
        for op, x in zip(self.ops, self.operands[1:], strict=True):
            words += [op, number_words(x)]
        return f"What is {' '.join(words)}?"

    @property
    def digits(self) -> str:
        """The question with numerals and signs: "What is 7 + 5?"."""
        parts = [str(self.operands[0])]
        for op, x in zip(self.ops, self.operands[1:], strict=True):
            parts += [_SIGNS[op], str(x)]
        return f"What is {' '.join(parts)}?"


def sample_questions(
    n: int, seed: int, steps: Sequence[int], max_operand: int, ops: Sequence[str]
) -> list[Question]:
    """Questions whose running value stays in 0..999 (no negative or huge answers)."""
    rng = random.Random(seed)
    out: list[Question] = []
    # Some settings admit no question at all (three minuses of operands <= 2 always go
    # negative): give up after many draws instead of looping forever.
    for _ in range(1000 * n):
        if len(out) == n:
            break
        k = rng.choice(list(steps))
        operands = tuple(rng.randint(1, max_operand) for _ in range(k + 1))
        # "times" only before any "plus"/"minus": read left to right, the value is also what
        # operator precedence gives, so no question is ambiguous.
        chosen = tuple(sorted((rng.choice(list(ops)) for _ in range(k)), key=_TIMES_FIRST))
        q = Question(operands, chosen)
        running = [Question(operands[: j + 2], chosen[: j + 1]).value for j in range(k)]
        if all(0 <= v < 1000 for v in running):
            out.append(q)
    if len(out) < n:
        raise InterpError(
            f"word_arithmetic: only {len(out)} of {n} questions with steps={list(steps)}, "
            f"ops={list(ops)} and max_operand={max_operand} keep every running value in 0..999; "
            "raise max_operand, or use fewer steps or other ops."
        )
    return out


def chat_prompt(model: Any, question: str) -> str:
    """The question as a user turn of the tokenizer's chat template, ending where the assistant
    starts; the model's own BOS (which `Task.from_prompts` prepends) is not repeated."""
    tok = model.tokenizer
    text: str = tok.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    bos = getattr(tok, "bos_token", None)
    if bos and text.startswith(bos) and list(model.prefix_ids) == [tok.bos_token_id]:
        text = text[len(bos) :]
    return text


@checked
def word_arithmetic(
    model: Any,
    n: int = 64,
    seed: int = 0,
    steps: int | Sequence[int] = 2,
    max_operand: int = 12,
    ops: Sequence[str] = ("plus", "minus", "times"),
    chat: bool | None = None,
    style: Literal["words", "digits"] = "words",
    instruction: str = "",
) -> Task:
    """Questions such as "What is seven plus five minus three?" with targets and a checker.

    Args:
        model: the model handle (its tokenizer; its chat template when it has one).
        n: number of questions.
        seed: random seed; the same seed gives the same questions.
        steps: operations per question (1: "seven plus five"), or several to mix.
        max_operand: operands are drawn from 1..max_operand.
        ops: operations to draw from: ``plus``, ``minus``, ``times`` (a ``times`` always comes
            before any ``plus`` or ``minus``, so left to right and operator precedence agree;
            questions whose running value leaves 0..999 are redrawn).
        chat: wrap the question in the tokenizer's chat template (default: when it has one);
            otherwise the prompt is ``"Question: ...\\nAnswer:"``.
        style: ``"words"`` ("What is seven plus five?") or ``"digits"`` ("What is 7 + 5?").
        instruction: text appended to the question (e.g. ``" Answer with a number only."``).
    """
    ks = [steps] if isinstance(steps, int) else list(steps)
    if not ks or any(not isinstance(k, int) or not 1 <= k <= 4 for k in ks):
        raise InterpError(f"word_arithmetic: steps must be integers in 1..4, got {steps!r}.")
    if not 1 <= max_operand <= 99:
        raise InterpError(f"word_arithmetic: max_operand must be in 1..99, got {max_operand}.")
    bad = [o for o in ops if o not in _OPS]
    if bad or not ops:
        raise InterpError(f"word_arithmetic: ops must be among {list(_OPS)}, got {list(ops)}.")
    if chat is None:
        chat = bool(getattr(model.tokenizer, "chat_template", None))
    questions = sample_questions(n, seed, ks, max_operand, ops)
    texts = [(q.text if style == "words" else q.digits) + instruction for q in questions]
    prompts = [chat_prompt(model, t) if chat else f"Question: {t}\nAnswer:" for t in texts]
    task = Task.from_prompts(
        model,
        clean=prompts,
        name="word_arithmetic",
        metadata={
            "generator": "word_arithmetic",
            "seed": seed,
            "steps": ks,
            "max_operand": max_operand,
            "ops": list(ops),
            "chat": chat,
            "style": style,
            "instruction": instruction,
            "questions": texts,
        },
    )
    task.targets = [str(q.value) for q in questions]
    task.checker = check_number
    task.answer_of = final_number
    return task
