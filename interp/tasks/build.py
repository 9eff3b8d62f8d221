"""Checks and padding behind `Task.from_prompts` and `Task.from_tokens`.

Everything here runs before any forward pass: a bad task fails with a message that names the
prompt and what to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from interp.errors import InterpError

if TYPE_CHECKING:
    from interp.models import Model

AnswerSpec = tuple[str | int, str | int] | str | int
TokenRows = Tensor | Sequence[Sequence[int]]


def check_counts(n: int, **per_prompt: Sequence[Any] | Tensor | None) -> None:
    """Every per-prompt argument given has exactly one entry per prompt."""
    for what, seq in per_prompt.items():
        if seq is not None and len(seq) != n:
            raise InterpError(f"Got {len(seq)} {what} for {n} prompts; give one per prompt.")


def encode(model: Model, prompt: str, prepend_bos: bool | None) -> list[int]:
    if not isinstance(prompt, str):
        raise InterpError(f"Prompts must be strings, got {type(prompt).__name__}: {prompt!r}.")
    if not prompt:
        raise InterpError("An empty prompt was given; every prompt needs at least one token.")
    return [int(t) for t in model.to_tokens(prompt, prepend_bos=prepend_bos)[0].tolist()]


def check_length(model: Model, i: int, prompt: str, ids: Sequence[int], kind: str) -> None:
    if len(ids) > model.n_ctx:
        raise InterpError(
            f"{kind.capitalize()} prompt {i} is {len(ids)} tokens but {model.name} has a context "
            f"of {model.n_ctx}: shorten it ({prompt[:60]!r}...) or use a longer-context model."
        )


def pad(rows: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad to a rectangle; the answer is read at each prompt's last real token."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    pos = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return out, pos


def answer_id(model: Model, i: int, a: str | int) -> int:
    """One answer as an id of the model's *output* vocabulary (strings must be one token)."""
    if isinstance(a, Tensor) and a.numel() == 1 and not a.is_floating_point():
        a = int(a)
    if isinstance(a, bool) or not isinstance(a, str | int):
        raise InterpError(f"Answer for prompt {i} must be a string or token id, got {a!r}.")
    if isinstance(a, int):
        if not 0 <= a < model.d_vocab_out:
            raise InterpError(
                f"Answer id {a} for prompt {i} is outside the vocabulary the model predicts "
                f"(0..{model.d_vocab_out - 1}): give an id the unembedding has."
            )
        return a
    try:
        return model.to_single_token(a)
    except InterpError as err:
        raise InterpError(f"Prompt {i}: {err}") from None


def answer_pairs(model: Model, answers: Sequence[AnswerSpec] | Tensor) -> Tensor:
    """``[batch, 2]`` (correct, incorrect) ids; a single answer means incorrect = correct."""
    if isinstance(answers, Tensor):
        if answers.is_floating_point() or answers.ndim not in (1, 2):
            raise InterpError(
                f"answers as a tensor must be integer ids of shape [batch] or [batch, 2], got "
                f"{answers.dtype} {tuple(answers.shape)}."
            )
        answers = [tuple(r) if answers.ndim == 2 else int(r) for r in answers.tolist()]
    pairs = []
    for i, a in enumerate(answers):
        if isinstance(a, tuple | list):
            if len(a) != 2:
                raise InterpError(
                    f"Answer for prompt {i} must be (correct, incorrect) or a single token, "
                    f"got {a!r}."
                )
            pairs.append((answer_id(model, i, a[0]), answer_id(model, i, a[1])))
        else:
            one = answer_id(model, i, a)
            pairs.append((one, one))
    return torch.tensor(pairs, dtype=torch.long)


def label_tensor(labels: Sequence[Any] | Tensor | None) -> Tensor | None:
    if labels is None:
        return None
    return labels.clone() if isinstance(labels, Tensor) else torch.tensor(list(labels))


# ---------------------------------------------------------------- token ids
def check_ids(name: str, ids: Tensor | None) -> None:
    """A Task's id tensors hold non-negative integers (the model checks the upper bound)."""
    if ids is None:
        return
    if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
        kind = f"{ids.dtype} tensor" if isinstance(ids, Tensor) else type(ids).__name__
        raise InterpError(f"Task {name} must be an integer tensor, got a {kind}.")
    if ids.numel() and int(ids.min()) < 0:
        where = tuple((ids < 0).nonzero()[0].tolist())
        raise InterpError(
            f"Task {name} holds {int(ids[where])} at index {where}; token ids and positions are "
            "never negative (an embedding lookup would silently wrap it to another token)."
        )


def token_rows(model: Model, tokens: TokenRows, kind: str) -> tuple[list[list[int]], bool]:
    """Rows of ids from a ``[batch, seq]`` tensor or a list of id lists, each id checked
    against the input vocabulary; also whether the input was a (rectangular) tensor."""
    if isinstance(tokens, str) or (
        isinstance(tokens, Sequence) and tokens and isinstance(tokens[0], str)
    ):
        raise InterpError(
            f"`{kind}` holds text: Task.from_tokens takes token ids; use Task.from_prompts for "
            "strings."
        )
    if hasattr(tokens, "__array__") and not isinstance(tokens, Tensor):
        tokens = torch.as_tensor(tokens)  # a numpy array
    if isinstance(tokens, Tensor):
        if tokens.is_floating_point() or tokens.dtype == torch.bool or tokens.ndim != 2:
            raise InterpError(
                f"`{kind}` must be an integer tensor of shape [batch, seq] or a list of id "
                f"lists, got {tokens.dtype} {tuple(tokens.shape)}."
            )
        rows = [[int(t) for t in r] for r in tokens.tolist()]
        is_tensor = True
    else:
        rows = []
        for i, row in enumerate(tokens):
            if isinstance(row, Tensor) or hasattr(row, "__array__"):
                row = torch.as_tensor(row).reshape(-1).tolist()
            if isinstance(row, str) or not isinstance(row, Sequence):
                raise InterpError(
                    f"`{kind}` row {i} is {row!r}: give one list of token ids per prompt "
                    "(a list of lists), or a [batch, seq] tensor."
                )
            bad = [t for t in row if isinstance(t, bool) or not isinstance(t, Integral)]
            if bad:
                raise InterpError(f"`{kind}` row {i} holds {bad[0]!r}: token ids must be integers.")
            rows.append([int(t) for t in row])
        is_tensor = False
    if not rows:
        raise InterpError(f"No {kind} prompts given: pass at least one row of token ids.")
    for i, row in enumerate(rows):
        if not row:
            raise InterpError(f"{kind.capitalize()} row {i} is empty: give at least one token id.")
        bad = [t for t in row if not 0 <= t < model.d_vocab]
        if bad:
            raise InterpError(
                f"{kind.capitalize()} row {i} has token ids {bad[:5]} outside {model.name}'s "
                f"input vocabulary (0..{model.d_vocab - 1})."
            )
        if len(row) > model.n_ctx:
            raise InterpError(
                f"{kind.capitalize()} prompt {i} is {len(row)} tokens but {model.name} has a "
                f"context of {model.n_ctx}: shorten it or use a longer-context model."
            )
    return rows, is_tensor


def check_pair_lengths(clean: list[list[int]], corrupt: list[list[int]]) -> None:
    if len(corrupt) != len(clean):
        raise InterpError(
            f"Got {len(clean)} clean prompts but {len(corrupt)} corrupted ones; give exactly one "
            "corrupted prompt per clean prompt."
        )
    for i, (a, b) in enumerate(zip(clean, corrupt, strict=True)):
        if len(a) != len(b):
            raise InterpError(
                f"Prompt {i}: clean is {len(a)} tokens but corrupted is {len(b)}. Patching needs "
                "equal lengths: change tokens, do not add or drop them."
            )


def answer_positions(
    answer_pos: Sequence[int] | Tensor | None, lengths: list[int], width: int
) -> Tensor:
    """Each prompt's answer position: given ones must fall on a real (unpadded) token."""
    if answer_pos is None:
        return torch.tensor([n - 1 for n in lengths], dtype=torch.long)
    if isinstance(answer_pos, Tensor):
        if answer_pos.is_floating_point() or answer_pos.ndim != 1:
            raise InterpError(
                f"answer_pos must be integer positions of shape [batch], got "
                f"{answer_pos.dtype} {tuple(answer_pos.shape)}."
            )
        given = [int(p) for p in answer_pos.tolist()]
    else:
        given = list(answer_pos)
    check_counts(len(lengths), answer_positions=given)
    for i, (p, n) in enumerate(zip(given, lengths, strict=True)):
        if isinstance(p, bool) or not isinstance(p, Integral):
            raise InterpError(f"answer_pos[{i}] is {p!r}: positions must be integers.")
        if not 0 <= p < n:
            where = "padding" if n <= p < width else "outside the prompt"
            raise InterpError(
                f"answer_pos[{i}] = {p} is {where}: prompt {i} has {n} tokens, so its answer "
                f"position must be in 0..{n - 1} (counted from 0; the default is its last token)."
            )
    return torch.tensor([int(p) for p in given], dtype=torch.long)
