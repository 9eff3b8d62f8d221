"""Induction task: a random word sequence repeated; the repeat is predictable only by copying."""

from __future__ import annotations

from typing import Any

import torch

from interp.checks import checked
from interp.errors import InterpError
from interp.tasks.task import Task
from interp.tasks.vocab import word_tokens


@checked
def induction(
    model: Any, n: int = 32, seq_len: int = 10, seed: int = 0, vocab: torch.Tensor | None = None
) -> Task:
    """``[BOS, r_1..r_T, r_1..r_T]`` prompts (METHODS.md section 6), answer read at the last token.

    The clean prompt ends at ``r_{T-1}`` of the repeat, so the correct answer is ``r_T`` and the
    incorrect answer a different random word. The corruption replaces the first half with other
    random words (same length), which removes the information induction heads copy.

    Args:
        model: the model handle (for its tokenizer and BOS token).
        n: number of prompts.
        seq_len: T, the length of the random sequence.
        seed: random seed; the same seed gives the same task.
        vocab: optional candidate token ids (default: the tokenizer's whole-word tokens, or
            every id of a model without a tokenizer; such tasks have no prompt strings).
    """
    if seq_len < 2:
        raise InterpError(f"induction: seq_len must be at least 2, got {seq_len}.")
    total = len(model.prefix_ids) + 2 * seq_len - 1
    if total > model.n_ctx:
        raise InterpError(
            f"induction: prompts of {total} tokens exceed {model.name}'s context {model.n_ctx}; "
            "use a smaller seq_len."
        )
    if vocab is not None:
        words = torch.as_tensor(vocab, dtype=torch.long)
    elif model.has_tokenizer:
        words = word_tokens(model)
    else:
        words = torch.arange(min(model.d_vocab, model.d_vocab_out))
    if len(words) < 2 * seq_len + 1:
        raise InterpError(f"induction: need at least {2 * seq_len + 1} candidate words.")
    gen = torch.Generator().manual_seed(seed)
    prefix = torch.tensor(model.prefix_ids, dtype=torch.long)  # BOS, or [CLS] for encoders
    clean, corrupt, answers = [], [], []
    for _ in range(n):
        pick = words[torch.randperm(len(words), generator=gen)[: 2 * seq_len + 1]]
        first, other, wrong = pick[:seq_len], pick[seq_len : 2 * seq_len], pick[-1]
        body = torch.cat([first, first[:-1]])
        clean.append(torch.cat([prefix, body]))
        corrupt.append(torch.cat([prefix, other, first[:-1]]))
        answers.append([int(first[-1]), int(wrong)])
    clean_t = torch.stack(clean)
    corrupt_t = torch.stack(corrupt)

    def prompts(rows: torch.Tensor) -> list[str]:
        if not model.has_tokenizer:
            return []
        return [model.decode(r[len(prefix) :]) for r in rows]

    return Task(
        clean_tokens=clean_t,
        corrupt_tokens=corrupt_t,
        answer_pos=torch.full((n,), clean_t.shape[1] - 1, dtype=torch.long),
        answers=torch.tensor(answers, dtype=torch.long),
        clean_prompts=prompts(clean_t),
        corrupt_prompts=prompts(corrupt_t) or None,
        name="induction",
        metadata={"seed": seed, "seq_len": seq_len, "generator": "induction"},
    )


def repeat_loss(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """Per prompt, the mean next-token loss on the repeated half of an induction task.

    Covers the predictions of r_2..r_{T-1} inside the repeat and of the answer r_T at the last
    position; higher is worse. Use it as the metric for induction ablations.
    """
    if task.metadata.get("generator") != "induction":
        raise InterpError("repeat_loss is the metric of interp.tasks.induction tasks.")
    T = int(task.metadata["seq_len"])
    start = task.seq_len - (T - 1)  # position of the repeat's first token r_1
    logp = logits.log_softmax(-1)
    toks = task.clean_tokens.to(logits.device)
    inner = logp[:, start : task.seq_len - 1].gather(-1, toks[:, start + 1 :, None])[..., 0]
    rows = torch.arange(len(task), device=logits.device)
    last = logp[rows, task.answer_pos.to(logits.device), task.correct.to(logits.device)]
    return -torch.cat([inner, last[:, None]], dim=1).mean(-1)
