"""Which token ids are whole words for a tokenizer (so generated prompts decode cleanly)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from interp.errors import InterpError


@lru_cache(maxsize=8)
def _word_ids(tokenizer: Any) -> tuple[int, ...]:
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab: dict[str, int] = tokenizer.get_vocab()
    # Once per tokenizer, not per token (it scans the vocabulary).
    space_variants = _has_space_variants(vocab)
    ids = []
    for _, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if i in special:
            continue
        text = tokenizer.decode([i])
        word = text.strip()
        # A word token: letters only, and (for byte-level BPE) the leading-space variant, so a
        # sequence of them decodes to space-separated words and re-encodes to the same ids.
        is_word = len(word) >= 2 and word.isascii() and word.isalpha() and not text.startswith("##")
        spaced = text.startswith(" ") or (" " not in text and not space_variants)
        if is_word and spaced:
            ids.append(i)
    return tuple(ids)


def _has_space_variants(vocab: dict[str, int]) -> bool:
    return any(k.startswith(("Ġ", "▁")) for k in list(vocab)[:5000])


def word_tokens(model: Any) -> Tensor:
    """Ids of whole-word tokens (with their leading space where the tokenizer has one)."""
    model.require("Choosing whole-word tokens", "tokenizer")
    ids = _word_ids(model.tokenizer)
    if len(ids) < 10:
        raise InterpError(f"{model.name}'s tokenizer has too few whole-word tokens ({len(ids)}).")
    return torch.tensor(ids, dtype=torch.long)


def repeated_tokens(model: Any, n: int, seq_len: int, seed: int) -> Tensor:
    """``[n, prefix + 2 * seq_len]`` sequences ``[prefix, r_1..r_T, r_1..r_T]`` of distinct
    random whole words (the input of the head detectors and the induction check)."""
    return repeats_from(word_tokens(model), model.prefix_ids, n, seq_len, seed)


def repeats_from(pool: Tensor, prefix: Sequence[int], n: int, seq_len: int, seed: int) -> Tensor:
    """``[n, len(prefix) + 2 * seq_len]``: `prefix`, then `seq_len` distinct ids drawn from
    `pool`, repeated once."""
    if len(pool) < seq_len:
        raise InterpError(f"Need {seq_len} distinct tokens to repeat, there are {len(pool)}.")
    gen = torch.Generator().manual_seed(seed)
    head = torch.tensor(list(prefix), dtype=torch.long)
    rows = [pool[torch.randperm(len(pool), generator=gen)[:seq_len]] for _ in range(n)]
    return torch.stack([torch.cat([head, r, r]) for r in rows])
