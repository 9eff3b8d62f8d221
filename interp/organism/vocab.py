"""The organism's word-level tokenizer: every word of the synthetic world is one token."""

from __future__ import annotations

import re
from typing import Any

from interp.tasks.words import (
    CITIES,
    FILLER,
    IOI_TEMPLATES,
    JOBS,
    NAMES,
    OBJECTS,
    PLACES,
    RECALL_TEMPLATES,
    STATEMENT_TEMPLATES,
    TRUE_FALSE,
)

SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>")
PUNCT = (",", ".", "?", ":", "+", "=")
DIGITS = tuple(str(d) for d in range(10))


def words() -> list[str]:
    """Every word token, sorted, without specials, punctuation or digits."""
    text = " ".join([*IOI_TEMPLATES, *RECALL_TEMPLATES.values(), *STATEMENT_TEMPLATES.values()])
    text = re.sub(r"\{[A-Z]+\}", " ", text)
    pool = set(re.findall(r"[A-Za-z]+", text))
    pool.update(NAMES, PLACES, OBJECTS, CITIES, JOBS, TRUE_FALSE, FILLER, ["so"])
    return sorted(pool)


def vocabulary() -> dict[str, int]:
    tokens = [*SPECIAL, *PUNCT, *DIGITS, *words()]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer() -> Any:
    """A PreTrainedTokenizerFast: word-level, punctuation split off, digits one per token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab=vocabulary(), unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=64,
    )
