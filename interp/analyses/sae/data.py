"""Token rows for SAE training and evaluation, from tasks, token ids or text.

Rows are right-padded to one width; which positions count (``mask``) is decided here once, so
training (sae-lens excludes the same ids) and the card's measurements read the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.errors import InterpError

if TYPE_CHECKING:
    from interp.models import Model
    from interp.tasks.task import Task

#: What `interp.sae.train` reads: a task, several, token ids ``[rows, seq]``, or texts.
Data = Any


@dataclass
class Rows:
    """Right-padded token rows and the ids that are not content (padding, BOS, EOS...)."""

    tokens: Int[Tensor, "rows seq"]
    skip_ids: list[int]
    source: str

    @property
    def mask(self) -> Bool[Tensor, "rows seq"]:
        """True where a token is content: what SAEs are trained and measured on."""
        skip = torch.tensor(self.skip_ids, dtype=torch.long)
        return ~torch.isin(self.tokens, skip)

    def split(self, held_out: float, seed: int) -> tuple[Rows, Rows | None]:
        """(training rows, held-out rows); nothing is held out from fewer than 20 rows."""
        n = len(self.tokens)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        k = int(n * held_out) if n >= 20 else 0
        if k == 0:
            return Rows(self.tokens[order], self.skip_ids, self.source), None
        train, test = order[k:], order[:k]
        return (
            Rows(self.tokens[train], self.skip_ids, self.source),
            Rows(self.tokens[test], self.skip_ids, self.source),
        )


def _pad(model: Model, rows: Sequence[Sequence[int]]) -> Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), model.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


def rows_from(model: Model, data: Data, exclude_special: bool = True) -> Rows:
    """`data` as padded rows: a Task (its clean prompts), a list of Tasks, token ids, or texts.

    exclude_special: leave the tokenizer's special tokens (BOS, EOS, padding) out of what SAEs
        train and are measured on; padding is always left out.
    """
    from interp.tasks.task import Task

    if isinstance(data, Task):
        data = [data]
    if isinstance(data, Tensor):
        if data.ndim != 2 or data.is_floating_point() or data.numel() == 0:
            raise InterpError(
                f"Token data must be a non-empty integer tensor [rows, seq], got "
                f"{data.dtype} of shape {tuple(data.shape)}."
            )
        tokens, source = data.detach().cpu().long(), f"{len(data)} token rows"
    elif isinstance(data, Sequence) and data and all(isinstance(t, Task) for t in data):
        tasks: list[Task] = list(data)
        tokens = _pad(model, [r for t in tasks for r in _task_rows(model, t)])
        source = " + ".join(f"{t.name} ({len(t)})" for t in tasks)
    elif isinstance(data, Sequence) and data and all(isinstance(t, str) for t in data):
        ids = [model.to_tokens(t)[0].tolist() for t in data]
        long = [i for i, r in enumerate(ids) if len(r) > model.n_ctx]
        if long:
            raise InterpError(
                f"Text {long[0]} is {len(ids[long[0]])} tokens, longer than {model.name}'s "
                f"context ({model.n_ctx}); split long texts into pieces."
            )
        tokens, source = _pad(model, ids), f"{len(data)} texts"
    else:
        raise InterpError(
            "data must be a Task, a list of Tasks, a token tensor [rows, seq] or a list of "
            f"texts (got {type(data).__name__}{' (empty)' if not data else ''})."
        )
    model.check_tokens(tokens, "the SAE data")
    if tokens.shape[1] > model.n_ctx:
        raise InterpError(
            f"Token rows are {tokens.shape[1]} long, longer than {model.name}'s context "
            f"({model.n_ctx}); cut them to at most {model.n_ctx}."
        )
    skip = sorted({model.pad_id, *(model.special_ids if exclude_special else set())})
    rows = Rows(tokens, skip, source)
    if not rows.mask.any():
        raise InterpError("The data has no content tokens (all are padding or special tokens).")
    return rows


def _task_rows(model: Model, task: Task) -> list[list[int]]:
    """A task's clean prompts without their right padding."""
    pad = model.pad_id
    out = []
    for row in task.clean_tokens.tolist():
        while len(row) > 1 and row[-1] == pad:
            row.pop()
        out.append(row)
    return out
