"""The Task type: clean and corrupted prompts, answers, answer positions, labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import InterpError
from interp.tasks import build as B
from interp.tasks.build import AnswerSpec, TokenRows

if TYPE_CHECKING:
    from interp.models import Model

__all__ = ["AnswerSpec", "Task", "TokenRows"]


@dataclass
class Task:
    """A batch of prompts for one behaviour.

    Attributes:
        clean_tokens: ``[batch, seq]`` prompts on which the model does the task (right-padded).
        corrupt_tokens: ``[batch, seq]`` minimally changed prompts with the same token length
            per prompt, or None when the task has no corruption.
        answers: ``[batch, 2]`` token ids (correct, incorrect); incorrect may equal correct for
            single-token metrics. None when the task has no answers (e.g. probing only).
        answer_pos: ``[batch]`` the position whose logits predict the answer (last prompt token).
        labels: optional ``[batch]`` labels (probe targets).
        clean_prompts: the clean prompt strings.
        corrupt_prompts: the corrupted prompt strings, or None.
        groups: optional template id per prompt (mean ablation is taken per template).
        name: short task name recorded in result metadata.
        metadata: generator parameters, seed, and anything else worth recording.
        targets: optional per-prompt target strings for generation tasks (e.g. the sum).
        checker: optional ``checker(generated_text, target) -> bool`` saying whether a
            generated answer is right.
        answer_of: optional ``answer_of(generated_text) -> str``, the final answer a
            generated text commits to (majority vote compares these); None compares whole
            texts.
    """

    clean_tokens: Int[Tensor, "batch seq"]
    answer_pos: Int[Tensor, " batch"]
    corrupt_tokens: Int[Tensor, "batch seq"] | None = None
    answers: Int[Tensor, "batch 2"] | None = None
    labels: Tensor | None = None
    clean_prompts: list[str] = field(default_factory=list)
    corrupt_prompts: list[str] | None = None
    groups: list[str] | None = None
    name: str = "custom"
    metadata: dict[str, Any] = field(default_factory=dict)
    targets: list[str] | None = None
    checker: Callable[[str, str], bool] | None = None
    answer_of: Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        for name in ("clean_tokens", "corrupt_tokens", "answers"):
            B.check_ids(name, getattr(self, name))
        if not isinstance(self.answer_pos, Tensor) or self.answer_pos.is_floating_point():
            raise InterpError("answer_pos must be an integer tensor: one position per prompt.")
        if self.clean_tokens.ndim != 2:
            raise InterpError(
                f"clean_tokens must be [batch, seq], got shape {tuple(self.clean_tokens.shape)}."
            )
        n, seq = self.clean_tokens.shape
        if n == 0:
            raise InterpError("The task is empty: give at least one prompt.")
        if self.answer_pos.shape != (n,):
            raise InterpError(
                f"answer_pos must have shape [{n}], got {tuple(self.answer_pos.shape)}."
            )
        outside = ((self.answer_pos < 0) | (self.answer_pos >= seq)).nonzero()[:, 0].tolist()
        if outside:
            i = outside[0]
            raise InterpError(
                f"answer_pos[{i}] = {int(self.answer_pos[i])} is outside prompt {i}, which has "
                f"positions 0..{seq - 1}; point it at the token whose logits predict the answer "
                "(Task.from_tokens / from_prompts set it to each prompt's last real token)."
            )
        if self.corrupt_tokens is not None and self.corrupt_tokens.shape != self.clean_tokens.shape:
            raise InterpError(
                f"corrupt_tokens {tuple(self.corrupt_tokens.shape)} must match clean_tokens "
                f"{tuple(self.clean_tokens.shape)}."
            )
        if self.answers is not None and self.answers.shape != (n, 2):
            raise InterpError(
                f"answers must be [{n}, 2] (correct, incorrect), got {tuple(self.answers.shape)}."
            )
        if self.labels is not None and len(self.labels) != n:
            raise InterpError(f"labels has {len(self.labels)} entries for {n} prompts.")
        if self.targets is not None and len(self.targets) != n:
            raise InterpError(f"targets has {len(self.targets)} entries for {n} prompts.")

    # ------------------------------------------------------------- basics
    def __len__(self) -> int:
        return int(self.clean_tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.clean_tokens.shape[1])

    @property
    def correct(self) -> Int[Tensor, " batch"]:
        return self._need_answers()[:, 0]

    @property
    def incorrect(self) -> Int[Tensor, " batch"]:
        return self._need_answers()[:, 1]

    def _need_answers(self) -> Tensor:
        if self.answers is None:
            raise InterpError(
                f"Task {self.name!r} has no answers; logit metrics need (correct, incorrect) "
                "answer tokens. Build it with Task.from_prompts(..., answers=[...])."
            )
        return self.answers

    def need_corrupt(self) -> Int[Tensor, "batch seq"]:
        if self.corrupt_tokens is None:
            raise InterpError(
                f"Task {self.name!r} has no corrupted prompts; patching needs them. Build it "
                "with Task.from_prompts(..., corrupt=[...]) or use a generator that makes them."
            )
        return self.corrupt_tokens

    def __getitem__(self, idx: int | slice | Sequence[int] | Tensor) -> Task:
        """A sub-task with the selected prompts (keeps all metadata)."""
        if isinstance(idx, int):
            idx = [idx]
        if isinstance(idx, slice):
            rows = list(range(len(self)))[idx]
        elif isinstance(idx, Tensor):
            rows = [int(i) for i in idx.tolist()]
        else:
            rows = [int(i) for i in idx]
        sel = torch.tensor(rows, dtype=torch.long)

        def pick(xs: list[Any] | None) -> list[Any] | None:
            # Tasks built from tokens alone have empty prompt lists: nothing to select.
            return xs if not xs else [xs[i] for i in rows]

        return replace(
            self,
            clean_tokens=self.clean_tokens[sel],
            answer_pos=self.answer_pos[sel],
            corrupt_tokens=None if self.corrupt_tokens is None else self.corrupt_tokens[sel],
            answers=None if self.answers is None else self.answers[sel],
            labels=None if self.labels is None else self.labels[sel],
            clean_prompts=pick(self.clean_prompts) or [],
            corrupt_prompts=pick(self.corrupt_prompts),
            groups=pick(self.groups),
            targets=pick(self.targets),
        )

    def to(self, device: str | torch.device) -> Task:
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        clean = self.clean_tokens.to(device)
        pos = self.answer_pos.to(device)
        return replace(
            self,
            clean_tokens=clean,
            answer_pos=pos,
            corrupt_tokens=mv(self.corrupt_tokens),
            answers=mv(self.answers),
            labels=mv(self.labels),
        )

    def describe(self) -> dict[str, Any]:
        """Small JSON-able summary for result metadata."""
        return {
            "name": self.name,
            "n_prompts": len(self),
            "seq_len": self.seq_len,
            "has_corrupt": self.corrupt_tokens is not None,
            "has_answers": self.answers is not None,
            "has_labels": self.labels is not None,
            **{k: v for k, v in self.metadata.items() if _jsonable(v)},
        }

    # ------------------------------------------------------------- building
    @classmethod
    def from_prompts(
        cls,
        model: Model,
        clean: Sequence[str],
        corrupt: Sequence[str] | None = None,
        answers: Sequence[AnswerSpec] | None = None,
        labels: Sequence[Any] | Tensor | None = None,
        groups: Sequence[str] | None = None,
        name: str = "custom",
        metadata: dict[str, Any] | None = None,
        prepend_bos: bool | None = None,
    ) -> Task:
        """Tokenise and validate prompts into a Task.

        Args:
            model: the model handle (its tokenizer and context length are used).
            clean: prompts on which the model does the task.
            corrupt: one corrupted prompt per clean prompt, same token length as its partner.
            answers: per prompt ``(correct, incorrect)`` as strings (single tokens) or ids; a
                single string/id means a single-token target (incorrect = correct).
            labels: optional per-prompt labels.
            groups: optional template id per prompt.
        """
        if isinstance(clean, str):
            raise InterpError("`clean` must be a list of prompts, not a single string.")
        clean = list(clean)
        if not clean:
            raise InterpError("No clean prompts given: pass clean=[...] with at least one prompt.")
        if corrupt is not None:
            corrupt = list(corrupt)
            if len(corrupt) != len(clean):
                raise InterpError(
                    f"Got {len(clean)} clean prompts but {len(corrupt)} corrupted ones; give "
                    "exactly one corrupted prompt per clean prompt."
                )
        B.check_counts(len(clean), answers=answers, labels=labels, groups=groups)

        clean_ids = [B.encode(model, p, prepend_bos) for p in clean]
        corrupt_ids = (
            None if corrupt is None else [B.encode(model, p, prepend_bos) for p in corrupt]
        )
        for i, ids in enumerate(clean_ids):
            B.check_length(model, i, clean[i], ids, "clean")
        if corrupt_ids is not None and corrupt is not None:
            for i, (a, b) in enumerate(zip(clean_ids, corrupt_ids, strict=True)):
                B.check_length(model, i, corrupt[i], b, "corrupted")
                if len(a) != len(b):
                    raise InterpError(
                        f"Prompt {i}: clean {clean[i]!r} is {len(a)} tokens but corrupted "
                        f"{corrupt[i]!r} is {len(b)}. Patching needs equal lengths: change "
                        "words that tokenise to the same number of tokens (e.g. swap a name "
                        "for another single-token name)."
                    )
        clean_tokens, pos = B.pad(clean_ids, model.pad_id)
        corrupt_tokens = None if corrupt_ids is None else B.pad(corrupt_ids, model.pad_id)[0]
        answer_ids = None if answers is None else B.answer_pairs(model, answers)
        label_t = B.label_tensor(labels)
        return cls(
            clean_tokens=clean_tokens,
            answer_pos=pos,
            corrupt_tokens=corrupt_tokens,
            answers=answer_ids,
            labels=label_t,
            clean_prompts=clean,
            corrupt_prompts=corrupt,
            groups=None if groups is None else list(groups),
            name=name,
            metadata=dict(metadata or {}),
        )

    @classmethod
    def from_tokens(
        cls,
        model: Model,
        clean: TokenRows,
        corrupt: TokenRows | None = None,
        answers: Sequence[AnswerSpec] | Tensor | None = None,
        answer_pos: Sequence[int] | Tensor | None = None,
        labels: Sequence[Any] | Tensor | None = None,
        groups: Sequence[str] | None = None,
        name: str = "custom",
        metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Validate token ids into a Task (no tokenizer needed).

        The ids are used exactly as given: no BOS or other special token is added.

        Args:
            model: the model handle (its vocabulary sizes and context length are used).
            clean: a ``[batch, seq]`` integer tensor, or one list of ids per prompt; lists of
                different lengths are right-padded with ``model.pad_id``.
            corrupt: the corrupted prompts in the same form, each exactly as long as its clean
                partner, or None.
            answers: per prompt ``(correct, incorrect)`` ids (a single id means incorrect =
                correct), or a ``[batch, 2]`` / ``[batch]`` tensor. Checked against the
                model's *output* vocabulary (``model.d_vocab_out``); strings are allowed when
                the model has a tokenizer and must be single tokens.
            answer_pos: per prompt, the position whose logits predict the answer; default each
                prompt's last real token. It must point at a real token of that prompt (not
                at padding).
            labels: optional per-prompt labels (probe targets).
            groups: optional template id per prompt (mean ablation is taken per group).
            name: short task name recorded in result metadata.
            metadata: anything else worth recording.

        Every check runs before any forward pass: ids outside the input vocabulary
        (``0 <= id < model.d_vocab``), prompts longer than the context, unequal clean and
        corrupted lengths, and counts that differ from the number of prompts raise an
        InterpError naming the prompt. Without a tokenizer, results label tokens ``#id``.

        Example:
            >>> task = Task.from_tokens(model, clean=[[5, 9, 2, 7], [5, 3, 8]],
            ...                         corrupt=[[5, 1, 2, 7], [5, 4, 8]], answers=[(9, 1), (3, 4)])
        """
        clean_rows, tensor_in = B.token_rows(model, clean, "clean")
        n = len(clean_rows)
        corrupt_rows = None
        if corrupt is not None:
            corrupt_rows, _ = B.token_rows(model, corrupt, "corrupted")
            B.check_pair_lengths(clean_rows, corrupt_rows)
        B.check_counts(n, answers=answers, labels=labels, groups=groups)
        clean_tokens, _ = B.pad(clean_rows, model.pad_id)
        lengths = [len(r) for r in clean_rows]
        pos = B.answer_positions(answer_pos, lengths, clean_tokens.shape[1])
        corrupt_tokens = None if corrupt_rows is None else B.pad(corrupt_rows, model.pad_id)[0]
        answer_ids = None if answers is None else B.answer_pairs(model, answers)
        return cls(
            clean_tokens=clean_tokens,
            answer_pos=pos,
            corrupt_tokens=corrupt_tokens,
            answers=answer_ids,
            labels=B.label_tensor(labels),
            groups=None if groups is None else list(groups),
            name=name,
            metadata={"input": "tensor" if tensor_in else "ids", **dict(metadata or {})},
        )


def _jsonable(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None)) or (
        isinstance(v, list | tuple) and all(isinstance(x, str | int | float | bool) for x in v)
    )


def as_task(model: Model, task_or_prompts: Task | Sequence[str] | Tensor) -> Task:
    """Accept a Task, a list of prompt strings, or a ``[batch, seq]`` token tensor."""
    if isinstance(task_or_prompts, Task):
        return task_or_prompts
    if isinstance(task_or_prompts, Tensor):
        if task_or_prompts.ndim != 2 or task_or_prompts.dtype not in (torch.long, torch.int):
            raise InterpError("Token input must be an integer tensor of shape [batch, seq].")
        if task_or_prompts.shape[0] == 0:
            raise InterpError("The token batch is empty: give at least one prompt.")
        # from_tokens checks every id against the vocabulary (a negative id would index
        # the embedding from the end); each prompt's answer is read at its last position.
        return Task.from_tokens(model, task_or_prompts.long(), name="tokens")
    return Task.from_prompts(model, list(task_or_prompts), name="prompts")
