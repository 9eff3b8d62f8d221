"""The Task type: clean and corrupted prompts, answers, answer positions, labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import InterpError

if TYPE_CHECKING:
    from interp.models import Model

AnswerSpec = tuple[str | int, str | int] | str | int


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
        n, _ = self.clean_tokens.shape
        if n == 0:
            raise InterpError("The task is empty: give at least one prompt.")
        if self.answer_pos.shape != (n,):
            raise InterpError(
                f"answer_pos must have shape [{n}], got {tuple(self.answer_pos.shape)}."
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
        for what, seq in (("answers", answers), ("labels", labels), ("groups", groups)):
            if seq is not None and len(seq) != len(clean):
                raise InterpError(
                    f"Got {len(seq)} {what} for {len(clean)} prompts; give one per prompt."
                )

        clean_ids = [_encode(model, p, prepend_bos) for p in clean]
        corrupt_ids = None if corrupt is None else [_encode(model, p, prepend_bos) for p in corrupt]
        for i, ids in enumerate(clean_ids):
            _check_length(model, i, clean[i], ids, "clean")
        if corrupt_ids is not None and corrupt is not None:
            for i, (a, b) in enumerate(zip(clean_ids, corrupt_ids, strict=True)):
                _check_length(model, i, corrupt[i], b, "corrupted")
                if len(a) != len(b):
                    raise InterpError(
                        f"Prompt {i}: clean {clean[i]!r} is {len(a)} tokens but corrupted "
                        f"{corrupt[i]!r} is {len(b)}. Patching needs equal lengths: change "
                        "words that tokenise to the same number of tokens (e.g. swap a name "
                        "for another single-token name)."
                    )
        pad = _pad_id(model)
        clean_tokens, pos = _pad(clean_ids, pad)
        corrupt_tokens = None if corrupt_ids is None else _pad(corrupt_ids, pad)[0]
        answer_ids = None
        if answers is not None:
            answer_ids = torch.tensor(
                [_answer_pair(model, i, a) for i, a in enumerate(answers)], dtype=torch.long
            )
        label_t = None
        if labels is not None:
            label_t = labels.clone() if isinstance(labels, Tensor) else torch.tensor(list(labels))
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


def _jsonable(v: Any) -> bool:
    return isinstance(v, str | int | float | bool | type(None)) or (
        isinstance(v, list | tuple) and all(isinstance(x, str | int | float | bool) for x in v)
    )


def _encode(model: Model, prompt: str, prepend_bos: bool | None) -> list[int]:
    if not isinstance(prompt, str):
        raise InterpError(f"Prompts must be strings, got {type(prompt).__name__}: {prompt!r}.")
    if not prompt:
        raise InterpError("An empty prompt was given; every prompt needs at least one token.")
    return [int(t) for t in model.to_tokens(prompt, prepend_bos=prepend_bos)[0].tolist()]


def _check_length(model: Model, i: int, prompt: str, ids: list[int], kind: str) -> None:
    if len(ids) > model.n_ctx:
        raise InterpError(
            f"{kind.capitalize()} prompt {i} is {len(ids)} tokens but {model.name} has a context "
            f"of {model.n_ctx}: shorten it ({prompt[:60]!r}...) or use a longer-context model."
        )


def _pad_id(model: Model) -> int:
    tok = model.tokenizer
    for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
        val = getattr(tok, attr, None)
        if val is not None:
            return int(val)
    return 0


def _pad(rows: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    """Right-pad to a rectangle; the answer is read at each prompt's last real token."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    pos = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return out, pos


def _answer_id(model: Model, i: int, a: str | int) -> int:
    if isinstance(a, bool) or not isinstance(a, str | int):
        raise InterpError(f"Answer for prompt {i} must be a string or token id, got {a!r}.")
    if isinstance(a, int):
        if not 0 <= a < model.d_vocab:
            raise InterpError(
                f"Answer id {a} for prompt {i} is outside the vocabulary (0..{model.d_vocab - 1})."
            )
        return a
    try:
        return model.to_single_token(a)
    except InterpError as err:
        raise InterpError(f"Prompt {i}: {err}") from None


def _answer_pair(model: Model, i: int, a: AnswerSpec) -> tuple[int, int]:
    if isinstance(a, tuple | list):
        if len(a) != 2:
            raise InterpError(
                f"Answer for prompt {i} must be (correct, incorrect) or a single token, got {a!r}."
            )
        return _answer_id(model, i, a[0]), _answer_id(model, i, a[1])
    one = _answer_id(model, i, a)
    return one, one
